//! The builtin providers both ways, on audio: espeak-ng speaks each line
//! the way a caller would, as 8 kHz µ-law, and the builtin speech to text
//! (PocketSphinx with the step's grammar) must hear it. Needs Debian's
//! espeak-ng, libpocketsphinx-dev and pocketsphinx-en-us, which
//! `cargo xtask test` installs. Prints accuracy per vocabulary.

#![allow(clippy::unwrap_used)] // a panic is a failed test

#[path = "shared/speech.rs"]
mod speech;

use dialtone_crds::objective::Primitive;
use speech::{CASES, VOICES, affirmative, hear, option_named, speak, word_errors};

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
        for voice in VOICES {
            for said in case.said {
                // espeak reads "pm" as a word; the letters are what a caller says.
                let spoken = said.replace(" pm", " p m");
                let heard = hear(case.expect, case.options, &speak(voice, &spoken).await).await;
                let wrong = word_errors(said, &heard);
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
            "{:?}: {utterances} utterances, {exact} heard word for word, {understood} understood, WER {:.1} %",
            case.expect,
            100.0 * errors as f64 / words as f64
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
