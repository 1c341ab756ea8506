//! Crash tests. Execution stops right after each journal record in turn, as
//! if the process died there, and a new engine resumes. The end state must
//! be correct: the new secret is current in the sink and accepted by the
//! provider, the leaked key is gone, and no key is left over.
//!
//! The in-memory double replaces the provider because moto accepts
//! inactive keys and has no propagation delay.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use leak_rotators::conformance::{MemoryRotator, MemorySink};
use leak_rotators::{Engine, Error, LeakedCredential, Outcome, Plan, PlanOptions, VerifyPolicy};

fn policy() -> VerifyPolicy {
    VerifyPolicy {
        new_key_timeout: Some(Duration::from_secs(3)),
        revoked_timeout: Duration::from_millis(200),
        initial_interval: Duration::from_millis(20),
        max_interval: Duration::from_millis(100),
    }
}

fn engine(
    rotator: &MemoryRotator,
    sink: &MemorySink,
    dir: &Path,
    stop_after: Option<usize>,
) -> Engine {
    let mut builder = Engine::builder(Arc::new(rotator.clone()))
        .with_sink(Arc::new(sink.clone()))
        .with_journal_dir(dir)
        .with_verify_policy(policy());
    if let Some(records) = stop_after {
        builder = builder.with_stop_after_records(records);
    }
    builder.build().unwrap()
}

/// A provider state to rotate, and how to plan it.
struct Scenario {
    name: &'static str,
    setup: fn(&MemoryRotator) -> LeakedCredential,
    options: PlanOptions,
    rotator: fn() -> MemoryRotator,
    expect_keys: usize,
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "create then revoke",
            setup: |r| r.plant_key("alice"),
            options: PlanOptions::default(),
            rotator: || MemoryRotator::new().with_propagation(Duration::from_millis(50)),
            expect_keys: 1,
        },
        Scenario {
            name: "delete inactive then rotate",
            setup: |r| {
                let leaked = r.plant_key("alice");
                r.plant_inactive_key("alice");
                leaked
            },
            options: PlanOptions::default(),
            rotator: MemoryRotator::new,
            expect_keys: 1,
        },
        Scenario {
            name: "revoke first",
            setup: |r| {
                let leaked = r.plant_key("alice");
                r.plant_key("alice");
                leaked
            },
            options: PlanOptions {
                allow_revoke_first: true,
            },
            rotator: MemoryRotator::new,
            expect_keys: 2,
        },
    ]
}

async fn full_run_records(scenario: &Scenario) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let rotator = (scenario.rotator)();
    let sink = MemorySink::new();
    let leaked = (scenario.setup)(&rotator);
    let engine = engine(&rotator, &sink, dir.path(), None);
    let plan = engine.plan(&leaked, &scenario.options).await.unwrap();
    let report = engine.execute(&plan, Some(&leaked)).await.unwrap();
    std::fs::read_to_string(report.journal)
        .unwrap()
        .lines()
        .count()
}

/// Resumes every unfinished journal until none is left.
async fn resume_all(engine: &Engine, leaked: &LeakedCredential) {
    for journal in engine.unfinished().unwrap() {
        let report = engine.resume(&journal, Some(leaked)).await.unwrap();
        assert_eq!(report.outcome, Outcome::Rotated);
    }
}

fn check_end_state(
    name: &str,
    stop: usize,
    rotator: &MemoryRotator,
    sink: &MemorySink,
    leaked: &LeakedCredential,
    expect_keys: usize,
) {
    let context = format!("{name}, stopped after record {stop}");
    let current = sink
        .current()
        .unwrap_or_else(|| panic!("{context}: no current secret in the sink"));
    assert!(
        rotator.accepts(&current.id, &current.secret),
        "{context}: provider rejects the sink's secret"
    );
    let keys: Vec<String> = rotator.keys("alice").into_iter().map(|k| k.id).collect();
    assert!(
        !keys.contains(leaked.key_id.as_ref().unwrap()),
        "{context}: leaked key still exists"
    );
    assert!(
        keys.contains(&current.id),
        "{context}: sink key not at provider"
    );
    assert_eq!(keys.len(), expect_keys, "{context}: extra keys {keys:?}");
    assert!(
        sink.pending().is_none(),
        "{context}: a pending secret was left in the sink"
    );
}

async fn stop_and_resume(
    scenario: &Scenario,
    stop: usize,
) -> (MemoryRotator, MemorySink, LeakedCredential) {
    let dir = tempfile::tempdir().unwrap();
    let rotator = (scenario.rotator)();
    let sink = MemorySink::new();
    let leaked = (scenario.setup)(&rotator);

    let first = engine(&rotator, &sink, dir.path(), Some(stop));
    let plan: Plan = first.plan(&leaked, &scenario.options).await.unwrap();
    match first.execute(&plan, Some(&leaked)).await {
        Err(Error::Stopped { records }) => assert_eq!(records, stop),
        other => panic!(
            "{}: expected a stop after record {stop}, got {other:?}",
            scenario.name
        ),
    }
    drop(first);

    let second = engine(&rotator, &sink, dir.path(), None);
    resume_all(&second, &leaked).await;
    assert!(second.unfinished().unwrap().is_empty());
    (rotator, sink, leaked)
}

