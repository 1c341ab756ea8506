//! Remediate a leaked image: rotate each leaked credential at its source,
//! then delete or replace every registry tag that carries it.
//!
//! ```text
//! cargo run --release --example remediate -- [IMAGE_OR_REGISTRY_SCOPE] \
//!     [--rotators CONFIG] [--replace-with TAG] [--execute] [--json FILE]
//! ```
//!
//! IMAGE_OR_REGISTRY_SCOPE is an image file (docker-archive or OCI layout),
//! or a registry scope: `HOST:PORT` or `HOST/` (whole catalog),
//! `HOST/REPO[,REPO...]`, or `HOST/REPO:TAG` (that image and every sibling
//! tag carrying its secrets). Prefix `http://` for a plain-HTTP registry.
//! With no argument it plans the bundled demo image without any network
//! access.
//!
//! Without `--execute` nothing changes: the plan is printed. `--rotators`
//! names the TOML file that enables rotators and sets their endpoints, the
//! journal and sink directories and registry credentials (see
//! `leak_remediate::RemediateConfig`). Without it no rotator runs and every
//! credential is listed for rotation by hand. Journals default to
//! `remediation-journal/` and new secrets to `new-secrets/` (mode 0600
//! files). Running the same command again after an interruption resumes.
//!
//! Exit status: 0 when everything planned was done (or, in a dry run,
//! nothing leaked), 1 when something is left to do or failed, 2 on a usage
//! or input error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use leak_remediate::{RemediateConfig, Remediation, RemediationReport, Scope};

/// Rotate leaked credentials, then clean the registry.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// An image file or a registry scope. Default: the bundled demo image.
    scope: Option<String>,
    /// TOML file that enables rotators and sets endpoints, directories and
    /// registry credentials.
    #[arg(long)]
    rotators: Option<PathBuf>,
    /// Point leaking tags at this fixed image (TAG in the same repository,
    /// or REPOSITORY:TAG) instead of deleting them.
    #[arg(long)]
    replace_with: Option<String>,
    /// Execute the plan (default: print it only).
    #[arg(long)]
    execute: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Print the JSON report instead of the summary.
    #[arg(long)]
    print_json: bool,
}

fn demo_image() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("demo/demo-image.tar")
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    match run(&args) {
        Ok(report) => {
            let clean = if args.execute {
                report.all_done()
            } else {
                report.plan.credentials.is_empty()
            };
            if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<RemediationReport, String> {
    let scope_text = match &args.scope {
        Some(text) => text.clone(),
        None => {
            let demo = demo_image();
            eprintln!(
                "no scope given: planning the bundled demo image {} (no network access)",
                demo.display()
            );
            demo.to_string_lossy().into_owned()
        }
    };
    let scope = Scope::parse(&scope_text).map_err(|e| e.to_string())?;
    let remediation = build(args)?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let report = runtime.block_on(async {
        let prepared = remediation.plan(&scope).await?;
        if args.execute {
            remediation.execute(&prepared).await
        } else {
            Ok(remediation.dry_run_report(&prepared))
        }
    });
    let report = report.map_err(|e| e.to_string())?;
    print(args, &report)?;
    Ok(report)
}

fn build(args: &Args) -> Result<Remediation, String> {
    let mut builder = Remediation::builder()
        .with_journal_dir("remediation-journal")
        .with_sink_dir("new-secrets");
    if let Some(path) = &args.rotators {
        let config = RemediateConfig::from_file(path).map_err(|e| e.to_string())?;
        builder = config.apply(builder).map_err(|e| e.to_string())?;
    }
    if let Some(fixed) = &args.replace_with {
        builder = builder.with_replace_with(fixed);
    }
    builder.build().map_err(|e| e.to_string())
}

fn print(args: &Args, report: &RemediationReport) -> Result<(), String> {
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| format!("cannot render the JSON report: {e}"))?;
    if let Some(path) = &args.json {
        std::fs::write(path, format!("{json}\n"))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if args.print_json {
        println!("{json}");
    } else {
        print!("{}", report.summary());
    }
    Ok(())
}
