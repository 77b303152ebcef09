//! Built-in objective templates and how an Objective's overrides apply to
//! them.
//!
//! Override semantics: with `template` set, each step of `spec.steps` whose
//! id matches a template step replaces that step whole; any other step is
//! added; `spec.removeSteps` deletes template steps; `spec.start`, when set,
//! replaces the template's start. Replacing whole steps (rather than merging
//! fields) keeps the rule explainable in one sentence and makes the result of
//! an override visible in the spec itself.

use dialtone_crds::objective::{ObjectiveSpec, Step, Template};
use serde_json::json;

/// Where a step of the expanded objective came from, so validation errors
/// point at the field a platform engineer can edit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `spec.steps[i]`.
    Spec(usize),
    /// Step `i` of the built-in template.
    Template(Template, usize),
}

impl Origin {
    /// The field path of the step, e.g. `spec.steps[3]`.
    pub fn path(&self) -> String {
        match self {
            Origin::Spec(i) => format!("spec.steps[{i}]"),
            Origin::Template(t, i) => format!("spec.template({}).steps[{i}]", t.as_str()),
        }
    }
}

/// An objective after its template and overrides are applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Expanded {
    /// The first step, if any is known.
    pub start: Option<String>,
    /// The steps with their origin, template steps first.
    pub steps: Vec<(Step, Origin)>,
    /// Problems found while applying overrides: (field path, message).
    pub problems: Vec<(String, String)>,
}

/// A built-in template's start and steps.
pub struct TemplateDef {
    /// The first step.
    pub start: &'static str,
    /// The steps.
    pub steps: Vec<Step>,
}

/// The definition of a built-in template.
///
/// Templates are written as JSON so they read like the YAML users write; a
/// unit test deserialises every one, so the `expect`-free fallback (an empty
/// template, reported by validation as a missing start) never happens in a
/// released build.
pub fn definition(template: Template) -> TemplateDef {
    let (start, steps) = match template {
        Template::LeadCapture => (
            "greet",
            json!([
                {"id": "greet", "kind": "say", "say": {"phrase": "greeting"}, "next": "ask-name"},
                {"id": "ask-name", "kind": "capture", "capture": {"slot": "name", "primitive": "name", "onFailure": "skip"}, "next": "ask-phone"},
                {"id": "ask-phone", "kind": "capture", "capture": {"slot": "phone", "primitive": "phone", "confirm": "always"}, "next": "ask-email"},
                {"id": "ask-email", "kind": "capture", "capture": {"slot": "email", "primitive": "email", "required": false, "confirm": "always", "onFailure": "skip"}, "next": "thanks"},
                {"id": "thanks", "kind": "say", "say": {"phrase": "lead-thanks"}, "next": "done"},
                {"id": "done", "kind": "end", "end": {"outcome": "lead-captured"}}
            ]),
        ),
        Template::AppointmentBooking => (
            "greet",
            json!([
                {"id": "greet", "kind": "say", "say": {"phrase": "greeting"}, "next": "ask-name"},
                {"id": "ask-name", "kind": "capture", "capture": {"slot": "name", "primitive": "name"}, "next": "ask-phone"},
                {"id": "ask-phone", "kind": "capture", "capture": {"slot": "phone", "primitive": "phone", "confirm": "always"}, "next": "ask-when"},
                {"id": "ask-when", "kind": "capture", "capture": {"slot": "appointment", "primitive": "dateTime", "confirm": "always", "validation": {"withinBusinessHours": true}}, "next": "book"},
                {"id": "book", "kind": "book", "book": {"slots": ["name", "phone", "appointment"], "durationMinutes": 30}, "next": "booked"},
                {"id": "booked", "kind": "say", "say": {"phrase": "booking-requested"}, "next": "done"},
                {"id": "done", "kind": "end", "end": {"outcome": "booked"}}
            ]),
        ),
        Template::SupportTriage => (
            "greet",
            json!([
                {"id": "greet", "kind": "say", "say": {"phrase": "greeting"}, "next": "ask-reason"},
                {"id": "ask-reason", "kind": "capture", "capture": {"slot": "reason", "primitive": "choice", "prompt": "ask.reason", "choices": ["a new enquiry", "an existing matter", "billing", "something urgent"], "onFailure": "transfer"}, "next": "triage"},
                {"id": "triage", "kind": "route", "route": {"branches": [
                    {"when": {"slot": "reason", "equals": "something urgent"}, "next": "urgent"},
                    {"when": {"intent": ["urgent", "emergency", "asap", "right now"]}, "next": "urgent"}
                ], "default": "ask-name"}},
                {"id": "urgent", "kind": "transfer", "transfer": {"mode": "warm", "reason": "urgent enquiry", "outcome": "escalated"}},
                {"id": "ask-name", "kind": "capture", "capture": {"slot": "name", "primitive": "name"}, "next": "ask-phone"},
                {"id": "ask-phone", "kind": "capture", "capture": {"slot": "phone", "primitive": "phone", "confirm": "always"}, "next": "thanks"},
                {"id": "thanks", "kind": "say", "say": {"phrase": "lead-thanks"}, "next": "done"},
                {"id": "done", "kind": "end", "end": {"outcome": "triaged"}}
            ]),
        ),
        Template::RouteToHuman => (
            "greet",
            json!([
                {"id": "greet", "kind": "say", "say": {"phrase": "greeting"}, "next": "to-human"},
                {"id": "to-human", "kind": "transfer", "transfer": {"mode": "cold", "reason": "caller routed to a person"}}
            ]),
        ),
    };
    TemplateDef {
        start,
        steps: serde_json::from_value(steps).unwrap_or_default(),
    }
}

