//! Runs the `remediate` example binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::scenario::Case;

/// Runs the `remediate` example on the case's scope in the case directory.
pub fn run_example(
    case: &Case<'_>,
    config: &Path,
    report: &Path,
    execute: bool,
) -> std::process::Output {
    let mut command = Command::new(example_binary());
    command
        .arg(case.scope())
        .arg("--rotators")
        .arg(config)
        .arg("--json")
        .arg(report)
        .current_dir(case.dir.path())
        .env("RUST_LOG", "info")
        .env_remove("AWS_ENDPOINT_URL");
    if execute {
        command.arg("--execute");
    }
    command.output().expect("cannot run the remediate example")
}

pub fn describe(output: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Builds the `remediate` example into this test binary's target directory
/// and profile, and returns its path. Cargo gives integration tests no path
/// to another package's example.
pub fn example_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let test_exe = std::env::current_exe().expect("path of the test binary");
        let profile_dir = test_exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary lives in <target>/<profile>/deps");
        let target_dir = profile_dir
            .parent()
            .expect("profile directory has a parent");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
        let mut build = Command::new(&cargo);
        build
            .args([
                "build",
                "--quiet",
                "-p",
                "leak-examples",
                "--example",
                "remediate",
            ])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir
            .file_name()
            .is_some_and(|name| name == "release")
        {
            build.arg("--release");
        }
        let status = build
            .status()
            .unwrap_or_else(|error| panic!("cannot run {cargo}: {error}"));
        assert!(
            status.success(),
            "`cargo build --example remediate` failed: {status}"
        );
        profile_dir
            .join("examples")
            .join(format!("remediate{}", std::env::consts::EXE_SUFFIX))
    })
}
