//! The crate's error type.

use std::path::PathBuf;

/// Errors returned by rotators, sinks and the rotation engine.
///
/// Every variant names the rotator, owner, key id, file or URL host a user
/// needs to act on it. None carries a secret: key ids are identifiers, and
/// transport errors have their URL removed because a templated HTTP rotator
/// URL may contain one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The provider rejected a call with an error status or error code.
    #[error("{rotator}: {operation} failed with HTTP {status}: {code}: {message}")]
    Provider {
        /// Rotator that made the call.
        rotator: String,
        /// Operation, such as `CreateAccessKey` or `keys.delete`.
        operation: String,
        /// HTTP status code.
        status: u16,
        /// Provider error code, such as `LimitExceeded`.
        code: String,
        /// Provider error message, cut to 300 characters.
        message: String,
    },

    /// The request never produced a response (connect failure, timeout).
    #[error("{rotator}: {operation} failed to reach {host}: {source}")]
    Transport {
        /// Rotator that made the call.
        rotator: String,
        /// Operation being sent.
        operation: String,
        /// Host the request was sent to.
        host: String,
        /// Underlying error, with its URL removed.
        #[source]
        source: reqwest::Error,
    },

    /// A response arrived but could not be understood.
    #[error("{rotator}: {operation} returned an unexpected response: {reason}")]
    UnexpectedResponse {
        /// Rotator that made the call.
        rotator: String,
        /// Operation whose response was unreadable.
        operation: String,
        /// The defect found in the response.
        reason: String,
    },

    /// The provider does not know the leaked key, so it has no owner to rotate.
    #[error("{rotator}: key {key_id} was not found; it may already be deleted")]
    KeyNotFound {
        /// Rotator that looked the key up.
        rotator: String,
        /// Key id that was looked up.
        key_id: String,
    },

    /// The leaked AWS key is a temporary (STS session) key.
    #[error(
        "aws-iam: {key_id} is a temporary STS key (ASIA prefix) and cannot be rotated; it expires \
         on its own. Revoke the role's active sessions (an inline deny policy with an \
         aws:TokenIssueTime condition, or \"Revoke active sessions\" in the IAM console) and \
         rotate the long-term credential that issued it"
    )]
    TemporaryCredential {
        /// The temporary access key id.
        key_id: String,
    },

    /// The owner already has its maximum number of credentials, and freeing
    /// a slot would revoke a credential that is live and not leaked.
    #[error(
        "{rotator}: owner {owner} already holds its maximum of {limit} credentials and key \
         {blocking_key_id} is active and not leaked; deactivate or delete it first, or opt in \
         to revoking the leaked key before creating its replacement (consumers see an outage)"
    )]
    CredentialLimit {
        /// Rotator that planned the rotation.
        rotator: String,
        /// Owner at its limit.
        owner: String,
        /// Maximum credentials per owner.
        limit: u32,
        /// Active, non-leaked key that blocks the plan.
        blocking_key_id: String,
    },

    /// The owner's credentials differ from those the plan was made from.
    #[error(
        "{rotator}: the credentials of owner {owner} changed since the plan was made: {detail}; plan again"
    )]
    StateChanged {
        /// Rotator of the plan.
        rotator: String,
        /// Owner whose state changed.
        owner: String,
        /// The credentials planned and found.
        detail: String,
    },

    /// Another rotation of the same owner holds the owner lock.
    #[error("another rotation of owner {owner} is running (lock file {path:?} is held)")]
    OwnerLocked {
        /// Owner being rotated.
        owner: String,
        /// Lock file.
        path: PathBuf,
    },

    /// Reading or writing a journal failed.
    #[error("journal {path:?}: {source}")]
    Journal {
        /// Journal file.
        path: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A journal line could not be parsed or contradicts the records before it.
    #[error("journal {path:?} line {line}: {reason}")]
    JournalCorrupt {
        /// Journal file.
        path: PathBuf,
        /// One-based line number.
        line: usize,
        /// The defect found.
        reason: String,
    },

    /// Writing the new secret to its destination failed.
    #[error("sink {sink}: {source}")]
    Sink {
        /// Sink description, such as `file:/etc/app/key.json`.
        sink: String,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A builder or configuration value is missing or invalid.
    #[error("invalid configuration: {field}: {reason}")]
    InvalidConfig {
        /// Field or option, such as `iam_base_url`.
        field: String,
        /// The defect and the expected value.
        reason: String,
    },

    /// The rotator found no credentials of its own to call the provider with.
    #[error("{rotator}: no credentials for the rotator itself: {reason}")]
    MissingCredentials {
        /// Rotator lacking credentials.
        rotator: String,
        /// The sources tried.
        reason: String,
    },

    /// The leaked credential cannot be used by this rotator.
    #[error("{rotator}: invalid leaked credential: {reason}")]
    InvalidLeakedCredential {
        /// Rotator given the credential.
        rotator: String,
        /// The defect found.
        reason: String,
    },

    /// A templated request would go to a host outside the allow-list.
    #[error("{rotator}: host {host} is not in the allow-list")]
    HostNotAllowed {
        /// Rotator whose template produced the URL.
        rotator: String,
        /// Host that was rejected.
        host: String,
    },

    /// The rotator does not implement an operation.
    #[error("{rotator}: operation {operation} is not supported")]
    NotSupported {
        /// Rotator asked.
        rotator: String,
        /// Operation that it lacks.
        operation: String,
    },

    /// The new credential never verified as live, and the rotation was
    /// rolled back.
    #[error(
        "{rotator}: new key {key_id} did not verify as live ({reason}); the rotation was rolled back"
    )]
    NewKeyNotLive {
        /// Rotator of the rotation.
        rotator: String,
        /// New key id, already revoked.
        key_id: String,
        /// Last verification result.
        reason: String,
    },

    /// Execution stopped after a given journal record, as a crash would
    /// (fault injection for crash tests).
    #[error("execution stopped after journal record {records}, as requested")]
    Stopped {
        /// Number of records written before stopping.
        records: usize,
    },

    /// No rotator is configured for a finding's credential kind.
    #[error("no rotator is configured for credential kind {kind}")]
    NoRotator {
        /// Credential kind from the finding.
        kind: String,
    },
}

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds an [`Error::InvalidConfig`].
    pub(crate) fn config(field: &str, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    /// Returns true for errors that report a key as already gone, which the
    /// [`Rotator::revoke`](crate::Rotator::revoke) contract treats as success.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::KeyNotFound { .. })
    }
}
