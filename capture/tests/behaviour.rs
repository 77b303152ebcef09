//! Tricky behaviours through the public API.

use chrono::{NaiveDate, TimeZone, Utc};
use dialtone_capture::{
    Locale, ParseContext, ParseStatus, Parsed, Primitive, Value, parse, parse_dtmf, speak,
};

fn ctx_with<'a>(locale: Locale, tz: chrono_tz::Tz, choices: &'a [String]) -> ParseContext<'a> {
    ParseContext {
        locale,
        timezone: tz,
        now: Utc.with_ymd_and_hms(2026, 11, 17, 23, 0, 0).unwrap(),
        choices,
    }
}

fn au() -> ParseContext<'static> {
    ctx_with(Locale::EnAu, chrono_tz::Australia::Sydney, &[])
}

#[test]
fn ambiguous_hour_is_ok_but_needs_confirmation() {
    let p = parse(Primitive::Time, "at 2", &au());
    assert_eq!(p.status, ParseStatus::Ok);
    assert_eq!(
        p.value.as_ref().map(Value::display).as_deref(),
        Some("14:00")
    );
    assert!(p.confidence < 0.8, "the engine must confirm: {p:?}");
    let sure = parse(Primitive::Time, "2 in the afternoon", &au());
    assert!(sure.confidence >= 0.8);
}

#[test]
fn unsure_never_carries_a_confident_value() {
    for (prim, text) in [
        (Primitive::Date, "next Thursday"),
        (Primitive::DateTime, "Monday morning"),
        (Primitive::Email, "john smith at gmail dot com"),
        (Primitive::Phone, "9876 5432"),
        (Primitive::Number, "maybe five"),
    ] {
        let p = parse(prim, text, &au());
        assert_eq!(p.status, ParseStatus::Unsure, "{text}");
        assert!(p.value.is_some(), "{text}: expected a tentative value");
        assert!(p.confidence < 0.6, "{text}: {p:?}");
        assert!(p.reason.is_some());
    }
}

#[test]
fn relative_dates_use_the_tenant_timezone() {
    // 2026-11-17T23:00Z is Wednesday morning in Sydney, Tuesday evening in New York.
    let ny = ctx_with(Locale::EnUs, chrono_tz::America::New_York, &[]);
    assert_eq!(
        parse(Primitive::Date, "today", &ny).value,
        Some(Value::Date(NaiveDate::from_ymd_opt(2026, 11, 17).unwrap()))
    );
    assert_eq!(
        parse(Primitive::Date, "today", &au()).value,
        Some(Value::Date(NaiveDate::from_ymd_opt(2026, 11, 18).unwrap()))
    );
    let p = parse(Primitive::DateTime, "tomorrow at 9 am", &ny);
    assert_eq!(
        p.value,
        Some(Value::DateTime("2026-11-18T09:00:00-05:00".into()))
    );
}

#[test]
fn daylight_saving_gap_is_invalid() {
    let mut c = au();
    c.now = Utc.with_ymd_and_hms(2026, 9, 30, 0, 0, 0).unwrap();
    let p = parse(Primitive::DateTime, "the 4th of October at 2:30 am", &c);
    assert_eq!(p.status, ParseStatus::Invalid, "{p:?}");
}

#[test]
fn parses_are_deterministic() {
    let a = parse(Primitive::DateTime, "next Tuesday at 10", &au());
    let b = parse(Primitive::DateTime, "next Tuesday at 10", &au());
    assert_eq!(a, b);
}

#[test]
fn choice_returns_the_configured_spelling() {
    let choices = vec!["Deluxe King Room".to_string(), "Standard Twin".to_string()];
    let c = ctx_with(Locale::EnAu, chrono_tz::Australia::Sydney, &choices);
    let p = parse(Primitive::Choice, "the deluxe king room please", &c);
    assert_eq!(p.value, Some(Value::Choice("Deluxe King Room".into())));
    let d = parse_dtmf(Primitive::Choice, "2", &c);
    assert_eq!(d.value, Some(Value::Choice("Standard Twin".into())));
    assert_eq!(
        parse_dtmf(Primitive::Choice, "3", &c).status,
        ParseStatus::Invalid
    );
}

#[test]
fn dtmf() {
    let c = au();
    assert_eq!(
        parse_dtmf(Primitive::Phone, "0412345678#", &c).value,
        Some(Value::Phone("+61412345678".into()))
    );
    assert_eq!(
        parse_dtmf(Primitive::YesNo, "1", &c).value,
        Some(Value::YesNo(true))
    );
    assert_eq!(
        parse_dtmf(Primitive::YesNo, "2", &c).value,
        Some(Value::YesNo(false))
    );
    assert_eq!(
        parse_dtmf(Primitive::Number, "12*5", &c).value,
        Some(Value::Number(12.5))
    );
    assert_eq!(
        parse_dtmf(Primitive::Email, "123", &c).status,
        ParseStatus::Invalid
    );
    assert_eq!(
        parse_dtmf(Primitive::Number, "", &c).status,
        ParseStatus::Unsure
    );
}

#[test]
fn read_backs_from_the_brief() {
    assert_eq!(
        speak(&Value::Phone("+61412345678".into()), Locale::EnAu),
        "oh four one two, three four five, six seven eight"
    );
    let dt = Value::DateTime("2026-11-24T14:00:00+11:00".into());
    assert_eq!(
        speak(&dt, Locale::EnAu),
        "Tuesday the 24th of November at 2 pm"
    );
    assert_eq!(speak(&dt, Locale::EnUs), "Tuesday, November 24th at 2 PM");
    let addr = Value::Address {
        street: "3/12 Smith Street".into(),
        suburb: "Parramatta".into(),
        state: "NSW".into(),
        postcode: "2150".into(),
    };
    assert_eq!(addr.display(), "3/12 Smith Street, Parramatta NSW 2150");
    assert_eq!(
        speak(&addr, Locale::EnAu),
        "unit 3, 12 Smith Street, Parramatta, New South Wales, two one five oh"
    );
}

#[test]
fn parsed_serialises_for_the_event_stream() {
    let p = Parsed::ok(Value::YesNo(true), 0.9);
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["value"]["type"], "yesNo");
    let back: Parsed = serde_json::from_value(json).unwrap();
    assert_eq!(back, p);
}

#[test]
fn empty_and_noise() {
    for prim in Primitive::ALL {
        let p = parse(prim, "   ", &au());
        assert_eq!(p.status, ParseStatus::Unsure);
        let p = parse(prim, "um, uh", &au());
        assert_ne!(p.status, ParseStatus::Ok, "{prim}");
    }
}
