//! Workflow parameters: the small template language of
//! `Agent.spec.workflows[].params`, checked when an Agent is compiled and
//! rendered when the event writer creates a job.
//!
//! A value is text with `{{name}}` placeholders:
//!
//! | placeholder         | value                                            |
//! |---------------------|--------------------------------------------------|
//! | `{{slots.<slot>}}`  | the slot's canonical value (a slot an objective of the Agent captures) |
//! | `{{caller}}`        | the caller's number (E.164), inbound or outbound |
//! | `{{callee}}`        | the called number                                |
//! | `{{callId}}`        | the call's id                                    |
//! | `{{outcome}}`       | the outcome label so far                         |
//! | `{{agent}}`         | the Agent's name                                 |
//! | `{{tenant}}`        | the Tenant's name                                |
//! | `{{trigger}}`       | the trigger, e.g. `appointmentRequested`         |
//!
//! Spaces inside the braces are allowed. There are no expressions, loops or
//! escapes: a parameter that needs logic belongs in the receiving system.
//! A placeholder whose value is unknown when the job is created (a slot not
//! captured on this call) renders empty and is listed as missing, so the
//! adapter can refuse with a clear reason instead of sending a blank.

use std::collections::{BTreeMap, BTreeSet};

use dialtone_crds::agent::{WorkflowAction, WorkflowTrigger};
use dialtone_crds::provider::ProviderType;

/// One placeholder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Var {
    /// `{{slots.<name>}}`.
    Slot(String),
    /// `{{caller}}`.
    Caller,
    /// `{{callee}}`.
    Callee,
    /// `{{callId}}`.
    CallId,
    /// `{{outcome}}`.
    Outcome,
    /// `{{agent}}`.
    Agent,
    /// `{{tenant}}`.
    Tenant,
    /// `{{trigger}}`.
    Trigger,
}

/// A parsed parameter value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// A placeholder.
    Var(Var),
}

/// Why a parameter value is not a valid template.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{{` without a matching `}}`.
    #[error("{{{{ at character {at} is never closed with }}}}")]
    Unclosed {
        /// Character offset of the `{{`.
        at: usize,
    },
    /// A placeholder the language does not have.
    #[error(
        "{{{{{name}}}}} is not a placeholder; use {{{{slots.<slot>}}}}, {{{{caller}}}}, {{{{callee}}}}, {{{{callId}}}}, {{{{outcome}}}}, {{{{agent}}}}, {{{{tenant}}}} or {{{{trigger}}}}"
    )]
    Unknown {
        /// What was inside the braces.
        name: String,
    },
}

/// Parses a parameter value.
pub fn parse(template: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_owned()));
        }
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or(TemplateError::Unclosed {
            at: template[..offset + open].chars().count(),
        })?;
        pieces.push(Piece::Var(var(after[..close].trim())?));
        let consumed = open + 2 + close + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

fn var(name: &str) -> Result<Var, TemplateError> {
    Ok(match name {
        "caller" => Var::Caller,
        "callee" => Var::Callee,
        "callId" => Var::CallId,
        "outcome" => Var::Outcome,
        "agent" => Var::Agent,
        "tenant" => Var::Tenant,
        "trigger" => Var::Trigger,
        _ => match name.strip_prefix("slots.") {
            Some(slot) if is_slot_name(slot) => Var::Slot(slot.to_owned()),
            _ => {
                return Err(TemplateError::Unknown {
                    name: name.to_owned(),
                });
            }
        },
    })
}

fn is_slot_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What a job's parameters are rendered from: the call as projected when
/// the trigger's event was written.
#[derive(Clone, Copy, Debug)]
pub struct CallFacts<'a> {
    /// The call's id.
    pub call_id: &'a str,
    /// The caller's number.
    pub caller: Option<&'a str>,
    /// The called number.
    pub callee: Option<&'a str>,
    /// The outcome so far.
    pub outcome: Option<&'a str>,
    /// The Agent.
    pub agent: &'a str,
    /// The Tenant.
    pub tenant: &'a str,
    /// The trigger.
    pub trigger: WorkflowTrigger,
    /// Captured slots, canonical values.
    pub slots: &'a BTreeMap<String, String>,
}

