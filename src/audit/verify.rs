//! `pgveil audit verify FILE...`: checks the hash chain of one or more audit files, given
//! in order (rotated files first, the active file last).
//!
//! Each record carries `seq` (previous + 1) and `prev` (SHA-256, hex, of the previous
//! record's line exactly as written). So:
//! - an edited record no longer hashes to the `prev` of the record after it;
//! - a removed record leaves a gap in `seq` (and a `prev` mismatch);
//! - swapped records break the order of `seq`.
//!
//! The first error is reported with its file and line. Limits, stated honestly: an edit of
//! the very last record cannot be detected by the chain alone (nothing follows it; keep a
//! copy of the last hash elsewhere, e.g. the `pgveil_audit_records_total` metric scraped
//! by monitoring), and a chain that starts at `seq` > 1 cannot be checked against records
//! not given.
use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// `prev` of the very first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in d.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The first break in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub file: PathBuf,
    /// 1-based line of the record where the break shows.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// A chain that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub records: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Hash of the last record: keep it elsewhere to detect an edit of the last record.
    pub last_hash: String,
    /// False when the first record's predecessor was not given (chain starts after seq 1).
    pub complete: bool,
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.records == 0 {
            return write!(f, "no records");
        }
        write!(
            f,
            "{} records, seq {}..{}, chain intact; last record hash {}",
            self.records, self.first_seq, self.last_seq, self.last_hash
        )?;
        if !self.complete {
            write!(
                f,
                " (the chain starts at seq {}: earlier files were not given, so its first link is unchecked)",
                self.first_seq
            )?;
        }
        Ok(())
    }
}

/// Verifies `files` in order as one chain.
pub fn verify_files(files: &[impl AsRef<Path>]) -> Result<VerifyReport, Broken> {
    let mut prev: Option<(String, u64, PathBuf, usize)> = None; // hash, seq, file, line
    let mut report = VerifyReport {
        records: 0,
        first_seq: 0,
        last_seq: 0,
        last_hash: String::new(),
        complete: true,
    };
    for file in files {
        let file = file.as_ref();
        let broken = |line: usize, message: String| Broken {
            file: file.to_path_buf(),
            line,
            message,
        };
        let text = std::fs::read(file).map_err(|e| broken(0, format!("cannot read: {e}")))?;
        if !text.is_empty() && text.last() != Some(&b'\n') {
            let line = text.iter().filter(|b| **b == b'\n').count() + 1;
            return Err(broken(
                line,
                "the last record is incomplete (no newline): the file was truncated or appended to".into(),
            ));
        }
        let mut lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
        lines.pop(); // after the final newline (or the empty file)
        let seq_of = |raw: &[u8]| {
            serde_json::from_slice::<serde_json::Value>(raw)
                .ok()
                .and_then(|v| v.get("seq").and_then(|s| s.as_u64()))
        };
        for (i, raw) in lines.iter().copied().enumerate() {
            let line = i + 1;
            let v: serde_json::Value = serde_json::from_slice(raw)
                .map_err(|_| broken(line, "not a JSON record: the line was edited or inserted".into()))?;
            let seq = v
                .get("seq")
                .and_then(|s| s.as_u64())
                .ok_or_else(|| broken(line, "record without a numeric seq".into()))?;
            let p = v
                .get("prev")
                .and_then(|s| s.as_str())
                .ok_or_else(|| broken(line, "record without a prev hash".into()))?;
            match &prev {
                None => {
                    report.first_seq = seq;
                    if seq == 1 {
                        if p != GENESIS {
                            return Err(broken(line, "the first record (seq 1) does not start the chain (prev is not the genesis hash)".into()));
                        }
                    } else {
                        report.complete = false;
                    }
                }
                Some((hash, pseq, pfile, pline)) => {
                    let expected = pseq + 1;
                    let at = if pfile == file {
                        format!("line {pline}")
                    } else {
                        format!("{}:{pline}", pfile.display())
                    };
                    if seq > expected {
                        if let Some(later) = lines[i + 1..].iter().position(|l| seq_of(l) == Some(expected)) {
                            return Err(broken(
                                line,
                                format!("seq {seq} where {expected} was expected: records were reordered (record {expected} is at line {})", line + 1 + later),
                            ));
                        }
                        let what = if seq == expected + 1 {
                            format!("record {expected} was")
                        } else {
                            format!("records {expected}..{} were", seq - 1)
                        };
                        return Err(broken(
                            line,
                            format!("seq {seq} where {expected} was expected: {what} removed after {at}"),
                        ));
                    }
                    if seq < expected {
                        return Err(broken(line, format!("seq {seq} where {expected} was expected: records were reordered or duplicated (after {at})")));
                    }
                    if p != hash {
                        return Err(broken(
                            line,
                            format!("prev does not match the hash of the record before it ({at}): that record (seq {pseq}) was altered"),
                        ));
                    }
                }
            }
            prev = Some((sha256_hex(raw), seq, file.to_path_buf(), line));
            report.records += 1;
            report.last_seq = seq;
        }
    }
    if let Some((hash, ..)) = prev {
        report.last_hash = hash;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<String> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let line = format!("{{\"seq\":{seq},\"prev\":\"{prev}\",\"type\":\"x\",\"n\":{seq}}}");
                prev = sha256_hex(line.as_bytes());
                line
            })
            .collect()
    }

    fn check(lines: &[String]) -> Result<VerifyReport, Broken> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        std::fs::write(&p, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
        verify_files(&[p])
    }

    #[test]
    fn intact_edited_removed_swapped() {
        let lines = chain(5);
        let r = check(&lines).unwrap();
        assert_eq!((r.records, r.first_seq, r.last_seq, r.complete), (5, 1, 5, true));

        let mut edited = lines.clone();
        edited[1] = edited[1].replace("\"n\":2", "\"n\":20");
        let b = check(&edited).unwrap_err();
        assert_eq!(b.line, 3);
        assert!(
            b.message.contains("line 2") && b.message.contains("altered"),
            "{b}"
        );

        let mut removed = lines.clone();
        removed.remove(2);
        let b = check(&removed).unwrap_err();
        assert_eq!(b.line, 3);
        assert!(b.message.contains("record 3 was removed"), "{b}");

        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        let b = check(&swapped).unwrap_err();
        assert_eq!(b.line, 2);
        assert!(
            b.message.contains("seq 3 where 2 was expected")
                && b.message.contains("reordered (record 2 is at line 3)"),
            "{b}"
        );

        let mut garbage = lines.clone();
        garbage[3] = "hello".into();
        assert_eq!(check(&garbage).unwrap_err().line, 4);
    }

    #[test]
    fn a_chain_across_files_and_a_partial_chain() {
        let lines = chain(6);
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(
            &a,
            lines[..3].iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
        std::fs::write(
            &b,
            lines[3..].iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
        assert_eq!(verify_files(&[&a, &b]).unwrap().records, 6);
        let partial = verify_files(&[&b]).unwrap();
        assert!(!partial.complete);
        let err = verify_files(&[&b, &a]).unwrap_err();
        assert_eq!(err.file, a);
    }
}
