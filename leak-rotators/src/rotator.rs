//! The [`Rotator`] trait and the values its operations exchange.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use leak_core::{Fingerprint, Secret};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// One provider's credential operations, used by the
/// [`Engine`](crate::Engine) to rotate a leaked credential.
///
/// # Contract
///
/// Every implementation MUST keep these rules; the `conformance` feature's
/// [`run_conformance`](crate::conformance::run_conformance) checks them
/// against the implementation's own test double.
///
/// - Operations are stateless: each call re-reads what it needs from the
///   provider, and the engine may call them in any order, on any clone, after
///   a crash of a previous process.
/// - [`identify`](Rotator::identify), [`list`](Rotator::list) and
///   [`verify`](Rotator::verify) MUST NOT change provider state.
/// - [`verify`](Rotator::verify) MUST return [`Verification::Live`] only on a
///   response that proves the secret authenticates, and
///   [`Verification::Dead`] only on an explicit rejection of the secret. A
///   timeout, an HTML page, a rate limit or any unexpected status MUST be
///   [`Verification::Indeterminate`]. Transport failures are returned as
///   `Indeterminate`, not as `Err`.
/// - [`create`](Rotator::create) is not idempotent and MUST NOT be retried by
///   the implementation; the engine decides what to do after a failure.
/// - [`revoke`](Rotator::revoke) MUST treat a key that is already gone as
///   success, so a revoke can be retried until it succeeds.
/// - [`deactivate`](Rotator::deactivate) and [`reactivate`](Rotator::reactivate)
///   MUST be idempotent. An implementation whose
///   [`Capabilities::can_deactivate`] is false returns
///   [`Error::NotSupported`](crate::Error::NotSupported) from both.
/// - An implementation whose [`Capabilities::can_create`] is false returns
///   [`Error::NotSupported`](crate::Error::NotSupported) from `create`.
/// - No operation may log, print or put in an error a secret: key material
///   travels only inside [`Secret`].
///
/// Implementations SHOULD retry idempotent calls (reads, deactivate, revoke)
/// on transient failures; [`crate::client::HttpClient`] does that.
#[async_trait]
pub trait Rotator: Send + Sync + Debug + 'static {
    /// Returns a short stable name, such as `aws-iam`, used in journals,
    /// lock files and errors.
    fn name(&self) -> &str;

    /// Describes what this rotator and its provider can do.
    fn capabilities(&self) -> Capabilities;

    /// Finds the owner of a leaked credential and the leaked key's id.
    ///
    /// # Errors
    ///
    /// [`Error::KeyNotFound`](crate::Error::KeyNotFound) when the provider
    /// does not know the key, and provider or transport errors.
    async fn identify(&self, leaked: &LeakedCredential) -> Result<Identity>;

    /// Lists the owner's current credentials.
    ///
    /// # Errors
    ///
    /// Provider or transport errors.
    async fn list(&self, owner: &Owner) -> Result<Vec<CredentialInfo>>;

    /// Checks whether a credential's secret authenticates.
    ///
    /// # Errors
    ///
    /// Only for a credential this rotator cannot check at all (for example a
    /// malformed key file); an unreachable provider is
    /// [`Verification::Indeterminate`].
    async fn verify(&self, owner: &Owner, credential: &Credential) -> Result<Verification>;

    /// Creates a new credential for the owner.
    ///
    /// # Errors
    ///
    /// Provider or transport errors, including the provider's key limit.
    async fn create(&self, owner: &Owner) -> Result<Credential>;

    /// Deactivates a credential without deleting it.
    ///
    /// # Errors
    ///
    /// [`Error::NotSupported`](crate::Error::NotSupported) when the provider
    /// has no inactive state, and provider or transport errors.
    async fn deactivate(&self, owner: &Owner, key_id: &str) -> Result<()>;

    /// Reactivates a deactivated credential (used by rollback).
    ///
    /// # Errors
    ///
    /// As for [`deactivate`](Rotator::deactivate).
    async fn reactivate(&self, owner: &Owner, key_id: &str) -> Result<()>;

    /// Revokes (deletes) a credential; a key that is already gone is success.
    ///
    /// # Errors
    ///
    /// Provider or transport errors.
    async fn revoke(&self, owner: &Owner, key_id: &str) -> Result<()>;
}