/// A rendered parameter set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    /// Parameter values.
    pub params: BTreeMap<String, String>,
    /// `param: placeholder` of every placeholder that had no value.
    pub missing: Vec<String>,
}

/// Renders every parameter. Parameters are validated at compile time; one
/// that still fails to parse (a config version written by an older build)
/// is kept verbatim and reported as missing rather than dropped.
pub fn render(params: &BTreeMap<String, String>, facts: &CallFacts<'_>) -> Rendered {
    let mut out = Rendered::default();
    for (key, template) in params {
        let Ok(pieces) = parse(template) else {
            out.missing.push(format!("{key}: not a valid template"));
            out.params.insert(key.clone(), template.clone());
            continue;
        };
        let mut value = String::with_capacity(template.len());
        for piece in pieces {
            match piece {
                Piece::Text(t) => value.push_str(&t),
                Piece::Var(v) => match lookup(&v, facts) {
                    Some(s) => value.push_str(s),
                    None => out.missing.push(format!("{key}: {}", placeholder(&v))),
                },
            }
        }
        out.params.insert(key.clone(), value);
    }
    out
}

fn lookup<'a>(v: &Var, f: &CallFacts<'a>) -> Option<&'a str> {
    match v {
        Var::Slot(s) => f.slots.get(s).map(String::as_str),
        Var::Caller => f.caller,
        Var::Callee => f.callee,
        Var::CallId => Some(f.call_id),
        Var::Outcome => f.outcome,
        Var::Agent => Some(f.agent),
        Var::Tenant => Some(f.tenant),
        Var::Trigger => Some(trigger_name(f.trigger)),
    }
}

fn placeholder(v: &Var) -> String {
    match v {
        Var::Slot(s) => format!("{{{{slots.{s}}}}}"),
        Var::Caller => "{{caller}}".into(),
        Var::Callee => "{{callee}}".into(),
        Var::CallId => "{{callId}}".into(),
        Var::Outcome => "{{outcome}}".into(),
        Var::Agent => "{{agent}}".into(),
        Var::Tenant => "{{tenant}}".into(),
        Var::Trigger => "{{trigger}}".into(),
    }
}

/// Problems with one workflow's parameters, as `(param, message)`.
/// `captured` is `None` when the slots are not known (an objective of the
/// Agent did not resolve): then only the templates' syntax is checked.
pub fn check_params(
    params: &BTreeMap<String, String>,
    captured: Option<&BTreeSet<&str>>,
) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (key, template) in params {
        match parse(template) {
            Err(e) => problems.push((key.clone(), e.to_string())),
            Ok(pieces) => {
                for piece in pieces {
                    if let Piece::Var(Var::Slot(slot)) = piece
                        && let Some(captured) = captured
                        && !captured.contains(slot.as_str())
                    {
                        let known: Vec<&str> = captured.iter().copied().collect();
                        problems.push((
                            key.clone(),
                            format!(
                                "{{{{slots.{slot}}}}} names slot {slot:?}, which no objective of this Agent captures (captured: {})",
                                if known.is_empty() {
                                    "none".to_owned()
                                } else {
                                    known.join(", ")
                                }
                            ),
                        ));
                    }
                }
            }
        }
    }
    problems
}

/// The trigger's name as written in specs.
pub fn trigger_name(t: WorkflowTrigger) -> &'static str {
    match t {
        WorkflowTrigger::CallCompleted => "callCompleted",
        WorkflowTrigger::ObjectiveCompleted => "objectiveCompleted",
        WorkflowTrigger::ObjectiveFailed => "objectiveFailed",
        WorkflowTrigger::AppointmentRequested => "appointmentRequested",
        WorkflowTrigger::Escalated => "escalated",
    }
}

