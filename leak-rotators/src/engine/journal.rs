//! The rotation journal: append-only JSON lines, synced after each record.
//!
//! The engine writes an `intent` record before each side effect and a
//! `done` or `failed` record after it. After a crash, the last record shows
//! exactly which side effect may or may not have happened. Records carry key
//! ids and fingerprints, never a secret. [`Progress`] is the state obtained
//! by replaying the records; the writer applies each record it appends, so a
//! running rotation and a resumed one see the same state.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use leak_core::Fingerprint;
use serde::{Deserialize, Serialize};

use super::plan::{Plan, Step};
use crate::error::{Error, Result};

/// The end state of a rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A verified replacement is current in the sink and the leaked
    /// credential is revoked.
    Rotated,
    /// The leaked credential is revoked and no replacement was created.
    Revoked,
    /// The replacement never verified: it was revoked and discarded, and
    /// anything deactivated was reactivated.
    RolledBack,
    /// The provider rejected the create call, so nothing changed.
    Aborted,
}

/// One journal record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "kebab-case")]
pub enum Record {
    /// The plan being executed; always the first record.
    Plan {
        /// The plan.
        plan: Plan,
    },
    /// A side effect is about to happen.
    Intent {
        /// Index of the step in the plan, or none for a recovery step.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index: Option<usize>,
        /// The step.
        step: Step,
    },
    /// A step completed.
    Done {
        /// Index of the step in the plan, or none for a recovery step.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index: Option<usize>,
        /// The step.
        step: Step,
        /// Key created or acted on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_id: Option<String>,
        /// Fingerprint of a created secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fingerprint: Option<Fingerprint>,
        /// Extra facts, such as a verification result.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// A step failed; the error text names no secret.
    Failed {
        /// Index of the step in the plan, or none for a recovery step.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index: Option<usize>,
        /// The step.
        step: Step,
        /// Error message.
        error: String,
    },
    /// Plan steps from `from` on run again (after an unpromoted
    /// replacement was revoked on resume).
    Restart {
        /// First step index to run again.
        from: usize,
        /// Why.
        reason: String,
    },
    /// Rollback started.
    Rollback {
        /// Why.
        reason: String,
    },
    /// The rotation ended.
    Finished {
        /// The end state.
        outcome: Outcome,
    },
}

/// A journal line: a sequence number, a timestamp and the record.
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    seq: usize,
    at_ms: u64,
    #[serde(flatten)]
    record: Record,
}

/// A replacement key recorded in the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NewKey {
    pub(crate) id: String,
    pub(crate) fingerprint: Fingerprint,
}

/// State obtained by replaying a journal.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    pub(crate) plan: Plan,
    pub(crate) done: BTreeSet<usize>,
    pub(crate) open_intent: Option<(Option<usize>, Step)>,
    pub(crate) new_key: Option<NewKey>,
    pub(crate) new_key_revoked: bool,
    pub(crate) pending_in_sink: bool,
    pub(crate) promoted: bool,
    pub(crate) deactivated: Vec<String>,
    pub(crate) rollback: Option<String>,
    pub(crate) finished: Option<Outcome>,
    pub(crate) leaked_dead_confirmed: Option<bool>,
}

impl Progress {
    fn new(plan: Plan) -> Self {
        Progress {
            plan,
            done: BTreeSet::new(),
            open_intent: None,
            new_key: None,
            new_key_revoked: false,
            pending_in_sink: false,
            promoted: false,
            deactivated: Vec::new(),
            rollback: None,
            finished: None,
            leaked_dead_confirmed: None,
        }
    }

    /// Applies one record after the plan record.
    fn apply(&mut self, record: &Record) {
        match record {
            Record::Plan { .. } => {}
            Record::Intent { index, step } => self.open_intent = Some((*index, step.clone())),
            Record::Failed { .. } => self.open_intent = None,
            Record::Done {
                index,
                step,
                key_id,
                fingerprint,
                detail,
            } => {
                self.open_intent = None;
                if let Some(index) = index {
                    self.done.insert(*index);
                }
                self.apply_done(
                    step,
                    key_id.as_deref(),
                    fingerprint.as_ref(),
                    detail.as_deref(),
                );
            }
            Record::Restart { from, .. } => {
                self.done.retain(|index| index < from);
                self.promoted = false;
            }
            Record::Rollback { reason } => self.rollback = Some(reason.clone()),
            Record::Finished { outcome } => self.finished = Some(*outcome),
        }
    }

