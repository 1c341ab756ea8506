//! The per-owner lock that stops two rotations of the same owner.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;

use crate::error::{Error, Result};

/// An exclusive advisory lock (`flock`) on a lock file, held until drop.
///
/// The operating system releases it when the process dies, so a crashed
/// rotation never leaves a stale lock behind.
#[derive(Debug)]
pub(crate) struct OwnerLock {
    _file: File,
}

impl OwnerLock {
    /// Takes the lock without waiting.
    pub(crate) fn acquire(path: PathBuf, owner: &str) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| Error::Journal {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(OwnerLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(Error::OwnerLocked {
                owner: owner.to_owned(),
                path,
            }),
            Err(TryLockError::Error(source)) => Err(Error::Journal { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_owner_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("owner.lock");
        let first = OwnerLock::acquire(path.clone(), "alice").unwrap();
        let second = OwnerLock::acquire(path.clone(), "alice");
        assert!(matches!(second, Err(Error::OwnerLocked { .. })));
        drop(first);
        assert!(OwnerLock::acquire(path, "alice").is_ok());
    }
}
