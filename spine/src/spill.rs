//! The writer's local spill file and its dead-letter companion.
//!
//! The spill file holds events PostgreSQL could not take yet: one
//! [`EventRow`] as JSON per line, appended in the order the writer received
//! them and fsynced before the events count as durable. The writer delivers
//! the lines in order once the database is back and then truncates the
//! file. Delivery is idempotent (`ON CONFLICT DO NOTHING`), so a crash
//! between delivering and truncating only re-delivers.
//!
//! `<spill>.rejected` holds what the database refused for good (a trigger,
//! a constraint), the later events of a call with a refused event, or
//! lines that do not parse: one JSON object per line with the `error` and
//! the `row` (or the raw `line`). Nothing is dropped silently.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader};

use crate::db::EventRow;
use crate::event::CallEvent;

/// One line read back from the spill file.
pub(crate) struct SpilledLine {
    /// Byte offset of the line's start.
    pub start: u64,
    /// Byte offset just after its newline.
    pub end: u64,
    /// The event, or why the line cannot be delivered (with the raw line).
    pub parsed: Result<(CallEvent, EventRow), Unreadable>,
}

/// A spill line that cannot be delivered.
pub(crate) struct Unreadable {
    /// The raw line (with U+FFFD for bytes that are not UTF-8).
    pub line: String,
    /// The exact bytes, when they are not UTF-8 (so nothing is lost).
    pub bytes: Option<Vec<u8>>,
    /// Why.
    pub error: String,
}

/// The spill file: an append handle, what is left to deliver, and where
/// delivery has got to.
pub(crate) struct Spill {
    path: PathBuf,
    file: File,
    /// Lines appended and not yet delivered.
    pending: u64,
    /// Bytes already delivered (the next line to read starts here).
    offset: u64,
    /// The file's length after the last complete append.
    len: u64,
}

impl Spill {
    /// Opens (or creates) the spill file. A torn last line (a crash in the
    /// middle of an append, never acknowledged as durable) is cut off.
    pub async fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await?;
        }
        let existed = tokio::fs::try_exists(path).await?;
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .await?;
        if !existed {
            sync_dir(path).await?;
        }
        // Count whole lines without reading a large file into memory.
        let (mut total, mut complete, mut pending) = (0u64, 0u64, 0u64);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            for (i, b) in buf[..n].iter().enumerate() {
                if *b == b'\n' {
                    pending += 1;
                    complete = total + i as u64 + 1;
                }
            }
            total += n as u64;
        }
        if complete < total {
            tracing::warn!(
                path = %path.display(),
                bytes = total - complete,
                "cutting off a torn last line of the spill file"
            );
            file.set_len(complete).await?;
            file.sync_data().await?;
        }
        Ok(Self {
            path: path.to_owned(),
            file,
            pending,
            offset: 0,
            len: complete,
        })
    }

    /// Lines waiting for the database.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Appends rows and waits until they are on disk.
    pub async fn append(&mut self, rows: &[EventRow]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(rows.len() * 256);
        for row in rows {
            serde_json::to_writer(&mut buf, row)?;
            buf.push(b'\n');
        }
        let written = async {
            self.file.write_all(&buf).await?;
            self.file.sync_data().await
        }
        .await;
        if let Err(e) = written {
            // Cut a partial append off, so the next append does not glue
            // its first line to a torn one.
            let _ = self.file.set_len(self.len).await;
            return Err(e);
        }
        self.len += buf.len() as u64;
        self.pending += rows.len() as u64;
        Ok(())
    }

    /// Reads up to `max` undelivered lines.
    pub async fn read(&self, max: usize) -> std::io::Result<Vec<SpilledLine>> {
        let mut file = File::open(&self.path).await?;
        file.seek(SeekFrom::Start(self.offset)).await?;
        let mut reader = BufReader::new(file);
        let mut lines = Vec::new();
        let mut at = self.offset;
        let mut buf = Vec::new();
        while lines.len() < max {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).await?;
            // A line without its newline is still being appended: only
            // whole lines are delivered.
            if n == 0 || !buf.ends_with(b"\n") {
                break;
            }
            let (start, end) = (at, at + n as u64);
            at = end;
            // Bytes that are not UTF-8 (a disk fault, a foreign write) make
            // that line unreadable, never the file: delivery goes on past it.
            let text = String::from_utf8_lossy(&buf);
            let line = text.trim_end();
            let utf8 = std::str::from_utf8(&buf).is_ok();
            let parsed = std::str::from_utf8(&buf)
                .map_err(|e| format!("not UTF-8: {e}"))
                .and_then(|_| serde_json::from_str::<EventRow>(line).map_err(|e| e.to_string()))
                .and_then(|mut row| {
                    // Lines of an older build may hold a NUL.
                    row.make_storable();
                    row.clone()
                        .into_event()
                        .map(|event| (event, row))
                        .map_err(|e| e.to_string())
                })
                .map_err(|error| Unreadable {
                    line: line.to_owned(),
                    bytes: (!utf8).then(|| buf.clone()),
                    error,
                });
            lines.push(SpilledLine { start, end, parsed });
        }
        Ok(lines)
    }

    /// Marks the lines before byte `offset` delivered (`lines` of them).
    pub fn advance(&mut self, offset: u64, lines: u64) {
        self.offset = offset;
        self.pending = self.pending.saturating_sub(lines);
    }

    /// Empties the file once every line is delivered.
    pub async fn clear(&mut self) -> std::io::Result<()> {
        self.file.set_len(0).await?;
        self.file.sync_data().await?;
        self.offset = 0;
        self.pending = 0;
        self.len = 0;
        Ok(())
    }
}

