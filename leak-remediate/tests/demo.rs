//! The `remediate` example with no argument plans the bundled demo image
//! with no configuration, so no rotator and no network.

mod support;

use std::process::Command;

use support::example::{describe, example_binary};

#[test]
fn demo_dry_run_without_config() {
    let dir = tempfile::tempdir().unwrap();

    let output = Command::new(example_binary())
        .current_dir(dir.path())
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("cannot run the remediate example");

    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("DRY RUN"), "{stdout}");
    assert!(stdout.contains("aws-access-key-id"), "{stdout}");
    assert!(
        stdout.contains("not checked: no rotator is configured"),
        "{stdout}"
    );
    assert!(stdout.contains("Left to do by hand:"), "{stdout}");
    assert!(stdout.contains("aws iam create-access-key"), "{stdout}");
    let written: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(written.is_empty(), "a dry run wrote {written:?}");
}
