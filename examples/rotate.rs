//! Rotate leaked credentials: plan by default, act with `--execute`.
//!
//! ```text
//! cargo run --example rotate -- --report scan.json [--image IMAGE] [--execute ...]
//! cargo run --example rotate -- --aws-access-key-id AKIA... [--execute ...]
//! cargo run --example rotate -- --gcp-key-file key.json [--execute ...]
//! cargo run --example rotate -- --http-config service.toml --http-secret-file token [--execute ...]
//! ```
//!
//! A `scan` JSON report contains fingerprints, not secrets, so `--report`
//! scans the image again (the `image` named in each finding, or `--image`)
//! and rotates the secrets whose fingerprints the report lists.
//!
//! Without `--execute` the plans are printed as JSON and nothing changes.
//! With it, each plan is executed: the new secret goes to `--sink`
//! (`file:PATH`, mode 0600, or `stdout` for JSON lines), every step is
//! journaled in `--journal`, and `--resume` continues interrupted
//! rotations. AWS credentials and endpoints come from the standard
//! environment (`AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, `AWS_ENDPOINT_URL`, ...);
//! GCP from `--gcp-auth-file` or Application Default Credentials.
//!
//! Exit status: 0 when every plan or rotation succeeded, 1 when one failed,
//! 2 on a usage or input error.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use leak_core::{Fingerprint, Scanner, Secret};
use leak_rotators::aws::AwsRotator;
use leak_rotators::gcp::{GcpAuth, GcpRotator};
use leak_rotators::http::HttpRotator;
use leak_rotators::mapping::{built_in_rotator, map_findings};
use leak_rotators::{
    Engine, FileSink, JsonLinesSink, LeakedCredential, PlanOptions, Rotator, SecretSink,
    VerifyPolicy,
};

/// Rotate leaked credentials at their provider.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// JSON report written by `scan --format json` (or an audit report with
    /// the same `findings`).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Image to read the report's secrets from, instead of each finding's
    /// `image`.
    #[arg(long, requires = "report")]
    image: Option<PathBuf>,
    /// A leaked AWS access key id.
    #[arg(long)]
    aws_access_key_id: Option<String>,
    /// File holding the leaked AWS secret access key, used to confirm that
    /// the revoked key no longer works.
    #[arg(long, requires = "aws_access_key_id")]
    aws_secret_access_key_file: Option<PathBuf>,
    /// A leaked GCP service-account key file.
    #[arg(long)]
    gcp_key_file: Option<PathBuf>,
    /// The rotator's own GCP credentials file (service_account or
    /// authorized_user). Default: Application Default Credentials.
    #[arg(long)]
    gcp_auth_file: Option<PathBuf>,
    /// GCP IAM API base URL.
    #[arg(long, default_value = leak_rotators::gcp::DEFAULT_IAM_BASE_URL)]
    gcp_iam_url: String,
    /// GCP OAuth2 token endpoint.
    #[arg(long, default_value = leak_rotators::gcp::DEFAULT_TOKEN_URL)]
    gcp_token_url: String,
    /// HTTP rotator configuration (TOML).
    #[arg(long)]
    http_config: Option<PathBuf>,
    /// File holding the leaked secret for the HTTP rotator.
    #[arg(long, requires = "http_config")]
    http_secret_file: Option<PathBuf>,
    /// Leaked key id for the HTTP rotator, when its config has no identify
    /// operation.
    #[arg(long, requires = "http_config")]
    http_key_id: Option<String>,
    /// Execute the plans (default: print them only).
    #[arg(long)]
    execute: bool,
    /// Destination of new secrets: `file:PATH` or `stdout`.
    #[arg(long, default_value = "stdout")]
    sink: String,
    /// Directory for journals and owner locks.
    #[arg(long, default_value = "rotation-journal")]
    journal: PathBuf,
    /// Continue interrupted rotations in --journal and plan nothing new.
    #[arg(long)]
    resume: bool,
    /// At an owner's key limit, revoke the leaked key before creating its
    /// replacement (consumers see an outage).
    #[arg(long)]
    allow_revoke_first: bool,
    /// Seconds to wait for a new key to verify as live before rolling back.
    #[arg(long, default_value_t = 90)]
    verify_timeout: u64,
    /// Seconds to keep checking that a revoked key is dead.
    #[arg(long, default_value_t = 60)]
    revoked_timeout: u64,
}

/// A leaked credential and the rotator for it.
struct Job {
    leaked: LeakedCredential,
    rotator: Arc<dyn Rotator>,
}

