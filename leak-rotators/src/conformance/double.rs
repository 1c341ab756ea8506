//! An in-memory provider and its rotator, for engine tests and as an
//! example of a conforming [`Rotator`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use leak_core::Secret;

use crate::error::{Error, Result};
use crate::rotator::{
    Capabilities, Credential, CredentialInfo, CredentialStatus, Identity, LeakedCredential, Owner,
    Rotator, Verification,
};

/// A key held by the in-memory provider.
#[derive(Debug)]
struct StoredKey {
    secret: Secret,
    active: bool,
    created: Instant,
}

#[derive(Debug, Default)]
struct State {
    owners: BTreeMap<String, BTreeMap<String, StoredKey>>,
    next_id: u64,
    created: u64,
    lost_create_responses: u32,
}

/// A provider double with the behaviour of real IAM that moto lacks.
///
/// - A new key verifies as dead until `propagation` has passed, as a fresh
///   AWS key does for several seconds.
/// - An inactive key verifies as dead (moto accepts it).
/// - An owner has at most `limit` keys, inactive ones included.
///
/// Clones share one provider state, so a test can keep a handle while the
/// engine owns another.
#[derive(Clone, Debug)]
pub struct MemoryRotator {
    state: Arc<Mutex<State>>,
    limit: u32,
    propagation: Duration,
    never_live: bool,
    can_create: bool,
}

impl Default for MemoryRotator {
    fn default() -> Self {
        MemoryRotator::new()
    }
}

impl MemoryRotator {
    /// Builds a provider with a two-key limit and no propagation delay.
    pub fn new() -> Self {
        MemoryRotator {
            state: Arc::default(),
            limit: 2,
            propagation: Duration::ZERO,
            never_live: false,
            can_create: true,
        }
    }

    /// Sets the per-owner key limit.
    pub fn with_limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// Makes new keys verify as dead for this long after creation.
    pub fn with_propagation(mut self, delay: Duration) -> Self {
        self.propagation = delay;
        self
    }

    /// Makes new keys never verify as live, to exercise rollback.
    pub fn with_new_keys_never_live(mut self) -> Self {
        self.never_live = true;
        self
    }

    /// Makes the rotator revoke-only.
    pub fn with_revoke_only(mut self) -> Self {
        self.can_create = false;
        self
    }

