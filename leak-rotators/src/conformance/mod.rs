//! A public conformance suite for [`Rotator`] implementations, and an
//! in-memory provider double (enabled by the `conformance` feature).
//!
//! An implementation runs [`run_conformance`] against its own test double:
//! a provider it controls, reached on loopback or in memory. The suite
//! changes provider state (it creates, deactivates and revokes keys), so it
//! must never run against a real account.
//!
//! ```
//! use std::sync::Arc;
//! use leak_rotators::conformance::{run_conformance, MemoryFixture, MemoryRotator};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let rotator = MemoryRotator::new();
//! let fixture = MemoryFixture::new(rotator.clone());
//! let report = run_conformance(Arc::new(rotator), &fixture).await.unwrap();
//! assert!(report.passed.len() > 5);
//! # });
//! ```

mod double;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use leak_core::Secret;

pub use double::{MemoryRotator, MemorySink};

use crate::error::{Error, Result};
use crate::rotator::{
    Credential, CredentialStatus, LeakedCredential, Owner, Rotator, Verification,
};

/// Supplies leaked credentials from the implementation's test double.
#[async_trait]
pub trait ConformanceFixture: Send + Sync {
    /// Creates a new owner at the test double holding exactly one live
    /// credential, and returns that credential with its secret.
    async fn fresh_leaked_credential(&self) -> LeakedCredential;
}

/// A fixture for [`MemoryRotator`].
#[derive(Debug)]
pub struct MemoryFixture {
    rotator: MemoryRotator,
    counter: std::sync::atomic::AtomicU32,
}

impl MemoryFixture {
    /// Builds a fixture planting keys in `rotator`'s provider state.
    pub fn new(rotator: MemoryRotator) -> Self {
        MemoryFixture {
            rotator,
            counter: Default::default(),
        }
    }
}

#[async_trait]
impl ConformanceFixture for MemoryFixture {
    async fn fresh_leaked_credential(&self) -> LeakedCredential {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.rotator.plant_key(&format!("conformance-owner-{n}"))
    }
}

/// The checks that passed.
#[derive(Debug, Default)]
pub struct ConformanceReport {
    /// Names of the passed checks, in order.
    pub passed: Vec<&'static str>,
}

/// The first check that failed.
#[derive(Debug)]
pub struct ConformanceFailure {
    /// Name of the check.
    pub check: &'static str,
    /// The expected and the actual behaviour.
    pub detail: String,
}

impl fmt::Display for ConformanceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conformance check {} failed: {}",
            self.check, self.detail
        )
    }
}

impl std::error::Error for ConformanceFailure {}

type Check<T = ()> = std::result::Result<T, ConformanceFailure>;

fn fail<T>(check: &'static str, detail: impl Into<String>) -> Check<T> {
    Err(ConformanceFailure {
        check,
        detail: detail.into(),
    })
}

/// Runs every check of the [`Rotator`] contract.
///
/// # Errors
///
/// The first [`ConformanceFailure`].
pub async fn run_conformance(
    rotator: Arc<dyn Rotator>,
    fixture: &dyn ConformanceFixture,
) -> Check<ConformanceReport> {
    let mut suite = Suite {
        rotator,
        report: ConformanceReport::default(),
        secrets: Vec::new(),
    };
    suite.capabilities()?;
    let leaked = fixture.fresh_leaked_credential().await;
    if let Some(secret) = &leaked.secret {
        suite.secrets.push(secret.clone());
    }
    let (owner, key_id) = suite.identify_is_read_only(&leaked).await?;
    suite
        .verify_leaked_is_live(&owner, &key_id, &leaked)
        .await?;
    suite
        .verify_wrong_secret_is_not_live(&owner, &key_id)
        .await?;
    suite.create_verify_revoke(&owner).await?;
    suite
        .deactivate_reactivate(&owner, &key_id, &leaked)
        .await?;
    suite.revoke_twice(&owner, &key_id, &leaked).await?;
    suite.debug_hides_secrets()?;
    Ok(suite.report)
}

struct Suite {
    rotator: Arc<dyn Rotator>,
    report: ConformanceReport,
    secrets: Vec<Secret>,
}