type Failure = String;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let jobs = match collect_jobs(&args) {
        Ok(jobs) => jobs,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let sink = match open_sink(&args.sink) {
        Ok(sink) => sink,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let failed = runtime.block_on(run_jobs(&args, jobs, sink));
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn open_sink(spec: &str) -> Result<Arc<dyn SecretSink>, Failure> {
    if spec == "stdout" {
        return Ok(Arc::new(JsonLinesSink::stdout()));
    }
    match spec.strip_prefix("file:") {
        Some(path) if !path.is_empty() => Ok(Arc::new(FileSink::new(path))),
        _ => Err(format!(
            "--sink {spec:?} is invalid: use file:PATH or stdout"
        )),
    }
}

fn read_secret(path: &Path) -> Result<Secret, Failure> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(Secret::new(text.trim_end_matches(['\n', '\r']).as_bytes()))
}

fn collect_jobs(args: &Args) -> Result<Vec<Job>, Failure> {
    let mut jobs = Vec::new();
    if let Some(key_id) = &args.aws_access_key_id {
        let secret = args
            .aws_secret_access_key_file
            .as_deref()
            .map(read_secret)
            .transpose()?;
        jobs.push(Job {
            leaked: LeakedCredential::aws(key_id.clone(), secret),
            rotator: aws_rotator()?,
        });
    }
    if let Some(path) = &args.gcp_key_file {
        jobs.push(Job {
            leaked: LeakedCredential::gcp_key_file(read_secret(path)?),
            rotator: gcp_rotator(args)?,
        });
    }
    if let Some(path) = &args.http_config {
        let rotator: Arc<dyn Rotator> = Arc::new(
            HttpRotator::from_toml_file(path)
                .and_then(|builder| builder.build())
                .map_err(|e| e.to_string())?,
        );
        let secret = args
            .http_secret_file
            .as_deref()
            .map(read_secret)
            .transpose()?;
        let kind = rotator.capabilities().kind;
        jobs.push(Job {
            leaked: LeakedCredential::new(kind, args.http_key_id.clone(), secret),
            rotator,
        });
    }
    if let Some(report) = &args.report {
        jobs.extend(jobs_from_report(args, report)?);
    }
    if jobs.is_empty() {
        return Err("nothing to rotate: pass --report, --aws-access-key-id, --gcp-key-file or --http-config".to_owned());
    }
    Ok(jobs)
}

fn aws_rotator() -> Result<Arc<dyn Rotator>, Failure> {
    let rotator = AwsRotator::from_env().build().map_err(|e| e.to_string())?;
    Ok(Arc::new(rotator))
}

fn gcp_rotator(args: &Args) -> Result<Arc<dyn Rotator>, Failure> {
    let auth = match &args.gcp_auth_file {
        Some(path) => GcpAuth::from_file_bytes(read_secret(path)?),
        None => GcpAuth::from_adc(),
    }
    .map_err(|e| e.to_string())?;
    let rotator = GcpRotator::builder()
        .with_auth(auth)
        .with_iam_base_url(&args.gcp_iam_url)
        .with_token_url(&args.gcp_token_url)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(rotator))
}

