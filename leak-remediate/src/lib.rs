//! One run from a leaked image to a rotated credential and a cleaned
//! registry.
//!
//! A secret baked into a published image is neutralised only by rotating it
//! at its source; deleting the image does not help anyone who already
//! pulled it. `leak-remediate` joins the three other crates into that
//! chain, in the safe order:
//!
//! 1. **Plan** ([`Remediation::plan`]): scan an image file with `leak-core`,
//!    or audit a registry scope with `leak-registry`, and group the findings
//!    by credential. For each credential the plan lists every place it is
//!    exposed (repository, tags, manifest digest, platform, layer and path,
//!    `Env` key, history step), whether it is still live (through the
//!    matching rotator's read-only `verify`), and the rotation engine's plan
//!    or, when no rotator handles the kind, where to rotate it by hand. Then
//!    it lists the registry actions: delete each leaking digest, naming the
//!    sibling tags that go with it, or point each leaking tag at a fixed
//!    image and then delete the leaking digest.
//! 2. **Execute** ([`Remediation::execute`]): rotate every credential first,
//!    because rotation is what stops the exposure, then run the registry
//!    actions. Each credential's rotation and each action succeeds or fails
//!    on its own; a failure is recorded and the run goes on.
//! 3. **Report** ([`RemediationReport`]): JSON, and a
//!    [`summary`](RemediationReport::summary) for the person handling the
//!    incident: what leaked, where, what was done, what is left to do by
//!    hand, and each rotation's timeline from its journal.
//!
//! # Guide
//!
//! A dry run of an image file needs no network and no configuration. With
//! no rotator configured, every credential is planned for rotation by hand:
//!
//! ```
//! use leak_remediate::{Remediation, Rotation, Scope};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let scope = Scope::parse("../examples/demo/demo-image.tar").unwrap();
//! let remediation = Remediation::builder().build().unwrap();
//!
//! let prepared = remediation.plan(&scope).await.unwrap();
//!
//! let aws = prepared
//!     .plan
//!     .credentials
//!     .iter()
//!     .find(|credential| credential.kind == "aws-access-key-id")
//!     .unwrap();
//! assert!(matches!(aws.rotation, Rotation::Manual { .. }));
//! let report = remediation.dry_run_report(&prepared);
//! println!("{}", report.summary());
//! println!("{}", serde_json::to_string_pretty(&report).unwrap());
//! # });
//! ```
//!
//! To rotate and clean a registry, add rotators and the directories for
//! journals and new secrets, plan a registry scope and execute:
//!
//! ```no_run
//! use std::sync::Arc;
//! use leak_remediate::{Remediation, Scope};
//! use leak_rotators::aws::AwsRotator;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let aws = AwsRotator::from_env().with_endpoint("http://127.0.0.1:5000").build()?;
//! let remediation = Remediation::builder()
//!     .with_rotator(Arc::new(aws))
//!     .with_journal_dir("remediation-journal")
//!     .with_sink_dir("new-secrets")
//!     .with_replace_with("shop/app:fixed")
//!     .build()?;
//! let scope = Scope::parse("http://127.0.0.1:5001/shop/app,mirror/app")?;
//! let prepared = remediation.plan(&scope).await?;
//! let report = remediation.execute(&prepared).await?;
//! print!("{}", report.summary());
//! # Ok(())
//! # }
//! ```
//!
//! The `remediate` example does the same from the command line, with the
//! rotators set in a TOML file ([`RemediateConfig`] shows its format):
//!
//! ```text
//! cargo run --release --example remediate -- IMAGE_OR_REGISTRY_SCOPE \
//!     [--rotators CONFIG] [--replace-with TAG] [--execute] [--json FILE]
//! ```
//!
//! [`Scope::parse`] lists the scope forms: an image path, a registry's
//! catalog, a list of repositories, or one reference (its repository is
//! audited, so sibling tags carrying the same secrets are found too).
//!
//! # Resuming
//!
//! Every step is journaled before and after it runs, in the journal
//! directory:
//!
//! - `remediation-<scope hash>-<ms>.jsonl`: the remediation journal
//!   ([`RemediationRecord`]); its first record is the plan.
//! - `rotations/<credential id>/`: the rotation engine's journals and owner
//!   locks for one credential (`leak_rotators::Record`).
//! - `remediation-<scope hash>.lock`: held while a run executes the scope.
//!
//! Running [`Remediation::execute`] again for the same scope continues an
//! unfinished journal with its journaled plan: completed rotations and
//! actions are skipped, an interrupted rotation is resumed by the rotation
//! engine (which never replays a key creation blindly), and a registry
//! action whose effect is already visible (the digest is gone, the tag
//! already points at the fixed image) is recorded as done. A finished
//! journal is left alone, and the next run plans the scope anew.
//!
//! # JSON
//!
//! The plan ([`RemediationPlan`]) and report ([`RemediationReport`]) are
//! serialised with serde; field names are the Rust field names.
//!
//! ```text
//! report
//! ├─ mode: "dry-run" | "execute"
//! ├─ plan
//! │  ├─ scope, registry (null for an image file)
//! │  ├─ coverage_complete, gaps[]            (leak_core::Gap)
//! │  ├─ credentials[]
//! │  │  ├─ id (fingerprint), kind, redacted, fingerprints[], key_id
//! │  │  ├─ exposures[]: fingerprint, kind, image, repository, tags[],
//! │  │  │               manifest_digest, platform, encoding,
//! │  │  │               location {source: layer|env|label|history|annotation|cmd|entrypoint, ...}
//! │  │  ├─ liveness {status: live | dead | indeterminate | not-checked, reason}
//! │  │  └─ rotation {method: rotator, rotator, plan}        (leak_rotators::Plan)
//! │  │            | {method: plan-failed, rotator, error}
//! │  │            | {method: manual, reason, instructions}
//! │  └─ registry_actions[]
//! │     ├─ {action: replace, repository, tag, old_digest, fixed_image, new_digest, credentials[]}
//! │     └─ {action: delete, repository, digest, tags_removed[], indexes_referencing[], credentials[]}
//! ├─ credentials[]: id, kind, status, timeline[] (leak_rotators::JournalEntry)
//! │     status: planned | manual {instructions} | failed {error}
//! │           | rotated {result: outcome, rotator, owner, leaked_key_id, new_key_id,
//! │                      new_fingerprint, leaked_dead_confirmed, sink, journal}
//! ├─ registry_actions[]: action, result {status: planned | done {detail} | failed {error} | not-run}
//! ├─ manual_steps[]
//! └─ journal (null for a dry run)
//! ```
//!
//! # Limits
//!
//! - Registry clean-up runs even when a rotation failed: removing the image
//!   still shortens the exposure, and the report lists the rotation as left
//!   to do.
//! - Deleting a digest takes every tag on it, and deleting an index takes
//!   all its platforms; the plan names those tags, and the deletion runs
//!   only if the tags on the digest are still exactly the planned ones.
//! - A deleted manifest's layer blobs stay downloadable by digest until the
//!   registry's garbage collection runs; copies already pulled keep the
//!   secret. The report lists both as steps left to a person.
//! - Only images reachable through a tag of an audited repository are
//!   found; a manifest pushed only by digest is not listed by the registry
//!   API.
//! - Secrets are read from the scan in memory. A resumed run scans again;
//!   when the registry no longer holds the secret, a rotation resumes from
//!   its journal without it, and the final "leaked key is dead" check then
//!   confirms only that the provider no longer lists the key.
//! - Rotators exist for AWS IAM access keys, GCP service-account keys and
//!   services configured for the HTTP rotator; every other kind gets
//!   instructions for rotating it by hand ([`manual_rotation`]).
//!
//! # Security
//!
//! - Never written anywhere except the sink: secret values. Plans, reports,
//!   journals, logs and errors carry fingerprints, redacted previews, key
//!   ids, digests and tags. Leaked and new secrets stay in
//!   [`leak_core::Secret`], whose `Debug` prints a redaction. New secrets go
//!   only to files in the sink directory, created with mode 0600.
//! - AWS access key ids are printed in full: IAM needs them to find the
//!   owner, and the rotation engine journals them too. The secret access
//!   key never is.
//! - Registry and cloud credentials come from the configuration, the docker
//!   config or the standard environment, and never appear in output.
//! - Trusted from scanned data: nothing that chooses where to connect. Hosts
//!   and endpoints come only from the scope and the configuration; a URL,
//!   registry name or endpoint found inside an image is never contacted. A
//!   leaked secret is sent only to the rotator configured for its kind, and
//!   only to check or rotate that credential.
//! - Not trusted: a leaked GCP key file's own endpoints (the GCP rotator
//!   uses its configured token and IAM URLs), and the fixed image, which is
//!   scanned when the plan is made; a fixed image carrying one of the
//!   leaked secrets stops the plan with [`Error::FixedImageLeaks`].
//! - Without `[aws]` or `[gcp]` in the configuration no cloud is contacted,
//!   so a dry run of an image file makes no network request at all.

mod config;
mod error;
mod execute;
mod journal;
mod manual;
mod plan;
mod planner;
mod remediation;
mod report;
mod scope;
mod summary;

pub use config::{AwsConfig, GcpConfig, HttpConfig, RegistryConfig, RemediateConfig, VerifyConfig};
pub use error::{Error, Result};
pub use journal::{RemediationEntry, RemediationRecord, read_entries};
pub use manual::manual_rotation;
pub use plan::{
    CredentialPlan, ExposurePlace, Liveness, PreparedPlan, RegistryAction, RemediationPlan,
    Rotation,
};
pub use remediation::{Remediation, RemediationBuilder};
pub use report::{
    ActionOutcome, ActionStatus, CredentialOutcome, CredentialStatus, Mode, RemediationReport,
    RotationResult,
};
pub use scope::Scope;
