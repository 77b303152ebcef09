//! The demo's images: `cargo xtask image`, then each image run for real
//! under runc: the CLI validates `examples/`, the voice image answers a
//! signed Twilio webhook and takes text calls, and the operator image takes
//! the Lease from the operator the demo started and reconciles a Tenant.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cmd;
use crate::containers::{self, Container, Run};
use crate::demo_calls::database_url;
use crate::image::{self, Built};
use crate::testenv::build::{self, Tool};
use crate::testenv::{self, Env};

/// Where the demo's containers keep their bundles and output.
const CONTAINERS: &str = "containers";
const TENANT: &str = "image-check";

/// Checks the Dockerfile builds the same images, builds them and checks
/// them with skopeo.
pub fn build(root: &Path) -> Result<Vec<Built>> {
    containers::ensure_tools()?;
    dockerfile_matches(root)?;
    let built = image::build(root)?;
    containers::inspect(&built)?;
    chart_pulls(root, &built)?;
    Ok(built)
}

/// `helm template` with the default values must reference only images
/// the build produced, by the same names and tags.
fn chart_pulls(root: &Path, images: &[Built]) -> Result<()> {
    let (helm, _) = build::ensure(Tool::Helm)?;
    let rendered = cmd::output(
        std::process::Command::new(helm)
            .args(["template", "dialtone"])
            .arg(root.join("charts").join("dialtone")),
    )
    .context("rendering the chart")?;
    let references = chart_images(&rendered);
    if references.is_empty() {
        bail!("the rendered chart references no images");
    }
    let built: Vec<String> = images
        .iter()
        .map(|image| format!("{}/{}:{}", image::REGISTRY, image.name, image.tag))
        .collect();
    for reference in &references {
        if !built.contains(reference) {
            bail!(
                "the chart pulls {reference}, which the build did not produce (built: {built:?})"
            );
        }
    }
    println!("the chart pulls {}", references.join(", "));
    Ok(())
}

/// Every `image:` and `--voice-image=` reference in rendered manifests.
fn chart_images(rendered: &str) -> Vec<String> {
    let mut references: Vec<String> = rendered
        .lines()
        .map(str::trim)
        .filter_map(|line| {
            line.strip_prefix("image:")
                .or_else(|| line.strip_prefix("- --voice-image="))
        })
        .map(|reference| reference.trim().trim_matches('"').to_owned())
        .collect();
    references.sort();
    references.dedup();
    references
}

fn find<'a>(images: &'a [Built], name: &str) -> Result<&'a Built> {
    images
        .iter()
        .find(|image| image.name == name)
        .with_context(|| format!("the {name} image was not built"))
}

/// `dialtone validate /examples` and `dialtone migrate` in the CLI image.
pub fn cli(env: &Env, root: &Path, images: &[Built]) -> Result<()> {
    let started = Instant::now();
    let output = run_cli(
        env,
        images,
        Run {
            args: vec!["validate".into(), "/examples".into()],
            binds: vec![(root.join("examples"), "/examples".into())],
            ..Run::default()
        },
    )?;
    if !output.contains(" 0 errors") {
        bail!("the CLI container did not validate examples/ cleanly");
    }
    println!("(container ran in {})", cmd::human(started.elapsed()));
    // What the chart's migration Job runs: the demo's database is migrated
    // already, so nothing is applied.
    let output = run_cli(
        env,
        images,
        Run {
            args: vec!["migrate".into()],
            env: vec![("DATABASE_URL".into(), database_url(env)?)],
            ..Run::default()
        },
    )?;
    if !output.contains("nothing to apply") {
        bail!("dialtone migrate in the CLI image applied migrations to a migrated database");
    }
    Ok(())
}

/// Runs the CLI image to its end with `run`; prints and returns its output.
fn run_cli(env: &Env, images: &[Built], run: Run) -> Result<String> {
    let container = Container::start(
        find(images, "dialtone")?,
        &env.dir.join(CONTAINERS),
        "dialtone-cli",
        &run,
    )?;
    let output = container.wait(Duration::from_secs(60))?;
    print!("{output}");
    Ok(output)
}

