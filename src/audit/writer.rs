//! The audit writer thread: numbers and chains records, writes them in groups, rotates.
//!
//! One OS thread owns the file, so the chain (`seq`, `prev`) has a single author and the
//! order in the file is the order of `seq`. Jobs waiting in the channel are written
//! together in one `write` (and one `fdatasync` when asked): group commit, so a thousand
//! sessions waiting for their acknowledgement cost one disk write, not a thousand.
//!
//! Invariants: a record is acknowledged only after its bytes were written (and synced when
//! `fsync`); a failed write is cut back (`set_len`) so no half record stays in the file, and
//! the chain resumes from the last record actually written; the first record after a
//! failure is an `audit_gap` saying how many records were lost; a rotated file's successor
//! starts with a record whose `prev` is the hash of the rotated file's last record.
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use chrono::{NaiveDate, Utc};

use super::verify::{sha256_hex, GENESIS};
use super::{AuditConfig, AuditError, Job};
use crate::metrics::Metrics;

/// Most records written in one group.
const MAX_GROUP: usize = 4096;

pub(super) struct Writer {
    path: PathBuf,
    file: File,
    /// Regular file (rotation, truncation and tail reading apply); false for devices.
    regular: bool,
    size: u64,
    day: NaiveDate,
    seq: u64,
    prev: String,
    cfg: AuditConfig,
    /// Records that could not be written since the last successful write.
    lost: u64,
    healthy: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

fn open_err(path: &Path, reason: impl ToString) -> AuditError {
    AuditError::Open {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Reads the last line of a regular file (at most the last 1 MiB; records are smaller).
fn last_line(file: &mut File, size: u64) -> Result<Option<String>, String> {
    if size == 0 {
        return Ok(None);
    }
    let start = size.saturating_sub(1 << 20);
    file.seek(SeekFrom::Start(start)).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    if buf.last() != Some(&b'\n') {
        return Err("the file does not end with a complete record (a newline)".into());
    }
    buf.pop();
    let from = buf.iter().rposition(|b| *b == b'\n').map(|i| i + 1).unwrap_or(0);
    if from == 0 && start > 0 {
        return Err("the last record is longer than 1 MiB".into());
    }
    String::from_utf8(buf[from..].to_vec())
        .map(Some)
        .map_err(|_| "the last record is not UTF-8".into())
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).read(true).open(path)
}

impl Writer {
    /// Opens the active file, continuing the chain of what it already holds.
    pub(super) fn open(
        cfg: &AuditConfig,
        healthy: Arc<AtomicBool>,
        metrics: Arc<Metrics>,
    ) -> Result<Writer, AuditError> {
        let path = cfg.path.clone();
        let mut file = match open_append(&path) {
            Ok(f) => f,
            // Devices such as /dev/full cannot be opened for reading and appending by everyone.
            Err(_) => OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|e| open_err(&path, e))?,
        };
        let meta = file.metadata().map_err(|e| open_err(&path, e))?;
        let regular = meta.is_file();
        let size = if regular { meta.len() } else { 0 };
        let (mut seq, mut prev) = (0, GENESIS.to_string());
        if regular {
            if let Some(line) = last_line(&mut file, size).map_err(|e| open_err(&path, e))? {
                let v: serde_json::Value = serde_json::from_str(&line)
                    .map_err(|_| open_err(&path, "its last line is not an audit record; check it with `pgveil audit verify` and move it away"))?;
                seq = v["seq"]
                    .as_u64()
                    .ok_or_else(|| open_err(&path, "its last record has no seq"))?;
                prev = sha256_hex(line.as_bytes());
            }
        }
        let day = match meta.modified() {
            Ok(t) if size > 0 => chrono::DateTime::<Utc>::from(t).date_naive(),
            _ => Utc::now().date_naive(),
        };
        Ok(Writer {
            path,
            file,
            regular,
            size,
            day,
            seq,
            prev,
            cfg: cfg.clone(),
            lost: 0,
            healthy,
            metrics,
        })
    }

    /// Serves jobs until every sender is gone.
    pub(super) fn run(mut self, rx: Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            let mut records = jobs[0].bodies.len();
            while records < MAX_GROUP {
                match rx.try_recv() {
                    Ok(j) => {
                        records += j.bodies.len();
                        jobs.push(j);
                    }
                    Err(_) => break,
                }
            }
            let result = self.write(jobs.iter().flat_map(|j| j.bodies.iter()));
            for j in jobs {
                if let Some(ack) = j.ack {
                    let _ = ack.send(result.clone());
                }
            }
        }
    }