impl Suite {
    fn pass(&mut self, check: &'static str) {
        self.report.passed.push(check);
    }

    /// Fails when `text` contains any secret seen so far.
    fn check_no_secret(&self, check: &'static str, text: &str) -> Check {
        for secret in &self.secrets {
            if let Some(exposed) = secret.expose_str()
                && exposed.len() >= 8
                && text.contains(exposed)
            {
                return fail(check, "a secret appears in formatted output");
            }
        }
        Ok(())
    }

    fn check_error(&self, check: &'static str, result: Result<()>) -> Check {
        match result {
            Ok(()) => Ok(()),
            Err(error) => {
                self.check_no_secret(check, &format!("{error} {error:?}"))?;
                fail(check, error.to_string())
            }
        }
    }

    fn capabilities(&mut self) -> Check {
        let capabilities = self.rotator.capabilities();
        if capabilities.kind.is_empty() {
            return fail("capabilities", "kind is empty");
        }
        if capabilities.max_credentials == Some(0) {
            return fail("capabilities", "max_credentials is zero");
        }
        if self.rotator.name().is_empty() {
            return fail("capabilities", "name is empty");
        }
        self.pass("capabilities");
        Ok(())
    }

    async fn list(&self, check: &'static str, owner: &Owner) -> Check<Vec<crate::CredentialInfo>> {
        match self.rotator.list(owner).await {
            Ok(list) => Ok(list),
            Err(error) => fail(check, format!("list failed: {error}")),
        }
    }

    async fn identify_is_read_only(&mut self, leaked: &LeakedCredential) -> Check<(Owner, String)> {
        const CHECK: &str = "identify and list";
        let identity = match self.rotator.identify(leaked).await {
            Ok(identity) => identity,
            Err(error) => return fail(CHECK, format!("identify failed: {error}")),
        };
        let before = self.list(CHECK, &identity.owner).await?;
        if !before.iter().any(|c| c.id == identity.leaked_key_id) {
            return fail(
                CHECK,
                format!(
                    "list does not contain the leaked key {}",
                    identity.leaked_key_id
                ),
            );
        }
        let again = self.rotator.identify(leaked).await;
        let after = self.list(CHECK, &identity.owner).await?;
        if again.map(|i| i.owner).ok().as_ref() != Some(&identity.owner) || before != after {
            return fail(
                CHECK,
                "identify or list is not stable or changed provider state",
            );
        }
        self.pass(CHECK);
        Ok((identity.owner, identity.leaked_key_id))
    }

    async fn verify_leaked_is_live(
        &mut self,
        owner: &Owner,
        key_id: &str,
        leaked: &LeakedCredential,
    ) -> Check {
        const CHECK: &str = "verify live secret";
        let Some(secret) = leaked.secret.clone() else {
            return fail(
                CHECK,
                "the fixture returned a leaked credential without a secret",
            );
        };
        let credential = Credential {
            id: key_id.to_owned(),
            secret,
        };
        match self.rotator.verify(owner, &credential).await {
            Ok(Verification::Live) => {
                self.pass(CHECK);
                Ok(())
            }
            other => fail(CHECK, format!("expected live, got {other:?}")),
        }
    }

    async fn verify_wrong_secret_is_not_live(&mut self, owner: &Owner, key_id: &str) -> Check {
        const CHECK: &str = "verify wrong secret";
        let credential = Credential {
            id: key_id.to_owned(),
            secret: Secret::new("conformance-wrong-secret-0123456789abcdef"),
        };
        match self.rotator.verify(owner, &credential).await {
            Ok(Verification::Live) => fail(CHECK, "a wrong secret verified as live"),
            _ => {
                self.pass(CHECK);
                Ok(())
            }
        }
    }

