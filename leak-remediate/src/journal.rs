//! The remediation journal: append-only JSON lines, synced after each
//! record, one file per remediation of a scope.
//!
//! The first record is the plan. Each rotation and each registry action
//! gets an `intent` record before it starts and a `done` or `failed` record
//! after. Rotations keep their own, finer journals (the rotation engine's);
//! the remediation journal records which of them belong to this run.
//! Records carry fingerprints, key ids and digests, never a secret.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use leak_core::Fingerprint;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::RemediationPlan;
use crate::report::RotationResult;

/// One record of the remediation journal.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "kebab-case")]
pub enum RemediationRecord {
    /// The plan being executed; always the first record.
    Plan {
        /// The plan.
        plan: Box<RemediationPlan>,
    },
    /// A credential's rotation is about to start or resume.
    RotationIntent {
        /// The credential id.
        credential: Fingerprint,
    },
    /// A credential's rotation ended (rotated, revoked, rolled back or
    /// aborted; see the result's outcome).
    RotationDone {
        /// The credential id.
        credential: Fingerprint,
        /// The rotation's result.
        result: RotationResult,
    },
    /// A credential's rotation failed with an error; a later run retries
    /// it through the rotation engine's journal.
    RotationFailed {
        /// The credential id.
        credential: Fingerprint,
        /// The error, which names no secret.
        error: String,
    },
    /// A registry action is about to run.
    ActionIntent {
        /// Index into the plan's `registry_actions`.
        index: usize,
    },
    /// A registry action completed, or was found already done.
    ActionDone {
        /// Index into the plan's `registry_actions`.
        index: usize,
        /// What happened.
        detail: String,
    },
    /// A registry action failed.
    ActionFailed {
        /// Index into the plan's `registry_actions`.
        index: usize,
        /// The error, which names no secret.
        error: String,
    },
    /// The remediation ended; a later run of the same scope plans anew.
    Finished,
}

/// A journal line: sequence number, time and record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RemediationEntry {
    /// Sequence number, from 1.
    pub seq: usize,
    /// When it was written, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The record.
    #[serde(flatten)]
    pub record: RemediationRecord,
}

/// The state obtained by replaying a journal.
#[derive(Clone, Debug)]
pub(crate) struct State {
    pub(crate) plan: RemediationPlan,
    /// When the plan record was written.
    pub(crate) started_ms: u64,
    pub(crate) rotations_done: BTreeMap<Fingerprint, RotationResult>,
    pub(crate) rotations_failed: BTreeMap<Fingerprint, String>,
    pub(crate) actions_done: BTreeMap<usize, String>,
    pub(crate) actions_failed: BTreeMap<usize, String>,
    pub(crate) finished: bool,
}

impl State {
    fn new(plan: RemediationPlan, started_ms: u64) -> Self {
        State {
            plan,
            started_ms,
            rotations_done: BTreeMap::new(),
            rotations_failed: BTreeMap::new(),
            actions_done: BTreeMap::new(),
            actions_failed: BTreeMap::new(),
            finished: false,
        }
    }

    fn apply(&mut self, record: &RemediationRecord) {
        match record {
            RemediationRecord::Plan { .. }
            | RemediationRecord::RotationIntent { .. }
            | RemediationRecord::ActionIntent { .. } => {}
            RemediationRecord::RotationDone { credential, result } => {
                self.rotations_failed.remove(credential);
                self.rotations_done
                    .insert(credential.clone(), result.clone());
            }
            RemediationRecord::RotationFailed { credential, error } => {
                self.rotations_failed
                    .insert(credential.clone(), error.clone());
            }
            RemediationRecord::ActionDone { index, detail } => {
                self.actions_failed.remove(index);
                self.actions_done.insert(*index, detail.clone());
            }
            RemediationRecord::ActionFailed { index, error } => {
                self.actions_failed.insert(*index, error.clone());
            }
            RemediationRecord::Finished => self.finished = true,
        }
    }
}

/// Appends records to a journal and keeps the replayed state current.
#[derive(Debug)]
pub(crate) struct JournalWriter {
    path: PathBuf,
    file: File,
    seq: usize,
    written: usize,
    stop_after: Option<usize>,
    pub(crate) state: State,
}

impl JournalWriter {
    /// Creates a journal whose first record is the plan.
    pub(crate) fn create(
        path: PathBuf,
        plan: &RemediationPlan,
        stop_after: Option<usize>,
    ) -> Result<Self> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|error| journal_error(&path, error))?;
        let mut writer = JournalWriter {
            path,
            file,
            seq: 0,
            written: 0,
            stop_after,
            state: State::new(plan.clone(), now_ms()),
        };
        writer.append(RemediationRecord::Plan {
            plan: Box::new(plan.clone()),
        })?;
        Ok(writer)
    }

    /// Reopens an unfinished journal to continue it.
    pub(crate) fn reopen(path: PathBuf, stop_after: Option<usize>) -> Result<Self> {
        let (state, seq) = replay(&path)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|error| journal_error(&path, error))?;
        Ok(JournalWriter {
            path,
            file,
            seq,
            written: 0,
            stop_after,
            state,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends and syncs a record, then stops if the fault injection hook
    /// asks for a stop at this record.
    pub(crate) fn append(&mut self, record: RemediationRecord) -> Result<()> {
        self.seq += 1;
        let entry = RemediationEntry {
            seq: self.seq,
            at_ms: now_ms(),
            record,
        };
        let mut line =
            serde_json::to_string(&entry).map_err(|error| journal_error(&self.path, error))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|error| journal_error(&self.path, error))?;
        self.state.apply(&entry.record);
        self.written += 1;
        if self.stop_after == Some(self.written) {
            return Err(Error::Stopped {
                records: self.written,
            });
        }
        Ok(())
    }
}