/// What a rotator and its provider can do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Credential kind, as in scanner findings (`aws-access-key-id`).
    pub kind: String,
    /// Maximum credentials an owner may hold at once, inactive ones
    /// included, when the provider has a limit.
    pub max_credentials: Option<u32>,
    /// Whether a credential can be deactivated without deleting it.
    pub can_deactivate: bool,
    /// Whether the rotator can create credentials, or only revoke them.
    pub can_create: bool,
    /// Maximum time a new credential may take to authenticate after
    /// creation. The engine keeps verifying at least this long.
    pub max_propagation: Duration,
}

/// A leaked credential as found by the scanner or given by a user.
#[derive(Clone, Debug)]
pub struct LeakedCredential {
    /// Credential kind, as in scanner findings.
    pub kind: String,
    /// Provider key id when it is known apart from the secret (an AWS
    /// access key id).
    pub key_id: Option<String>,
    /// The secret, when known: an AWS secret access key, a whole GCP key
    /// file, an HTTP token.
    pub secret: Option<Secret>,
}

impl LeakedCredential {
    /// Describes a leaked AWS access key, with its secret access key when
    /// it was found too.
    pub fn aws(access_key_id: impl Into<String>, secret_access_key: Option<Secret>) -> Self {
        LeakedCredential {
            kind: "aws-access-key-id".to_owned(),
            key_id: Some(access_key_id.into()),
            secret: secret_access_key,
        }
    }

    /// Describes a leaked GCP service-account key file (its whole JSON).
    pub fn gcp_key_file(key_file: Secret) -> Self {
        LeakedCredential {
            kind: "gcp-service-account".to_owned(),
            key_id: None,
            secret: Some(key_file),
        }
    }

    /// Describes a leaked credential of any kind.
    pub fn new(kind: impl Into<String>, key_id: Option<String>, secret: Option<Secret>) -> Self {
        LeakedCredential {
            kind: kind.into(),
            key_id,
            secret,
        }
    }

    /// Returns the fingerprint of the secret, when there is one.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.secret.as_ref().map(Secret::fingerprint)
    }
}

/// A leaked credential's owner and the leaked key's id, as returned by
/// [`Rotator::identify`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The owner.
    pub owner: Owner,
    /// The leaked key's id at the provider.
    pub leaked_key_id: String,
}

/// The principal that owns credentials: an IAM user, a service account,
/// an account of an HTTP service.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Owner {
    /// Provider name of the owner, such as an IAM user name or a service
    /// account email.
    pub id: String,
    /// Provider-specific context such as `project` or `account`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl Owner {
    /// Builds an owner without attributes.
    pub fn new(id: impl Into<String>) -> Self {
        Owner {
            id: id.into(),
            attributes: BTreeMap::new(),
        }
    }

    /// Adds an attribute.
    pub fn with_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// Returns an attribute's value.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// One credential of an owner, as listed by the provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialInfo {
    /// Provider key id.
    pub id: String,
    /// Whether the provider accepts it.
    pub status: CredentialStatus,
    /// Creation time in the provider's format, when the provider returns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// Whether a credential is enabled at the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialStatus {
    /// Enabled.
    Active,
    /// Disabled but not deleted.
    Inactive,
}

/// A credential with its secret: a freshly created key, or a leaked one
/// being verified.
#[derive(Clone, Debug)]
pub struct Credential {
    /// Provider key id.
    pub id: String,
    /// The secret consumers use: an AWS secret access key, a whole GCP key
    /// file, an HTTP token.
    pub secret: Secret,
}

impl Credential {
    /// Returns the secret's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.secret.fingerprint()
    }
}

/// The result of [`Rotator::verify`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Verification {
    /// The provider accepted the secret.
    Live,
    /// The provider explicitly rejected the secret.
    Dead {
        /// The provider's reason, such as `InvalidClientTokenId`.
        reason: String,
    },
    /// Nothing could be concluded: a timeout, an HTML page, a rate limit or
    /// an unexpected status.
    Indeterminate {
        /// The response or failure received instead of a clear result.
        reason: String,
    },
}

impl Verification {
    /// Builds an indeterminate result.
    pub fn indeterminate(reason: impl Into<String>) -> Self {
        Verification::Indeterminate {
            reason: reason.into(),
        }
    }

    /// Builds a dead result.
    pub fn dead(reason: impl Into<String>) -> Self {
        Verification::Dead {
            reason: reason.into(),
        }
    }

    /// Describes the result in a few words, for logs and errors.
    pub fn describe(&self) -> String {
        match self {
            Verification::Live => "live".to_owned(),
            Verification::Dead { reason } => format!("dead: {reason}"),
            Verification::Indeterminate { reason } => format!("indeterminate: {reason}"),
        }
    }
}
