//! The error type of this crate.

use std::path::PathBuf;

/// Result alias with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors that stop planning or executing a remediation as a whole.
///
/// A failure of one credential's rotation or of one registry action is not
/// an error of the run: it is recorded in the report, and the other
/// credentials and actions go on. No variant carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The scope text is neither an existing image path nor a registry
    /// scope.
    #[error("invalid scope {scope:?}: {reason}")]
    InvalidScope {
        /// The text that was parsed.
        scope: String,
        /// The problem and the accepted forms.
        reason: String,
    },

    /// A builder or configuration setting is invalid or missing.
    #[error("invalid configuration: {field}: {reason}")]
    InvalidConfig {
        /// The setting, such as `journal_dir` or `aws.endpoint`.
        field: String,
        /// The problem and how to fix it.
        reason: String,
    },

    /// The configuration file could not be read or parsed.
    #[error("configuration file {path:?}: {reason}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// The read or parse error.
        reason: String,
    },

    /// Scanning an image file failed before any finding could be reported.
    #[error("cannot scan image {image:?}: {source}")]
    Scan {
        /// The image path.
        image: PathBuf,
        /// The scanner's error.
        #[source]
        source: Box<leak_core::ScanError>,
    },

    /// The registry audit or a registry lookup needed for the plan failed.
    #[error("registry {registry}: {source}")]
    Registry {
        /// The registry host.
        registry: String,
        /// The registry client's error.
        #[source]
        source: Box<leak_registry::Error>,
    },

    /// The fixed image named with `--replace-with` carries a leaked secret
    /// itself, so replacing leaking tags with it would change nothing.
    #[error(
        "the fixed image {image} ({digest}) carries a leaked secret itself; build a clean image and name it instead"
    )]
    FixedImageLeaks {
        /// The fixed image reference.
        image: String,
        /// Its manifest digest.
        digest: String,
    },

    /// A rotator could not be built from the configuration.
    #[error("rotator {rotator}: {source}")]
    Rotator {
        /// The rotator name, such as `aws-iam`.
        rotator: String,
        /// The rotator's error.
        #[source]
        source: Box<leak_rotators::Error>,
    },

    /// A background task (the image scan) panicked or was cancelled.
    #[error("{what} failed: {reason}")]
    Task {
        /// The task, such as `scanning image.tar`.
        what: String,
        /// The panic or cancellation message.
        reason: String,
    },

    /// The remediation journal could not be read or written.
    #[error("remediation journal {path:?}: {reason}")]
    Journal {
        /// The journal file or directory.
        path: PathBuf,
        /// The I/O or parse error.
        reason: String,
    },

    /// Another process is executing a remediation of the same scope with
    /// the same journal directory.
    #[error(
        "another remediation of this scope is running (lock file {path:?} is held); wait for it or stop it"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
    },

    /// Execution stopped right after the given remediation journal record,
    /// as the fault injection hook requested. Running again resumes.
    #[error("execution stopped after remediation journal record {records}, as requested")]
    Stopped {
        /// Records written before stopping.
        records: usize,
    },

    /// A rotation stopped at the rotation engine's fault injection hook.
    /// Running again resumes it.
    #[error("rotation of {credential} stopped at the engine's fault injection hook")]
    RotationStopped {
        /// Fingerprint of the credential.
        credential: String,
    },
}

impl Error {
    pub(crate) fn config(field: &str, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn registry(registry: &str, source: leak_registry::Error) -> Self {
        Error::Registry {
            registry: registry.to_owned(),
            source: Box::new(source),
        }
    }

    pub(crate) fn rotator(rotator: &str, source: leak_rotators::Error) -> Self {
        Error::Rotator {
            rotator: rotator.to_owned(),
            source: Box::new(source),
        }
    }

    pub(crate) fn scan(image: impl Into<PathBuf>, source: leak_core::ScanError) -> Self {
        Error::Scan {
            image: image.into(),
            source: Box::new(source),
        }
    }
}