/// The voice image: ready, refuses an unsigned webhook, answers a signed
/// one with a media stream, carries text calls to the end, and stops on
/// SIGTERM.
pub fn voice(env: &Env, target: &Path, images: &[Built], number: &str) -> Result<()> {
    let dir = env.dir.join(CONTAINERS);
    let [port, metrics_port] = cmd::free_ports(2)?[..] else {
        bail!("no two free ports");
    };
    let secret = dir.join("stream-secret");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(&secret, format!("{:032x}", rand_u128()?))
        .with_context(|| format!("writing {}", secret.display()))?;
    let credentials = env.dir.join("voice").join("credentials");
    let public_url = format!("http://127.0.0.1:{port}");
    let run = Run {
        args: vec![
            format!("--listen=127.0.0.1:{port}"),
            format!("--metrics-listen=127.0.0.1:{metrics_port}"),
            format!("--public-url={public_url}"),
            "--credentials-dir=/var/run/dialtone/credentials".into(),
            "--stream-secret-file=/var/run/dialtone/stream-secret".into(),
            "--spill-path=/var/lib/dialtone/events.spill".into(),
            "--drain-seconds=10".into(),
        ],
        env: vec![("DATABASE_URL".into(), database_url(env)?)],
        binds: vec![
            (credentials.clone(), "/var/run/dialtone/credentials".into()),
            (secret, "/var/run/dialtone/stream-secret".into()),
        ],
        scratch: vec!["/var/lib/dialtone".into()],
    };
    let mut container = Container::start(
        find(images, "dialtone-voice")?,
        &dir,
        "dialtone-voice",
        &run,
    )?;
    let ready = containers::wait_http(&mut container, port, "/readyz", Duration::from_secs(30))?;
    println!(
        "voice container ready on {public_url} in {}",
        cmd::human(ready)
    );
    let (public, _) = cmd::http_get(port, "/metrics")?;
    let (private, _) = cmd::http_get(metrics_port, "/metrics")?;
    if (public, private) != (404, 200) {
        bail!("/metrics answered {public} on the public port and {private} on the metrics port");
    }
    println!("/metrics: {public} on the public port, {private} on 127.0.0.1:{metrics_port}");

    let (namespace, token) = route_token(env, &credentials, number)?;
    let params = [
        ("AccountSid", "ACimagecheck"),
        ("CallSid", "CAimagecheck0001"),
        ("From", "+61400000000"),
        ("To", number),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
    ];
    let form: String = params
        .iter()
        .map(|(key, value)| format!("{key}={}", value.replace('+', "%2B")))
        .collect::<Vec<_>>()
        .join("&");
    let url = format!("{public_url}/twilio/voice");
    let content = ("Content-Type", "application/x-www-form-urlencoded");
    let (unsigned, _) = cmd::http_request(port, "POST", "/twilio/voice", &[content], &form)?;
    if unsigned != 403 {
        bail!("an unsigned webhook got {unsigned}, not 403");
    }
    println!("unsigned webhook for {number}: {unsigned}");
    let signature = containers::twilio_signature(&token, &url, &params)?;
    let (status, twiml) = cmd::http_request(
        port,
        "POST",
        "/twilio/voice",
        &[content, ("X-Twilio-Signature", &signature)],
        &form,
    )?;
    if status != 200 || !twiml.contains("<Stream") {
        bail!("the signed webhook got {status}: {twiml}");
    }
    println!(
        "signed webhook for {number} ({namespace}): {status}, TwiML {}",
        twiml.trim()
    );
    let calls_token = crate::demo_calls::calls_token(env, &namespace)?;
    crate::demo_calls::loadtest(target, port, number, &calls_token, "cooperative")
        .context("text calls to the voice container")?;
    container.running()?;
    let stopped = container.stop(Duration::from_secs(20))?;
    println!(
        "voice container stopped {} after SIGTERM",
        cmd::human(stopped)
    );
    Ok(())
}

