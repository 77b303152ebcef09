//! The builtin providers both ways, on audio: espeak-ng speaks each line
//! the way a caller would, as 8 kHz µ-law, and the builtin speech to text
//! (PocketSphinx with the step's grammar) must hear it. Needs Debian's
//! espeak-ng, libpocketsphinx-dev and pocketsphinx-en-us, which
//! `cargo xtask test` installs. Prints accuracy per vocabulary.

#![allow(clippy::unwrap_used)] // a panic is a failed test

#[path = "shared/speech.rs"]
mod speech;

use dialtone_capture::{Locale, ParseContext, ParseStatus, parse};
use dialtone_crds::objective::Primitive;
use speech::{CASES, VOICES, affirmative, hear, option_named, speak, word_errors};

fn ratio(part: usize, whole: usize) -> String {
    if whole == 0 {
        "n/a".to_owned()
    } else {
        format!("{:.2}", part as f64 / whole as f64)
    }
}

/// The capture primitive that reads what was heard for `expect`.
fn capture_primitive(expect: Primitive) -> dialtone_capture::Primitive {
    use dialtone_capture::Primitive as P;
    match expect {
        Primitive::Phone => P::Phone,
        Primitive::Email => P::Email,
        Primitive::Name => P::Name,
        Primitive::Address => P::Address,
        Primitive::Date => P::Date,
        Primitive::Time => P::Time,
        Primitive::DateTime => P::DateTime,
        Primitive::Number => P::Number,
        Primitive::Money => P::Money,
        Primitive::YesNo => P::YesNo,
        Primitive::Choice => P::Choice,
    }
}

/// The value the capture primitive would accept without a repair (status
/// ok, confidence at least 0.8), if any.
fn accepted(expect: Primitive, options: &[&str], text: &str) -> Option<serde_json::Value> {
    let choices: Vec<String> = options.iter().map(|o| (*o).to_owned()).collect();
    let ctx = ParseContext {
        locale: Locale::EnAu,
        timezone: chrono_tz::Australia::Sydney,
        // Fixed, so relative dates parse the same every run.
        now: "2026-12-07T00:00:00Z".parse().unwrap(),
        choices: &choices,
    };
    let parsed = parse(capture_primitive(expect), text, &ctx);
    (parsed.status == ParseStatus::Ok && parsed.confidence >= 0.8)
        .then_some(parsed.value)
        .flatten()
        .map(|v| serde_json::to_value(v).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builtin_recogniser_hears_what_builtin_speech_says() {
    // Answers the engine reads as the wrong value: for yes/no and choice,
    // where a grammar closes the vocabulary, there must be none.
    let mut wrong_meanings = Vec::new();
    let mut total_words = 0;
    let mut total_errors = 0;
    let mut report = Vec::new();
    for case in CASES {
        let (mut words, mut errors, mut exact, mut understood, mut utterances) = (0, 0, 0, 0, 0);
        // Capture on what was heard: values accepted, and accepted right.
        let (mut taken, mut right, mut takeable) = (0, 0, 0);
        for voice in VOICES {
            for said in case.said {
                // espeak reads "pm" as a word; the letters are what a caller says.
                let spoken = said.replace(" pm", " p m");
                let heard = hear(case.expect, case.options, &speak(voice, &spoken).await).await;
                let wrong = word_errors(said, &heard);
                let truth = accepted(case.expect, case.options, said);
                let value = accepted(case.expect, case.options, &heard);
                takeable += usize::from(truth.is_some());
                taken += usize::from(value.is_some());
                right += usize::from(value.is_some() && value == truth);
                let meant = match case.expect {
                    Primitive::YesNo => affirmative(said) == affirmative(&heard),
                    Primitive::Choice => {
                        option_named(case.options, said) == option_named(case.options, &heard)
                    }
                    // Judged by the capture primitives downstream.
                    _ => wrong == 0,
                };
                understood += usize::from(meant);
                if !meant && matches!(case.expect, Primitive::YesNo | Primitive::Choice) {
                    wrong_meanings.push(format!("{said:?} heard as {heard:?}"));
                }
                println!(
                    "{:?} {}: said {said:?}, heard {heard:?}",
                    case.expect, voice.0
                );
                words += said.split_whitespace().count();
                errors += wrong;
                exact += usize::from(wrong == 0);
                utterances += 1;
            }
        }
        report.push(format!(
            "{:?}: {utterances} utterances, {exact} heard word for word, {understood} understood, WER {:.1} %; \
             capture precision {} ({right}/{taken}), recall {} ({right}/{takeable})",
            case.expect,
            100.0 * errors as f64 / words as f64,
            ratio(right, taken),
            ratio(right, takeable),
        ));
        total_words += words;
        total_errors += errors;
    }
    let wer = total_errors as f64 / total_words as f64;
    println!(
        "{}\noverall WER {:.1} % over {total_words} words",
        report.join("\n"),
        100.0 * wer
    );
    assert!(
        wrong_meanings.is_empty(),
        "misheard answers: {wrong_meanings:?}"
    );
    // Open vocabularies (digits, dates, names) on synthetic telephone audio
    // are far from vendor quality (docs/benchmarks.md has the figures); this
    // catches a recogniser that stopped hearing at all.
    assert!(
        wer <= 0.5,
        "word error rate {:.1} %: {report:?}",
        100.0 * wer
    );
}