fn journal_error(path: &Path, error: impl std::fmt::Display) -> Error {
    Error::Journal {
        path: path.to_owned(),
        reason: error.to_string(),
    }
}

/// Reads every entry of a journal. A torn last line (a crash inside a
/// write) is left out: its step had not started, because every record is
/// synced before the step it announces.
///
/// # Errors
///
/// [`Error::Journal`] when the file cannot be read or a line other than the
/// last does not parse.
pub fn read_entries(path: &Path) -> Result<Vec<RemediationEntry>> {
    let file = File::open(path).map_err(|error| journal_error(path, error))?;
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<std::io::Result<_>>()
        .map_err(|error| journal_error(path, error))?;
    let mut entries = Vec::with_capacity(lines.len());
    for (number, text) in lines.iter().enumerate() {
        match serde_json::from_str::<RemediationEntry>(text) {
            Ok(entry) => entries.push(entry),
            Err(_) if number + 1 == lines.len() => break,
            Err(error) => {
                return Err(journal_error(path, format!("line {}: {error}", number + 1)));
            }
        }
    }
    Ok(entries)
}

fn replay(path: &Path) -> Result<(State, usize)> {
    let entries = read_entries(path)?;
    let mut entries = entries.into_iter();
    let Some(first) = entries.next() else {
        return Err(journal_error(path, "the journal holds no plan"));
    };
    let RemediationRecord::Plan { plan } = first.record else {
        return Err(journal_error(path, "the first record is not a plan"));
    };
    let mut state = State::new(*plan, first.at_ms);
    let mut seq = first.seq;
    for entry in entries {
        state.apply(&entry.record);
        seq = entry.seq;
    }
    Ok((state, seq))
}

/// Returns the journal file-name prefix of a scope: `remediation-` and 16
/// hex digits of the scope text's SHA-256.
pub(crate) fn scope_prefix(scope: &str) -> String {
    let fingerprint = Fingerprint::of(scope.as_bytes());
    let hex = &fingerprint.as_str()["sha256:".len()..];
    format!("remediation-{}", &hex[..16])
}

/// Finds the unfinished journal of a scope, the newest when there are
/// several.
pub(crate) fn unfinished(dir: &Path, prefix: &str) -> Result<Option<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(journal_error(dir, error)),
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(&format!("{prefix}-")) || !name.ends_with(".jsonl") {
            continue;
        }
        let path = entry.path();
        let (state, _) = replay(&path)?;
        if !state.finished {
            found.push(path);
        }
    }
    found.sort();
    Ok(found.pop())
}

/// Holds the exclusive lock of a scope's journal for one run.
#[derive(Debug)]
pub(crate) struct ScopeLock {
    _file: File,
}

impl ScopeLock {
    /// Takes the lock without waiting. The operating system releases it
    /// when the process ends, even after a crash.
    pub(crate) fn acquire(path: PathBuf) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|error| journal_error(&path, error))?;
        match file.try_lock() {
            Ok(()) => Ok(ScopeLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked { path }),
            Err(std::fs::TryLockError::Error(error)) => Err(journal_error(&path, error)),
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_plan() -> RemediationPlan {
        RemediationPlan {
            scope: "image.tar".to_owned(),
            registry: None,
            credentials: Vec::new(),
            registry_actions: Vec::new(),
            coverage_complete: true,
            gaps: Vec::new(),
        }
    }

    #[test]
    fn replay_restores_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("remediation-test-1.jsonl");
        let mut writer = JournalWriter::create(path.clone(), &empty_plan(), None).unwrap();
        writer
            .append(RemediationRecord::ActionIntent { index: 0 })
            .unwrap();
        writer
            .append(RemediationRecord::ActionDone {
                index: 0,
                detail: "deleted".to_owned(),
            })
            .unwrap();
        drop(writer);

        let reopened = JournalWriter::reopen(path, None).unwrap();

        assert_eq!(reopened.seq, 3);
        assert_eq!(reopened.state.actions_done.get(&0).unwrap(), "deleted");
        assert!(!reopened.state.finished);
    }

    #[test]
    fn stop_hook_stops_after_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("remediation-test-1.jsonl");
        let mut writer = JournalWriter::create(path, &empty_plan(), Some(2)).unwrap();

        let error = writer.append(RemediationRecord::Finished).unwrap_err();

        assert!(matches!(error, Error::Stopped { records: 2 }));
    }

    #[test]
    fn unfinished_skips_finished_journals() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = scope_prefix("image.tar");
        let done = dir.path().join(format!("{prefix}-1.jsonl"));
        let open = dir.path().join(format!("{prefix}-2.jsonl"));
        let mut writer = JournalWriter::create(done, &empty_plan(), None).unwrap();
        writer.append(RemediationRecord::Finished).unwrap();
        JournalWriter::create(open.clone(), &empty_plan(), None).unwrap();

        assert_eq!(unfinished(dir.path(), &prefix).unwrap(), Some(open));
    }

    #[test]
    fn lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scope.lock");
        let _held = ScopeLock::acquire(path.clone()).unwrap();

        let error = ScopeLock::acquire(path).unwrap_err();

        assert!(matches!(error, Error::Locked { .. }));
    }
}
