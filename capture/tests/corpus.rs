//! Runs the labelled corpus (`capture/corpus/*.tsv`): no wrong Ok value is
//! allowed (precision 1.0), and recall must stay above a floor per primitive.

use dialtone_capture::Primitive;
use dialtone_capture::corpus::{Verdict, evaluate_builtin, report_table};

/// Recall floors, set a little under what the corpus measures today so a
/// regression fails the build. The corpus deliberately holds hard cases
/// the primitives do not yet handle; those are recall misses, never wrong
/// values.
fn recall_floor(p: Primitive) -> f64 {
    match p {
        Primitive::Phone => 0.97,
        Primitive::Email => 0.97,
        Primitive::Name => 0.97,
        Primitive::Address => 0.97,
        Primitive::Date => 0.95,
        Primitive::Time => 0.97,
        Primitive::DateTime => 0.97,
        Primitive::Number => 0.97,
        Primitive::Money => 0.97,
        Primitive::YesNo => 0.95,
        Primitive::Choice => 0.95,
    }
}

#[test]
fn corpus_precision_and_recall() {
    let results = evaluate_builtin().expect("corpus files parse");
    let stats: Vec<_> = results.iter().map(|(s, _)| *s).collect();
    println!("{}", report_table(&stats));

    let total: usize = stats.iter().map(|s| s.lines).sum();
    assert!(total >= 400, "corpus has only {total} lines");

    let mut failures = Vec::new();
    for (_, outcomes) in &results {
        for o in outcomes {
            let line = format!(
                "{}.tsv:{} [{}] {:?} expected {:?} {:?}, got {:?} {:?} ({:.2}) {:?}",
                o.case.primitive.as_str(),
                o.case.line,
                o.case.locale,
                o.case.utterance,
                o.case.status,
                o.case.expected,
                o.got.status,
                o.got.value.as_ref().map(|v| v.display()),
                o.got.confidence,
                o.got.reason,
            );
            match o.verdict {
                Verdict::WrongOk => failures.push(format!("WRONG OK  {line}")),
                Verdict::Missed | Verdict::OtherStatus => println!("miss      {line}"),
                Verdict::Correct | Verdict::Agreed => {}
            }
            // Unsure answers must never carry a confident tentative value.
            if o.got.status != dialtone_capture::ParseStatus::Ok {
                assert!(
                    o.got.confidence < 0.6,
                    "unsure with high confidence: {line}"
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "wrong Ok values:\n{}",
        failures.join("\n")
    );
    for s in &stats {
        assert_eq!(s.precision(), 1.0, "{} precision", s.primitive);
        let floor = recall_floor(s.primitive);
        assert!(
            s.recall() >= floor,
            "{} recall {:.3} under floor {floor}",
            s.primitive,
            s.recall()
        );
    }
}
