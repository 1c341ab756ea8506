//! Scan container images for leaked secrets.
//!
//! ```text
//! cargo run --release --example scan -- [OPTIONS] [IMAGE]...
//! ```
//!
//! IMAGE is a docker-archive tarball (plain or gzip/zstd compressed), an
//! OCI image layout (a directory or a tar of one), or, when no such path
//! exists, a registry reference `REGISTRY/REPOSITORY:TAG` or
//! `REGISTRY/REPOSITORY@sha256:...` (credentials come from the docker
//! `config.json`; `--insecure` allows plain HTTP). With no IMAGE it scans
//! the demo image bundled in `examples/demo/`. Exit status: 0 when nothing
//! is found, 1 when something is, 2 on an error (including an image that
//! could not be scanned completely).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use leak_core::{Gap, GapKind, Location, Report, Scanner, Severity, merge_reports};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Text,
    Json,
    Sarif,
}

/// Scan container images for leaked secrets.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Image inputs: docker-archive tarballs, OCI layouts, or registry
    /// references (REGISTRY/REPOSITORY:TAG or @sha256:DIGEST). Default: the
    /// bundled demo image.
    images: Vec<PathBuf>,
    /// Allow plain HTTP to registries named in IMAGE (for a registry on
    /// loopback or a trusted network).
    #[arg(long)]
    insecure: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// File of known leaked values, one per line, searched exactly and in
    /// base64.
    #[arg(long)]
    known_values: Vec<PathBuf>,
    /// gitleaks-style TOML rules file, added to the built-in rules.
    #[arg(long)]
    rules: Vec<PathBuf>,
    /// Scan only this platform (OS/ARCH or OS/ARCH/VARIANT). Default: every
    /// platform.
    #[arg(long)]
    platform: Option<String>,
    /// Turn off the built-in rules (use with --rules or --known-values).
    #[arg(long)]
    no_builtin_rules: bool,
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
    if args.no_builtin_rules && args.rules.is_empty() && args.known_values.is_empty() {
        eprintln!(
            "error: --no-builtin-rules leaves nothing to search for: add --rules FILE or --known-values FILE"
        );
        return ExitCode::from(2);
    }
    let mut builder = Scanner::builder().builtin_rules(!args.no_builtin_rules);
    for path in &args.rules {
        builder = builder.rules_file(path);
    }
    for path in &args.known_values {
        builder = builder.known_values_file(path);
    }
    if let Some(platform) = &args.platform {
        builder = builder.platform(platform);
    }
    let scanner = match builder.build() {
        Ok(scanner) => scanner,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let images = if args.images.is_empty() {
        eprintln!(
            "no IMAGE given: scanning the bundled demo image {}",
            demo_image().display()
        );
        vec![demo_image()]
    } else {
        args.images.clone()
    };
    let mut reports = Vec::new();
    let mut failed = false;
    let scanner = std::sync::Arc::new(scanner);
    for image in &images {
        if !image.exists() {
            let text = image.to_string_lossy().into_owned();
            if looks_like_path(&text) {
                eprintln!("error: {text}: no such file or directory");
                failed = true;
                reports.push(unreadable_report(
                    image,
                    &format!("{text}: no such file or directory"),
                ));
                continue;
            }
            match scan_reference(&text, args.insecure, scanner.clone()) {
                Ok(report) => reports.push(report),
                Err(message) => {
                    eprintln!("error: {text}: {message}");
                    failed = true;
                    let mut report = Report::default();
                    report.coverage.gaps.push(
                        Gap::new(GapKind::SourceUnreadable, Severity::Error, message)
                            .with_image(text.clone()),
                    );
                    reports.push(report);
                }
            }
            continue;
        }
        match scanner.scan_path(image) {
            Ok(report) => reports.push(report),
            Err(error) => {
                eprintln!("error: {error}");
                failed = true;
                reports.push(unreadable_report(image, &error));
            }
        }
    }
    let report = merge_reports(reports);
    let rendered = match args.format {
        Format::Json => serde_json::to_string_pretty(&report).map(|text| text + "\n"),
        Format::Sarif => serde_json::to_string_pretty(&leak_core::sarif::to_sarif(&report))
            .map(|text| text + "\n"),
        Format::Text => Ok(render_text(&report)),
    };
    let written = rendered
        .map_err(std::io::Error::other)
        .and_then(|text| std::io::stdout().lock().write_all(text.as_bytes()));
    match written {
        // A reader that stopped early (`scan ... | head`) is not an error.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(error) => {
            eprintln!("error: cannot write the report: {error}");
            return ExitCode::from(2);
        }
        Ok(()) => {}
    }
    if let Some(platform) = &args.platform
        && report.coverage.images.is_empty()
        && !failed
    {
        eprintln!("error: no image in the input matches --platform {platform}");
        return ExitCode::from(2);
    }
    if failed || !report.coverage.complete {
        ExitCode::from(2)
    } else if report.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Scans a registry reference. The error names the reason (not found, no such
/// registry, authentication failed).
fn scan_reference(
    text: &str,
    insecure: bool,
    scanner: std::sync::Arc<Scanner>,
) -> Result<Report, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))?;
    runtime
        .block_on(leak_registry::scan_image_reference(text, insecure, scanner))
        .map_err(|error| {
            format!("not a readable image path, and not scannable as a registry reference: {error}")
        })
}