/// The namespace of the Tenant `number` routes to and its Twilio auth token
/// (what the demo's voice pod has mounted).
fn route_token(env: &Env, credentials: &Path, number: &str) -> Result<(String, String)> {
    let url = database_url(env)?;
    let namespace: String = crate::demo_calls::block_on(async {
        use sqlx::Connection;
        let mut db = sqlx::postgres::PgConnection::connect(&url)
            .await
            .context("connecting to PostgreSQL")?;
        sqlx::query_scalar("SELECT namespace FROM phone_routes WHERE number = $1")
            .bind(number)
            .fetch_one(&mut db)
            .await
            .with_context(|| format!("{number} has no route"))
    })?;
    let path = credentials
        .join(&namespace)
        .join("twilio")
        .join("authToken");
    let token =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok((namespace, token.trim().to_owned()))
}

fn rand_u128() -> Result<u128> {
    let mut bytes = [0u8; 16];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?,
        &mut bytes,
    )
    .context("reading /dev/urandom")?;
    Ok(u128::from_le_bytes(bytes))
}

/// The operator image takes the Lease from the demo's operator (stopped
/// here), reconciles a new Tenant to Ready, deletes it, and stops; then the
/// demo's operator starts again.
pub fn operator(env: &Env, root: &Path, images: &[Built], operator: &str) -> Result<()> {
    testenv::stop_process(operator)?;
    let dir = env.dir.join(CONTAINERS);
    let port = cmd::free_ports(1)?[0];
    let voice = find(images, "dialtone-voice")?;
    let mut vars: Vec<(String, String)> = env
        .vars()
        .iter()
        .filter(|(name, _)| *name != "KUBECONFIG")
        .map(|(name, value)| (name.to_string(), value.clone()))
        .collect();
    vars.push(("KUBECONFIG".into(), "/var/run/dialtone/kubeconfig".into()));
    let run = Run {
        args: vec![
            "--lease-namespace=dialtone-system".into(),
            format!("--metrics-addr=127.0.0.1:{port}"),
            format!(
                "--voice-image={}/{}:{}",
                image::REGISTRY,
                voice.name,
                voice.tag
            ),
        ],
        env: vars,
        binds: vec![(
            env.dir.join(crate::demo::OPERATOR_KUBECONFIG),
            "/var/run/dialtone/kubeconfig".into(),
        )],
        scratch: Vec::new(),
    };
    let mut container = Container::start(
        find(images, "dialtone-operator")?,
        &dir,
        "dialtone-operator",
        &run,
    )?;
    let ready = containers::wait_http(&mut container, port, "/healthz", Duration::from_secs(30))?;
    println!(
        "operator container serving /healthz in {}",
        cmd::human(ready)
    );
    let tenant = format!(
        "apiVersion: dialtone.io/v1alpha1\nkind: Tenant\nmetadata:\n  name: {TENANT}\nspec:\n  displayName: Image check\n  namespace: tenant-{TENANT}\n  isolation: shared\n  profile:\n    timezone: Australia/Brisbane\n    locale: en-AU\n"
    );
    cmd::run_with_stdin(
        env.kubectl()?.args([
            "apply",
            "--server-side",
            "--field-manager=dialtone-demo",
            "-f",
            "-",
        ]),
        tenant.as_bytes(),
    )?;
    let started = Instant::now();
    let waited = cmd::run(env.kubectl()?.args([
        "wait",
        "--for=condition=Ready",
        &format!("tenant/{TENANT}"),
        "--timeout=90s",
    ]));
    container.running()?;
    waited.with_context(|| {
        format!(
            "the operator container did not make tenant/{TENANT} Ready; its output:\n{}",
            crate::testenv::run::log_tail(&container.log, 30)
        )
    })?;
    println!(
        "tenant/{TENANT} Ready {} after it was applied, reconciled by the container",
        cmd::human(started.elapsed())
    );
    cmd::run(env.kubectl()?.args(["get", "tenant", TENANT]))?;
    let holder = cmd::output(env.kubectl()?.args([
        "get",
        "lease",
        "dialtone-operator",
        "-n",
        "dialtone-system",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]))?;
    println!("Lease dialtone-system/dialtone-operator held by {holder}");
    cmd::run(
        env.kubectl()?
            .args(["delete", "tenant", TENANT, "--wait", "--timeout=60s"]),
    )?;
    let stopped = container.stop(Duration::from_secs(20))?;
    println!(
        "operator container stopped {} after SIGTERM",
        cmd::human(stopped)
    );
    crate::demo::start_operator(env, root)
}

