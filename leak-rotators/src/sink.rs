//! Destinations for new secrets: the [`SecretSink`] trait, a file sink and a
//! JSON-lines sink for standard output.
//!
//! A sink stores a new secret in two stages. [`SecretSink::put_pending`]
//! stores it where consumers do not read it yet, and
//! [`SecretSink::promote`] makes it the current secret once the provider has
//! accepted it. [`SecretSink::discard`] drops a pending secret after a
//! rollback. The
//! engine never promotes a secret that has not verified as live.

use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use leak_core::Fingerprint;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rotator::{Credential, Owner};

/// A new credential on its way to a sink.
#[derive(Debug)]
pub struct SinkEntry<'a> {
    /// Rotator that created it.
    pub rotator: &'a str,
    /// Its owner.
    pub owner: &'a Owner,
    /// The credential, secret included.
    pub credential: &'a Credential,
}

/// A place where new secrets are stored for their consumers.
///
/// Implementations MUST make `promote` and `discard` idempotent, because the
/// engine repeats them after a crash. Promoting a fingerprint that is
/// already current succeeds, and so does discarding one that is not pending.
pub trait SecretSink: Send + Sync + Debug {
    /// Describes the sink for logs and errors, such as `file:/etc/app/key.json`.
    fn describe(&self) -> String;

    /// Stores a new secret as pending.
    ///
    /// # Errors
    ///
    /// [`Error::Sink`] when it cannot be stored.
    fn put_pending(&self, entry: &SinkEntry<'_>) -> Result<()>;

    /// Makes the pending secret with this fingerprint the current one.
    ///
    /// # Errors
    ///
    /// [`Error::Sink`] when no such secret is pending or current.
    fn promote(&self, key_id: &str, fingerprint: &Fingerprint) -> Result<()>;

    /// Drops the pending secret with this fingerprint.
    ///
    /// # Errors
    ///
    /// [`Error::Sink`] when it cannot be removed.
    fn discard(&self, key_id: &str, fingerprint: &Fingerprint) -> Result<()>;
}

/// The JSON document a [`FileSink`] writes.
#[derive(Serialize, Deserialize)]
struct SinkDocument {
    rotator: String,
    owner: String,
    key_id: String,
    fingerprint: Fingerprint,
    secret: String,
}

/// Writes the secret to a file, replacing it atomically, with mode 0600.
///
/// The pending secret goes to `PATH.pending`; promoting renames it to `PATH`.
/// Each write goes to a temporary file in the same directory, which is
/// synced and renamed into place. The directory is synced after each rename,
/// so a crash leaves either the old or the new file, never a partial one.
///
/// The file contains a JSON object with `rotator`, `owner`, `key_id`,
/// `fingerprint` and `secret` (the secret as text). With
/// [`FileSink::with_raw_secret`] it contains only the secret bytes (a GCP
/// key file, for example).
///
/// # Security
///
/// The file contains the secret in clear. Its mode is 0600 and the
/// temporary file is created with that mode, so no other user can read it
/// at any point; the directory's permissions are left to the caller.
#[derive(Debug, Clone)]
pub struct FileSink {
    path: PathBuf,
    raw: bool,
}

impl FileSink {
    /// Builds a sink writing to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileSink {
            path: path.into(),
            raw: false,
        }
    }

    /// Writes only the secret bytes instead of a JSON document.
    pub fn with_raw_secret(mut self) -> Self {
        self.raw = true;
        self
    }

    /// Returns the path of the current secret.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns the path of the pending secret.
    pub fn pending_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".pending");
        PathBuf::from(name)
    }

    fn error(&self, source: io::Error) -> Error {
        Error::Sink {
            sink: self.describe(),
            source,
        }
    }

    fn render(&self, entry: &SinkEntry<'_>) -> Result<Vec<u8>> {
        if self.raw {
            return Ok(entry.credential.secret.expose().to_vec());
        }
        let secret = entry.credential.secret.expose_str().ok_or_else(|| {
            self.error(io::Error::new(
                io::ErrorKind::InvalidData,
                "the secret is not UTF-8; use a raw file sink",
            ))
        })?;
        let document = SinkDocument {
            rotator: entry.rotator.to_owned(),
            owner: entry.owner.id.clone(),
            key_id: entry.credential.id.clone(),
            fingerprint: entry.credential.fingerprint(),
            secret: secret.to_owned(),
        };
        let mut bytes = serde_json::to_vec_pretty(&document).map_err(|e| self.error(e.into()))?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Returns the fingerprint of the secret stored at `path`, if the file exists.
    fn stored_fingerprint(&self, path: &Path) -> Result<Option<Fingerprint>> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error(e)),
        };
        if self.raw {
            return Ok(Some(Fingerprint::of(&bytes)));
        }
        let document: SinkDocument =
            serde_json::from_slice(&bytes).map_err(|e| self.error(e.into()))?;
        Ok(Some(document.fingerprint))
    }
}

