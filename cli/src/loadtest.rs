//! `dialtone loadtest`: simulated callers with personas over a voice pod's
//! `/v1/calls` text socket, reporting completion per persona and the
//! client-side turn latency (sending a turn → the agent's first `say`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;

/// Longest wait for one server message before a call counts as failed.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Turns after which a call that has not ended is abandoned.
const MAX_TURNS: usize = 60;

/// How a simulated caller behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Persona {
    /// Valid answers, confirms read-backs.
    Cooperative,
    /// Nonsense the first time each question is asked, then valid.
    Confused,
    /// Refuses and abuses.
    Hostile,
    /// Never says anything.
    Silent,
    /// Talks over the agent (barge-in) every other turn, then answers.
    Interrupting,
    /// Answers a turn or three, then hangs up.
    Hangup,
}

impl Persona {
    /// Every persona.
    pub const ALL: [Persona; 6] = [
        Persona::Cooperative,
        Persona::Confused,
        Persona::Hostile,
        Persona::Silent,
        Persona::Interrupting,
        Persona::Hangup,
    ];

    /// The name on the command line and in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Persona::Cooperative => "cooperative",
            Persona::Confused => "confused",
            Persona::Hostile => "hostile",
            Persona::Silent => "silent",
            Persona::Interrupting => "interrupting",
            Persona::Hangup => "hangup",
        }
    }
}

impl FromStr for Persona {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Persona::ALL
            .into_iter()
            .find(|p| p.as_str() == s.trim())
            .ok_or_else(|| {
                format!(
                    "unknown persona {s:?}; use {}",
                    Persona::ALL.map(Persona::as_str).join(", ")
                )
            })
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The pod, `ws://host:port`.
    pub url: String,
    /// The number called, E.164.
    pub to: String,
    /// Calls in total.
    pub calls: usize,
    /// Calls at once.
    pub concurrency: usize,
    /// Personas, assigned to calls in turn.
    pub personas: Vec<Persona>,
    /// Seed of the callers' choices, for reproducible runs.
    pub seed: u64,
    /// The tenant's call token, sent as `Authorization: Bearer`.
    pub token: String,
}

/// SplitMix64: small, seedable, good enough to vary callers.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// A valid answer for a capture primitive.
fn valid_answer(expect: &str, options: &[String], rng: &mut Rng) -> String {
    match expect {
        "choice" => options
            .get(rng.below(options.len().min(2)))
            .cloned()
            .unwrap_or_else(|| "the first one".to_owned()),
        "name" => rng
            .pick(&["Jane Citizen", "John Smith", "Priya Patel"])
            .to_owned(),
        "phone" => rng
            .pick(&[
                "oh four one two three four five six seven eight",
                "0412 345 678",
            ])
            .to_owned(),
        "email" => "jane at example dot com".to_owned(),
        "address" => "12 Harbour Street Sydney NSW 2000".to_owned(),
        "dateTime" => rng
            .pick(&[
                "thursday at three in the afternoon",
                "tuesday at 10am",
                "wednesday at eleven in the morning",
            ])
            .to_owned(),
        "date" => "thursday".to_owned(),
        "time" => "three in the afternoon".to_owned(),
        "number" => "two".to_owned(),
        "money" => "fifty dollars".to_owned(),
        _ => rng
            .pick(&["yes", "yep that's right", "yes please"])
            .to_owned(),
    }
}

/// How one call went.
#[derive(Clone, Debug)]
pub struct CallResult {
    /// Who called.
    pub persona: Persona,
    /// The `ended` outcome, if the call ended.
    pub outcome: Option<String>,
    /// Whether the objective was achieved.
    pub completed: bool,
    /// Client-side turn latencies.
    pub latencies: Vec<Duration>,
    /// What went wrong on the client side.
    pub error: Option<String>,
}

