//! The Voice Core phrasebook: everything the agent says, per locale and
//! persona tone. Tenants choose phrase ids and parameters, never wording, so
//! a tenant cannot make the agent say something the platform has not
//! reviewed.
//!
//! Each phrase has an en-AU base text; en-US is derived by a small table of
//! word substitutions (mobile → cell, postcode → ZIP code) and personas wrap
//! the text by phrase class (questions, repairs, read-backs, closings).
//! Rendering is a pure function of (locale, persona, id, params).

use std::collections::BTreeMap;

use dialtone_crds::agent::Persona;
use dialtone_crds::common::Locale;

/// What a phrase is for; personas change wording per class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// A question asking for data.
    Ask,
    /// A question asked again after a misunderstanding.
    Repair,
    /// A read-back asking the caller to confirm.
    Confirm,
    /// Information.
    Info,
    /// The last thing said on the call.
    Closing,
}

/// One phrase: id, class and en-AU text with `{param}` placeholders.
struct Phrase {
    id: &'static str,
    class: Class,
    text: &'static str,
}

const fn p(id: &'static str, class: Class, text: &'static str) -> Phrase {
    Phrase { id, class, text }
}

/// Every phrase, sorted by id so lookups can binary-search.
static PHRASES: &[Phrase] = &[
    p(
        "after-hours",
        Class::Info,
        "We're closed right now. Our hours are {hours}.",
    ),
    p(
        "ask.address",
        Class::Ask,
        "What's the address, including the suburb and postcode?",
    ),
    p("ask.choice", Class::Ask, "Which would you like: {choices}?"),
    p("ask.date", Class::Ask, "What day would suit you?"),
    p(
        "ask.dateTime",
        Class::Ask,
        "When would suit you? A day and a time is perfect.",
    ),
    p("ask.email", Class::Ask, "What's your email address?"),
    p(
        "ask.emergency",
        Class::Ask,
        "Is this an emergency that needs someone today?",
    ),
    p(
        "ask.existing-client",
        Class::Ask,
        "Have you been with us before?",
    ),
    p(
        "ask.job",
        Class::Ask,
        "What do you need help with: {choices}?",
    ),
    p(
        "ask.matter",
        Class::Ask,
        "What is your enquiry about: {choices}?",
    ),
    p("ask.money", Class::Ask, "What amount did you have in mind?"),
    p("ask.name", Class::Ask, "Can I get your name, please?"),
    p("ask.number", Class::Ask, "What number should I note down?"),
    p(
        "ask.phone",
        Class::Ask,
        "What's the best mobile number to reach you on?",
    ),
    p(
        "ask.reason",
        Class::Ask,
        "What are you calling about today: {choices}?",
    ),
    p(
        "ask.service",
        Class::Ask,
        "What would you like to book in for: {choices}?",
    ),
    p("ask.time", Class::Ask, "What time would suit you?"),
    p("ask.yesNo", Class::Ask, "Is that right?"),
    p(
        "booking-requested",
        Class::Info,
        "I've sent your booking request through. You'll get a confirmation shortly.",
    ),
    p("business-hours", Class::Info, "We're open {hours}."),
    p(
        "capture-failed",
        Class::Closing,
        "I'm sorry, I'm having trouble understanding. Someone from {business} will follow up with you.",
    ),
    p("confirm", Class::Confirm, "I have {value}. Is that right?"),
    p(
        "confirm.retry",
        Class::Repair,
        "Sorry, was that a yes or a no?",
    ),
    p(
        "emergency",
        Class::Info,
        "That sounds urgent, so I'll get someone on the line for you.",
    ),
    p(
        "goodbye",
        Class::Closing,
        "Thanks for calling {business}. Goodbye.",
    ),
    p(
        "greeting",
        Class::Info,
        "Thanks for calling {business}, this is {agent}.",
    ),
    p("hold", Class::Info, "One moment, please."),
    p(
        "lead-thanks",
        Class::Info,
        "Thanks for that. Someone from {business} will call you back shortly.",
    ),
    p(
        "no-response",
        Class::Closing,
        "I can't hear anything, so I'll end the call. Please call back any time.",
    ),
    p(
        "repair.address.1",
        Class::Repair,
        "Sorry, I didn't get the whole address. Could you say the street, then the suburb and postcode?",
    ),
    p(
        "repair.address.2",
        Class::Repair,
        "Let's try once more: just the street number and name, the suburb, and the postcode.",
    ),
    p(
        "repair.choice.1",
        Class::Repair,
        "Sorry, I didn't catch which one. Was it {choices}?",
    ),
    p(
        "repair.choice.2",
        Class::Repair,
        "You can also press a key: {keys}.",
    ),
    p(
        "repair.date.1",
        Class::Repair,
        "Sorry, which day was that? For example, next Tuesday or the fourteenth.",
    ),
    p(
        "repair.date.2",
        Class::Repair,
        "Could you give me the date once more, with the day and the month?",
    ),
    p(
        "repair.dateTime.1",
        Class::Repair,
        "Sorry, I didn't get that. Which day, and about what time?",
    ),
    p(
        "repair.dateTime.2",
        Class::Repair,
        "Let's try once more. For example, Thursday at ten in the morning.",
    ),
    p(
        "repair.email.1",
        Class::Repair,
        "Sorry, I didn't catch the email. Could you say it again slowly, like john dot smith at gmail dot com?",
    ),
    p(
        "repair.email.2",
        Class::Repair,
        "Could you spell the part before the at sign, letter by letter?",
    ),
    p(
        "repair.money.1",
        Class::Repair,
        "Sorry, what was the amount?",
    ),
    p(
        "repair.money.2",
        Class::Repair,
        "Could you say the amount in dollars once more?",
    ),
    p(
        "repair.name.1",
        Class::Repair,
        "Sorry, I didn't catch your name. Could you say it again?",
    ),
    p(
        "repair.name.2",
        Class::Repair,
        "Could you spell your first name for me, letter by letter?",
    ),
    p(
        "repair.number.1",
        Class::Repair,
        "Sorry, what was the number?",
    ),
    p(
        "repair.number.2",
        Class::Repair,
        "You can also type the number on your keypad.",
    ),
    p(
        "repair.phone.1",
        Class::Repair,
        "Sorry, I didn't catch that. Could you say the number again, digit by digit?",
    ),
    p(
        "repair.phone.2",
        Class::Repair,
        "Let's try once more. You can also type the number on your keypad, then press hash.",
    ),
    p(
        "repair.rejected",
        Class::Repair,
        "Sorry about that. Let's fix it.",
    ),
    p("repair.time.1", Class::Repair, "Sorry, what time was that?"),
    p(
        "repair.time.2",
        Class::Repair,
        "Could you give me the time once more, like half past two?",
    ),
    p(
        "repair.yesNo.1",
        Class::Repair,
        "Sorry, was that a yes or a no?",
    ),
    p(
        "repair.yesNo.2",
        Class::Repair,
        "Just a yes or a no is fine. You can also press 1 for yes or 2 for no.",
    ),
    p("reprompt", Class::Repair, "Are you still there?"),
    p("transfer.cold", Class::Info, "I'll put you through now."),
    p(
        "transfer.warm",
        Class::Info,
        "I'll put you through to {contact} now. One moment while I let them know why you're calling.",
    ),
];