/// The action's name as written in specs.
pub fn action_name(a: WorkflowAction) -> &'static str {
    match a {
        WorkflowAction::CrmUpsert => "crmUpsert",
        WorkflowAction::CalendarBook => "calendarBook",
        WorkflowAction::Email => "email",
        WorkflowAction::Sms => "sms",
        WorkflowAction::Webhook => "webhook",
        WorkflowAction::PaymentLink => "paymentLink",
        WorkflowAction::Esign => "esign",
    }
}

/// The provider type an action's provider must have.
pub fn provider_type(a: WorkflowAction) -> ProviderType {
    match a {
        WorkflowAction::CrmUpsert => ProviderType::Crm,
        WorkflowAction::CalendarBook => ProviderType::Calendar,
        WorkflowAction::Email => ProviderType::Email,
        WorkflowAction::Sms => ProviderType::Messaging,
        WorkflowAction::Webhook => ProviderType::Webhook,
        WorkflowAction::PaymentLink => ProviderType::Payment,
        WorkflowAction::Esign => ProviderType::Esign,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parses_text_and_placeholders() {
        assert_eq!(
            parse("New call: {{ slots.job }} from {{caller}}").expect("valid"),
            vec![
                Piece::Text("New call: ".into()),
                Piece::Var(Var::Slot("job".into())),
                Piece::Text(" from ".into()),
                Piece::Var(Var::Caller),
            ]
        );
        assert_eq!(
            parse("plain").expect("valid"),
            vec![Piece::Text("plain".into())]
        );
    }

    #[test]
    fn refuses_unknown_and_unclosed_placeholders() {
        assert_eq!(
            parse("hi {{callerr}}"),
            Err(TemplateError::Unknown {
                name: "callerr".into()
            })
        );
        assert_eq!(parse("hé {{caller"), Err(TemplateError::Unclosed { at: 3 }));
        assert!(matches!(
            parse("{{slots.9x}}"),
            Err(TemplateError::Unknown { .. })
        ));
    }

    #[test]
    fn an_unknown_slot_is_named_with_the_slots_that_exist() {
        let captured = BTreeSet::from(["appointment", "service"]);
        let problems = check_params(&params(&[("to", "{{slots.phone}}")]), Some(&captured));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, "to");
        assert!(
            problems[0]
                .1
                .contains("slot \"phone\", which no objective of this Agent captures (captured: appointment, service)"),
            "{}",
            problems[0].1
        );
        assert!(
            check_params(
                &params(&[("to", "{{caller}} {{slots.service}}")]),
                Some(&captured)
            )
            .is_empty()
        );
        // Unknown slots (an objective did not resolve): only syntax counts.
        assert!(check_params(&params(&[("to", "{{slots.phone}}")]), None).is_empty());
        assert_eq!(
            check_params(&params(&[("to", "{{slots.}}")]), None).len(),
            1
        );
    }

    #[test]
    fn renders_values_and_reports_missing_ones() {
        let slots = BTreeMap::from([("service".to_owned(), "filling".to_owned())]);
        let facts = CallFacts {
            call_id: "c1",
            caller: Some("+61400000000"),
            callee: None,
            outcome: Some("booked"),
            agent: "reception",
            tenant: "harbour-dental",
            trigger: WorkflowTrigger::AppointmentRequested,
            slots: &slots,
        };
        let out = render(
            &params(&[
                ("to", "{{caller}}"),
                ("body", "{{slots.service}} ({{trigger}}) {{slots.date}}"),
                ("from", "{{callee}}"),
            ]),
            &facts,
        );
        assert_eq!(out.params["to"], "+61400000000");
        assert_eq!(out.params["body"], "filling (appointmentRequested) ");
        assert_eq!(out.params["from"], "");
        assert_eq!(
            out.missing,
            vec!["body: {{slots.date}}", "from: {{callee}}"]
        );
    }
}
