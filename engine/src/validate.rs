//! Objective validation: every problem at once, each with a field path and a
//! message a platform engineer can act on.
//!
//! Checks that admission (CEL) already makes are repeated here on purpose:
//! `dialtone validate` runs offline in GitOps pipelines, before any API
//! server sees the YAML.

use std::collections::{BTreeMap, BTreeSet};

use dialtone_crds::objective::{
    BranchCondition, CaptureStep, ObjectiveSpec, ObjectiveSummary, OnFailure, Primitive,
    SilenceAction, Step, StepKind,
};
use dialtone_crds::tenant::TenantSpec;

use crate::phrasebook;
use crate::template::{Origin, expand};
use crate::vocabulary::{EVENT_TYPES, slot_refs};

/// What kind of problem a validation error is; its [`reason`](Self::reason)
/// is the CamelCase condition reason the operator writes into status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// Template overrides that do not apply.
    InvalidTemplate,
    /// No start step, or the start names no step.
    MissingStart,
    /// A reference to a step id that does not exist.
    UnknownStep,
    /// Two steps with the same id.
    DuplicateStep,
    /// A malformed step: bad id, member not matching kind, next missing.
    InvalidStep,
    /// The graph has a cycle.
    Cycle,
    /// A step cannot be reached from the start.
    Unreachable,
    /// A slot is used where it may not have been captured.
    SlotNotCaptured,
    /// A capture rule or route condition that cannot work.
    InvalidRule,
    /// A phrase id the phrasebook does not have.
    UnknownPhrase,
    /// A transfer with nowhere to go.
    NoTransferTarget,
    /// A malformed scripted test call.
    InvalidTest,
}

impl ErrorKind {
    /// The CamelCase reason for conditions and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorKind::InvalidTemplate => "InvalidTemplate",
            ErrorKind::MissingStart => "MissingStart",
            ErrorKind::UnknownStep => "UnknownStep",
            ErrorKind::DuplicateStep => "DuplicateStep",
            ErrorKind::InvalidStep => "InvalidStep",
            ErrorKind::Cycle => "CycleDetected",
            ErrorKind::Unreachable => "UnreachableStep",
            ErrorKind::SlotNotCaptured => "SlotNotCaptured",
            ErrorKind::InvalidRule => "InvalidRule",
            ErrorKind::UnknownPhrase => "UnknownPhrase",
            ErrorKind::NoTransferTarget => "NoTransferTarget",
            ErrorKind::InvalidTest => "InvalidTestCall",
        }
    }
}

/// One problem in an Objective.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ValidationError {
    /// What kind of problem.
    pub kind: ErrorKind,
    /// Field path within the Objective, e.g. `spec.steps[3].next`.
    pub path: String,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

/// An Objective that passed validation, with its template applied.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidObjective {
    /// The first step.
    pub start: String,
    /// Every step, sorted by id (order carries no meaning in the graph).
    pub steps: Vec<Step>,
    /// The summary the operator writes into status.
    pub summary: ObjectiveSummary,
}

struct Ctx<'a> {
    tenant: Option<&'a TenantSpec>,
    errors: Vec<ValidationError>,
}

