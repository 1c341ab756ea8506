//! AWS IAM access keys.
//!
//! # Why `aws-sigv4` with `reqwest` and not the AWS SDK
//!
//! The rotator needs six Query API calls (`GetAccessKeyLastUsed`,
//! `ListAccessKeys`, `CreateAccessKey`, `UpdateAccessKey`,
//! `DeleteAccessKey`, `sts:GetCallerIdentity`). Signing them with the
//! official `aws-sigv4` crate and sending them with the workspace's
//! `reqwest` costs little to build, while `aws-config` + `aws-sdk-iam` +
//! `aws-sdk-sts` pull in the whole Smithy runtime, a generated IAM client of
//! several hundred operations and, with its `rustls` feature, `aws-lc-sys`
//! (a C and assembly build). Measured on this project's 2-core build
//! machine, each from an empty target directory with `cargo build -j 2`
//! (debug) while other builds were running: `aws-sigv4` +
//! `aws-credential-types` + `aws-smithy-runtime-api` + `reqwest` + `tokio`
//! took about 31 s; `aws-config` + `aws-sdk-iam` + `aws-sdk-sts` took
//! about 161 s.
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