/// The README's claim that the Dockerfile builds what `cargo xtask image`
/// builds: the same binaries, the same user.
pub fn dockerfile_matches(root: &Path) -> Result<()> {
    let path = root.join("Dockerfile");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let targets = dockerfile_targets(&text);
    let expected: Vec<(String, String)> = image::IMAGES
        .iter()
        .map(|spec| {
            (
                spec.name.to_owned(),
                format!("{}/{}", image::BIN_DIR, spec.binary),
            )
        })
        .collect();
    if targets.stages != expected {
        bail!(
            "the Dockerfile's final stages {:?} are not the images {:?}",
            targets.stages,
            expected
        );
    }
    let user = format!("{0}:{0}", image::USER_ID);
    if targets.users.len() != expected.len() || targets.users.iter().any(|u| *u != user) {
        bail!(
            "every image stage must run as USER {user}; found {:?}",
            targets.users
        );
    }
    println!(
        "Dockerfile: {} image stages, as cargo xtask image, USER {user}",
        expected.len()
    );
    Ok(())
}

struct Targets {
    /// `(stage name, ENTRYPOINT program)` of each stage that has one.
    stages: Vec<(String, String)>,
    users: Vec<String>,
}

fn dockerfile_targets(text: &str) -> Targets {
    let mut stages = Vec::new();
    let mut users = Vec::new();
    let mut stage = String::new();
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match words.next().map(str::to_ascii_uppercase).as_deref() {
            Some("FROM") => {
                let rest: Vec<&str> = words.collect();
                stage = match rest.as_slice() {
                    [.., as_, name] if as_.eq_ignore_ascii_case("as") => (*name).to_owned(),
                    _ => String::new(),
                };
            }
            Some("USER") => users.extend(words.next().map(str::to_owned)),
            Some("ENTRYPOINT") => {
                let json = line["ENTRYPOINT".len()..].trim();
                let program = serde_json::from_str::<Vec<String>>(json)
                    .ok()
                    .and_then(|args| args.into_iter().next())
                    .unwrap_or_default();
                stages.push((stage.clone(), program));
            }
            _ => {}
        }
    }
    Targets { stages, users }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerfile_stages_are_read_with_their_entrypoints_and_users() {
        let text = "FROM rust:1 AS build\nRUN cargo build\n\
                    FROM gcr.io/distroless/cc AS dialtone-operator\nUSER 65532:65532\n\
                    ENTRYPOINT [\"/usr/local/bin/dialtone-operator\"]\n";
        let targets = dockerfile_targets(text);
        assert_eq!(
            targets.stages,
            [(
                "dialtone-operator".to_owned(),
                "/usr/local/bin/dialtone-operator".to_owned()
            )]
        );
        assert_eq!(targets.users, ["65532:65532"]);
    }

    #[test]
    fn chart_image_references_are_found() {
        let rendered = "      containers:\n        - name: operator\n          image: \"ghcr.io/dialtone/dialtone-operator:0.1.0\"\n          args:\n            - --voice-image=ghcr.io/dialtone/dialtone-voice:0.1.0\n";
        assert_eq!(
            chart_images(rendered),
            [
                "ghcr.io/dialtone/dialtone-operator:0.1.0",
                "ghcr.io/dialtone/dialtone-voice:0.1.0"
            ]
        );
    }

    #[test]
    fn the_repositorys_dockerfile_matches_the_images() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        dockerfile_matches(root).unwrap();
    }
}
