//! Prints the corpus precision/recall table (Markdown), for the docs:
//! `cargo run -p dialtone-capture --example corpus_report` (add `--misses`
//! to list every miss, `--timing` for a rough per-parse cost).

use dialtone_capture::corpus::{Verdict, evaluate_builtin, report_table};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let results = evaluate_builtin()?;
    let stats: Vec<_> = results.iter().map(|(s, _)| *s).collect();
    println!("{}", report_table(&stats));
    let verbose = std::env::args().any(|a| a == "--misses");
    if verbose {
        for (_, outcomes) in &results {
            for o in outcomes
                .iter()
                .filter(|o| o.verdict != Verdict::Correct && o.verdict != Verdict::Agreed)
            {
                println!(
                    "{:?} {}.tsv:{} {:?}: expected {:?} {:?}, got {:?} {:?} ({})",
                    o.verdict,
                    o.case.primitive,
                    o.case.line,
                    o.case.utterance,
                    o.case.status,
                    o.case.expected.as_deref().unwrap_or(""),
                    o.got.status,
                    o.got
                        .value
                        .as_ref()
                        .map(|v| v.display())
                        .unwrap_or_default(),
                    o.got.reason.as_deref().unwrap_or("")
                );
            }
        }
    }
    if std::env::args().any(|a| a == "--timing") {
        // Rough per-parse cost over the whole corpus (use --release).
        let cases: Vec<_> = results
            .iter()
            .flat_map(|(_, o)| o.iter().map(|o| o.case.clone()))
            .collect();
        let rounds = 200;
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            for c in &cases {
                std::hint::black_box(c.run());
            }
        }
        let per = start.elapsed().as_secs_f64() * 1e6 / (rounds * cases.len()) as f64;
        println!(
            "mean parse time: {per:.2} µs over {} utterances",
            cases.len()
        );
    }
    Ok(())
}