    async fn create_verify_revoke(&mut self, owner: &Owner) -> Check {
        const CHECK: &str = "create, verify, revoke";
        let capabilities = self.rotator.capabilities();
        if !capabilities.can_create {
            return match self.rotator.create(owner).await {
                Err(Error::NotSupported { .. }) => {
                    self.pass("create not supported");
                    Ok(())
                }
                other => fail(
                    "create not supported",
                    format!("expected NotSupported, got {:?}", other.map(|c| c.id)),
                ),
            };
        }
        let credential = match self.rotator.create(owner).await {
            Ok(credential) => credential,
            Err(error) => return fail(CHECK, format!("create failed: {error}")),
        };
        self.secrets.push(credential.secret.clone());
        let listed = self.list(CHECK, owner).await?;
        if !listed
            .iter()
            .any(|c| c.id == credential.id && c.status == CredentialStatus::Active)
        {
            return fail(
                CHECK,
                format!("created key {} is not listed as active", credential.id),
            );
        }
        self.poll_live(CHECK, owner, &credential, capabilities.max_propagation)
            .await?;

        self.check_error(CHECK, self.rotator.revoke(owner, &credential.id).await)?;
        if self
            .list(CHECK, owner)
            .await?
            .iter()
            .any(|c| c.id == credential.id)
        {
            return fail(
                CHECK,
                format!("revoked key {} is still listed", credential.id),
            );
        }
        self.check_error(CHECK, self.rotator.revoke(owner, &credential.id).await)?;
        self.pass(CHECK);
        Ok(())
    }

    async fn poll_live(
        &self,
        check: &'static str,
        owner: &Owner,
        credential: &Credential,
        window: Duration,
    ) -> Check {
        let deadline = tokio::time::Instant::now() + window;
        loop {
            let result = self.rotator.verify(owner, credential).await;
            if let Ok(Verification::Live) = result {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return fail(
                    check,
                    format!("created key never verified as live: {result:?}"),
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn status_of(
        &self,
        check: &'static str,
        owner: &Owner,
        key_id: &str,
    ) -> Check<Option<CredentialStatus>> {
        let listed = self.list(check, owner).await?;
        Ok(listed.iter().find(|c| c.id == key_id).map(|c| c.status))
    }

    async fn deactivate_reactivate(
        &mut self,
        owner: &Owner,
        key_id: &str,
        leaked: &LeakedCredential,
    ) -> Check {
        const CHECK: &str = "deactivate and reactivate";
        if !self.rotator.capabilities().can_deactivate {
            return match self.rotator.deactivate(owner, key_id).await {
                Err(Error::NotSupported { .. }) => {
                    self.pass("deactivate not supported");
                    Ok(())
                }
                other => fail(
                    "deactivate not supported",
                    format!("expected NotSupported, got {other:?}"),
                ),
            };
        }
        for _ in 0..2 {
            self.check_error(CHECK, self.rotator.deactivate(owner, key_id).await)?;
        }
        if self.status_of(CHECK, owner, key_id).await? != Some(CredentialStatus::Inactive) {
            return fail(CHECK, "the key is not inactive after deactivate");
        }
        for _ in 0..2 {
            self.check_error(CHECK, self.rotator.reactivate(owner, key_id).await)?;
        }
        if self.status_of(CHECK, owner, key_id).await? != Some(CredentialStatus::Active) {
            return fail(CHECK, "the key is not active after reactivate");
        }
        if let Some(secret) = leaked.secret.clone() {
            let credential = Credential {
                id: key_id.to_owned(),
                secret,
            };
            let window = self.rotator.capabilities().max_propagation;
            self.poll_live(CHECK, owner, &credential, window).await?;
        }
        self.pass(CHECK);
        Ok(())
    }

    async fn revoke_twice(
        &mut self,
        owner: &Owner,
        key_id: &str,
        leaked: &LeakedCredential,
    ) -> Check {
        const CHECK: &str = "revoke is idempotent";
        self.check_error(CHECK, self.rotator.revoke(owner, key_id).await)?;
        self.check_error(CHECK, self.rotator.revoke(owner, key_id).await)?;
        if self.status_of(CHECK, owner, key_id).await?.is_some() {
            return fail(CHECK, "the revoked key is still listed");
        }
        self.pass(CHECK);

        if let Err(error) = self.rotator.identify(leaked).await {
            self.check_no_secret("errors hide secrets", &format!("{error} {error:?}"))?;
        }
        self.pass("errors hide secrets");
        Ok(())
    }

    fn debug_hides_secrets(&mut self) -> Check {
        self.check_no_secret("debug hides secrets", &format!("{:?}", self.rotator))?;
        self.pass("debug hides secrets");
        Ok(())
    }
}
