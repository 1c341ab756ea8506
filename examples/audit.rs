//! Audit a registry for leaked secrets, and delete or replace what leaks.
//!
//! ```text
//! cargo run --release --example audit -- --registry URL [--repository NAME]...
//!     [--known-values FILE] [--format text|json] [--insecure]
//!     [--delete [--accept-tag REPOSITORY:TAG]... | --replace-with REPOSITORY:TAG] [--execute]
//! ```
//!
//! Credentials come from the docker config (`DOCKER_CONFIG`, `auths`,
//! `credHelpers`, `credsStore`), or from `--username` with the password in
//! the `LEAK_REGISTRY_PASSWORD` environment variable. Deletion and
//! replacement are dry runs unless `--execute` is given; an executed delete
//! also needs every tag it removes named with `--accept-tag`. Exit status:
//! 0 when nothing leaks, 1 when something does, 2 on an error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use leak_core::{Fingerprint, KnownValues};
use leak_registry::{
    Audit, AuditEvent, AuditProgress, AuditReport, Carrier, Credential, DockerConfig, Execution,
    Reference, RegistryClient, parse_digest,
};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// Find every repository, tag, digest and platform of a registry that carries a leaked secret.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Registry address: HOST[:PORT], https://HOST or, with --insecure, http://HOST.
    #[arg(long)]
    registry: String,
    /// Repository to audit; repeat for several. Default: every repository in the catalog.
    #[arg(long = "repository")]
    repositories: Vec<String>,
    /// File of known leaked values, one per line, searched exactly and in base64.
    #[arg(long)]
    known_values: Vec<PathBuf>,
    /// Report only findings with this fingerprint (sha256:HEX); repeat for several.
    #[arg(long = "fingerprint")]
    fingerprints: Vec<String>,
    /// Also list every image that contains this layer digest; repeat for several.
    #[arg(long = "leaked-layer")]
    leaked_layers: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Allow plain http:// for this registry.
    #[arg(long)]
    insecure: bool,
    /// User name; the password is read from LEAK_REGISTRY_PASSWORD.
    #[arg(long)]
    username: Option<String>,
    /// Directory for the layer cache, so a second audit downloads no layer again.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Delete each leaking manifest by digest (a dry run without --execute).
    #[arg(long, conflicts_with = "replace_with")]
    delete: bool,
    /// A tag the deletion may remove, as REPOSITORY:TAG; required for each one with --execute.
    #[arg(long = "accept-tag")]
    accept_tags: Vec<String>,
    /// Point each leaking tag at this fixed image (a dry run without --execute).
    #[arg(long, value_name = "REPOSITORY:TAG")]
    replace_with: Option<String>,
    /// Carry out --delete or --replace-with instead of reporting what they would do.
    #[arg(long)]
    execute: bool,
}

/// Shows audit progress as a bar on stderr.
#[derive(Debug)]
struct Bar(ProgressBar);

impl AuditProgress for Bar {
    fn event(&self, event: &AuditEvent) {
        match event {
            AuditEvent::Repositories { count } => self
                .0
                .set_message(format!("listing tags of {count} repositories")),
            AuditEvent::Tags { count, .. } => self.0.inc_length(*count as u64),
            AuditEvent::TagResolved { .. } => self.0.inc(1),
            AuditEvent::LayersQueued { count } => {
                self.0.set_message("scanning layers");
                self.0.inc_length(*count as u64);
            }
            AuditEvent::LayerDone { .. } => self.0.inc(1),
            _ => {}
        }
    }
}

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
    match runtime.block_on(run(&args)) {
        Ok(true) => ExitCode::from(1),
        Ok(false) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            for hint in hints(&args, &message) {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(2)
        }
    }
}

