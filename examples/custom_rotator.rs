//! A rotator for a small made-up service, run through the conformance
//! suite of `leak-rotators`.
//!
//! ```text
//! cargo run --example custom_rotator
//! ```
//!
//! "Quill" is an imaginary SaaS whose workspaces hold up to three API keys.
//! A key can be paused, and a new key works only after a short propagation
//! delay. [`QuillRotator`] implements [`Rotator`] over the [`QuillApi`]
//! trait. A real deployment would implement that trait with HTTP calls.
//! This program uses [`FakeQuill`], an in-memory test double, instead, and
//! checks the rotator against the published contract with
//! [`run_conformance`]. Exit status: 0 when every check passes, 1 otherwise.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use leak_core::Secret;
use leak_rotators::conformance::{ConformanceFixture, run_conformance};
use leak_rotators::{
    Capabilities, Credential, CredentialInfo, CredentialStatus, Error, Identity, LeakedCredential,
    Owner, Result, Rotator, Verification,
};

/// The Quill API as a Rust trait.
#[async_trait]
trait QuillApi: Send + Sync + std::fmt::Debug {
    /// Looks up the key id and workspace of a presented key, or `None`
    /// when Quill rejects it.
    async fn whoami(&self, key: &Secret) -> Option<(String, String)>;
    /// Lists a workspace's keys: id and whether it is paused.
    async fn keys(&self, workspace: &str) -> Vec<(String, bool)>;
    /// Issues a key; `None` at the limit.
    async fn issue(&self, workspace: &str) -> Option<(String, Secret)>;
    /// Pauses or resumes a key; false when it does not exist.
    async fn set_paused(&self, workspace: &str, id: &str, paused: bool) -> bool;
    /// Deletes a key; false when it does not exist.
    async fn delete(&self, workspace: &str, id: &str) -> bool;
}

/// The rotator: a thin translation from Quill's API to the contract.
#[derive(Debug)]
struct QuillRotator {
    api: Arc<dyn QuillApi>,
}

const NAME: &str = "quill";
const PROPAGATION: Duration = Duration::from_millis(200);

#[async_trait]
impl Rotator for QuillRotator {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            kind: "quill-api-key".to_owned(),
            max_credentials: Some(3),
            can_deactivate: true,
            can_create: true,
            max_propagation: PROPAGATION * 5,
        }
    }

    async fn identify(&self, leaked: &LeakedCredential) -> Result<Identity> {
        let secret = leaked.secret.as_ref().ok_or_else(|| Error::NotSupported {
            rotator: NAME.to_owned(),
            operation: "identify without the key itself".to_owned(),
        })?;
        let (id, workspace) = self
            .api
            .whoami(secret)
            .await
            .ok_or_else(|| Error::KeyNotFound {
                rotator: NAME.to_owned(),
                key_id: secret.redacted(),
            })?;
        Ok(Identity {
            owner: Owner::new(workspace),
            leaked_key_id: id,
        })
    }

    async fn list(&self, owner: &Owner) -> Result<Vec<CredentialInfo>> {
        let keys = self.api.keys(&owner.id).await;
        Ok(keys
            .into_iter()
            .map(|(id, paused)| CredentialInfo {
                id,
                status: if paused {
                    CredentialStatus::Inactive
                } else {
                    CredentialStatus::Active
                },
                created_at: None,
            })
            .collect())
    }

    async fn verify(&self, _owner: &Owner, credential: &Credential) -> Result<Verification> {
        Ok(match self.api.whoami(&credential.secret).await {
            Some((id, _)) if id == credential.id => Verification::Live,
            Some(_) => Verification::indeterminate("the key belongs to another id"),
            None => Verification::dead("rejected by whoami"),
        })
    }

    async fn create(&self, owner: &Owner) -> Result<Credential> {
        let (id, secret) = self
            .api
            .issue(&owner.id)
            .await
            .ok_or_else(|| Error::Provider {
                rotator: NAME.to_owned(),
                operation: "issue".to_owned(),
                status: 409,
                code: "limit".to_owned(),
                message: format!("workspace {} already has the maximum of 3 keys", owner.id),
            })?;
        Ok(Credential { id, secret })
    }

    async fn deactivate(&self, owner: &Owner, key_id: &str) -> Result<()> {
        self.pause(owner, key_id, true).await
    }

    async fn reactivate(&self, owner: &Owner, key_id: &str) -> Result<()> {
        self.pause(owner, key_id, false).await
    }

    async fn revoke(&self, owner: &Owner, key_id: &str) -> Result<()> {
        // A key that is already gone counts as revoked.
        self.api.delete(&owner.id, key_id).await;
        Ok(())
    }
}