    /// Chains and writes a group of records; on failure the chain and file are as before.
    fn write<'a>(&mut self, bodies: impl Iterator<Item = &'a String>) -> Result<(), String> {
        let (seq0, prev0) = (self.seq, self.prev.clone());
        let mut buf = String::new();
        let mut n = 0u64;
        let gap;
        if self.lost > 0 {
            gap = format!(
                "{{\"type\":\"audit_gap\",\"time\":\"{}\",\"lost\":{},\"reason\":\"earlier writes failed; these records are missing\"}}",
                super::now(),
                self.lost
            );
            self.push(&mut buf, &gap);
            n += 1;
        }
        for b in bodies {
            if self.push(&mut buf, b) {
                n += 1;
            }
        }
        let result = self
            .rotate_if_due(buf.len() as u64)
            .and_then(|()| self.append(buf.as_bytes()));
        match result {
            Ok(()) => {
                if !self.healthy.swap(true, Ordering::AcqRel) {
                    tracing::warn!(path = %self.path.display(), lost = self.lost, "audit trail restored");
                }
                self.lost = 0;
                self.metrics.audit_records.fetch_add(n, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.seq = seq0;
                self.prev = prev0;
                let lost_now = if self.lost > 0 { n - 1 } else { n };
                self.lost += lost_now;
                self.healthy.store(false, Ordering::Release);
                self.metrics.audit_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(path = %self.path.display(), error = %e, lost = self.lost,
                    "audit write failed: statements of restricted roles are refused until the trail is restored");
                Err(e)
            }
        }
    }

    /// Adds one record line (with `seq` and `prev`) to `buf`; false for a malformed body.
    fn push(&mut self, buf: &mut String, body: &str) -> bool {
        let Some(rest) = body.strip_prefix('{') else {
            return false;
        };
        if rest.trim_start().starts_with('}') || body.contains('\n') {
            return false;
        }
        self.seq += 1;
        let start = buf.len();
        buf.push_str(&format!(
            "{{\"seq\":{},\"prev\":\"{}\",{rest}",
            self.seq, self.prev
        ));
        self.prev = sha256_hex(&buf.as_bytes()[start..]);
        buf.push('\n');
        true
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), String> {
        let before = self.size;
        let r = self.file.write_all(bytes).and_then(|()| {
            if self.cfg.fsync && self.regular {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        match r {
            Ok(()) => {
                self.size += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                if self.regular {
                    // No half record may stay: the next record's chain starts after `before`.
                    let _ = self.file.set_len(before);
                }
                Err(format!("{}: {e}", self.path.display()))
            }
        }
    }

    fn rotate_if_due(&mut self, incoming: u64) -> Result<(), String> {
        if !self.regular || self.size == 0 {
            self.day = Utc::now().date_naive();
            return Ok(());
        }
        let today = Utc::now().date_naive();
        let by_size = self.cfg.max_bytes.is_some_and(|m| self.size + incoming > m);
        let by_day = self.cfg.rotate_daily && today != self.day;
        if !(by_size || by_day) {
            return Ok(());
        }
        let stamp = Utc::now().format("%Y%m%dT%H%M%S%.6fZ").to_string();
        let mut target = PathBuf::from(format!("{}.{stamp}", self.path.display()));
        let mut i = 1;
        while target.exists() {
            target = PathBuf::from(format!("{}.{stamp}.{i}", self.path.display()));
            i += 1;
        }
        std::fs::rename(&self.path, &target)
            .map_err(|e| format!("rotating {} to {}: {e}", self.path.display(), target.display()))?;
        match open_append(&self.path) {
            Ok(f) => {
                self.file = f;
                self.size = 0;
                self.day = today;
                tracing::info!(rotated = %target.display(), "audit log rotated");
                Ok(())
            }
            Err(e) => {
                // Put the old file back so the chain stays in one place.
                let _ = std::fs::rename(&target, &self.path);
                Err(format!(
                    "opening a new {} after rotation: {e}",
                    self.path.display()
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(n: u32) -> String {
        format!("{{\"type\":\"test\",\"n\":{n}}}")
    }

    #[test]
    fn a_failed_write_leaves_no_trace_and_recovery_records_the_gap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let mut cfg = AuditConfig::new(&path);
        cfg.fsync = false;
        let healthy = Arc::new(AtomicBool::new(true));
        let metrics = Arc::new(Metrics::new());
        let mut w = Writer::open(&cfg, healthy.clone(), metrics.clone()).unwrap();
        w.write([body(1), body(2)].iter()).unwrap();

        // The disk fills up: the write fails, the chain and the file are as they were.
        let good = std::mem::replace(
            &mut w.file,
            OpenOptions::new().append(true).open("/dev/full").unwrap(),
        );
        let regular = std::mem::replace(&mut w.regular, false);
        assert!(w.write([body(3), body(4)].iter()).is_err());
        assert!(!healthy.load(Ordering::Acquire));
        assert_eq!((w.seq, w.lost), (2, 2));
        assert_eq!(metrics.audit_failures.load(Ordering::Relaxed), 1);

        // Space again: the first record says what was lost, and the chain holds.
        w.file = good;
        w.regular = regular;
        w.write([body(5)].iter()).unwrap();
        assert!(healthy.load(Ordering::Acquire));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines[2].contains("\"type\":\"audit_gap\"") && lines[2].contains("\"lost\":2"),
            "{}",
            lines[2]
        );
        assert!(lines[3].contains("\"n\":5"));
        assert_eq!(super::super::verify_files(&[&path]).unwrap().last_seq, 4);

        // A restart continues the chain from the file.
        drop(w);
        let mut w = Writer::open(&cfg, healthy, metrics).unwrap();
        w.write([body(6)].iter()).unwrap();
        assert_eq!(super::super::verify_files(&[&path]).unwrap().records, 5);
    }

    #[test]
    fn a_damaged_last_record_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        std::fs::write(
            &path,
            "{\"seq\":1,\"prev\":\"00\",\"type\":\"x\"}\n{\"seq\":2,\"pr",
        )
        .unwrap();
        let cfg = AuditConfig::new(&path);
        let e = Writer::open(&cfg, Arc::new(AtomicBool::new(true)), Arc::new(Metrics::new()))
            .err()
            .unwrap();
        assert!(
            e.to_string().contains("does not end with a complete record"),
            "{e}"
        );
    }
}