    /// Makes the next `count` creates create a key but return a transport
    /// error, as when the response is lost.
    pub fn lose_create_responses(&self, count: u32) {
        self.lock().lost_create_responses = count;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a live key for `owner` (creating the owner) and returns it as a
    /// leaked credential.
    pub fn plant_key(&self, owner: &str) -> LeakedCredential {
        let mut state = self.lock();
        let (id, secret) = issue(&mut state, owner, Instant::now() - self.propagation);
        LeakedCredential::new("memory-key", Some(id), Some(secret))
    }

    /// Adds an inactive key for `owner`.
    pub fn plant_inactive_key(&self, owner: &str) -> String {
        let mut state = self.lock();
        let (id, _) = issue(&mut state, owner, Instant::now());
        if let Some(key) = state
            .owners
            .get_mut(owner)
            .and_then(|keys| keys.get_mut(&id))
        {
            key.active = false;
        }
        id
    }

    /// Lists an owner's keys directly, without going through the rotator.
    pub fn keys(&self, owner: &str) -> Vec<CredentialInfo> {
        let state = self.lock();
        state
            .owners
            .get(owner)
            .map(|keys| keys.iter().map(|(id, key)| info(id, key)).collect())
            .unwrap_or_default()
    }

    /// Returns how many keys were created through [`Rotator::create`].
    pub fn created_count(&self) -> u64 {
        self.lock().created
    }

    /// Returns true when the provider would accept this key id and secret.
    pub fn accepts(&self, key_id: &str, secret: &Secret) -> bool {
        let state = self.lock();
        state
            .owners
            .values()
            .filter_map(|keys| keys.get(key_id))
            .any(|key| key.active && key.secret == *secret)
    }

    fn not_found(&self, key_id: &str) -> Error {
        Error::KeyNotFound {
            rotator: self.name().to_owned(),
            key_id: key_id.to_owned(),
        }
    }

    fn set_active(&self, owner: &Owner, key_id: &str, active: bool) -> Result<()> {
        let mut state = self.lock();
        let key = state
            .owners
            .get_mut(&owner.id)
            .and_then(|keys| keys.get_mut(key_id))
            .ok_or_else(|| self.not_found(key_id))?;
        key.active = active;
        Ok(())
    }
}

fn issue(state: &mut State, owner: &str, created: Instant) -> (String, Secret) {
    state.next_id += 1;
    let id = format!("MEMKEY{:06}", state.next_id);
    let secret = Secret::new(format!(
        "memory-secret-{:06}-{:x}",
        state.next_id,
        created.elapsed().as_nanos()
    ));
    state.owners.entry(owner.to_owned()).or_default().insert(
        id.clone(),
        StoredKey {
            secret: secret.clone(),
            active: true,
            created,
        },
    );
    (id, secret)
}

fn info(id: &str, key: &StoredKey) -> CredentialInfo {
    CredentialInfo {
        id: id.to_owned(),
        status: if key.active {
            CredentialStatus::Active
        } else {
            CredentialStatus::Inactive
        },
        created_at: None,
    }
}

#[async_trait]
impl Rotator for MemoryRotator {
    fn name(&self) -> &str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            kind: "memory-key".to_owned(),
            max_credentials: Some(self.limit),
            can_deactivate: true,
            can_create: self.can_create,
            max_propagation: self.propagation,
        }
    }

    async fn identify(&self, leaked: &LeakedCredential) -> Result<Identity> {
        let key_id = leaked
            .key_id
            .clone()
            .ok_or_else(|| Error::InvalidLeakedCredential {
                rotator: self.name().to_owned(),
                reason: "a key id is required".to_owned(),
            })?;
        let state = self.lock();
        let owner = state
            .owners
            .iter()
            .find(|(_, keys)| keys.contains_key(&key_id))
            .map(|(owner, _)| owner.clone())
            .ok_or_else(|| self.not_found(&key_id))?;
        Ok(Identity {
            owner: Owner::new(owner),
            leaked_key_id: key_id,
        })
    }

    async fn list(&self, owner: &Owner) -> Result<Vec<CredentialInfo>> {
        Ok(self.keys(&owner.id))
    }

    async fn verify(&self, owner: &Owner, credential: &Credential) -> Result<Verification> {
        let state = self.lock();
        let Some(key) = state
            .owners
            .get(&owner.id)
            .and_then(|keys| keys.get(&credential.id))
        else {
            return Ok(Verification::dead("unknown key"));
        };
        if key.secret != credential.secret {
            return Ok(Verification::dead("wrong secret"));
        }
        if !key.active {
            return Ok(Verification::dead("inactive key"));
        }
        if self.never_live || key.created.elapsed() < self.propagation {
            return Ok(Verification::dead("unknown key (not propagated yet)"));
        }
        Ok(Verification::Live)
    }

    async fn create(&self, owner: &Owner) -> Result<Credential> {
        if !self.can_create {
            return Err(Error::NotSupported {
                rotator: self.name().to_owned(),
                operation: "create".to_owned(),
            });
        }
        let mut state = self.lock();
        let count = state.owners.get(&owner.id).map_or(0, BTreeMap::len);
        if count >= self.limit as usize {
            return Err(Error::Provider {
                rotator: self.name().to_owned(),
                operation: "create".to_owned(),
                status: 409,
                code: "LimitExceeded".to_owned(),
                message: format!("owner {} already has the maximum of {count} keys", owner.id),
            });
        }
        let (id, secret) = issue(&mut state, &owner.id, Instant::now());
        state.created += 1;
        if state.lost_create_responses > 0 {
            state.lost_create_responses -= 1;
            return Err(Error::UnexpectedResponse {
                rotator: self.name().to_owned(),
                operation: "create".to_owned(),
                reason: "connection reset before the response arrived".to_owned(),
            });
        }
        Ok(Credential { id, secret })
    }

    async fn deactivate(&self, owner: &Owner, key_id: &str) -> Result<()> {
        self.set_active(owner, key_id, false)
    }

    async fn reactivate(&self, owner: &Owner, key_id: &str) -> Result<()> {
        self.set_active(owner, key_id, true)
    }

    async fn revoke(&self, owner: &Owner, key_id: &str) -> Result<()> {
        if let Some(keys) = self.lock().owners.get_mut(&owner.id) {
            keys.remove(key_id);
        }
        Ok(())
    }
}

/// A sink that keeps secrets in memory, for tests.
#[derive(Debug, Default, Clone)]
pub struct MemorySink {
    inner: Arc<Mutex<MemorySinkState>>,
}

#[derive(Debug, Default)]
struct MemorySinkState {
    pending: Option<Credential>,
    current: Option<Credential>,
}

impl MemorySink {
    /// Builds an empty sink.
    pub fn new() -> Self {
        MemorySink::default()
    }

    /// Returns the current (promoted) credential.
    pub fn current(&self) -> Option<Credential> {
        self.lock().current.clone()
    }

    /// Returns the pending credential.
    pub fn pending(&self) -> Option<Credential> {
        self.lock().pending.clone()
    }

    fn lock(&self) -> MutexGuard<'_, MemorySinkState> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl crate::sink::SecretSink for MemorySink {
    fn describe(&self) -> String {
        "memory".to_owned()
    }

    fn put_pending(&self, entry: &crate::sink::SinkEntry<'_>) -> Result<()> {
        self.lock().pending = Some(entry.credential.clone());
        Ok(())
    }

    fn promote(&self, _key_id: &str, fingerprint: &leak_core::Fingerprint) -> Result<()> {
        let mut state = self.lock();
        if state
            .current
            .as_ref()
            .is_some_and(|c| &c.fingerprint() == fingerprint)
        {
            return Ok(());
        }
        match state.pending.take() {
            Some(pending) if &pending.fingerprint() == fingerprint => {
                state.current = Some(pending);
                Ok(())
            }
            other => {
                state.pending = other;
                Err(Error::Sink {
                    sink: "memory".to_owned(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no such pending secret",
                    ),
                })
            }
        }
    }

    fn discard(&self, _key_id: &str, fingerprint: &leak_core::Fingerprint) -> Result<()> {
        let mut state = self.lock();
        if state
            .pending
            .as_ref()
            .is_some_and(|c| &c.fingerprint() == fingerprint)
        {
            state.pending = None;
        }
        Ok(())
    }
}