    fn apply_done(
        &mut self,
        step: &Step,
        key_id: Option<&str>,
        fingerprint: Option<&Fingerprint>,
        detail: Option<&str>,
    ) {
        match step {
            Step::Create => {
                if let (Some(id), Some(fingerprint)) = (key_id, fingerprint) {
                    self.new_key = Some(NewKey {
                        id: id.to_owned(),
                        fingerprint: fingerprint.clone(),
                    });
                }
                self.new_key_revoked = false;
                self.pending_in_sink = false;
                self.promoted = false;
            }
            Step::PutPending => self.pending_in_sink = true,
            Step::Promote => {
                self.promoted = true;
                self.pending_in_sink = false;
            }
            Step::Deactivate { key_id } => self.deactivated.push(key_id.clone()),
            Step::Reactivate { key_id } => self.deactivated.retain(|k| k != key_id),
            Step::RevokeNew { key_id } => {
                if self.new_key.as_ref().is_some_and(|k| &k.id == key_id) {
                    self.new_key_revoked = true;
                }
            }
            Step::Discard { .. } => self.pending_in_sink = false,
            Step::VerifyRevoked { .. } => {
                self.leaked_dead_confirmed = Some(detail == Some("confirmed"))
            }
            Step::RevokeOther { .. }
            | Step::VerifyNew
            | Step::Revoke { .. }
            | Step::RevokeOrphan { .. } => {}
        }
    }
}

/// Appends records to a journal file and keeps its [`Progress`].
#[derive(Debug)]
pub(crate) struct JournalWriter {
    path: PathBuf,
    file: File,
    seq: usize,
    stop_after: Option<usize>,
    pub(crate) progress: Progress,
}

impl JournalWriter {
    /// Creates a journal whose first record is the plan.
    pub(crate) fn create(path: PathBuf, plan: &Plan, stop_after: Option<usize>) -> Result<Self> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|source| Error::Journal {
                path: path.clone(),
                source,
            })?;
        let mut writer = JournalWriter {
            path,
            file,
            seq: 0,
            stop_after,
            progress: Progress::new(plan.clone()),
        };
        writer.append(Record::Plan { plan: plan.clone() })?;
        Ok(writer)
    }

    /// Opens an existing journal to continue it.
    pub(crate) fn reopen(
        path: PathBuf,
        progress: Progress,
        seq: usize,
        stop_after: Option<usize>,
    ) -> Result<Self> {
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|source| Error::Journal {
                path: path.clone(),
                source,
            })?;
        Ok(JournalWriter {
            path,
            file,
            seq,
            stop_after,
            progress,
        })
    }

    /// Returns the journal's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends and syncs a record, then applies it to the progress.
    ///
    /// Returns [`Error::Stopped`] right after the record numbered
    /// `stop_after` is synced, as a crash at that point would.
    pub(crate) fn append(&mut self, record: Record) -> Result<()> {
        self.seq += 1;
        let line = Line {
            seq: self.seq,
            at_ms: now_ms(),
            record,
        };
        let mut bytes = serde_json::to_vec(&line).map_err(|e| Error::Journal {
            path: self.path.clone(),
            source: e.into(),
        })?;
        bytes.push(b'\n');
        self.file
            .write_all(&bytes)
            .and_then(|()| self.file.sync_data())
            .map_err(|source| Error::Journal {
                path: self.path.clone(),
                source,
            })?;
        self.progress.apply(&line.record);

        if self.stop_after == Some(self.seq) {
            return Err(Error::Stopped { records: self.seq });
        }
        Ok(())
    }
}

