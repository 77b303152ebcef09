//! The demo's hostile client: what the voice pod refuses so that one
//! client cannot exhaust a pod every tenant shares (decision 0027). A
//! forged media stream gets 401 before any WebSocket exists, so does a text
//! call without its tenant's call token (decision 0032), a 50 MB frame
//! closes its socket, a flood of idle connections leaves the pod serving,
//! and the pod's counters show each refusal.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Idle connections the demo opens (below the pod's default cap of 4,096).
const IDLE: usize = 1_000;

fn connect(port: u16) -> Result<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port)).context("connecting to the voice pod")?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(stream)
}

/// A WebSocket upgrade request for `path`, with `token` as its bearer;
/// returns the stream and the response's status line.
fn upgrade(port: u16, path: &str, token: Option<&str>) -> Result<(TcpStream, String)> {
    let mut stream = connect(port)?;
    let authorization = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ZGlhbHRvbmUtZGVtby1rZXk=\r\n{authorization}\r\n"
    )?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let status = head.lines().next().unwrap_or_default().to_owned();
    Ok((stream, status))
}

fn get(port: u16, path: &str) -> Result<String> {
    let mut stream = connect(port)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    Ok(body)
}

/// Waits until the pod has closed `stream` (EOF or reset).
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return true,
            Ok(_) => {}
        }
    }
    false
}

pub fn show(port: u16, metrics_port: u16, number: &str, token: &str) -> Result<()> {
    let (_, status) = upgrade(port, "/twilio/media/forged.1.AAAA", None)?;
    println!("a media stream with a forged ticket: {status} (no WebSocket opened)");
    if !status.contains(" 401 ") {
        bail!("a forged stream ticket must get 401 before the upgrade, got {status:?}");
    }

    let path = format!(
        "/v1/calls?to={}&from=%2B61400000999",
        number.replace('+', "%2B")
    );
    let (_, status) = upgrade(port, &path, None)?;
    println!("a text call without the tenant's call token: {status}");
    if !status.contains(" 401 ") {
        bail!("a text call without a token must get 401, got {status:?}");
    }
    let (_, status) = upgrade(port, &path, Some("dtc_guessed-by-an-outsider"))?;
    println!("a text call with a guessed token: {status}");
    if !status.contains(" 401 ") {
        bail!("a text call with a guessed token must get 401, got {status:?}");
    }
    let (mut socket, status) = upgrade(port, &path, Some(token))?;
    if !status.contains(" 101 ") {
        bail!("the text call was not upgraded: {status:?}");
    }
    // A masked text frame announcing 50 MB, then the first of it: the pod
    // reads the header, refuses the size and closes.
    let mut frame = vec![0x81u8, 0x80 | 127];
    frame.extend_from_slice(&(50u64 * 1024 * 1024).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    frame.extend_from_slice(&[b'x'; 64 * 1024]);
    let _ = socket.write_all(&frame);
    if !closed_within(&mut socket, Duration::from_secs(10)) {
        bail!("the pod kept reading a 50 MB message");
    }
    println!("a text call that sends a 50 MB message: closed at the frame header (limit 16 KiB)");

    let started = Instant::now();
    let idle = (0..IDLE)
        .map(|_| TcpStream::connect(("127.0.0.1", port)))
        .collect::<std::io::Result<Vec<_>>>()
        .context("opening idle connections")?;
    let opened = started.elapsed();
    let asked = Instant::now();
    if !crate::demo_calls::ready(port) {
        bail!("the pod stopped serving under {IDLE} idle connections");
    }
    println!(
        "{IDLE} idle connections held open (opened in {:.0} ms): /readyz still answers 200, in {:.0} ms",
        opened.as_secs_f64() * 1_000.0,
        asked.elapsed().as_secs_f64() * 1_000.0
    );
    drop(idle);

    let public = get(port, "/metrics")?;
    let status = public.lines().next().unwrap_or_default();
    if !status.contains(" 404 ") {
        bail!("the public port must not serve /metrics, got {status:?}");
    }
    println!("/metrics on the public port: {status}; on the metrics port:");
    let metrics = get(metrics_port, "/metrics")?;
    for line in metrics.lines().filter(|l| {
        l.starts_with("dialtone_voice_signature_rejections_total{reason=\"stream-token\"}")
            || l.starts_with("dialtone_voice_signature_rejections_total{reason=\"calls-token\"}")
            || l.starts_with("dialtone_voice_calls_refused_total")
            || l.starts_with("dialtone_voice_connections_shed_total")
    }) {
        println!("  {line}");
    }
    Ok(())
}