impl QuillRotator {
    async fn pause(&self, owner: &Owner, key_id: &str, paused: bool) -> Result<()> {
        if self.api.set_paused(&owner.id, key_id, paused).await {
            return Ok(());
        }
        Err(Error::KeyNotFound {
            rotator: NAME.to_owned(),
            key_id: key_id.to_owned(),
        })
    }
}

/// One key held by the fake service.
#[derive(Debug)]
struct FakeKey {
    workspace: String,
    secret: Secret,
    paused: bool,
    issued: Instant,
}

/// An in-memory Quill with the propagation delay and key limit of the
/// imaginary real one.
#[derive(Debug, Default)]
struct FakeQuill {
    keys: Mutex<BTreeMap<String, FakeKey>>,
    issued_count: std::sync::atomic::AtomicU32,
}

impl FakeQuill {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, FakeKey>> {
        self.keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn insert(&self, workspace: &str, issued: Instant) -> Option<(String, Secret)> {
        let mut keys = self.lock();
        if keys.values().filter(|k| k.workspace == workspace).count() >= 3 {
            return None;
        }
        let n = self
            .issued_count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let id = format!("qk_{n:06}");
        let secret = Secret::new(format!(
            "quill_live_{n:06}_{:x}",
            issued.elapsed().as_nanos() ^ 0x5eed
        ));
        keys.insert(
            id.clone(),
            FakeKey {
                workspace: workspace.to_owned(),
                secret: secret.clone(),
                paused: false,
                issued,
            },
        );
        Some((id, secret))
    }
}

#[async_trait]
impl QuillApi for FakeQuill {
    async fn whoami(&self, key: &Secret) -> Option<(String, String)> {
        let keys = self.lock();
        keys.iter()
            .find(|(_, k)| k.secret == *key && !k.paused && k.issued.elapsed() >= PROPAGATION)
            .map(|(id, k)| (id.clone(), k.workspace.clone()))
    }

    async fn keys(&self, workspace: &str) -> Vec<(String, bool)> {
        let keys = self.lock();
        keys.iter()
            .filter(|(_, k)| k.workspace == workspace)
            .map(|(id, k)| (id.clone(), k.paused))
            .collect()
    }

    async fn issue(&self, workspace: &str) -> Option<(String, Secret)> {
        self.insert(workspace, Instant::now())
    }

    async fn set_paused(&self, workspace: &str, id: &str, paused: bool) -> bool {
        match self.lock().get_mut(id).filter(|k| k.workspace == workspace) {
            Some(key) => {
                key.paused = paused;
                true
            }
            None => false,
        }
    }

    async fn delete(&self, workspace: &str, id: &str) -> bool {
        let mut keys = self.lock();
        let owned = keys.get(id).is_some_and(|k| k.workspace == workspace);
        owned && keys.remove(id).is_some()
    }
}

/// Gives the suite a fresh workspace with one leaked key each time.
struct QuillFixture {
    fake: Arc<FakeQuill>,
    counter: Mutex<u32>,
}

#[async_trait]
impl ConformanceFixture for QuillFixture {
    async fn fresh_leaked_credential(&self) -> LeakedCredential {
        let workspace = {
            let mut counter = self
                .counter
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            *counter += 1;
            format!("workspace-{counter}")
        };
        // Issued in the past, so the leaked key has propagated already.
        let issued = Instant::now() - PROPAGATION;
        let (id, secret) = self
            .fake
            .insert(&workspace, issued)
            .expect("a fresh workspace has room");
        LeakedCredential::new("quill-api-key", Some(id), Some(secret))
    }
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let fake = Arc::new(FakeQuill::default());
    let rotator = Arc::new(QuillRotator { api: fake.clone() });
    let fixture = QuillFixture {
        fake,
        counter: Mutex::new(0),
    };
    match runtime.block_on(run_conformance(rotator, &fixture)) {
        Ok(report) => {
            for check in &report.passed {
                println!("ok: {check}");
            }
            println!("{} passed, 0 failed", report.passed.len());
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("FAILED: {failure}");
            ExitCode::FAILURE
        }
    }
}