/// Completion of one persona's calls.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PersonaStats {
    /// Calls placed.
    pub calls: usize,
    /// Calls whose objective was achieved.
    pub completed: usize,
    /// Calls that failed on the client side (connect, timeout).
    pub errors: usize,
    /// Outcomes and their counts.
    pub outcomes: BTreeMap<String, usize>,
}

/// The result of a run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// By persona.
    pub personas: BTreeMap<Persona, PersonaStats>,
    /// Every turn latency, sorted.
    pub latencies: Vec<Duration>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Report {
    /// The `p`th percentile (0–100) of turn latency, nearest rank.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        if self.latencies.is_empty() {
            return None;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        self.latencies
            .get(rank.clamp(1, self.latencies.len()) - 1)
            .copied()
    }

    /// Calls that failed on the client side.
    pub fn errors(&self) -> usize {
        self.personas.values().map(|s| s.errors).sum()
    }

    fn add(&mut self, result: CallResult) {
        let stats = self.personas.entry(result.persona).or_default();
        stats.calls += 1;
        stats.completed += usize::from(result.completed);
        stats.errors += usize::from(result.error.is_some());
        let outcome = match (&result.outcome, &result.error) {
            (Some(o), _) => o.clone(),
            (None, Some(_)) => "client-error".to_owned(),
            (None, None) => "open".to_owned(),
        };
        *stats.outcomes.entry(outcome).or_default() += 1;
        self.latencies.extend(result.latencies);
    }

    /// The report as printed.
    pub fn render(&self, options: &Options) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "loadtest: {} calls to {} at concurrency {} (seed {}) in {:.1} s",
            options.calls,
            options.to,
            options.concurrency,
            options.seed,
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "{:<13} {:>5} {:>9} {:>7}  outcomes",
            "persona", "calls", "completed", "rate"
        );
        for (persona, s) in &self.personas {
            let rate = 100.0 * s.completed as f64 / s.calls.max(1) as f64;
            let outcomes: Vec<String> =
                s.outcomes.iter().map(|(o, n)| format!("{o}×{n}")).collect();
            let _ = writeln!(
                out,
                "{:<13} {:>5} {:>9} {:>6.1}%  {}",
                persona.as_str(),
                s.calls,
                s.completed,
                rate,
                outcomes.join(" ")
            );
        }
        let ms = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
        let _ = writeln!(
            out,
            "turn latency (sending a turn → first say): p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  ({} turns)",
            ms(self.percentile(50.0)),
            ms(self.percentile(95.0)),
            ms(self.percentile(99.0)),
            self.latencies.len()
        );
        if self.errors() > 0 {
            let _ = writeln!(out, "client errors: {}", self.errors());
        }
        out
    }
}

/// The `/v1/calls` URL of a call (with `+` escaped).
pub fn call_url(base: &str, to: &str, from: &str) -> String {
    format!(
        "{}/v1/calls?to={}&from={}",
        base.trim_end_matches('/'),
        to.replace('+', "%2B"),
        from.replace('+', "%2B")
    )
}

