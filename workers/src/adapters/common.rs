//! What several adapters need besides HTTP: checking the action, reading
//! the appointment's time, default texts, and idempotency keys made to fit
//! a vendor's field limits.

use chrono::{DateTime, Utc};
use dialtone_crds::agent::WorkflowAction;
use sha2::{Digest, Sha256};

use crate::adapter::{Delivery, DeliveryError};

/// A permanent error without an HTTP status (the job itself is wrong).
pub fn permanent(message: impl Into<String>) -> DeliveryError {
    DeliveryError::Permanent {
        message: message.into(),
        status: None,
    }
}

/// Refuses a job whose action the vendor does not do. The operator's
/// validation keeps Providers of a type to its vendors, so this only
/// fires on a misconfiguration; it names it instead of sending, say, an
/// SMS job's parameters to a CRM.
pub fn expect_action(
    vendor: &str,
    d: &Delivery,
    wanted: WorkflowAction,
) -> Result<(), DeliveryError> {
    if d.action == wanted {
        return Ok(());
    }
    Err(permanent(format!(
        "vendor {vendor} does {}, not {}",
        dialtone_engine::workflow::action_name(wanted),
        dialtone_engine::workflow::action_name(d.action)
    )))
}

/// When the appointment starts: the `start` parameter (usually
/// `{{slots.appointment}}`), else the call's `appointment` slot, else the
/// `appointmentRequested` event's. Slots hold canonical RFC 3339 times.
pub fn appointment_start(d: &Delivery) -> Result<DateTime<Utc>, DeliveryError> {
    let raw = match d.param("start") {
        Some(s) => s.to_owned(),
        None => d
            .call
            .slots
            .get("appointment")
            .cloned()
            .or_else(|| d.event["slots"]["appointment"].as_str().map(str::to_owned))
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| match d.require("start") {
                Err(e) => e,
                Ok(_) => permanent("parameter \"start\" is required"),
            })?,
    };
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            permanent(format!(
                "parameter \"start\" ({raw:?}) is not an RFC 3339 time: {e}"
            ))
        })
}

/// The appointment's length: the `durationMinutes` parameter, else the
/// `appointmentRequested` event's, else 30.
pub fn duration_minutes(d: &Delivery) -> Result<i64, DeliveryError> {
    let minutes = match d.param("durationMinutes") {
        Some(m) => m.trim().parse::<i64>().map_err(|_| {
            permanent(format!(
                "parameter \"durationMinutes\" ({m:?}) is not a whole number"
            ))
        })?,
        None => d.event["durationMinutes"].as_i64().unwrap_or(30),
    };
    if !(1..=24 * 60).contains(&minutes) {
        return Err(permanent(format!(
            "parameter \"durationMinutes\" must be between 1 and 1440, not {minutes}"
        )));
    }
    Ok(minutes)
}

/// The caller's number: the `phone` parameter, else the call's caller.
pub fn phone(d: &Delivery) -> Option<&str> {
    d.param("phone").or(d.call.caller.as_deref())
}

/// A plain-text summary of the call, for messages whose workflow gave no
/// `body`: what a person reading it needs to act on it.
pub fn summary(d: &Delivery) -> String {
    let mut lines = vec![format!("Call {} ({})", d.call.call_id, d.trigger)];
    if let Some(caller) = &d.call.caller {
        lines.push(format!("Caller: {caller}"));
    }
    if let Some(outcome) = &d.call.outcome {
        lines.push(format!("Outcome: {outcome}"));
    }
    for (slot, value) in &d.call.slots {
        lines.push(format!("{slot}: {value}"));
    }
    lines.join("\n")
}

/// `key` if it fits in `max` characters, else a digest of it that does:
/// some vendors cap metadata values (Postmark at 80 characters), and the
/// value must stay the same on every attempt for searches to find it.
pub fn fitted_key(key: &str, max: usize) -> String {
    if key.chars().count() <= max {
        return key.to_owned();
    }
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    let tagged = format!("sha256:{digest}");
    tagged.chars().take(max).collect()
}

/// Lowercase base32hex (RFC 4648 §7, `0-9a-v`) without padding: the
/// alphabet Google Calendar allows in event ids.
pub fn base32hex(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::testing::delivery;

    #[test]
    fn base32hex_matches_rfc_4648() {
        // RFC 4648 §10 test vectors, lowercased, without padding.
        for (input, want) in [
            ("", ""),
            ("f", "co"),
            ("fo", "cpng"),
            ("foo", "cpnmu"),
            ("foob", "cpnmuog"),
            ("fooba", "cpnmuoj1"),
            ("foobar", "cpnmuoj1e8"),
        ] {
            assert_eq!(base32hex(input.as_bytes()), want, "{input:?}");
        }
    }

    #[test]
    fn long_keys_are_fitted_the_same_way_every_time() {
        assert_eq!(fitted_key("c/w/t", 80), "c/w/t");
        let long = format!("{}/book/appointmentRequested", "c".repeat(80));
        let a = fitted_key(&long, 80);
        assert_eq!(a, fitted_key(&long, 80));
        assert!(a.starts_with("sha256:") && a.chars().count() == 71, "{a}");
        assert_eq!(fitted_key(&long, 20).chars().count(), 20);
    }

    #[test]
    fn the_start_comes_from_the_parameter_or_the_slot() {
        let mut d = delivery(WorkflowAction::CalendarBook, &[]);
        let err = appointment_start(&d).expect_err("no start");
        assert_eq!(err.to_string(), "parameter \"start\" is required");
        d.call
            .slots
            .insert("appointment".into(), "2026-12-10T15:00:00+11:00".into());
        assert_eq!(
            appointment_start(&d).expect("slot").to_rfc3339(),
            "2026-12-10T04:00:00+00:00"
        );
        d.params.insert("start".into(), "Thursday".into());
        assert!(
            appointment_start(&d)
                .expect_err("not a time")
                .to_string()
                .contains("not an RFC 3339 time")
        );
        assert_eq!(duration_minutes(&d).expect("default"), 30);
        d.params.insert("durationMinutes".into(), "0".into());
        assert!(duration_minutes(&d).is_err());
    }
}