impl Ctx<'_> {
    fn err(&mut self, kind: ErrorKind, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ValidationError {
            kind,
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Validates an Objective. `tenant` enables the checks that need the
/// tenant's profile (escalation contacts, business hours); without it they
/// are skipped here and made when an Agent using the Objective is compiled,
/// which always knows the tenant.
pub fn validate_objective(
    spec: &ObjectiveSpec,
    tenant: Option<&TenantSpec>,
) -> Result<ValidObjective, Vec<ValidationError>> {
    let mut cx = Ctx {
        tenant,
        errors: Vec::new(),
    };
    let expanded = expand(spec);
    for (path, message) in &expanded.problems {
        cx.err(ErrorKind::InvalidTemplate, path.clone(), message.clone());
    }
    let steps = &expanded.steps;

    // Ids: format and uniqueness.
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, (step, origin)) in steps.iter().enumerate() {
        if !is_label(&step.id) {
            cx.err(
                ErrorKind::InvalidStep,
                format!("{}.id", origin.path()),
                format!(
                    "step id {:?} must be lower-case letters, digits and dashes (at most 63)",
                    step.id
                ),
            );
        }
        if let Some(&first) = index.get(step.id.as_str()) {
            cx.err(
                ErrorKind::DuplicateStep,
                format!("{}.id", origin.path()),
                format!(
                    "duplicate step id {:?}; {} already uses it",
                    step.id,
                    steps[first].1.path()
                ),
            );
        } else {
            index.insert(&step.id, i);
        }
    }

    let start = match &expanded.start {
        None => {
            cx.err(
                ErrorKind::MissingStart,
                "spec.start",
                "set start (the first step) or use a template",
            );
            None
        }
        Some(s) => match index.get(s.as_str()) {
            Some(&i) => Some(i),
            None => {
                cx.err(
                    ErrorKind::MissingStart,
                    "spec.start",
                    format!("start names step {s:?}, which does not exist"),
                );
                None
            }
        },
    };

    // Slots: which primitive each is captured with.
    let mut slots: BTreeMap<&str, (&CaptureStep, String)> = BTreeMap::new();
    for (step, origin) in steps {
        if let Some(c) = &step.capture {
            match slots.get(c.slot.as_str()) {
                Some((first, at)) if first.primitive != c.primitive => cx.err(
                    ErrorKind::InvalidRule,
                    format!("{}.capture.primitive", origin.path()),
                    format!(
                        "slot {:?} is captured as {} here but as {} at {at}",
                        c.slot,
                        c.primitive.as_str(),
                        first.primitive.as_str()
                    ),
                ),
                Some(_) => {}
                None => {
                    slots.insert(&c.slot, (c, origin.path()));
                }
            }
        }
    }

    // Per-step shape, references and rules; collect edges.
    let mut edges: Vec<Vec<(usize, String)>> = vec![Vec::new(); steps.len()];
    for (i, (step, origin)) in steps.iter().enumerate() {
        check_step(&mut cx, step, &origin.path(), &slots);
        for (target, field) in targets(step) {
            let path = format!("{}{field}", origin.path());
            match index.get(target) {
                Some(&t) => edges[i].push((t, path)),
                None => cx.err(
                    ErrorKind::UnknownStep,
                    path,
                    format!("no step has id {target:?}"),
                ),
            }
        }
    }

    let names: Vec<&str> = steps.iter().map(|(s, _)| s.id.as_str()).collect();
    let acyclic = check_cycles(&mut cx, &names, &edges);
    if let Some(start) = start {
        let reachable = reach(start, &edges);
        for (i, (step, origin)) in steps.iter().enumerate() {
            if !reachable[i] && index.get(step.id.as_str()) == Some(&i) {
                cx.err(
                    ErrorKind::Unreachable,
                    origin.path(),
                    format!(
                        "step {:?} cannot be reached from start {:?}",
                        step.id, names[start]
                    ),
                );
            }
        }
        if acyclic {
            check_slot_flow(&mut cx, steps, start, &edges, &reachable, &slots);
        }
    }

    check_escalation(&mut cx, spec, steps);
    check_tests(&mut cx, spec, &index, &slots);

    if !cx.errors.is_empty() {
        return Err(cx.errors);
    }
    let mut sorted: Vec<Step> = steps.iter().map(|(s, _)| s.clone()).collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(ValidObjective {
        start: expanded.start.unwrap_or_default(),
        summary: summary_of(spec, &sorted),
        steps: sorted,
    })
}

/// The status summary of an expanded objective.
fn summary_of(spec: &ObjectiveSpec, steps: &[Step]) -> ObjectiveSummary {
    let mut required = BTreeSet::new();
    let mut optional = BTreeSet::new();
    for c in steps.iter().filter_map(|s| s.capture.as_ref()) {
        if c.required {
            required.insert(c.slot.clone());
        } else {
            optional.insert(c.slot.clone());
        }
    }
    // A slot required anywhere is required.
    let optional = optional.difference(&required).cloned().collect();
    ObjectiveSummary {
        steps: i32::try_from(steps.len()).unwrap_or(i32::MAX),
        required_slots: required.into_iter().collect(),
        optional_slots: optional,
        test_calls: i32::try_from(spec.tests.len()).unwrap_or(i32::MAX),
        template: spec.template.map(|t| t.as_str().to_owned()),
    }
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is an E.164 number: `+`, a non-zero digit, 6 to 14 more digits.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// The step ids a step can go to, with the field (relative to the step)
/// that names each.
pub(crate) fn targets(step: &Step) -> Vec<(&str, String)> {
    let mut out = Vec::new();
    match step.kind {
        StepKind::Route => {
            if let Some(r) = &step.route {
                for (j, b) in r.branches.iter().enumerate() {
                    out.push((b.next.as_str(), format!(".route.branches[{j}].next")));
                }
                out.push((r.default.as_str(), ".route.default".to_owned()));
            }
        }
        StepKind::Capture | StepKind::Say | StepKind::Book => {
            if let Some(n) = &step.next {
                out.push((n.as_str(), ".next".to_owned()));
            }
        }
        StepKind::Transfer | StepKind::End => {}
    }
    out
}

fn check_step(
    cx: &mut Ctx<'_>,
    step: &Step,
    path: &str,
    slots: &BTreeMap<&str, (&CaptureStep, String)>,
) {
    let members = [
        ("capture", step.capture.is_some(), StepKind::Capture),
        ("say", step.say.is_some(), StepKind::Say),
        ("route", step.route.is_some(), StepKind::Route),
        ("transfer", step.transfer.is_some(), StepKind::Transfer),
        ("book", step.book.is_some(), StepKind::Book),
        ("end", step.end.is_some(), StepKind::End),
    ];
    for (name, set, kind) in members {
        if set && kind != step.kind {
            cx.err(
                ErrorKind::InvalidStep,
                format!("{path}.{name}"),
                format!(
                    "kind is {} but {name} is set; remove it",
                    step.kind.as_str()
                ),
            );
        }
        if !set && kind == step.kind {
            cx.err(
                ErrorKind::InvalidStep,
                format!("{path}.{name}"),
                format!("kind {name} needs the {name} member"),
            );
        }
    }
    match step.kind {
        StepKind::Capture | StepKind::Say | StepKind::Book if step.next.is_none() => {
            cx.err(
                ErrorKind::InvalidStep,
                format!("{path}.next"),
                format!("a {} step needs next", step.kind.as_str()),
            );
        }
        StepKind::Route | StepKind::Transfer | StepKind::End if step.next.is_some() => {
            cx.err(
                ErrorKind::InvalidStep,
                format!("{path}.next"),
                format!(
                    "a {} step decides where the call goes itself; remove next",
                    step.kind.as_str()
                ),
            );
        }
        _ => {}
    }
    if let Some(c) = &step.capture {
        check_capture(cx, c, &format!("{path}.capture"));
    }
    if let Some(s) = &step.say {
        check_phrase(cx, &s.phrase, &format!("{path}.say.phrase"));
    }
    if let Some(r) = &step.route {
        if r.branches.is_empty() {
            cx.err(
                ErrorKind::InvalidRule,
                format!("{path}.route.branches"),
                "a route needs at least one branch",
            );
        }
        for (j, b) in r.branches.iter().enumerate() {
            check_condition(
                cx,
                &b.when,
                &format!("{path}.route.branches[{j}].when"),
                slots,
            );
        }
    }
    if let Some(t) = &step.transfer {
        check_transfer(cx, t, &format!("{path}.transfer"));
    }
    if let Some(b) = &step.book
        && b.slots.is_empty()
    {
        cx.err(
            ErrorKind::InvalidRule,
            format!("{path}.book.slots"),
            "a book step sends at least one slot",
        );
    }
    if let Some(e) = &step.end {
        if !is_label(&e.outcome) {
            cx.err(
                ErrorKind::InvalidStep,
                format!("{path}.end.outcome"),
                "outcome must be lower-case letters, digits and dashes",
            );
        }
        if let Some(ph) = &e.phrase {
            check_phrase(cx, ph, &format!("{path}.end.phrase"));
        }
    }
}

fn check_phrase(cx: &mut Ctx<'_>, id: &str, path: &str) {
    if !phrasebook::exists(id) {
        let known: Vec<&str> = phrasebook::ids()
            .filter(|i| !i.starts_with("repair."))
            .collect();
        cx.err(
            ErrorKind::UnknownPhrase,
            path,
            format!(
                "the phrasebook has no phrase {id:?}; known: {}",
                known.join(", ")
            ),
        );
    }
}

fn check_capture(cx: &mut Ctx<'_>, c: &CaptureStep, path: &str) {
    let slot_ok = c
        .slot
        .chars()
        .next()
        .is_some_and(|ch| ch.is_ascii_alphabetic())
        && c.slot
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
    if !slot_ok {
        cx.err(
            ErrorKind::InvalidStep,
            format!("{path}.slot"),
            "slot must start with a letter and hold letters, digits and underscores",
        );
    }
    if !(1..=5).contains(&c.max_attempts) {
        cx.err(
            ErrorKind::InvalidRule,
            format!("{path}.maxAttempts"),
            format!(
                "maxAttempts is {}; it must be between 1 and 5",
                c.max_attempts
            ),
        );
    }
    if let Some(p) = &c.prompt {
        check_phrase(cx, p, &format!("{path}.prompt"));
    }
    match (c.primitive, c.choices.len()) {
        (Primitive::Choice, n) if n < 2 => cx.err(
            ErrorKind::InvalidRule,
            format!("{path}.choices"),
            "a choice capture needs at least two choices",
        ),
        (Primitive::Choice, _) => {}
        (_, 0) => {}
        (p, _) => cx.err(
            ErrorKind::InvalidRule,
            format!("{path}.choices"),
            format!(
                "choices only apply to the choice primitive, not {}",
                p.as_str()
            ),
        ),
    }
    let Some(rules) = &c.validation else { return };
    if let Some(pattern) = &rules.pattern
        && let Err(e) = regex::Regex::new(pattern)
    {
        let first = e
            .to_string()
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned();
        cx.err(
            ErrorKind::InvalidRule,
            format!("{path}.validation.pattern"),
            format!("invalid regular expression {pattern:?}: {first}"),
        );
    }
    let numeric = matches!(c.primitive, Primitive::Number | Primitive::Money);
    if (rules.min.is_some() || rules.max.is_some()) && !numeric {
        cx.err(
            ErrorKind::InvalidRule,
            format!("{path}.validation"),
            format!(
                "min and max apply to number and money captures, not {}",
                c.primitive.as_str()
            ),
        );
    }
    if let (Some(min), Some(max)) = (rules.min, rules.max)
        && min > max
    {
        cx.err(
            ErrorKind::InvalidRule,
            format!("{path}.validation.min"),
            format!("min {min} exceeds max {max}"),
        );
    }
    if rules.within_business_hours {
        if !matches!(
            c.primitive,
            Primitive::Date | Primitive::Time | Primitive::DateTime
        ) {
            cx.err(
                ErrorKind::InvalidRule,
                format!("{path}.validation.withinBusinessHours"),
                format!(
                    "withinBusinessHours applies to date, time and dateTime captures, not {}",
                    c.primitive.as_str()
                ),
            );
        }
        if cx
            .tenant
            .is_some_and(|t| t.profile.business_hours.is_empty())
        {
            cx.err(
                ErrorKind::InvalidRule,
                format!("{path}.validation.withinBusinessHours"),
                "the tenant has no business hours to check against",
            );
        }
    }
    if c.primitive == Primitive::Choice {
        for (k, v) in rules.allowed_values.iter().enumerate() {
            if !c.choices.iter().any(|ch| ch.eq_ignore_ascii_case(v)) {
                cx.err(
                    ErrorKind::InvalidRule,
                    format!("{path}.validation.allowedValues[{k}]"),
                    format!("{v:?} is not one of the choices"),
                );
            }
        }
    }
}

fn check_condition(
    cx: &mut Ctx<'_>,
    w: &BranchCondition,
    path: &str,
    slots: &BTreeMap<&str, (&CaptureStep, String)>,
) {
    let subjects = [
        w.slot.is_some(),
        w.intent.is_some(),
        w.business_hours.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if subjects != 1 {
        cx.err(
            ErrorKind::InvalidRule,
            path,
            "set exactly one of slot, intent or businessHours",
        );
        return;
    }
    let comparisons = [
        w.equals.is_some(),
        w.not_equals.is_some(),
        w.one_of.is_some(),
        w.present.is_some(),
        w.less_than.is_some(),
        w.greater_than.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if let Some(intent) = &w.intent
        && intent.iter().all(|s| s.trim().is_empty())
    {
        cx.err(
            ErrorKind::InvalidRule,
            format!("{path}.intent"),
            "list at least one word or phrase",
        );
    }
    if w.business_hours.is_some()
        && cx
            .tenant
            .is_some_and(|t| t.profile.business_hours.is_empty())
    {
        cx.err(
            ErrorKind::InvalidRule,
            format!("{path}.businessHours"),
            "the tenant has no business hours, so the business is never open",
        );
    }
    let Some(slot) = &w.slot else {
        if comparisons > 0 {
            cx.err(
                ErrorKind::InvalidRule,
                path,
                "comparisons (equals, oneOf, ...) apply to slot conditions only",
            );
        }
        return;
    };
    if comparisons != 1 {
        cx.err(ErrorKind::InvalidRule, path, "a slot condition needs exactly one of equals, notEquals, oneOf, present, lessThan, greaterThan");
        return;
    }
    // An unknown slot is reported by the slot-flow check, with its path.
    let Some((capture, _)) = slots.get(slot.as_str()) else {
        return;
    };
    if (w.less_than.is_some() || w.greater_than.is_some())
        && !matches!(capture.primitive, Primitive::Number | Primitive::Money)
    {
        cx.err(
            ErrorKind::InvalidRule,
            path,
            format!(
                "lessThan and greaterThan compare number and money slots; {slot:?} is {}",
                capture.primitive.as_str()
            ),
        );
    }
    let compared: Vec<&String> = w
        .equals
        .iter()
        .chain(w.not_equals.iter())
        .chain(w.one_of.iter().flatten())
        .collect();
    let allowed: Option<Vec<String>> = match capture.primitive {
        Primitive::Choice => Some(capture.choices.clone()),
        Primitive::YesNo => Some(vec!["yes".to_owned(), "no".to_owned()]),
        _ => None,
    };
    if let Some(allowed) = allowed {
        for v in compared {
            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(v)) {
                cx.err(
                    ErrorKind::InvalidRule,
                    path,
                    format!(
                        "slot {slot:?} can only be {}; {v:?} never matches",
                        allowed
                            .iter()
                            .map(|a| format!("{a:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
    }
}

fn check_transfer(cx: &mut Ctx<'_>, t: &dialtone_crds::objective::TransferStep, path: &str) {
    if let Some(to) = &t.to {
        if !is_e164(to) {
            cx.err(
                ErrorKind::NoTransferTarget,
                format!("{path}.to"),
                format!("{to:?} is not an E.164 number such as +61291234567"),
            );
        }
        if t.contact.is_some() {
            cx.err(
                ErrorKind::InvalidStep,
                format!("{path}.contact"),
                "set to or contact, not both",
            );
        }
        return;
    }
    let Some(tenant) = cx.tenant else { return };
    match &t.contact {
        Some(c)
            if !tenant
                .escalation_contacts
                .iter()
                .any(|e| &e.name == c || e.role.as_ref() == Some(c)) =>
        {
            cx.err(
                ErrorKind::NoTransferTarget,
                format!("{path}.contact"),
                format!("the tenant has no escalation contact named or with role {c:?}"),
            )
        }
        None if tenant.escalation_contacts.is_empty() => cx.err(
            ErrorKind::NoTransferTarget,
            path,
            "the transfer has no number: set to, or give the tenant an escalation contact",
        ),
        _ => {}
    }
}

fn check_escalation(cx: &mut Ctx<'_>, spec: &ObjectiveSpec, steps: &[(Step, Origin)]) {
    if let Some(e) = &spec.escalation {
        check_transfer(cx, e, "spec.escalation");
        return;
    }
    let Some(tenant) = cx.tenant else { return };
    if !tenant.escalation_contacts.is_empty() {
        return;
    }
    for (step, origin) in steps {
        if step
            .capture
            .as_ref()
            .is_some_and(|c| c.on_failure == OnFailure::Transfer)
        {
            cx.err(
                ErrorKind::NoTransferTarget,
                format!("{}.capture.onFailure", origin.path()),
                "onFailure is transfer (the default) but there is nowhere to transfer to: set spec.escalation, give the tenant an escalation contact, or use onFailure: end",
            );
        }
    }
    if spec
        .silence
        .as_ref()
        .is_some_and(|s| s.then == SilenceAction::Transfer)
    {
        cx.err(ErrorKind::NoTransferTarget, "spec.silence.then", "silence ends in a transfer but there is nowhere to transfer to: set spec.escalation or give the tenant an escalation contact");
    }
}

/// Names each cycle once, as `a → b → a`, at the field that closes it.
/// Returns whether the graph is acyclic.
fn check_cycles(cx: &mut Ctx<'_>, names: &[&str], edges: &[Vec<(usize, String)>]) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark = vec![Mark::New; names.len()];
    let mut seen: BTreeSet<Vec<usize>> = BTreeSet::new();
    let mut acyclic = true;
    for root in 0..names.len() {
        if mark[root] != Mark::New {
            continue;
        }
        // Iterative DFS: (node, next edge to try); `path` mirrors the stack.
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = Mark::Active;
        while let Some(&mut (node, ref mut edge)) = stack.last_mut() {
            if let Some((target, field)) = edges[node].get(*edge) {
                *edge += 1;
                match mark[*target] {
                    Mark::New => {
                        mark[*target] = Mark::Active;
                        stack.push((*target, 0));
                    }
                    Mark::Active => {
                        acyclic = false;
                        let from = stack.iter().position(|(n, _)| n == target).unwrap_or(0);
                        let cycle: Vec<usize> = stack[from..].iter().map(|(n, _)| *n).collect();
                        // Rotate so the same cycle found from elsewhere dedups.
                        let min_at = cycle
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, n)| **n)
                            .map(|(i, _)| i)
                            .unwrap_or(0);
                        let mut key = cycle[min_at..].to_vec();
                        key.extend_from_slice(&cycle[..min_at]);
                        if seen.insert(key) {
                            let mut shown: Vec<&str> = cycle.iter().map(|n| names[*n]).collect();
                            shown.push(names[*target]);
                            cx.err(
                                ErrorKind::Cycle,
                                field.clone(),
                                format!("cycle {}: objectives must be acyclic", shown.join(" → ")),
                            );
                        }
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    acyclic
}

fn reach(start: usize, edges: &[Vec<(usize, String)>]) -> Vec<bool> {
    let mut seen = vec![false; edges.len()];
    let mut todo = vec![start];
    while let Some(n) = todo.pop() {
        if std::mem::replace(&mut seen[n], true) {
            continue;
        }
        todo.extend(edges[n].iter().map(|(t, _)| *t));
    }
    seen
}

/// The slots a step reads, with the field that names each.
fn slot_uses(step: &Step) -> Vec<(String, String)> {
    let mut uses = Vec::new();
    if let Some(s) = &step.say {
        for (k, v) in &s.params {
            for slot in slot_refs(v) {
                uses.push((slot.to_owned(), format!(".say.params.{k}")));
            }
        }
    }
    if let Some(r) = &step.route {
        for (j, b) in r.branches.iter().enumerate() {
            if let Some(slot) = &b.when.slot {
                uses.push((slot.clone(), format!(".route.branches[{j}].when.slot")));
            }
        }
    }
    if let Some(b) = &step.book {
        for (j, slot) in b.slots.iter().enumerate() {
            uses.push((slot.clone(), format!(".book.slots[{j}]")));
        }
    }
    uses
}

/// Forward must-analysis over the DAG: a slot is available at a step when
/// every path from start to it passes a capture of that slot.
fn check_slot_flow(
    cx: &mut Ctx<'_>,
    steps: &[(Step, Origin)],
    start: usize,
    edges: &[Vec<(usize, String)>],
    reachable: &[bool],
    slots: &BTreeMap<&str, (&CaptureStep, String)>,
) {
    let n = steps.len();
    let mut indegree = vec![0usize; n];
    for (from, out) in edges.iter().enumerate() {
        if reachable[from] {
            for (t, _) in out {
                indegree[*t] += 1;
            }
        }
    }
    let mut available: Vec<Option<BTreeSet<&str>>> = vec![None; n];
    available[start] = Some(BTreeSet::new());
    let mut ready = vec![start];
    while let Some(node) = ready.pop() {
        let (step, origin) = &steps[node];
        let here = available[node].clone().unwrap_or_default();
        for (slot, field) in slot_uses(step) {
            if !slots.contains_key(slot.as_str()) {
                cx.err(
                    ErrorKind::SlotNotCaptured,
                    format!("{}{field}", origin.path()),
                    format!("slot {slot:?} is never captured by any step"),
                );
            } else if !here.contains(slot.as_str()) {
                cx.err(
                    ErrorKind::SlotNotCaptured,
                    format!("{}{field}", origin.path()),
                    format!("slot {slot:?} is used before it is captured on some path from start to step {:?}", step.id),
                );
            }
        }
        let mut out = here;
        if let Some(c) = &step.capture {
            out.insert(c.slot.as_str());
        }
        for (t, _) in &edges[node] {
            let merged = match available[*t].take() {
                None => out.clone(),
                Some(prev) => prev.intersection(&out).copied().collect(),
            };
            available[*t] = Some(merged);
            indegree[*t] -= 1;
            if indegree[*t] == 0 {
                ready.push(*t);
            }
        }
    }
}

fn check_tests(
    cx: &mut Ctx<'_>,
    spec: &ObjectiveSpec,
    index: &BTreeMap<&str, usize>,
    slots: &BTreeMap<&str, (&CaptureStep, String)>,
) {
    let mut names = BTreeSet::new();
    for (i, t) in spec.tests.iter().enumerate() {
        let path = format!("spec.tests[{i}]");
        if !names.insert(t.name.as_str()) {
            cx.err(
                ErrorKind::InvalidTest,
                format!("{path}.name"),
                format!("duplicate test name {:?}", t.name),
            );
        }
        if let Some(now) = &t.now
            && chrono::DateTime::parse_from_rfc3339(now).is_err()
        {
            cx.err(
                ErrorKind::InvalidTest,
                format!("{path}.now"),
                format!("{now:?} is not RFC 3339, e.g. 2025-03-04T10:00:00+11:00"),
            );
        }
        if let Some(tz) = &t.timezone
            && tz.parse::<chrono_tz::Tz>().is_err()
        {
            cx.err(
                ErrorKind::InvalidTest,
                format!("{path}.timezone"),
                format!("{tz:?} is not an IANA time zone"),
            );
        }
        if t.turns.is_empty() {
            cx.err(
                ErrorKind::InvalidTest,
                format!("{path}.turns"),
                "a test call needs at least one turn",
            );
        }
        for (j, turn) in t.turns.iter().enumerate() {
            let tpath = format!("{path}.turns[{j}]");
            let actions = [
                turn.say.is_some(),
                turn.dtmf.is_some(),
                turn.silence == Some(true),
                turn.hangup == Some(true),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if actions != 1 {
                cx.err(
                    ErrorKind::InvalidTest,
                    tpath.clone(),
                    "set exactly one of say, dtmf, silence: true or hangup: true",
                );
            }
            if turn.confidence.is_some_and(|c| !(0.0..=1.0).contains(&c)) {
                cx.err(
                    ErrorKind::InvalidTest,
                    format!("{tpath}.confidence"),
                    "confidence must be between 0 and 1",
                );
            }
            if let Some(e) = &turn.expect {
                if let Some(step) = &e.step
                    && !index.contains_key(step.as_str())
                {
                    cx.err(
                        ErrorKind::InvalidTest,
                        format!("{tpath}.expect.step"),
                        format!("no step has id {step:?}"),
                    );
                }
                for s in &e.says {
                    check_phrase(cx, s, &format!("{tpath}.expect.says"));
                }
                check_expected(
                    cx,
                    &format!("{tpath}.expect"),
                    e.slots.keys(),
                    &e.events,
                    slots,
                );
            }
        }
        check_expected(
            cx,
            &format!("{path}.expect"),
            t.expect.slots.keys(),
            &t.expect.events,
            slots,
        );
    }
}

fn check_expected<'a>(
    cx: &mut Ctx<'_>,
    path: &str,
    slot_names: impl Iterator<Item = &'a String>,
    events: &[String],
    slots: &BTreeMap<&str, (&CaptureStep, String)>,
) {
    for s in slot_names {
        if !slots.contains_key(s.as_str()) {
            cx.err(
                ErrorKind::InvalidTest,
                format!("{path}.slots.{s}"),
                format!("no step captures slot {s:?}"),
            );
        }
    }
    for (k, e) in events.iter().enumerate() {
        if !EVENT_TYPES.contains(&e.as_str()) {
            cx.err(
                ErrorKind::InvalidTest,
                format!("{path}.events[{k}]"),
                format!(
                    "unknown event type {e:?}; known: {}",
                    EVENT_TYPES.join(", ")
                ),
            );
        }
    }
}