/// Runs the load and gathers the report.
pub async fn run(options: &Options) -> Report {
    let started = Instant::now();
    let personas = if options.personas.is_empty() {
        vec![Persona::Cooperative]
    } else {
        options.personas.clone()
    };
    let mut results = futures::stream::iter(0..options.calls)
        .map(|i| {
            let persona = personas[i % personas.len()];
            let rng = Rng(options.seed ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
            let from = format!("+614{:08}", i % 100_000_000);
            let url = call_url(&options.url, &options.to, &from);
            let token = options.token.as_str();
            async move { call(&url, token, persona, rng).await }
        })
        .buffer_unordered(options.concurrency.max(1));
    let mut report = Report::default();
    while let Some(result) = results.next().await {
        report.add(result);
    }
    report.latencies.sort();
    report.elapsed = started.elapsed();
    report
}

/// One simulated call.
async fn call(url: &str, token: &str, persona: Persona, rng: Rng) -> CallResult {
    let mut result = CallResult {
        persona,
        outcome: None,
        completed: false,
        latencies: Vec::new(),
        error: None,
    };
    if let Err(e) = converse(url, token, persona, rng, &mut result).await {
        result.error = Some(e);
    }
    result
}

/// What a caller does next.
enum Turn {
    Say(Value),
    Nothing,
    HangUp,
}

struct Caller {
    persona: Persona,
    rng: Rng,
    asked: BTreeMap<String, usize>,
    turns: usize,
    hang_up_at: usize,
}

impl Caller {
    fn answer(&mut self, listen: &Value) -> Turn {
        self.turns += 1;
        let expect = listen["expect"].as_str().unwrap_or_default();
        let step = listen["step"].as_str().unwrap_or_default().to_owned();
        let options: Vec<String> = listen["options"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|o| o.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let seen = self.asked.entry(format!("{step}/{expect}")).or_default();
        *seen += 1;
        let utterance =
            |text: &str| Turn::Say(json!({"type": "utterance", "text": text, "confidence": 0.95}));
        match self.persona {
            Persona::Silent => Turn::Say(json!({"type": "silence"})),
            Persona::Hostile => utterance(self.rng.pick(&[
                "no I'm not telling you that",
                "this is ridiculous, stop asking",
                "mind your own business",
            ])),
            Persona::Hangup if self.turns >= self.hang_up_at => Turn::HangUp,
            Persona::Confused if *seen == 1 => utterance(self.rng.pick(&[
                "um sorry what was that",
                "banana",
                "I'm not sure, what do you mean",
            ])),
            _ => utterance(&valid_answer(expect, &options, &mut self.rng)),
        }
    }
}

async fn converse(
    url: &str,
    token: &str,
    persona: Persona,
    mut rng: Rng,
    result: &mut CallResult,
) -> Result<(), String> {
    let mut request = url
        .into_client_request()
        .map_err(|e| format!("the URL {url}: {e}"))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "the call token is not a valid header value".to_owned())?;
    request.headers_mut().insert(AUTHORIZATION, bearer);
    let (mut socket, _) = connect_async(request)
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    let hang_up_at = 1 + rng.below(3);
    let mut caller = Caller {
        persona,
        rng,
        asked: BTreeMap::new(),
        turns: 0,
        hang_up_at,
    };
    // When the last turn was sent; the next `say` ends its latency.
    let mut sent: Option<Instant> = None;
    // An interrupting caller talks over the agent, then answers the
    // `listen` that follows the server's `stop`.
    let mut awaiting_stop = false;
    let mut says_this_turn = 0usize;
    loop {
        let message = tokio::time::timeout(READ_TIMEOUT, socket.next())
            .await
            .map_err(|_| "no message from the agent within 30 s".to_owned())?;
        let text = match message {
            None | Some(Ok(Message::Close(_))) => return Ok(()),
            Some(Err(e)) => return Err(format!("socket: {e}")),
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(_)) => continue,
        };
        let m: Value =
            serde_json::from_str(text.as_str()).map_err(|e| format!("bad JSON from agent: {e}"))?;
        let turn = match m["type"].as_str() {
            Some("say") => {
                if let Some(at) = sent.take() {
                    result.latencies.push(at.elapsed());
                }
                says_this_turn += 1;
                if persona == Persona::Interrupting
                    && says_this_turn == 1
                    && caller.turns.is_multiple_of(2)
                {
                    awaiting_stop = true;
                    Turn::Say(json!({"type": "bargeIn"}))
                } else {
                    Turn::Nothing
                }
            }
            Some("stop") => {
                awaiting_stop = false;
                Turn::Nothing
            }
            Some("listen") if !awaiting_stop => {
                says_this_turn = 0;
                if caller.turns >= MAX_TURNS {
                    Turn::HangUp
                } else {
                    caller.answer(&m)
                }
            }
            Some("ended") => {
                result.outcome = m["outcome"].as_str().map(str::to_owned);
                result.completed = m["completed"].as_bool() == Some(true);
                let _ = socket.close(None).await;
                return Ok(());
            }
            _ => Turn::Nothing,
        };
        match turn {
            Turn::Nothing => {}
            Turn::Say(v) => {
                // A barge-in is not a turn of its own; its latency is not
                // measured. It may race the agent's closing line: when the
                // agent has already closed, the send fails and the `ended`
                // or close still waiting to be read ends the call.
                let barge_in = v["type"] == "bargeIn";
                if !barge_in {
                    sent = Some(Instant::now());
                }
                let send = socket.send(Message::Text(v.to_string().into())).await;
                match send {
                    Err(_) if barge_in => awaiting_stop = false,
                    other => other.map_err(|e| format!("sending: {e}"))?,
                }
            }
            Turn::HangUp => {
                let hangup = json!({"type": "hangup"}).to_string();
                let _ = socket.send(Message::Text(hangup.into())).await;
                result.outcome = Some("caller-hung-up".to_owned());
                let _ = socket.close(None).await;
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personas_parse_by_name() {
        assert_eq!("hostile".parse::<Persona>(), Ok(Persona::Hostile));
        assert!("polite".parse::<Persona>().is_err());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let report = Report {
            latencies: (1..=100).map(Duration::from_millis).collect(),
            ..Report::default()
        };
        assert_eq!(report.percentile(50.0), Some(Duration::from_millis(50)));
        assert_eq!(report.percentile(99.0), Some(Duration::from_millis(99)));
        assert_eq!(Report::default().percentile(50.0), None);
    }

    #[test]
    fn the_seed_makes_callers_reproducible() {
        let options = vec!["a".to_owned(), "b".to_owned()];
        let answers = |seed| {
            let mut rng = Rng(seed);
            (0..8)
                .map(|_| valid_answer("dateTime", &options, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(answers(7), answers(7));
        assert_ne!(answers(7), answers(8));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn personas_against_an_in_process_voice_pod() {
        use dialtone_voice::testkit::{self, TestPod, random_number, random_suffix, seed_dental};
        let Some(url) = testkit::database_or_skip("loadtest") else {
            return;
        };
        let pod = TestPod::start(&url, Duration::from_secs(5)).await.unwrap();
        let number = random_number();
        let agent = format!("loadtest-{}", random_suffix());
        let seeded = seed_dental(pod.pool(), &agent, &number, "Mia")
            .await
            .unwrap();
        let options = Options {
            url: format!("ws://{}", pod.addr),
            to: number,
            calls: 24,
            concurrency: 6,
            personas: Persona::ALL.to_vec(),
            seed: 42,
            token: testkit::CALLS_TOKEN.to_owned(),
        };
        let report = run(&options).await;
        let text = report.render(&options);
        assert_eq!(report.errors(), 0, "{text}");
        let rate = |p: Persona| {
            let s = &report.personas[&p];
            assert_eq!(s.calls, 4, "{text}");
            s.completed
        };
        assert_eq!(rate(Persona::Cooperative), 4, "{text}");
        assert_eq!(rate(Persona::Confused), 4, "{text}");
        assert_eq!(rate(Persona::Interrupting), 4, "{text}");
        assert_eq!(rate(Persona::Hostile), 0, "{text}");
        assert_eq!(rate(Persona::Silent), 0, "{text}");
        assert_eq!(rate(Persona::Hangup), 0, "{text}");
        assert_eq!(
            report.personas[&Persona::Silent]
                .outcomes
                .get("no-response"),
            Some(&4),
            "{text}"
        );
        assert!(report.percentile(99.0).is_some(), "{text}");
        assert!(
            text.contains("cooperative       4         4  100.0%"),
            "{text}"
        );
        // The pod saw the barge-ins and closed every call.
        assert!(pod.pod.metrics.active_calls() == 0, "{text}");
        seeded.unroute(pod.pool()).await.unwrap();
        pod.stop().await.unwrap();
    }
}
