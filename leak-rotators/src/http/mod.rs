//! A generic rotator for services with an HTTP API, configured in TOML.
//!
//! Each operation is a list of templated requests. The rotator's own
//! credential comes from an environment variable, and values are extracted
//! from JSON responses with JSON Pointers. A host allow-list limits where
//! requests go, and `mode = "revoke-only"` serves APIs that can revoke but
//! not create. A `list` operation is required, because the engine re-reads
//! the owner's credentials before acting and after revoking.

mod config;
mod rotator;
mod template;

pub use config::{AuthConfig, HttpConfig, Mode, Operation, Operations, StepConfig};
pub use rotator::{HttpRotator, HttpRotatorBuilder};