/// en-US wording differences, applied in order after rendering.
static EN_US: &[(&str, &str)] = &[
    ("the suburb and postcode", "the city, state and ZIP code"),
    ("suburb and postcode", "city, state and ZIP code"),
    ("the suburb", "the city"),
    ("postcode", "ZIP code"),
    ("mobile number", "cell number"),
    ("press hash", "press pound"),
    ("the fourteenth", "the 14th"),
    ("in dollars", "in dollars and cents"),
];

fn find(id: &str) -> Option<&'static Phrase> {
    PHRASES
        .binary_search_by(|ph| ph.id.cmp(id))
        .ok()
        .map(|i| &PHRASES[i])
}

/// Whether the phrasebook has a phrase with this id.
pub fn exists(id: &str) -> bool {
    find(id).is_some()
}

/// Every phrase id, sorted; for error messages and documentation.
pub fn ids() -> impl Iterator<Item = &'static str> {
    PHRASES.iter().map(|ph| ph.id)
}

/// The default question for a primitive, e.g. `ask.phone`.
pub fn ask_id(primitive: dialtone_crds::objective::Primitive) -> String {
    format!("ask.{}", primitive.as_str())
}

/// The repair phrase for a primitive and attempt (1-based): the wording
/// changes from the second repair on, so the caller does not hear the same
/// sentence twice.
pub fn repair_id(primitive: dialtone_crds::objective::Primitive, attempt: u32) -> String {
    let variant = if attempt <= 1 { 1 } else { 2 };
    format!("repair.{}.{variant}", primitive.as_str())
}

/// Renders phrase `id` for a locale and persona, filling `{param}`
/// placeholders from `params` (unknown placeholders stay visible, so a
/// missing parameter shows up in tests rather than silently vanishing).
/// `None` when the phrase does not exist.
pub fn render(
    locale: Locale,
    persona: Persona,
    id: &str,
    params: &BTreeMap<String, String>,
) -> Option<String> {
    let phrase = find(id)?;
    let mut text = fill(phrase.text, params);
    if locale == Locale::EnUs {
        for (au, us) in EN_US {
            if text.contains(au) {
                text = text.replace(au, us);
            }
        }
    }
    Some(tone(persona, phrase.class, id, text))
}