/// Suggests the option a failed audit most likely needs.
fn hints(args: &Args, message: &str) -> Vec<&'static str> {
    let mut hints = Vec::new();
    let plain_address = !args.registry.starts_with("https://");
    if !args.insecure && plain_address && message.contains("error sending request") {
        hints.push(
            "the audit connects with HTTPS; if this registry serves plain HTTP (as a registry on 127.0.0.1 usually does), pass --insecure",
        );
    }
    if message.contains("denied access") {
        hints.push(
            "give credentials with --username and the LEAK_REGISTRY_PASSWORD environment variable, or log in so the Docker config.json holds them",
        );
    }
    hints
}

/// Runs the audit and the requested remediation; returns whether anything leaks.
async fn run(args: &Args) -> Result<bool, String> {
    let client = build_client(args)?;
    let report = audit(args, client.clone()).await?;
    match args.format {
        Format::Json => {
            let json = serde_json::to_string_pretty(&report).map_err(|error| error.to_string())?;
            println!("{json}");
        }
        Format::Text => print_text(&report),
    }
    let execution = if args.execute {
        Execution::Execute
    } else {
        Execution::DryRun
    };
    if args.delete {
        delete(args, &client, &report, execution).await?;
    }
    if let Some(fixed) = &args.replace_with {
        replace(&client, &report, fixed, execution).await?;
    }
    Ok(!report.exposures.is_empty())
}

fn build_client(args: &Args) -> Result<RegistryClient, String> {
    let mut builder = RegistryClient::builder(args.registry.clone()).with_insecure(args.insecure);
    builder = match &args.username {
        Some(username) => {
            let password = std::env::var("LEAK_REGISTRY_PASSWORD").map_err(|_| {
                "--username needs the password in LEAK_REGISTRY_PASSWORD".to_owned()
            })?;
            builder.with_credential(Credential::basic(username.clone(), password))
        }
        None => {
            builder.with_docker_config(DockerConfig::from_env().map_err(|error| error.to_string())?)
        }
    };
    builder.build().map_err(|error| error.to_string())
}

