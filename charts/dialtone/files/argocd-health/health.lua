-- Argo CD health check for every dialtone.io/v1alpha1 kind (Tenant, Provider,
-- ClusterProvider, Objective, Agent, Campaign): they share one status shape.
-- Wire it in argocd-cm under resource.customizations.health.dialtone.io_*
-- (see docs/argocd.md). The logic:
--   Progressing  the operator has not observed the latest spec yet
--                (status.observedGeneration < metadata.generation), no Ready
--                condition yet, Ready=Unknown, or Ready=False with an
--                in-progress reason;
--   Suspended    Ready with reason Suspended (spec.suspend);
--   Degraded     Ready=False with any other reason (e.g. SecretNotFound);
--   Healthy      Ready=True for the current generation.
local hs = {}

local inProgress = {
  Reconciling = true, Progressing = true, Pending = true, Provisioning = true,
  Compiling = true, SmokeTesting = true, Activating = true, RollingOut = true,
  Creating = true, Initializing = true, Waiting = true, Deleting = true,
}

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Being deleted; waiting for the operator's finalizer"
  return hs
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local ready = nil
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Ready" then
      ready = c
    end
  end
end

if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end

if generation ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Ready condition is for an older generation"
  return hs
end

local reason = ready.reason or ""
local message = ready.message or ""
local text = reason
if message ~= "" then
  if text ~= "" then
    text = text .. ": " .. message
  else
    text = message
  end
end

if reason == "Suspended" then
  -- A suspended Tenant stays Ready=True (its namespace keeps serving calls
  -- in flight); other kinds report Ready=False. Either way: Suspended.
  hs.status = "Suspended"
  hs.message = text
elseif ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text
elseif ready.status == "False" then
  if inProgress[reason] then
    hs.status = "Progressing"
  else
    hs.status = "Degraded"
  end
  hs.message = text
else
  hs.status = "Progressing"
  hs.message = text
end
return hs