#[tokio::test]
async fn every_journal_point_resumes() {
    for scenario in scenarios() {
        let total = full_run_records(&scenario).await;
        assert!(total >= 10, "{}: only {total} records", scenario.name);
        for stop in 1..=total {
            let (rotator, sink, leaked) = stop_and_resume(&scenario, stop).await;
            check_end_state(
                scenario.name,
                stop,
                &rotator,
                &sink,
                &leaked,
                scenario.expect_keys,
            );
        }
    }
}

#[tokio::test]
async fn crash_during_resume_resumes() {
    let scenario = &scenarios()[0];
    let total = full_run_records(scenario).await;
    for first_stop in [3, 5, 7] {
        for second_stop in 1..=total {
            let dir = tempfile::tempdir().unwrap();
            let rotator = (scenario.rotator)();
            let sink = MemorySink::new();
            let leaked = (scenario.setup)(&rotator);

            let first = engine(&rotator, &sink, dir.path(), Some(first_stop));
            let plan = first.plan(&leaked, &scenario.options).await.unwrap();
            assert!(first.execute(&plan, Some(&leaked)).await.is_err());
            drop(first);

            let second = engine(&rotator, &sink, dir.path(), Some(second_stop));
            for journal in second.unfinished().unwrap() {
                let _ = second.resume(&journal, Some(&leaked)).await;
            }
            drop(second);

            let third = engine(&rotator, &sink, dir.path(), None);
            resume_all(&third, &leaked).await;
            let name = format!("second crash after {second_stop}");
            check_end_state(&name, first_stop, &rotator, &sink, &leaked, 1);
        }
    }
}

#[tokio::test]
async fn every_rollback_point_resumes() {
    let rollback_policy = VerifyPolicy {
        new_key_timeout: Some(Duration::from_millis(100)),
        ..policy()
    };
    let run_engine =
        |rotator: &MemoryRotator, sink: &MemorySink, dir: &Path, stop: Option<usize>| {
            let mut builder = Engine::builder(Arc::new(rotator.clone()))
                .with_sink(Arc::new(sink.clone()))
                .with_journal_dir(dir)
                .with_verify_policy(rollback_policy.clone());
            if let Some(records) = stop {
                builder = builder.with_stop_after_records(records);
            }
            builder.build().unwrap()
        };

    let dir = tempfile::tempdir().unwrap();
    let rotator = MemoryRotator::new().with_new_keys_never_live();
    let sink = MemorySink::new();
    let leaked = rotator.plant_key("alice");
    let engine = run_engine(&rotator, &sink, dir.path(), None);
    let plan = engine.plan(&leaked, &PlanOptions::default()).await.unwrap();
    let error = engine.execute(&plan, Some(&leaked)).await.unwrap_err();
    assert!(matches!(error, Error::NewKeyNotLive { .. }), "{error}");
    let journal = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap();
    let total = std::fs::read_to_string(journal).unwrap().lines().count();

    for stop in 1..=total {
        let dir = tempfile::tempdir().unwrap();
        let rotator = MemoryRotator::new().with_new_keys_never_live();
        let sink = MemorySink::new();
        let leaked = rotator.plant_key("alice");
        let first = run_engine(&rotator, &sink, dir.path(), Some(stop));
        let plan = first.plan(&leaked, &PlanOptions::default()).await.unwrap();
        assert!(matches!(
            first.execute(&plan, Some(&leaked)).await,
            Err(Error::Stopped { .. })
        ));
        drop(first);

        let second = run_engine(&rotator, &sink, dir.path(), None);
        for journal in second.unfinished().unwrap() {
            match second.resume(&journal, Some(&leaked)).await {
                Ok(report) => assert_eq!(report.outcome, Outcome::RolledBack, "stop {stop}"),
                Err(Error::NewKeyNotLive { .. }) => {}
                Err(other) => panic!("stop {stop}: resume failed: {other}"),
            }
        }
        assert!(second.unfinished().unwrap().is_empty(), "stop {stop}");
        let keys = rotator.keys("alice");
        assert_eq!(keys.len(), 1, "stop {stop}: keys {keys:?}");
        assert_eq!(Some(&keys[0].id), leaked.key_id.as_ref(), "stop {stop}");
        assert_eq!(
            keys[0].status,
            leak_rotators::CredentialStatus::Active,
            "stop {stop}"
        );
        assert!(sink.pending().is_none(), "stop {stop}: pending secret left");
        assert!(
            sink.current().is_none(),
            "stop {stop}: unverified secret promoted"
        );
    }
}