fn fill(template: &str, params: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let key = &after[..close];
                match params.get(key) {
                    Some(v) => out.push_str(v),
                    None => {
                        out.push('{');
                        out.push_str(key);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Applies a persona's tone. Personas only add or trim courtesy; they never
/// change the question, so captures behave the same for every persona.
fn tone(persona: Persona, class: Class, id: &str, text: String) -> String {
    match (persona, class) {
        (Persona::Professional, _) => text,
        (Persona::Empath, Class::Repair) => format!("No worries, take your time. {text}"),
        (Persona::Empath, Class::Confirm) => format!("Thanks for bearing with me. {text}"),
        (Persona::Empath, Class::Closing) => format!("{text} Take care."),
        (Persona::Empath, Class::Ask) if id == "ask.emergency" => {
            format!("I'm sorry you're dealing with this. {text}")
        }
        (Persona::Concierge, Class::Ask) => format!("Certainly. {text}"),
        (Persona::Concierge, Class::Repair) => format!("My apologies. {text}"),
        (Persona::Concierge, Class::Closing) => format!("{text} It's been a pleasure."),
        (Persona::Shark, Class::Repair) => format!(
            "Again. {}",
            text.trim_start_matches("Sorry, ")
                .trim_start_matches("Sorry about that. ")
        ),
        (Persona::Shark, Class::Confirm) => text
            .replace("I have ", "Got ")
            .replace(" Is that right?", " Correct?"),
        (Persona::Shark, Class::Ask) => text.replace(", please", ""),
        (Persona::Closer, Class::Ask) => format!("Great. {text}"),
        (Persona::Closer, Class::Confirm) => format!("Perfect. {text}"),
        (Persona::Closer, Class::Closing) => format!("{text} Talk soon!"),
        _ => text,
    }
}

/// Joins options the way people say them: `a, b or c`.
pub fn spoken_list(items: &[String], locale: Locale) -> String {
    let _ = locale; // Both locales say "a, b or c"; kept for future locales.
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
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
    fn phrases_are_sorted_and_unique() {
        let ids: Vec<_> = ids().collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            ids, sorted,
            "PHRASES must stay sorted by id for binary search"
        );
    }

    #[test]
    fn every_primitive_has_a_question_and_two_repairs() {
        use dialtone_crds::objective::Primitive::*;
        for prim in [
            Phone, Email, Name, Address, Date, Time, DateTime, Number, Money, YesNo, Choice,
        ] {
            assert!(exists(&ask_id(prim)), "ask for {prim:?}");
            assert!(
                exists(&repair_id(prim, 1)) && exists(&repair_id(prim, 2)),
                "repairs for {prim:?}"
            );
            assert_ne!(
                find(&repair_id(prim, 1)).map(|p| p.text),
                find(&repair_id(prim, 2)).map(|p| p.text)
            );
        }
    }

    #[test]
    fn renders_params_locale_and_persona() {
        let ps = params(&[("business", "Harbour Dental"), ("agent", "Mia")]);
        assert_eq!(
            render(Locale::EnAu, Persona::Professional, "greeting", &ps).as_deref(),
            Some("Thanks for calling Harbour Dental, this is Mia.")
        );
        assert_eq!(
            render(Locale::EnUs, Persona::Professional, "ask.address", &ps).as_deref(),
            Some("What's the address, including the city, state and ZIP code?")
        );
        let confirm = params(&[("value", "oh four one two")]);
        assert_eq!(
            render(Locale::EnAu, Persona::Shark, "confirm", &confirm).as_deref(),
            Some("Got oh four one two. Correct?")
        );
        assert_eq!(
            render(Locale::EnAu, Persona::Empath, "repair.name.1", &ps).as_deref(),
            Some(
                "No worries, take your time. Sorry, I didn't catch your name. Could you say it again?"
            )
        );
        assert_eq!(render(Locale::EnAu, Persona::Closer, "nope", &ps), None);
    }

    #[test]
    fn missing_params_stay_visible() {
        let text = render(
            Locale::EnAu,
            Persona::Professional,
            "business-hours",
            &BTreeMap::new(),
        );
        assert_eq!(text.as_deref(), Some("We're open {hours}."));
    }

    #[test]
    fn spoken_lists_read_naturally() {
        let items = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
        assert_eq!(spoken_list(&items, Locale::EnAu), "a, b or c");
        assert_eq!(spoken_list(&items[..1], Locale::EnAu), "a");
    }
}