impl SecretSink for FileSink {
    fn describe(&self) -> String {
        format!("file:{}", self.path.display())
    }

    fn put_pending(&self, entry: &SinkEntry<'_>) -> Result<()> {
        let bytes = self.render(entry)?;
        write_atomically(&self.pending_path(), &bytes).map_err(|e| self.error(e))
    }

    fn promote(&self, _key_id: &str, fingerprint: &Fingerprint) -> Result<()> {
        let pending = self.pending_path();
        match self.stored_fingerprint(&pending)? {
            Some(stored) if &stored == fingerprint => {
                fs::rename(&pending, &self.path).map_err(|e| self.error(e))?;
                sync_parent(&self.path).map_err(|e| self.error(e))
            }
            _ if self.stored_fingerprint(&self.path)?.as_ref() == Some(fingerprint) => Ok(()),
            _ => Err(self.error(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no pending secret with fingerprint {fingerprint}"),
            ))),
        }
    }

    fn discard(&self, _key_id: &str, fingerprint: &Fingerprint) -> Result<()> {
        let pending = self.pending_path();
        if self.stored_fingerprint(&pending)?.as_ref() != Some(fingerprint) {
            return Ok(());
        }
        fs::remove_file(&pending).map_err(|e| self.error(e))?;
        sync_parent(&pending).map_err(|e| self.error(e))
    }
}

/// Writes `bytes` to `path` through a synced temporary file with mode 0600.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "sink path has no file name"))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".tmp-{}", std::process::id()));
    let temp = dir.join(temp_name);

    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&temp)?;
    // A leftover temporary file from a crashed run may have other permissions.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);

    fs::rename(&temp, path)?;
    sync_parent(path)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Syncs the directory containing `path`, so a rename survives a crash.
fn sync_parent(path: &Path) -> io::Result<()> {
    File::open(parent_dir(path))?.sync_all()
}

/// One line written by [`JsonLinesSink`].
#[derive(Serialize)]
struct SinkEvent<'a> {
    event: &'a str,
    key_id: &'a str,
    fingerprint: &'a Fingerprint,
    #[serde(skip_serializing_if = "Option::is_none")]
    rotator: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<&'a str>,
}

/// Writes one JSON object per line to a writer, standard output by default:
/// `pending` (with the secret), then `promoted` or `discarded` (fingerprint
/// only).
///
/// # Security
///
/// The `pending` line contains the secret in clear: point this sink at a
/// pipe into a secret store, never at a terminal or a log. `Debug` does not
/// print the writer, whose buffer may hold that line.
pub struct JsonLinesSink<W: Write + Send + Debug> {
    out: Mutex<W>,
}

impl<W: Write + Send + Debug> Debug for JsonLinesSink<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesSink").finish_non_exhaustive()
    }
}

impl JsonLinesSink<io::Stdout> {
    /// Builds a sink writing to standard output.
    pub fn stdout() -> Self {
        JsonLinesSink::new(io::stdout())
    }
}

impl<W: Write + Send + Debug> JsonLinesSink<W> {
    /// Builds a sink writing to `out`.
    pub fn new(out: W) -> Self {
        JsonLinesSink {
            out: Mutex::new(out),
        }
    }

