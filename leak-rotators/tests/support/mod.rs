//! Shared helpers for the integration tests.
#![allow(dead_code, unreachable_pub)]

pub mod gcp;
pub mod http;
pub mod moto;
pub mod tokens;