/// Reads the report's fingerprints, scans the images again for the secrets,
/// and maps them to rotators.
fn jobs_from_report(args: &Args, report_path: &Path) -> Result<Vec<Job>, Failure> {
    let text = std::fs::read_to_string(report_path)
        .map_err(|e| format!("cannot read {}: {e}", report_path.display()))?;
    let report: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a JSON report: {e}", report_path.display()))?;
    let findings = report["findings"]
        .as_array()
        .ok_or_else(|| format!("{} has no findings array", report_path.display()))?;

    let mut wanted = BTreeSet::new();
    let mut images = BTreeSet::new();
    for finding in findings {
        let Some(fingerprint) = finding["fingerprint"].as_str().and_then(Fingerprint::parse) else {
            return Err(format!(
                "{}: a finding has no valid fingerprint",
                report_path.display()
            ));
        };
        wanted.insert(fingerprint);
        if let Some(image) = finding["image"].as_str() {
            images.insert(PathBuf::from(image));
        }
    }
    let images: Vec<PathBuf> = match &args.image {
        Some(image) => vec![image.clone()],
        None => images.into_iter().collect(),
    };

    let scanner = Scanner::builder().build().map_err(|e| e.to_string())?;
    let mut rescanned = Vec::new();
    for image in &images {
        let report = scanner.scan_path(image).map_err(|e| {
            format!(
                "cannot scan {} again to read the secrets: {e} (pass --image)",
                image.display()
            )
        })?;
        rescanned.extend(
            report
                .findings
                .into_iter()
                .filter(|f| wanted.contains(&f.fingerprint)),
        );
    }
    let found: BTreeSet<&Fingerprint> = rescanned.iter().map(|f| &f.fingerprint).collect();
    for missing in wanted.iter().filter(|f| !found.contains(f)) {
        tracing::warn!(fingerprint = %missing, "secret from the report not found in the image again; skipped");
    }

    let mapped = map_findings(&rescanned);
    for skipped in &mapped.skipped {
        tracing::warn!(kind = %skipped.kind, fingerprint = %skipped.fingerprint, reason = %skipped.reason, "finding skipped");
    }
    let mut jobs = Vec::new();
    for credential in mapped.credentials {
        let rotator = match built_in_rotator(&credential.leaked.kind) {
            Some("aws-iam") => aws_rotator()?,
            Some("gcp-iam") => gcp_rotator(args)?,
            _ => {
                let fingerprints: Vec<String> = credential
                    .fingerprints
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                tracing::warn!(kind = %credential.leaked.kind, fingerprints = ?fingerprints, "no rotator for this kind; rotate it by hand or with --http-config");
                continue;
            }
        };
        jobs.push(Job {
            leaked: credential.leaked,
            rotator,
        });
    }
    Ok(jobs)
}

async fn run_jobs(args: &Args, jobs: Vec<Job>, sink: Arc<dyn SecretSink>) -> bool {
    let to_stdout = !args.execute || args.sink != "stdout";
    let mut failed = false;
    let mut resumed = BTreeSet::new();
    for job in jobs {
        let engine = match build_engine(args, job.rotator.clone(), sink.clone()) {
            Ok(engine) => engine,
            Err(error) => {
                eprintln!("error: {error}");
                failed = true;
                continue;
            }
        };
        let outcome = if args.resume {
            if !resumed.insert(job.rotator.name().to_owned()) {
                continue;
            }
            resume(&engine, &job.leaked, to_stdout).await
        } else {
            plan_and_execute(args, &engine, &job.leaked, to_stdout).await
        };
        if let Err(error) = outcome {
            eprintln!("error: {}: {error}", job.rotator.name());
            failed = true;
        }
    }
    failed
}

fn build_engine(
    args: &Args,
    rotator: Arc<dyn Rotator>,
    sink: Arc<dyn SecretSink>,
) -> Result<Engine, Failure> {
    Engine::builder(rotator)
        .with_sink(sink)
        .with_journal_dir(&args.journal)
        .with_verify_policy(VerifyPolicy {
            new_key_timeout: Some(Duration::from_secs(args.verify_timeout)),
            revoked_timeout: Duration::from_secs(args.revoked_timeout),
            ..VerifyPolicy::default()
        })
        .build()
        .map_err(|e| e.to_string())
}

fn print_json(value: &impl serde::Serialize, to_stdout: bool) {
    match serde_json::to_string_pretty(value) {
        Ok(text) if to_stdout => println!("{text}"),
        Ok(text) => eprintln!("{text}"),
        Err(error) => eprintln!("error: cannot print JSON: {error}"),
    }
}

async fn plan_and_execute(
    args: &Args,
    engine: &Engine,
    leaked: &LeakedCredential,
    to_stdout: bool,
) -> Result<(), Failure> {
    let options = PlanOptions {
        allow_revoke_first: args.allow_revoke_first,
    };
    let plan = engine
        .plan(leaked, &options)
        .await
        .map_err(|e| e.to_string())?;
    print_json(&serde_json::json!({ "plan": plan }), to_stdout);
    if !args.execute {
        return Ok(());
    }
    let report = engine
        .execute(&plan, Some(leaked))
        .await
        .map_err(|e| e.to_string())?;
    print_json(&serde_json::json!({ "report": report }), to_stdout);
    Ok(())
}

async fn resume(
    engine: &Engine,
    leaked: &LeakedCredential,
    to_stdout: bool,
) -> Result<(), Failure> {
    let journals = engine.unfinished().map_err(|e| e.to_string())?;
    if journals.is_empty() {
        eprintln!(
            "{}: no unfinished rotation to resume",
            engine.rotator().name()
        );
    }
    for journal in journals {
        let report = engine
            .resume(&journal, Some(leaked))
            .await
            .map_err(|e| e.to_string())?;
        print_json(&serde_json::json!({ "report": report }), to_stdout);
    }
    Ok(())
}
