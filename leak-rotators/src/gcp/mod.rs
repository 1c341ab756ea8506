//! GCP service-account keys.
//!
//! Keys are listed, created, disabled, enabled and deleted through the IAM
//! v1 REST API, with the key file's real project id in the path. The
//! rotator's own token comes from a service-account key (JWT bearer grant),
//! an `authorized_user` file, Application Default Credentials read from a
//! file, or a fixed access token. The GCE metadata server is not supported.
//! RS256 signing uses `ring`, which the workspace already builds for TLS.

mod auth;
mod iam;
mod key_file;
mod rotator;

pub use auth::GcpAuth;
pub use key_file::ServiceAccountKey;
pub use rotator::{DEFAULT_IAM_BASE_URL, DEFAULT_TOKEN_URL, GcpRotator, GcpRotatorBuilder};
