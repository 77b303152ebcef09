//! Engine and capture benchmark: `cargo run --release -p dialtone-engine --example bench`.
//!
//! Prints engine step latency (p50, p99) over many steps, the time of a
//! ten-turn call (start plus ten caller turns, single thread, so wall time
//! is CPU time), and parse throughput per capture primitive. No criterion:
//! it keeps the build small on shared CI machines.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use dialtone_capture::{Locale, ParseContext, Primitive};
use dialtone_crds::{Agent, Objective, Provider, Tenant};
use dialtone_engine::{CompileInput, Engine, Input, compile};

const TENANT: &str = include_str!("../../examples/dental-clinic/tenant.yaml");
const PROVIDERS: &str = include_str!("../../examples/dental-clinic/providers.yaml");
const OBJECTIVES: &str = include_str!("../../examples/dental-clinic/objectives.yaml");
const AGENTS: &str = include_str!("../../examples/dental-clinic/agents.yaml");

fn docs<T: serde::de::DeserializeOwned>(yaml: &str, kind: &str) -> Vec<T> {
    serde_yaml::Deserializer::from_str(yaml)
        .filter_map(|d| {
            let v = <serde_yaml::Value as serde::Deserialize>::deserialize(d).ok()?;
            (v.get("kind")?.as_str()? == kind)
                .then(|| serde_yaml::from_value(v).ok())
                .flatten()
        })
        .collect()
}

fn say(text: &str) -> Input {
    Input::Utterance {
        text: text.to_owned(),
        confidence: 0.95,
        is_final: true,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let tenants: Vec<Tenant> = docs(TENANT, "Tenant");
    let providers: Vec<Provider> = docs(PROVIDERS, "Provider");
    let objectives: Vec<Objective> = docs(OBJECTIVES, "Objective");
    let agents: Vec<Agent> = docs(AGENTS, "Agent");
    let (Some(tenant), Some(agent)) = (tenants.first(), agents.first()) else {
        eprintln!("examples/dental-clinic must hold a Tenant and an Agent");
        std::process::exit(1);
    };
    let input = CompileInput {
        agent,
        tenant,
        objectives: objectives.iter().collect(),
        providers: providers.iter().collect(),
        cluster_providers: vec![],
    };
    let compile_start = Instant::now();
    let version = match compile(&input) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("compile failed: {e}");
            std::process::exit(1);
        }
    };
    let compile_time = compile_start.elapsed();
    let engine = match Engine::new(&version.config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("engine: {e}");
            std::process::exit(1);
        }
    };
    let now = Utc
        .with_ymd_and_hms(2025, 3, 2, 23, 0, 0)
        .single()
        .unwrap_or_default();
    // Ten caller turns: a choice, a name, a phone read-back with a silence in
    // between, a date outside opening hours (repair), a rejected read-back
    // and its correction.
    let turns = [
        say("just a check-up and clean please"),
        say("Jane Citizen"),
        say("oh four one two three four five six seven eight"),
        Input::SilenceTimeout,
        say("yes"),
        say("sunday at ten am"),
        say("thursday at three in the afternoon"),
        say("no"),
        say("thursday at three in the afternoon"),
        say("yes"),
    ];

    let calls = 2_000;
    let mut steps = Vec::with_capacity(calls * turns.len());
    let mut call_times = Vec::with_capacity(calls);
    let mut ended = true;
    for _ in 0..calls {
        let call_start = Instant::now();
        let (mut state, out) = engine.start(now);
        black_box(&out);
        for input in &turns {
            let t = Instant::now();
            let (next, out) = engine.step(state, input);
            steps.push(t.elapsed());
            black_box(&out);
            state = next;
        }
        call_times.push(call_start.elapsed());
        ended &= state.outcome.as_deref() == Some("booked");
    }
    steps.sort_unstable();
    call_times.sort_unstable();
    println!("config {} compiled in {:?}", version.short(), compile_time);
    println!(
        "engine step latency over {} steps: p50 {:.1} µs, p99 {:.1} µs (target p99 < 20 µs)",
        steps.len(),
        percentile(&steps, 0.50).as_secs_f64() * 1e6,
        percentile(&steps, 0.99).as_secs_f64() * 1e6
    );
    println!(
        "ten-turn call (start + 10 turns, ended booked: {ended}) over {calls} calls: p50 {:.1} µs, p99 {:.1} µs (target < 200 µs)",
        percentile(&call_times, 0.50).as_secs_f64() * 1e6,
        percentile(&call_times, 0.99).as_secs_f64() * 1e6
    );

    let tz = chrono_tz::Australia::Sydney;
    let choices: Vec<String> = ["check-up and clean", "filling", "emergency"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let ctx = ParseContext {
        locale: Locale::EnAu,
        timezone: tz,
        now,
        choices: &choices,
    };
    let samples: [(Primitive, &[&str]); 11] = [
        (
            Primitive::Phone,
            &[
                "oh four one two three four five six seven eight",
                "double oh four one two, three four five, six seven eight",
                "plus six one four one two three four five six seven eight",
            ],
        ),
        (
            Primitive::Email,
            &[
                "john dot smith at gmail dot com",
                "j o h n underscore s at outlook dot com",
            ],
        ),
        (Primitive::Name, &["Jane Citizen", "my name is john smith"]),
        (
            Primitive::Address,
            &[
                "12 Smith Street Parramatta NSW 2150",
                "3 slash 40 George Street Sydney New South Wales 2000",
            ],
        ),
        (
            Primitive::Date,
            &["next tuesday", "the third", "in a fortnight"],
        ),
        (Primitive::Time, &["half past four", "2pm"]),
        (
            Primitive::DateTime,
            &["tomorrow at 2", "thursday at three in the afternoon"],
        ),
        (Primitive::Number, &["twenty three", "one hundred and five"]),
        (Primitive::Money, &["fifty dollars", "twelve dollars fifty"]),
        (Primitive::YesNo, &["yep", "yeah nah", "no worries"]),
        (
            Primitive::Choice,
            &["just a check-up and clean please", "the second one"],
        ),
    ];
    println!("parse throughput (en-AU, release):");
    for (primitive, utterances) in samples {
        let rounds = 5_000;
        let t = Instant::now();
        for _ in 0..rounds {
            for u in utterances {
                black_box(dialtone_capture::parse(primitive, black_box(u), &ctx));
            }
        }
        let elapsed = t.elapsed();
        #[allow(clippy::cast_precision_loss)]
        let n = (rounds * utterances.len()) as f64;
        println!(
            "  {:<9} {:>10.0} parses/s  ({:.2} µs each)",
            primitive.as_str(),
            n / elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1e6 / n
        );
    }
}
