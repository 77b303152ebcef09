//! The spoken cases shared by the builtin speech test and benchmark: what
//! callers say for each capture primitive, two espeak-ng voices to say it
//! in, and the builtin recogniser's view of it.
#![allow(dead_code)] // the test and the benchmark use different parts
#![allow(clippy::unwrap_used)] // test helpers: a panic is a failed run

use bytes::Bytes;
use dialtone_crds::objective::Primitive;
use dialtone_providers::stt::{self, Expectation, SpeechToText, SttConfig, SttEvent, SttInput};
use dialtone_providers::tts::{self, TextToSpeech};

/// µ-law silence.
pub const SILENCE: u8 = 0xFF;
/// 20 ms of 8 kHz µ-law.
pub const FRAME: usize = 160;

/// Two callers who do not sound alike.
pub const VOICES: [(&str, u32); 2] = [("en-us", 165), ("en-gb+m3", 190)];

pub async fn speak(voice: (&str, u32), text: &str) -> Vec<u8> {
    let tts = tts::Builtin::new(Some("en-US")).with_voice(voice.0, voice.1);
    assert!(
        tts.espeak().is_some(),
        "espeak-ng is not installed: run `cargo xtask test`, which installs it"
    );
    let mut rx = tts.synthesize(text).await.unwrap();
    let mut audio = Vec::new();
    while let Some(chunk) = rx.recv().await {
        audio.extend_from_slice(&chunk.unwrap());
    }
    audio
}

/// What the builtin recogniser hears in `audio`, said while the engine
/// waits for `expect`.
pub async fn hear(expect: Primitive, options: &[&str], audio: &[u8]) -> String {
    let stt = stt::Builtin::shared();
    assert!(
        stt.hears(),
        "the PocketSphinx model is not installed: run `cargo xtask test`, which installs it"
    );
    let mut session = stt.open(&SttConfig::default()).await.unwrap();
    let expectation = Expectation {
        expect,
        options: options.iter().map(|o| (*o).to_owned()).collect(),
    };
    session
        .audio
        .send(SttInput::Expect(expectation))
        .await
        .unwrap();
    let mut line = vec![SILENCE; 20 * FRAME];
    line.extend_from_slice(audio);
    line.extend(vec![SILENCE; 50 * FRAME]);
    let feeder = session.audio.clone();
    let feed = tokio::spawn(async move {
        for frame in line.chunks(FRAME) {
            feeder
                .send(SttInput::Audio(Bytes::copy_from_slice(frame)))
                .await
                .unwrap();
        }
        feeder.send(SttInput::Finish).await.unwrap();
    });
    drop(session.audio);
    let mut heard = Vec::new();
    while let Some(event) = session.events.recv().await {
        match event {
            SttEvent::Transcript {
                text,
                is_final: true,
                ..
            } if !text.is_empty() => heard.push(text),
            SttEvent::Error(e) => panic!("recognition failed: {e}"),
            SttEvent::Closed { .. } => break,
            _ => {}
        }
    }
    feed.await.unwrap();
    heard.join(" ")
}

/// Word error rate of `heard` against `said` (Levenshtein over words).
pub fn word_errors(said: &str, heard: &str) -> usize {
    let (a, b): (Vec<&str>, Vec<&str>) = (
        said.split_whitespace().collect(),
        heard.split_whitespace().collect(),
    );
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, wa) in a.iter().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, wb) in b.iter().enumerate() {
            let substitution = previous + usize::from(wa != wb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// Whether a yes/no answer means yes.
pub fn affirmative(text: &str) -> bool {
    ["yes", "yeah", "yep", "sure", "correct", "right"]
        .iter()
        .any(|w| text.split_whitespace().any(|h| h == *w))
        && !text.contains("wrong")
}

/// The option a choice answer names, if exactly one.
pub fn option_named<'a>(options: &[&'a str], text: &str) -> Option<&'a str> {
    let named: Vec<&str> = options
        .iter()
        .copied()
        .filter(|o| text.contains(&o.replace('-', " ")))
        .collect();
    (named.len() == 1).then(|| named[0])
}

pub struct Case {
    pub expect: Primitive,
    pub options: &'static [&'static str],
    /// What the caller says, in the words the recogniser writes.
    pub said: &'static [&'static str],
}

pub const SERVICES: &[&str] = &["check-up and clean", "filling", "emergency"];

pub const CASES: &[Case] = &[
    Case {
        expect: Primitive::Choice,
        options: SERVICES,
        said: &[
            "check up and clean",
            "filling",
            "emergency",
            "a filling please",
            "i'd like a check up and clean",
            "a check up and clean please",
        ],
    },
    Case {
        expect: Primitive::Name,
        options: &[],
        said: &[
            "jane citizen",
            "my name is john smith",
            "it's mary jones",
            "peter brown",
        ],
    },
    Case {
        expect: Primitive::YesNo,
        options: &[],
        said: &[
            "yes",
            "no",
            "yes please",
            "no thanks",
            "yeah",
            "nope",
            "that's right",
            "correct",
        ],
    },
    Case {
        expect: Primitive::Phone,
        options: &[],
        said: &[
            "oh four one two three four five six seven eight",
            "five five five one two three four",
            "nine eight seven six five four three two one oh",
            "my number is oh four three three two two one one nine nine",
        ],
    },
    Case {
        expect: Primitive::DateTime,
        options: &[],
        said: &[
            "thursday at three in the afternoon",
            "tomorrow at ten in the morning",
            "next monday at half past nine",
            "the fourth of march at two pm",
        ],
    },
];
