//! The builtin TTS with espeak-ng, played by a script that checks how it is
//! called and answers a WAV file the way `espeak-ng --stdout` does (22050 Hz,
//! data size unknown). One test in this binary, so no other test forks
//! while the script is being written (which could make it "text file busy").

// Helpers outside #[test] fns (fake vendor servers, fixtures) unwrap; a
// panic there is a test failure.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use dialtone_providers::audio;
use dialtone_providers::tts::{Builtin, TextToSpeech};

fn streamed_wav(samples: &[i16]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&0x7FFF_FFFFu32.to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&22_050u32.to_le_bytes());
    b.extend_from_slice(&44_100u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&0x7FFF_FFFFu32.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b
}

async fn say(tts: &Builtin, text: &str) -> Vec<u8> {
    let mut rx = tts.synthesize(text).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = rx.recv().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

#[tokio::test]
async fn espeak_output_is_resampled_to_ulaw_and_failures_fall_back_to_the_tone() {
    let dir = std::env::temp_dir().join(format!("dialtone-espeak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Half a second of a 440 Hz tone at 22050 Hz.
    let samples: Vec<i16> = (0..11_025)
        .map(|i| {
            (8_000.0 * (2.0 * std::f64::consts::PI * 440.0 * f64::from(i) / 22_050.0).sin()) as i16
        })
        .collect();
    std::fs::write(dir.join("out.wav"), streamed_wav(&samples)).unwrap();

    let script = |name: &str, body: &str| -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    let d = dir.display();
    let good = script(
        "espeak-ng",
        &format!("echo \"$@\" > {d}/args\ncat > {d}/text\ncat {d}/out.wav"),
    );
    let broken = script(
        "broken-espeak",
        "cat > /dev/null\necho 'Failed to read voice' >&2\nexit 1",
    );

    let tts = Builtin::with_program(Some(good.clone()), Some("en-AU"));
    assert_eq!(tts.espeak(), Some(good.as_path()));
    let said = say(&tts, "-v de Hello there").await;
    let expected = audio::encode(&audio::resample(&samples, 22_050, 8_000));
    assert_eq!(said.len(), 4_000, "half a second at 8 kHz");
    assert_eq!(said, expected);
    let args = std::fs::read_to_string(dir.join("args")).unwrap();
    assert_eq!(args.trim(), "--stdout -v en --stdin");
    // The text went in on stdin, so a leading '-' is not an option.
    let text = std::fs::read_to_string(dir.join("text")).unwrap();
    assert_eq!(text, "-v de Hello there");

    // Said again, the phrase comes from the cache: the program is not run.
    std::fs::remove_file(dir.join("args")).unwrap();
    assert_eq!(say(&tts, "-v de Hello there").await, expected);
    assert!(
        !dir.join("args").exists(),
        "a cached phrase is not rendered again"
    );

    let fallback = Builtin::with_program(Some(broken), None);
    assert_eq!(
        say(&fallback, "Hello there").await,
        audio::tone("Hello there")
    );

    let missing = Builtin::with_program(Some(dir.join("no-such-program")), None);
    assert_eq!(say(&missing, "Hi").await, audio::tone("Hi"));

    std::fs::remove_dir_all(&dir).unwrap();
}
