//! What the builtin speech to text costs: every spoken case of the builtin
//! speech test (each capture primitive, two espeak-ng voices) streamed
//! through one recogniser session after another, with the process's CPU
//! time measured around it. Prints CPU seconds per second of call audio,
//! how many calls one core keeps up with in real time, and the resident
//! memory of a loaded decoder. Needs espeak-ng and PocketSphinx
//! (`cargo xtask test` installs them). `cargo xtask bench` runs it.

#[path = "../tests/shared/speech.rs"]
mod speech;

use std::time::Instant;

use nix::sys::resource::{UsageWho, getrusage};
use speech::{CASES, FRAME, VOICES, hear, speak};

/// Silence `hear` streams around each utterance (20 + 50 frames).
const PADDING_SECONDS: f64 = 70.0 * FRAME as f64 / 8_000.0;

fn cpu_seconds() -> f64 {
    let usage = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    seconds(usage.user_time()) + seconds(usage.system_time())
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut spoken = Vec::new();
    for case in CASES {
        for voice in VOICES {
            for said in case.said {
                spoken.push((case.expect, case.options, speak(voice, said).await));
            }
        }
    }
    let before = rss_mib();
    // The first utterance loads a decoder (and adapts it): not timed.
    let (expect, options, audio) = &spoken[0];
    hear(*expect, options, audio).await;
    let decoder_mib = rss_mib() - before;

    let speech_seconds: f64 = spoken
        .iter()
        .map(|(_, _, a)| a.len() as f64 / 8_000.0)
        .sum();
    let streamed_seconds = speech_seconds + PADDING_SECONDS * spoken.len() as f64;
    let cpu_start = cpu_seconds();
    let wall = Instant::now();
    for (expect, options, audio) in &spoken {
        hear(*expect, options, audio).await;
    }
    let cpu = cpu_seconds() - cpu_start;
    let wall = wall.elapsed().as_secs_f64();
    println!("builtin speech to text (PocketSphinx en-us, a grammar per primitive)");
    println!(
        "  {} utterances, {speech_seconds:.1} s of speech in {streamed_seconds:.1} s of streamed call audio",
        spoken.len()
    );
    println!("  CPU {cpu:.2} s (wall {wall:.2} s)");
    println!(
        "  {:.3} CPU-s per second of speech; {:.3} CPU-s per second of call audio",
        cpu / speech_seconds,
        cpu / streamed_seconds
    );
    println!(
        "  one core keeps up with {:.1} callers talking without pause, {:.1} calls of the same mix of speech and silence",
        speech_seconds / cpu,
        streamed_seconds / cpu
    );
    println!("  a loaded decoder adds {decoder_mib:.0} MiB resident");
}