fn removal_name(removal: leak_core::Removal) -> &'static str {
    match removal {
        leak_core::Removal::Whiteout => "whiteout",
        leak_core::Removal::OpaqueWhiteout => "opaque whiteout",
        leak_core::Removal::Overwritten => "overwritten",
        leak_core::Removal::ParentReplaced => "parent directory replaced",
    }
}

/// Tells a file path from a registry reference: registry references never
/// start with `/` or `.`, and image files end in a tar suffix.
fn looks_like_path(text: &str) -> bool {
    text.starts_with('/')
        || text.starts_with('.')
        || [".tar", ".tgz", ".gz", ".zst"]
            .iter()
            .any(|suffix| text.ends_with(suffix))
}

/// Builds the report of an input that could not be opened at all, so JSON and
/// SARIF readers see the scan as incomplete.
fn unreadable_report(image: &std::path::Path, error: &dyn std::fmt::Display) -> Report {
    let mut report = Report::default();
    report.coverage.gaps.push(
        Gap::new(
            GapKind::SourceUnreadable,
            Severity::Error,
            error.to_string(),
        )
        .with_image(image.display().to_string()),
    );
    report
}

fn render_text(report: &Report) -> String {
    let mut out = String::new();
    for finding in &report.findings {
        let place = match &finding.location {
            Location::Layer {
                layer_index,
                path,
                line,
                present_in_final_fs,
                removed_by_layer,
                removed_how,
                ..
            } => {
                let line = line.map(|l| format!(":{l}")).unwrap_or_default();
                let state = if *present_in_final_fs {
                    "present in the final filesystem".to_owned()
                } else {
                    format!(
                        "hidden by layer {} ({}) but still in the image",
                        removed_by_layer.unwrap_or_default(),
                        removal_name(removed_how.unwrap_or(leak_core::Removal::Overwritten))
                    )
                };
                format!("layer {layer_index} /{path}{line}, {state}")
            }
            other => leak_core::sarif::describe(other),
        };
        let _ = writeln!(
            out,
            "{image}  {kind}  {redacted}  {fingerprint}\n    at {place} (rule {rule})",
            image = finding.image,
            kind = finding.kind,
            redacted = finding.redacted,
            fingerprint = finding.fingerprint,
            rule = finding.rule,
        );
    }
    let _ = writeln!(out);
    for image in &report.coverage.images {
        let _ = writeln!(
            out,
            "{}{}: {} of {} layers scanned, {} entries, {} bytes{}",
            image.image,
            image
                .platform
                .as_deref()
                .map(|p| format!(" [{p}]"))
                .unwrap_or_default(),
            image.layers_scanned,
            image.layers_total,
            image.entries_scanned,
            image.bytes_scanned,
            if image.partial { ", PARTIAL" } else { "" }
        );
    }
    for gap in &report.coverage.gaps {
        let label = match gap.severity {
            Severity::Error => "not covered",
            Severity::Warning => "warning",
            Severity::Info => "skipped",
        };
        let _ = writeln!(out, "{label}: {}", gap.detail);
    }
    let _ = writeln!(
        out,
        "{} finding(s); coverage {}",
        report.findings.len(),
        if report.coverage.complete {
            "complete"
        } else {
            "PARTIAL"
        }
    );
    out
}
