//! Shared test support: the real registry and moto_server processes on
//! 127.0.0.1, a small OCI image builder, and the scenario the end-to-end
//! tests remediate.
#![allow(dead_code, unreachable_pub, missing_debug_implementations)]

pub mod example;
pub mod image;
#[path = "../../../leak-rotators/tests/support/moto.rs"]
pub mod moto;
pub mod registry;
pub mod scenario;

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
