{{/*
Chart name, truncated to the 63 characters a label value allows.
*/}}
{{- define "dialtone.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects. When the release name already contains
the chart name it is used as is (so `helm install dialtone …` gives "dialtone").
*/}}
{{- define "dialtone.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart label value: name-version.
*/}}
{{- define "dialtone.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "dialtone.labels" -}}
helm.sh/chart: {{ include "dialtone.chart" . }}
{{ include "dialtone.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dialtone
{{- end }}

{{/*
Selector labels of the operator pods (immutable once installed).
*/}}
{{- define "dialtone.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dialtone.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
Name of the operator's ServiceAccount.
*/}}
{{- define "dialtone.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dialtone.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Name of the leader-election Lease.
*/}}
{{- define "dialtone.leaseName" -}}
{{- default (include "dialtone.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
The operator image reference.
*/}}
{{- define "dialtone.image" -}}
{{- include "dialtone.imageRef" (dict "image" .Values.image "appVersion" .Chart.AppVersion) }}
{{- end }}

{{/*
An image reference: repository:tag (the tag defaults to the chart's
appVersion), pinned with @digest when one is given.
*/}}
{{- define "dialtone.imageRef" -}}
{{- $ref := printf "%s:%s" .image.repository (.image.tag | default .appVersion) -}}
{{- if .image.digest -}}
{{- $ref = printf "%s@%s" $ref .image.digest -}}
{{- end -}}
{{- $ref -}}
{{- end }}

{{/*
Labels of the shared workers' objects (their own component, so the
operator's selector never matches them).
*/}}
{{- define "dialtone.workerSelectorLabels" -}}
app.kubernetes.io/name: {{ include "dialtone.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: workers
{{- end }}

{{- define "dialtone.workerLabels" -}}
helm.sh/chart: {{ include "dialtone.chart" . }}
{{ include "dialtone.workerSelectorLabels" . }}
app.kubernetes.io/version: {{ .Values.workers.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dialtone
{{- end }}