/// The dead-letter file next to the spill file.
pub(crate) fn rejected_path(spill: &Path) -> PathBuf {
    let mut name = spill.file_name().unwrap_or_default().to_owned();
    name.push(".rejected");
    spill.with_file_name(name)
}

/// Appends one dead letter and waits until it is on disk.
pub(crate) async fn reject(path: &Path, entry: &serde_json::Value) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(entry)?;
    line.push(b'\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    file.write_all(&line).await?;
    file.sync_data().await
}

/// Makes a new file's directory entry durable.
async fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
        .await
        .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventBody, RuntimeEvent};
    use chrono::Utc;
    use uuid::Uuid;

    fn row(seq: i32) -> EventRow {
        EventRow::from_event(&CallEvent {
            call_id: Uuid::nil(),
            seq,
            tenant: "t".into(),
            occurred_at: Utc::now(),
            body: EventBody::Runtime(RuntimeEvent::TurnMeasured {
                latency_micros: i64::from(seq),
            }),
        })
    }

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir()
            .join(format!("dialtone-spill-{}", Uuid::new_v4()))
            .join(name)
    }

    /// Appends bytes the spill did not write (a torn or corrupt line).
    async fn append_raw(path: &Path, bytes: &[u8]) {
        let mut f = OpenOptions::new()
            .append(true)
            .open(path)
            .await
            .expect("opens");
        f.write_all(bytes).await.expect("writes");
    }

    #[tokio::test]
    async fn lines_come_back_in_order_and_a_torn_tail_is_cut() {
        let path = temp_path("events.jsonl");
        let mut spill = Spill::open(&path).await.expect("opens");
        spill.append(&[row(0), row(1)]).await.expect("appends");
        spill.append(&[row(2)]).await.expect("appends");
        assert_eq!(spill.pending(), 3);
        drop(spill);
        // A crash in the middle of an append.
        append_raw(&path, b"{\"callId\":\"00000").await;

        let mut spill = Spill::open(&path).await.expect("reopens");
        assert_eq!(spill.pending(), 3);
        let lines = spill.read(2).await.expect("reads");
        let seqs: Vec<i32> = lines
            .iter()
            .map(|l| l.parsed.as_ref().map(|(e, _)| e.seq).unwrap_or(-1))
            .collect();
        assert_eq!(seqs, [0, 1]);
        spill.advance(lines[1].end, 2);
        spill
            .append(&[row(3)])
            .await
            .expect("appends after a reopen");
        let rest = spill.read(10).await.expect("reads");
        let seqs: Vec<i32> = rest
            .iter()
            .map(|l| l.parsed.as_ref().map(|(e, _)| e.seq).unwrap_or(-1))
            .collect();
        assert_eq!(seqs, [2, 3]);
        assert_eq!(spill.pending(), 2);
        spill.clear().await.expect("clears");
        assert!(spill.read(10).await.expect("reads").is_empty());
        assert_eq!(tokio::fs::metadata(&path).await.expect("exists").len(), 0);
    }

    #[tokio::test]
    async fn an_unparseable_line_is_reported_with_its_text() {
        let path = temp_path("events.jsonl");
        tokio::fs::create_dir_all(path.parent().expect("parent"))
            .await
            .expect("dir");
        tokio::fs::write(&path, b"not json\n")
            .await
            .expect("writes");
        let spill = Spill::open(&path).await.expect("opens");
        let lines = spill.read(10).await.expect("reads");
        assert_eq!(lines.len(), 1);
        let bad = lines[0].parsed.as_ref().expect_err("unreadable");
        assert_eq!(bad.line, "not json");
    }

    #[tokio::test]
    async fn a_line_that_is_not_utf8_is_reported_and_delivery_goes_past_it() {
        let path = temp_path("events.jsonl");
        let mut spill = Spill::open(&path).await.expect("opens");
        spill.append(&[row(0)]).await.expect("appends");
        drop(spill);
        append_raw(&path, b"{\"callId\":\"\xff\xfe\"}\n").await;
        let mut spill = Spill::open(&path).await.expect("reopens");
        spill.append(&[row(2)]).await.expect("appends");
        let lines = spill.read(10).await.expect("reads past the bad bytes");
        assert_eq!(lines.len(), 3);
        assert!(lines[0].parsed.is_ok());
        let bad = lines[1].parsed.as_ref().expect_err("unreadable");
        assert!(bad.error.starts_with("not UTF-8"), "{}", bad.error);
        assert!(
            bad.line.contains('\u{fffd}'),
            "readable, lossily: {}",
            bad.line
        );
        assert_eq!(
            bad.bytes.as_deref(),
            Some(&b"{\"callId\":\"\xff\xfe\"}\n"[..]),
            "kept exactly"
        );
        assert_eq!(lines[2].parsed.as_ref().map(|(e, _)| e.seq).ok(), Some(2));
        assert_eq!(
            rejected_path(&path).file_name().and_then(|n| n.to_str()),
            Some("events.jsonl.rejected")
        );
    }
}
