//! Rotation of leaked credentials: the [`Rotator`] trait, a crash-safe
//! rotation [`Engine`], and rotators for AWS IAM access keys
//! ([`aws`]), GCP service-account keys ([`gcp`]) and any HTTP API
//! configured in TOML ([`http`]).
//!
//! Fixing a Dockerfile stops the next leak; only rotation at the source
//! neutralises a secret already published in an image. Rotation must not
//! break consumers either, so the engine:
//!
//! 1. plans from read-only calls ([`Engine::plan`]), choosing a
//!    [`Strategy`] for the provider's key limit and saying whether
//!    consumers will see an outage;
//! 2. re-reads the owner's credentials before acting and rejects the plan if
//!    they changed;
//! 3. creates the replacement, stores it as pending in a [`SecretSink`],
//!    verifies it with backoff (a fresh AWS key can take up to a minute),
//!    promotes it, then deactivates, revokes and checks the leaked key;
//! 4. rolls back when the replacement never verifies;
//! 5. journals an intent before and an outcome after every side effect
//!    (fingerprints only), locks the owner, and resumes an interrupted
//!    journal after re-reading the provider's state.
//!
//! ```
//! use std::sync::Arc;
//! use leak_rotators::conformance::{MemoryRotator, MemorySink};
//! use leak_rotators::{Engine, Outcome, PlanOptions};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let provider = MemoryRotator::new();
//! let leaked = provider.plant_key("alice");
//! let sink = MemorySink::new();
//! let journal = tempfile::tempdir().unwrap();
//! let engine = Engine::builder(Arc::new(provider.clone()))
//!     .with_sink(Arc::new(sink.clone()))
//!     .with_journal_dir(journal.path())
//!     .build()
//!     .unwrap();
//!
//! let plan = engine.plan(&leaked, &PlanOptions::default()).await.unwrap();
//! println!("{}", serde_json::to_string_pretty(&plan).unwrap());
//! let report = engine.execute(&plan, Some(&leaked)).await.unwrap();
//! assert_eq!(report.outcome, Outcome::Rotated);
//! assert_eq!(provider.keys("alice").len(), 1);
//! # });
//! ```
//!
//! # Writing a rotator
//!
//! Implement [`Rotator`] (its documentation states the contract) and run
//! [`conformance::run_conformance`] (feature `conformance`) against a test
//! double of your provider. [`client::HttpClient`] gives timeouts and
//! retries for idempotent calls only.
//!
//! # Design decisions
//!
//! - AWS requests are signed with `aws-sigv4` and sent with `reqwest`
//!   instead of using the AWS SDK; see [`aws`] for the reasons, the measured
//!   build times and the credential sources that are not supported.
//! - GCP JWTs are signed RS256 with `ring`, already built for TLS by
//!   `reqwest`, so GCP support adds no crypto crate.
//! - The journal is one JSON-lines file per rotation, synced after each
//!   record. The owner lock is an advisory `flock`, which the operating
//!   system releases when a process dies.
//!
//! # Security
//!
//! Key material lives only in [`leak_core::Secret`], whose `Debug` prints a
//! redaction. Journals, plans, reports, logs and errors carry key ids and
//! fingerprints. The file sink writes secrets with mode 0600; the JSON-lines
//! sink prints them on its writer by design. Rotators never contact a cloud
//! metadata endpoint, and every endpoint is configurable.

pub mod aws;
pub mod client;
#[cfg(feature = "conformance")]
pub mod conformance;
mod engine;
mod error;
pub mod gcp;
pub mod http;
pub mod mapping;
mod rotator;
mod sink;

pub use engine::{
    Engine, EngineBuilder, ExecutionReport, JournalEntry, Outcome, Plan, PlanOptions,
    PlannedCredential, Record, Step, Strategy, VerifyPolicy, plan_rotation, read_journal,
};
pub use error::{Error, Result};
pub use rotator::{
    Capabilities, Credential, CredentialInfo, CredentialStatus, Identity, LeakedCredential, Owner,
    Rotator, Verification,
};
pub use sink::{FileSink, JsonLinesSink, SecretSink, SinkEntry};