/// Reads a journal and replays it; returns the progress and the last
/// sequence number.
///
/// A torn last line (a crash in the middle of a write) is ignored, because
/// its side effect had not started: every record is synced before the
/// engine acts on it.
pub(crate) fn replay(path: &Path) -> Result<(Progress, usize)> {
    let file = File::open(path).map_err(|source| Error::Journal {
        path: path.to_owned(),
        source,
    })?;
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<std::io::Result<_>>()
        .map_err(|source| Error::Journal {
            path: path.to_owned(),
            source,
        })?;
    let corrupt = |line: usize, reason: String| Error::JournalCorrupt {
        path: path.to_owned(),
        line,
        reason,
    };

    let mut progress: Option<Progress> = None;
    let mut seq = 0;
    for (number, text) in lines.iter().enumerate() {
        let parsed: Line = match serde_json::from_str(text) {
            Ok(line) => line,
            Err(_) if number + 1 == lines.len() => break,
            Err(e) => return Err(corrupt(number + 1, e.to_string())),
        };
        seq = parsed.seq;
        match (&mut progress, parsed.record) {
            (None, Record::Plan { plan }) => progress = Some(Progress::new(plan)),
            (None, _) => {
                return Err(corrupt(
                    number + 1,
                    "the first record is not a plan".to_owned(),
                ));
            }
            (Some(progress), record) => progress.apply(&record),
        }
    }
    let progress = progress.ok_or_else(|| corrupt(1, "the journal holds no plan".to_owned()))?;
    Ok((progress, seq))
}

/// One record of a journal with its sequence number and the time it was
/// written, as [`read_journal`] returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Sequence number, from 1 in each journal.
    pub seq: usize,
    /// When the record was written, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The record.
    pub record: Record,
}

/// Reads every record of a journal, in order, for a timeline of the
/// rotation. A torn last line is left out, as on resume.
///
/// # Errors
///
/// [`Error::Journal`] when the file cannot be read and
/// [`Error::JournalCorrupt`] for a line other than the last that does not
/// parse.
pub fn read_journal(path: &Path) -> Result<Vec<JournalEntry>> {
    let file = File::open(path).map_err(|source| Error::Journal {
        path: path.to_owned(),
        source,
    })?;
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<std::io::Result<_>>()
        .map_err(|source| Error::Journal {
            path: path.to_owned(),
            source,
        })?;
    let mut entries = Vec::with_capacity(lines.len());
    for (number, text) in lines.iter().enumerate() {
        let line: Line = match serde_json::from_str(text) {
            Ok(line) => line,
            Err(_) if number + 1 == lines.len() => break,
            Err(e) => {
                return Err(Error::JournalCorrupt {
                    path: path.to_owned(),
                    line: number + 1,
                    reason: e.to_string(),
                });
            }
        };
        entries.push(JournalEntry {
            seq: line.seq,
            at_ms: line.at_ms,
            record: line.record,
        });
    }
    Ok(entries)
}

/// Lists journals in `dir` whose names start with `prefix` and that have no
/// `finished` record, oldest first.
pub(crate) fn unfinished(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Journal {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(prefix) || !name.ends_with(".jsonl") {
            continue;
        }
        let (progress, _) = replay(&path)?;
        if progress.finished.is_none() {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_journal_skips_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let lines = [
            r#"{"seq":1,"at_ms":10,"record":"rollback","reason":"test"}"#,
            r#"{"seq":2,"at_ms":20,"record":"finished","outcome":"rolled-back"}"#,
            r#"{"seq":3,"at_ms":30,"rec"#,
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();

        let entries = read_journal(&path).unwrap();

        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].seq, 1);
        assert_eq!(entries[1].at_ms, 20);
        assert_eq!(
            entries[1].record,
            Record::Finished {
                outcome: Outcome::RolledBack
            }
        );
    }

    #[test]
    fn read_journal_rejects_corrupt_middle_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let lines = [
            "not json",
            r#"{"seq":2,"at_ms":20,"record":"finished","outcome":"rotated"}"#,
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();

        let error = read_journal(&path).unwrap_err();

        assert!(matches!(error, Error::JournalCorrupt { line: 1, .. }));
    }
}
