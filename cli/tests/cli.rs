//! The `dialtone` binary end to end, on the repository's examples.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn dialtone(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("runs dialtone")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[test]
fn validate_accepts_the_examples() {
    let out = dialtone(&["validate", "examples"]);
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).starts_with("ok: "));
}

#[test]
fn test_runs_every_example_test_call_and_writes_junit() {
    let junit = std::env::temp_dir().join(format!("dialtone-junit-{}.xml", std::process::id()));
    let out = dialtone(&[
        "test",
        "examples",
        "--junit",
        junit.to_str().expect("utf-8 path"),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("PASS books a check-up on Thursday afternoon → booked"),
        "{stdout}"
    );
    assert!(stdout.contains(" passed, 0 failed"));
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(xml.contains("<testsuite name=\"tenant-harbour-dental/book-appointment\""));
    assert!(!xml.contains("<failure"));
    let _ = std::fs::remove_file(junit);
}

#[test]
fn a_cyclic_objective_is_rejected_with_the_cycle_named() {
    let out = dialtone(&["validate", "cli/tests/fixtures/cyclic.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("cli/tests/fixtures/cyclic.yaml: Objective/tenant-harbour-dental/loop: spec.steps[1].next: cycle ask-name → ask-phone → ask-name"),
        "{stdout}"
    );
}

#[test]
fn a_failing_test_call_exits_1_with_the_turn() {
    let dir = std::env::temp_dir().join(format!("dialtone-failing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let tenant =
        std::fs::read_to_string(root().join("examples/dental-clinic/tenant.yaml")).expect("tenant");
    std::fs::write(dir.join("tenant.yaml"), tenant).expect("write");
    std::fs::write(
        dir.join("objective.yaml"),
        r#"
apiVersion: dialtone.io/v1alpha1
kind: Objective
metadata: {name: human, namespace: tenant-harbour-dental}
spec:
  template: route-to-human
  tests:
    - name: expects the wrong outcome
      turns: [{hangup: true}]
      expect: {outcome: booked}
"#,
    )
    .expect("write");
    let out = dialtone(&["test", dir.to_str().expect("utf-8")]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL expects the wrong outcome"),
        "{stdout}"
    );
    assert!(
        stdout.contains("turn 1: the call already ended (transferred) before this turn"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn parse_writes_one_json_object_per_line() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .args([
            "parse",
            "phone",
            "--locale",
            "en-AU",
            "--tz",
            "Australia/Sydney",
            "--now",
            "2025-03-03T10:00:00+11:00",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawns");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"oh four one two three four five six seven eight\nbanana\n")
        .expect("writes");
    let out = child.wait_with_output().expect("finishes");
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0]["input"],
        "oh four one two three four five six seven eight"
    );
    assert_eq!(lines[0]["status"], "ok");
    assert_eq!(lines[0]["value"], "+61412345678");
    assert!(lines[0]["confidence"].as_f64().is_some_and(|c| c >= 0.8));
    assert_ne!(lines[1]["status"], "ok");
    assert!(lines[1]["value"].is_null());
}

#[test]
fn simulate_runs_a_scripted_call() {
    let script = std::env::temp_dir().join(format!("dialtone-script-{}.txt", std::process::id()));
    std::fs::write(&script, "it's an emergency\n").expect("script");
    let out = dialtone(&[
        "simulate",
        "reception",
        "-f",
        "examples",
        "--script",
        script.to_str().expect("utf-8"),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("agent: Thanks for calling Harbour Dental"),
        "{stdout}"
    );
    assert!(stdout.contains("→ transfer Warm to +61"), "{stdout}");
    assert!(
        stdout.contains("outcome: emergency-transferred"),
        "{stdout}"
    );
    let _ = std::fs::remove_file(script);
}

#[test]
fn an_agent_number_the_tenant_was_not_granted_is_reported() {
    let dir = std::env::temp_dir().join(format!("dialtone-grant-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    for file in ["tenant.yaml", "objectives.yaml", "providers.yaml"] {
        let text = std::fs::read_to_string(root().join("examples/dental-clinic").join(file))
            .expect("example");
        std::fs::write(dir.join(file), text).expect("write");
    }
    let agents = std::fs::read_to_string(root().join("examples/dental-clinic/agents.yaml"))
        .expect("agents")
        .replace("+61290001234", "+61299998888");
    std::fs::write(dir.join("agents.yaml"), agents).expect("write");
    let out = dialtone(&["validate", dir.to_str().expect("utf-8 path")]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "spec.phoneNumbers[0].number: +61299998888 is not granted to Tenant harbour-dental"
        ),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