async fn audit(args: &Args, client: RegistryClient) -> Result<AuditReport, String> {
    let mut known = KnownValues::new();
    for path in &args.known_values {
        let bytes = std::fs::read(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        known.add_lines(&bytes);
    }
    let fingerprints = args
        .fingerprints
        .iter()
        .map(|text| {
            Fingerprint::parse(text)
                .ok_or_else(|| format!("invalid fingerprint {text:?}: expected sha256:HEX"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let layers = args
        .leaked_layers
        .iter()
        .map(|text| parse_digest(text).map_err(|error| error.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .map_err(|error| error.to_string())?,
    );
    let mut builder = Audit::builder(client)
        .with_known_values(known)
        .with_fingerprints(fingerprints)
        .with_leaked_layers(layers)
        .with_progress(Arc::new(Bar(bar.clone())));
    if !args.repositories.is_empty() {
        builder = builder.with_repositories(args.repositories.clone());
    }
    if let Some(directory) = &args.cache_dir {
        builder = builder.with_cache_dir(directory);
    }
    let audit = builder.build().map_err(|error| error.to_string())?;
    let report = audit.run().await.map_err(|error| error.to_string());
    bar.finish_and_clear();
    report
}

fn print_text(report: &AuditReport) {
    if report.exposures.is_empty() {
        println!("no leaked secrets found on {}", report.registry);
    }
    for exposure in &report.exposures {
        println!(
            "{} ({}) {} {}",
            exposure.kind, exposure.rule, exposure.fingerprint, exposure.redacted
        );
        for carrier in &exposure.carriers {
            println!("    {}", describe(carrier));
        }
    }
    for layer in &report.leaked_layers {
        println!(
            "layer {} is in {} image(s)",
            layer.layer_digest,
            layer.carriers.len()
        );
        for carrier in &layer.carriers {
            println!("    {}", describe(carrier));
        }
    }
    let stats = &report.stats;
    println!(
        "{} repositories, {} tags, {} images, {} unique layers ({} scanned, {} from cache), {} requests, {} bytes",
        stats.repositories,
        stats.tags,
        stats.images,
        stats.unique_layers,
        stats.layers_scanned,
        stats.layers_from_cache,
        stats.requests.requests,
        stats.requests.bytes
    );
    if !report.coverage.complete {
        println!(
            "coverage incomplete: {} gap(s); see --format json",
            report.coverage.gaps.len()
        );
    }
}

fn describe(carrier: &Carrier) -> String {
    let tags = if carrier.tags.is_empty() {
        "(untagged)".to_owned()
    } else {
        carrier.tags.join(",")
    };
    let platform = carrier
        .platform
        .as_deref()
        .map(|platform| format!(" [{platform}]"))
        .unwrap_or_default();
    format!(
        "{}:{tags} @ {}{platform}",
        carrier.repository, carrier.manifest_digest
    )
}

/// Returns (repository, digest) pairs to delete: the index a tag points at
/// when the leaking image was reached through one, else the image itself.
fn deletion_targets(report: &AuditReport) -> Vec<(String, String)> {
    let mut targets: Vec<(String, String)> = report
        .leaking_carriers()
        .into_iter()
        .flat_map(|carrier| {
            let digests = if carrier.index_digests.is_empty() {
                vec![carrier.manifest_digest.clone()]
            } else {
                carrier.index_digests.clone()
            };
            digests
                .into_iter()
                .map(move |digest| (carrier.repository.clone(), digest))
        })
        .collect();
    targets.sort();
    targets.dedup();
    targets
}

async fn delete(
    args: &Args,
    client: &RegistryClient,
    report: &AuditReport,
    execution: Execution,
) -> Result<(), String> {
    for (repository, digest) in deletion_targets(report) {
        let parsed = parse_digest(&digest).map_err(|error| error.to_string())?;
        let plan = client
            .plan_delete(&repository, &parsed)
            .await
            .map_err(|error| error.to_string())?;
        let removed: Vec<String> = plan
            .tags_removed
            .iter()
            .map(|tag| format!("{repository}:{tag}"))
            .collect();
        eprintln!(
            "delete {repository}@{digest} removes tags: {}",
            list_or_none(&removed)
        );
        if !plan.indexes_referencing.is_empty() {
            eprintln!(
                "    indexes listing it, left with a missing child: {}",
                plan.indexes_referencing.join(", ")
            );
        }
        if execution == Execution::DryRun {
            continue;
        }
        let missing: Vec<&String> = removed
            .iter()
            .filter(|tag| !args.accept_tags.contains(tag))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "not deleting {repository}@{digest}: accept each tag it removes with --accept-tag ({})",
                missing
                    .iter()
                    .map(|tag| tag.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let accepted = plan
            .clone()
            .accept(&plan.tags_removed)
            .map_err(|error| error.to_string())?;
        client
            .delete(accepted, execution)
            .await
            .map_err(|error| error.to_string())?;
        eprintln!("deleted {repository}@{digest}");
    }
    if execution == Execution::DryRun {
        eprintln!(
            "dry run: nothing was deleted; add --execute and --accept-tag for each tag to delete"
        );
    }
    Ok(())
}

async fn replace(
    client: &RegistryClient,
    report: &AuditReport,
    fixed: &str,
    execution: Execution,
) -> Result<(), String> {
    let source = Reference::parse(&format!("{}/{fixed}", client.registry()))
        .map_err(|error| error.to_string())?;
    for carrier in report.leaking_carriers() {
        for tag in &carrier.tags {
            let target = Reference::new(client.registry(), &carrier.repository, Some(tag))
                .map_err(|error| error.to_string())?;
            let outcome = client
                .replace(&target, &source, execution)
                .await
                .map_err(|error| error.to_string())?;
            let verb = if execution == Execution::Execute {
                "replaced"
            } else {
                "would replace"
            };
            eprintln!(
                "{verb} {} ({}) with {} ({})",
                outcome.plan.target,
                outcome.plan.old_digest,
                outcome.plan.source,
                outcome.plan.new_digest
            );
        }
    }
    Ok(())
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}