    /// Returns the writer.
    pub fn into_inner(self) -> W {
        self.out
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_event(&self, event: &SinkEvent<'_>) -> Result<()> {
        let error = |source: io::Error| Error::Sink {
            sink: self.describe(),
            source,
        };
        let mut line = serde_json::to_vec(event).map_err(|e| error(e.into()))?;
        line.push(b'\n');
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        out.write_all(&line).map_err(error)?;
        out.flush().map_err(error)
    }
}

impl<W: Write + Send + Debug> SecretSink for JsonLinesSink<W> {
    fn describe(&self) -> String {
        "json-lines".to_owned()
    }

    fn put_pending(&self, entry: &SinkEntry<'_>) -> Result<()> {
        let secret = entry
            .credential
            .secret
            .expose_str()
            .ok_or_else(|| Error::Sink {
                sink: self.describe(),
                source: io::Error::new(io::ErrorKind::InvalidData, "the secret is not UTF-8"),
            })?;
        self.write_event(&SinkEvent {
            event: "pending",
            key_id: &entry.credential.id,
            fingerprint: &entry.credential.fingerprint(),
            rotator: Some(entry.rotator),
            owner: Some(&entry.owner.id),
            secret: Some(secret),
        })
    }

    fn promote(&self, key_id: &str, fingerprint: &Fingerprint) -> Result<()> {
        self.write_event(&SinkEvent {
            event: "promoted",
            key_id,
            fingerprint,
            rotator: None,
            owner: None,
            secret: None,
        })
    }

    fn discard(&self, key_id: &str, fingerprint: &Fingerprint) -> Result<()> {
        self.write_event(&SinkEvent {
            event: "discarded",
            key_id,
            fingerprint,
            rotator: None,
            owner: None,
            secret: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leak_core::Secret;

    fn entry_parts() -> (Owner, Credential) {
        let owner = Owner::new("alice");
        let credential = Credential {
            id: "KEY1".to_owned(),
            secret: Secret::new("sentinel-secret-value"),
        };
        (owner, credential)
    }

    #[test]
    fn file_sink_pending_then_promote() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FileSink::new(dir.path().join("key.json"));
        let (owner, credential) = entry_parts();
        let entry = SinkEntry {
            rotator: "test",
            owner: &owner,
            credential: &credential,
        };
        sink.put_pending(&entry).unwrap();
        assert!(sink.pending_path().exists());
        assert!(!sink.path().exists());

        sink.promote("KEY1", &credential.fingerprint()).unwrap();
        sink.promote("KEY1", &credential.fingerprint()).unwrap();
        assert!(!sink.pending_path().exists());
        let text = fs::read_to_string(sink.path()).unwrap();
        assert!(text.contains("sentinel-secret-value"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(sink.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn file_sink_discard_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FileSink::new(dir.path().join("key.json"));
        let (owner, credential) = entry_parts();
        let entry = SinkEntry {
            rotator: "test",
            owner: &owner,
            credential: &credential,
        };
        sink.put_pending(&entry).unwrap();
        sink.discard("KEY1", &credential.fingerprint()).unwrap();
        sink.discard("KEY1", &credential.fingerprint()).unwrap();
        assert!(!sink.pending_path().exists());
    }

    #[test]
    fn file_sink_promote_rejects_unknown_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FileSink::new(dir.path().join("key.json"));
        let error = sink
            .promote("KEY1", &Fingerprint::of(b"other"))
            .unwrap_err();
        assert!(matches!(error, Error::Sink { .. }));
    }

    #[test]
    fn json_lines_sink_prints_secret_only_when_pending() {
        let sink = JsonLinesSink::new(Vec::new());
        let (owner, credential) = entry_parts();
        let entry = SinkEntry {
            rotator: "test",
            owner: &owner,
            credential: &credential,
        };
        sink.put_pending(&entry).unwrap();
        sink.promote("KEY1", &credential.fingerprint()).unwrap();
        let out = String::from_utf8(sink.into_inner()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("sentinel-secret-value"));
        assert!(!lines[1].contains("sentinel-secret-value"));
        assert!(lines[1].contains("\"promoted\""));
    }
}
