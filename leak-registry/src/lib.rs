//! OCI distribution client for exposure audits.
//!
//! `leak-registry` finds where a leaked image went: it lists repositories
//! and tags exhaustively (following `Link` pages), resolves every tag to
//! each platform image, and scans each unique layer once with `leak-core`.
//! It can then delete a leaking manifest, after naming every tag the
//! deletion removes, or point a leaking tag at a fixed image.
//!
//! ```no_run
//! # async fn run() -> leak_registry::Result<()> {
//! use leak_registry::{Audit, Credential, RegistryClient};
//!
//! let client = RegistryClient::builder("127.0.0.1:5000")
//!     .with_insecure(true)
//!     .with_credential(Credential::basic("auditor", "password"))
//!     .build()?;
//! let report = Audit::builder(client.clone()).build()?.run().await?;
//! for exposure in &report.exposures {
//!     for carrier in &exposure.carriers {
//!         println!(
//!             "{} {}: {}:{:?} @ {}",
//!             exposure.kind, exposure.fingerprint, carrier.repository, carrier.tags, carrier.manifest_digest
//!         );
//!     }
//! }
//! println!("{} requests, {} layers scanned", report.stats.requests.requests, report.stats.layers_scanned);
//! # Ok(())
//! # }
//! ```
//!
//! The client alone lists and fetches: [`RegistryClient::catalog`],
//! [`RegistryClient::tags`], [`RegistryClient::resolve_images`] and
//! [`RegistryClient::blob_reader`]. [`RegistryClient::plan_delete`] with
//! [`RegistryClient::delete`], and [`RegistryClient::replace`], remove or
//! replace a leaking image, as dry runs unless executed.
//!
//! # Security
//!
//! Credentials are held in [`leak_core::Secret`] and never appear in logs,
//! errors or `Debug` output. `Authorization` is sent only to the registry's
//! origin and to the token endpoint named in its challenge; redirects to
//! another host get no credentials. Plain `http://` is used only for
//! registries marked insecure, and link-local hosts (cloud metadata
//! addresses) are rejected as registries, token realms and redirect targets.

mod audit;
mod auth;
mod blob;
mod client;
mod digest;
mod error;
mod manifest;
mod paging;
mod push;
mod reference;
mod remediate;

pub use audit::{
    Audit, AuditBuilder, AuditEvent, AuditFinding, AuditProgress, AuditReport, AuditStats, Carrier,
    Exposure, LayerExposure, scan_image_reference, scan_reference,
};
pub use auth::{Challenge, Credential, DockerConfig};
pub use blob::{BlobReader, MAX_SMALL_BLOB_BYTES, reader_error};
pub use client::{ClientBuilder, RegistryClient, RequestStats, RetryPolicy};
pub use digest::{parse_digest, sha256_digest};
pub use error::{Error, Result};
pub use manifest::{
    DOCKER_LIST, DOCKER_MANIFEST, MANIFEST_ACCEPT, Manifest, ManifestKind, OCI_INDEX, OCI_MANIFEST,
    PlatformImage, ResolvedImages, platform_name,
};
pub use oci_spec::image::Digest;
pub use push::BlobTransfer;
pub use reference::Reference;
pub use remediate::{DeleteOutcome, DeletePlan, Execution, ReplaceOutcome, ReplacePlan};
