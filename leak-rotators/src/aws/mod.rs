//! AWS IAM access keys.
//!
//! # Why `aws-sigv4` with `reqwest` and not the AWS SDK
//!
//! The rotator needs six Query API calls (`GetAccessKeyLastUsed`,
//! `ListAccessKeys`, `CreateAccessKey`, `UpdateAccessKey`,
//! `DeleteAccessKey`, `sts:GetCallerIdentity`). Signing them with the
//! official `aws-sigv4` crate and sending them with the workspace's
//! `reqwest` costs little to build. In contrast, `aws-config` +
//! `aws-sdk-iam` + `aws-sdk-sts` pull in the whole Smithy runtime, a
//! generated client for every IAM operation and, with their `rustls`
//! feature, `aws-lc-sys` (a C and assembly build).
//!
//! Build times, measured once on this project's 2-core build machine with
//! `cargo build -j 2` (debug) from an empty target directory while other
//! builds were running, so treat them as rough: `aws-sigv4` +
//! `aws-credential-types` + `aws-smithy-runtime-api` + `reqwest` + `tokio`
//! took 31 s; `aws-config` 1.13 + `aws-sdk-iam` 1.133 + `aws-sdk-sts` took
//! 161 s.
//!
//! The price is a hand-rolled credential chain, described in
//! [`AwsCredentials`]'s module: environment variables and shared
//! credentials/config files with profiles. `credential_process`, SSO,
//! web identity, assume-role profiles, ECS container credentials and the
//! EC2 instance metadata service are not supported; the rotator never
//! contacts a metadata endpoint.
//!
//! Endpoints: `AWS_ENDPOINT_URL_IAM` and `AWS_ENDPOINT_URL_STS` win over
//! `AWS_ENDPOINT_URL`, which wins over `https://iam.amazonaws.com/` and
//! `https://sts.REGION.amazonaws.com/`.

mod credentials;
mod request;
mod rotator;
mod xml;

pub use credentials::AwsCredentials;
pub use rotator::{AwsRotator, AwsRotatorBuilder};