/// Applies `spec`'s template (if any) and overrides.
pub fn expand(spec: &ObjectiveSpec) -> Expanded {
    let mut problems = Vec::new();
    let Some(template) = spec.template else {
        for (i, id) in spec.remove_steps.iter().enumerate() {
            problems.push((
                format!("spec.removeSteps[{i}]"),
                format!("removeSteps ({id:?}) only applies with a template"),
            ));
        }
        return Expanded {
            start: spec.start.clone(),
            steps: spec
                .steps
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, s)| (s, Origin::Spec(i)))
                .collect(),
            problems,
        };
    };
    let def = definition(template);
    for (i, id) in spec.remove_steps.iter().enumerate() {
        if !def.steps.iter().any(|s| &s.id == id) {
            problems.push((
                format!("spec.removeSteps[{i}]"),
                format!("template {} has no step {id:?}", template.as_str()),
            ));
        }
    }
    let mut steps: Vec<(Step, Origin)> = def
        .steps
        .into_iter()
        .enumerate()
        .filter(|(_, s)| !spec.remove_steps.contains(&s.id))
        .map(|(i, s)| (s, Origin::Template(template, i)))
        .collect();
    for (i, step) in spec.steps.iter().enumerate() {
        match steps
            .iter_mut()
            .find(|(s, o)| s.id == step.id && matches!(o, Origin::Template(..)))
        {
            Some(slot) => *slot = (step.clone(), Origin::Spec(i)),
            None => steps.push((step.clone(), Origin::Spec(i))),
        }
    }
    Expanded {
        start: spec.start.clone().or_else(|| Some(def.start.to_owned())),
        steps,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> [Template; 4] {
        [
            Template::LeadCapture,
            Template::AppointmentBooking,
            Template::SupportTriage,
            Template::RouteToHuman,
        ]
    }

    #[test]
    fn every_template_deserialises_and_starts_at_a_step() {
        for t in all() {
            let def = definition(t);
            assert!(!def.steps.is_empty(), "{t:?} must deserialise");
            assert!(
                def.steps.iter().any(|s| s.id == def.start),
                "{t:?} start exists"
            );
        }
    }

    #[test]
    fn overrides_replace_add_and_remove_by_id() {
        let spec: ObjectiveSpec = serde_json::from_value(json!({
            "template": "lead-capture",
            "removeSteps": ["ask-email"],
            "steps": [
                {"id": "ask-phone", "kind": "capture", "capture": {"slot": "phone", "primitive": "phone", "confirm": "never"}, "next": "extra"},
                {"id": "extra", "kind": "say", "say": {"phrase": "hold"}, "next": "thanks"}
            ]
        }))
        .expect("spec");
        let e = expand(&spec);
        assert!(e.problems.is_empty());
        let ids: Vec<_> = e.steps.iter().map(|(s, _)| s.id.as_str()).collect();
        assert_eq!(
            ids,
            ["greet", "ask-name", "ask-phone", "thanks", "done", "extra"]
        );
        assert_eq!(e.steps[2].1, Origin::Spec(0));
        assert_eq!(e.steps[2].0.next.as_deref(), Some("extra"));
        assert_eq!(e.start.as_deref(), Some("greet"));
    }

    #[test]
    fn removing_an_unknown_step_is_reported() {
        let spec: ObjectiveSpec =
            serde_json::from_value(json!({"template": "route-to-human", "removeSteps": ["nope"]}))
                .expect("spec");
        let e = expand(&spec);
        assert_eq!(e.problems.len(), 1);
        assert_eq!(e.problems[0].0, "spec.removeSteps[0]");
    }
}
