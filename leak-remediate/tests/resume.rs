//! Interrupted remediations resume to the same end state with no extra key:
//! a stop injected after every remediation journal record, after every
//! rotation journal record, and a killed example process.
//!
//! Needs `docker-registry` and `moto_server` like the end-to-end tests; the
//! tests fail when either is missing.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use leak_remediate::{Error, RemediationReport, Scope};
use support::example::{describe, example_binary, run_example};
use support::scenario::{Case, Services, assert_report_done};

/// Plans and executes the case again without a stop, as a person re-running
/// the command would, and checks the end state.
async fn resume_and_check(case: &Case<'_>, label: &str) {
    let remediation = case
        .builder()
        .with_replace_with(format!("{}:fixed", case.shop))
        .build()
        .unwrap();
    let scope = Scope::parse(&case.scope()).unwrap();
    let prepared = remediation.plan(&scope).await.unwrap();

    let report = remediation
        .execute(&prepared)
        .await
        .unwrap_or_else(|error| panic!("{label}: resume failed: {error}"));

    let new_key = case.assert_rotated().await;
    case.assert_replaced().await;
    check_report(&report, &new_key);
}

/// Checks the report of a resumed run. A run stopped at its last record
/// finished everything, so the run after it plans the cleaned scope anew
/// and finds nothing.
fn check_report(report: &RemediationReport, new_key: &str) {
    if report.plan.credentials.is_empty() {
        assert!(report.registry_actions.is_empty());
        return;
    }
    assert_report_done(report, new_key);
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_after_each_remediation_record() {
    support::init_tracing();
    let services = Services::start().await;
    let mut stops = 0;
    for stop in 1.. {
        let case = Case::seed(&services, &format!("remediation-stop-{stop}")).await;
        let remediation = case
            .builder()
            .with_replace_with(format!("{}:fixed", case.shop))
            .with_stop_after_records(stop)
            .build()
            .unwrap();
        let scope = Scope::parse(&case.scope()).unwrap();
        let prepared = remediation.plan(&scope).await.unwrap();

        match remediation.execute(&prepared).await {
            Err(Error::Stopped { records }) => assert_eq!(records, stop),
            Ok(_) => break,
            Err(error) => panic!("stop {stop}: unexpected error: {error}"),
        }

        resume_and_check(&case, &format!("remediation stop {stop}")).await;
        stops += 1;
    }
    // Plan, rotation intent and done, intent and done for each of the 7
    // registry actions, and finished.
    assert_eq!(stops, 18);
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_after_each_rotation_record() {
    support::init_tracing();
    let services = Services::start().await;
    let mut stops = 0;
    for stop in 1.. {
        let case = Case::seed(&services, &format!("rotation-stop-{stop}")).await;
        let remediation = case
            .builder()
            .with_replace_with(format!("{}:fixed", case.shop))
            .with_rotation_stop_after_records(stop)
            .build()
            .unwrap();
        let scope = Scope::parse(&case.scope()).unwrap();
        let prepared = remediation.plan(&scope).await.unwrap();

        match remediation.execute(&prepared).await {
            Err(Error::RotationStopped { .. }) => {}
            Ok(_) => break,
            Err(error) => panic!("stop {stop}: unexpected error: {error}"),
        }
        let keys = case.key_ids().await;
        assert!(keys.len() <= 2, "stop {stop}: keys {keys:?}");

        resume_and_check(&case, &format!("rotation stop {stop}")).await;
        stops += 1;
    }
    assert!(stops >= 10, "only {stops} rotation journal records");
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_after_killed_example() {
    support::init_tracing();
    let services = Services::start().await;
    let case = Case::seed(&services, "killed").await;
    let config = case.write_config();
    let report_path = case.dir.path().join("report.json");
    let mut child = Command::new(example_binary())
        .arg(case.scope())
        .arg("--rotators")
        .arg(&config)
        .arg("--execute")
        .current_dir(case.dir.path())
        .env("RUST_LOG", "info")
        .env_remove("AWS_ENDPOINT_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start the remediate example");

    // Kill the process once the replacement key is created. The process may
    // run a few more steps before the signal lands, so the exact kill point
    // varies, and every point must resume to the same end state.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        let created = line.contains("rotation step done") && line.contains("Create");
        seen.push(line);
        if created {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        seen.iter().any(|line| line.contains("rotation step done")),
        "the example never created a key:\n{}",
        seen.join("\n")
    );
    let keys = case.key_ids().await;
    assert!(keys.len() <= 2, "keys after the kill: {keys:?}");

    let resumed = run_example(&case, &config, &report_path, true);

    assert_eq!(resumed.status.code(), Some(0), "{}", describe(&resumed));
    let new_key = case.assert_rotated().await;
    case.assert_deleted().await;
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(stdout.contains(&new_key), "{stdout}");
}
