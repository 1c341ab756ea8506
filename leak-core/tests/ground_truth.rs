//! Scans the real fixture images (built by buildah, exported by skopeo and
//! podman) and compares every finding with `ground_truth.json`, which lists
//! every planted value and every place it occurs.
//!
//! The fixtures live in `shared/fixtures` beside the repository. When that
//! folder is missing the tests fail: they never pass by skipping.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use leak_core::{KnownValues, Location, Removal, Report, Scanner, Secret, merge_reports};
use serde::Deserialize;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures");

#[derive(Debug, Deserialize)]
struct GroundTruth {
    all_values: Vec<PlantedValue>,
    images: Vec<GroundTruthImage>,
}

#[derive(Debug, Deserialize)]
struct PlantedValue {
    name: String,
    value: String,
    sha256: String,
    images: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct GroundTruthImage {
    id: String,
    clean: bool,
    docker_archive: DockerArchive,
    oci: OciLayout,
    history: Vec<HistoryEntry>,
    layers: Vec<Layer>,
    secrets: Vec<ImageSecret>,
    absent_secrets: Vec<ImageSecret>,
}

#[derive(Debug, Deserialize)]
struct DockerArchive {
    path: String,
    repo_tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct OciLayout {
    path: String,
    ref_name: String,
    manifest_digest: String,
}

#[derive(Debug, Deserialize)]
struct HistoryEntry {
    index: usize,
    layer_index: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct Layer {
    index: usize,
    diff_id: String,
    oci_digest: String,
}

#[derive(Debug, Deserialize)]
struct ImageSecret {
    name: String,
    kind: String,
    sha256: String,
    #[serde(default)]
    locations: Vec<GroundTruthLocation>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "where", rename_all = "snake_case")]
enum GroundTruthLocation {
    Env {
        key: String,
    },
    Label {
        key: String,
    },
    History {
        index: usize,
    },
    Layer {
        layer_index: usize,
        path: String,
        encoding: String,
        line: u64,
        visible_in_final: bool,
        hidden_by: Option<HiddenBy>,
    },
}

#[derive(Debug, Deserialize)]
struct HiddenBy {
    layer_index: usize,
    how: String,
    entry: String,
}

/// Which export of an image is scanned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    DockerArchive,
    Oci,
}

/// Returns the fixtures folder, or fails the test with a message saying
/// where it is expected.
fn fixtures_dir() -> PathBuf {
    let dir = PathBuf::from(FIXTURES);
    assert!(
        dir.join("ground_truth.json").is_file(),
        "fixture images not found: expected {}/ground_truth.json. Place the shared/ folder \
         (with fixtures/docker-archive, fixtures/oci and fixtures/ground_truth.json) beside \
         the repository checkout.",
        dir.display()
    );
    dir
}

fn load_ground_truth() -> GroundTruth {
    let path = fixtures_dir().join("ground_truth.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("cannot parse {}: {error}", path.display()))
}

/// Returns the name the scanner gives an image: the repo tag for a docker-archive,
/// `<layout dir name>:<ref name>` for an OCI layout.
fn image_name(image: &GroundTruthImage, form: Form) -> String {
    match form {
        Form::DockerArchive => {
            assert_eq!(
                image.docker_archive.repo_tags.len(),
                1,
                "{}: the test expects exactly one repo tag per image",
                image.id
            );
            image.docker_archive.repo_tags[0].clone()
        }
        Form::Oci => {
            let dir = Path::new(&image.oci.path)
                .file_name()
                .expect("OCI layout path has a folder name");
            format!("{}:{}", dir.to_string_lossy(), image.oci.ref_name)
        }
    }
}

fn input_path(image: &GroundTruthImage, form: Form) -> &str {
    match form {
        Form::DockerArchive => &image.docker_archive.path,
        Form::Oci => &image.oci.path,
    }
}

fn expected_manifest_digest(image: &GroundTruthImage, form: Form) -> Option<String> {
    match form {
        Form::DockerArchive => None,
        Form::Oci => Some(image.oci.manifest_digest.clone()),
    }
}

/// Maps a ground-truth kind to the kind the scanner reports.
fn scanner_kind(kind: &str) -> &str {
    match kind {
        "postgres-url" => "database-url",
        other => other,
    }
}

/// Maps a ground-truth encoding to the scanner's `Encoding` as serialised.
/// The scanner reports a value that its rule decoded from a JSON string
/// (the private key inside `sa.json`) as `raw`.
fn scanner_encoding(encoding: &str) -> &'static str {
    match encoding {
        "raw" | "json-string" => "raw",
        other => panic!("unknown ground-truth encoding {other:?}"),
    }
}

/// Scans every distinct input of one form and merges the reports.
fn scan_all(scanner: &Scanner, truth: &GroundTruth, form: Form) -> Report {
    let dir = fixtures_dir();
    let inputs: BTreeSet<&str> = truth
        .images
        .iter()
        .map(|image| input_path(image, form))
        .collect();
    let reports = inputs.into_iter().map(|input| {
        let path = dir.join(input);
        scanner
            .scan_path(&path)
            .unwrap_or_else(|error| panic!("scan of {} failed: {error}", path.display()))
    });
    merge_reports(reports)
}

fn default_scanner() -> Scanner {
    Scanner::builder()
        .build()
        .expect("scanner with the built-in rules builds")
}

/// Describes one finding as one line containing every field the ground
/// truth fixes. Expected and actual findings use the same format, so a
/// comparison of the two multisets shows what is missing and what is extra.
fn describe_expected(
    image: &GroundTruthImage,
    form: Form,
    secret: &ImageSecret,
    location: &GroundTruthLocation,
) -> String {
    let (location, encoding) = expected_location(image, form, location);
    format!(
        "{image} [{name}] sha256:{sha256} kind={kind} encoding={encoding} manifest={manifest:?} at {location:?}",
        image = image_name(image, form),
        name = secret.name,
        sha256 = secret.sha256,
        kind = scanner_kind(&secret.kind),
        manifest = expected_manifest_digest(image, form),
    )
}

/// Converts a ground-truth location to the scanner's `Location` and the
/// expected encoding.
fn expected_location(
    image: &GroundTruthImage,
    form: Form,
    location: &GroundTruthLocation,
) -> (Location, &'static str) {
    match location {
        GroundTruthLocation::Env { key } => (Location::Env { key: key.clone() }, "raw"),
        GroundTruthLocation::Label { key } => (Location::Label { key: key.clone() }, "raw"),
        GroundTruthLocation::History { index } => {
            let step = image
                .history
                .iter()
                .find(|step| step.index == *index)
                .unwrap_or_else(|| {
                    panic!(
                        "{}: ground truth names history {index}, which it does not list",
                        image.id
                    )
                });
            let location = Location::History {
                index: *index,
                layer_index: step.layer_index,
            };
            (location, "raw")
        }
        GroundTruthLocation::Layer {
            layer_index,
            path,
            encoding,
            line,
            visible_in_final,
            hidden_by,
        } => {
            let layer = image
                .layers
                .iter()
                .find(|layer| layer.index == *layer_index)
                .unwrap_or_else(|| {
                    panic!(
                        "{}: ground truth names layer {layer_index}, which it does not list",
                        image.id
                    )
                });
            let layer_digest = match form {
                Form::DockerArchive => layer.diff_id.clone(),
                Form::Oci => layer.oci_digest.clone(),
            };
            let removed_how = hidden_by.as_ref().map(|hidden| {
                serde_json::from_value::<Removal>(serde_json::Value::from(hidden.how.as_str()))
                    .unwrap_or_else(|error| {
                        panic!(
                            "{}: unknown hidden_by.how {:?}: {error}",
                            image.id, hidden.how
                        )
                    })
            });
            let location = Location::Layer {
                layer_index: *layer_index,
                layer_digest,
                diff_id: Some(layer.diff_id.clone()),
                path: path.clone(),
                line: Some(*line),
                present_in_final_fs: *visible_in_final,
                removed_by_layer: hidden_by.as_ref().map(|hidden| hidden.layer_index),
                removed_how,
                removed_by_entry: hidden_by.as_ref().map(|hidden| hidden.entry.clone()),
            };
            (location, scanner_encoding(encoding))
        }
    }
}

fn describe_actual(finding: &leak_core::Finding, names: &BTreeMap<String, String>) -> String {
    let encoding = serde_json::to_value(finding.encoding).expect("Encoding serialises");
    let encoding = encoding.as_str().unwrap_or("?").to_owned();
    let fingerprint = finding.fingerprint.as_str();
    let name = fingerprint
        .strip_prefix("sha256:")
        .and_then(|hex| names.get(hex))
        .map_or("not a planted value", String::as_str);
    format!(
        "{image} [{name}] {fingerprint} kind={kind} encoding={encoding} manifest={manifest:?} at {location:?}",
        image = finding.image,
        kind = finding.kind,
        manifest = finding.manifest_digest,
        location = finding.location,
    )
}

/// Planted value names by their hex SHA-256, for readable failure messages.
fn value_names(truth: &GroundTruth) -> BTreeMap<String, String> {
    truth
        .all_values
        .iter()
        .map(|value| (value.sha256.clone(), value.name.clone()))
        .collect()
}

fn count<I: IntoIterator<Item = String>>(lines: I) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in lines {
        *counts.entry(line).or_insert(0) += 1;
    }
    counts
}

/// Fails with every missing and every extra finding (duplicates included)
/// when the two multisets differ.
fn assert_same_findings(
    what: &str,
    expected: &BTreeMap<String, usize>,
    actual: &BTreeMap<String, usize>,
) {
    let mut missing = String::new();
    let mut extra = String::new();
    for (line, &expected_count) in expected {
        let found = actual.get(line).copied().unwrap_or(0);
        if found < expected_count {
            writeln!(
                missing,
                "  {line} (expected {expected_count}, found {found})"
            )
            .unwrap();
        }
    }
    for (line, &found) in actual {
        let expected_count = expected.get(line).copied().unwrap_or(0);
        if found > expected_count {
            writeln!(extra, "  {line} (expected {expected_count}, found {found})").unwrap();
        }
    }
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: findings differ from the ground truth\nmissing:\n{}extra:\n{}",
        if missing.is_empty() {
            "  (none)\n"
        } else {
            &missing
        },
        if extra.is_empty() {
            "  (none)\n"
        } else {
            &extra
        },
    );
}

fn expected_findings(truth: &GroundTruth, form: Form) -> BTreeMap<String, usize> {
    let mut lines = Vec::new();
    for image in &truth.images {
        for secret in &image.secrets {
            for location in &secret.locations {
                lines.push(describe_expected(image, form, secret, location));
            }
        }
    }
    count(lines)
}

fn actual_findings(truth: &GroundTruth, report: &Report) -> BTreeMap<String, usize> {
    let names = value_names(truth);
    count(
        report
            .findings
            .iter()
            .map(|finding| describe_actual(finding, &names)),
    )
}

/// Checks that every image was scanned completely, with the layer count and
/// manifest digest of the ground truth, and that no other image appears.
fn assert_complete_coverage(truth: &GroundTruth, report: &Report, form: Form) {
    let gaps: Vec<String> = report
        .coverage
        .gaps
        .iter()
        .map(|gap| format!("  {gap:?}"))
        .collect();
    assert!(
        gaps.is_empty(),
        "{form:?}: expected no coverage gaps, found:\n{}",
        gaps.join("\n")
    );
    assert!(
        report.coverage.complete,
        "{form:?}: coverage.complete is false"
    );

    let expected: BTreeSet<String> = truth
        .images
        .iter()
        .map(|image| image_name(image, form))
        .collect();
    let actual: Vec<&str> = report
        .coverage
        .images
        .iter()
        .map(|image| image.image.as_str())
        .collect();
    let actual_set: BTreeSet<String> = actual.iter().map(|name| (*name).to_owned()).collect();
    assert_eq!(
        actual.len(),
        actual_set.len(),
        "{form:?}: an image is listed twice in coverage: {actual:?}"
    );
    assert_eq!(
        actual_set, expected,
        "{form:?}: the images in coverage differ from the ground truth"
    );

    for image in &truth.images {
        let name = image_name(image, form);
        let coverage = report
            .coverage
            .images
            .iter()
            .find(|coverage| coverage.image == name)
            .expect("listed above");
        assert_eq!(
            coverage.layers_total,
            image.layers.len(),
            "{name}: layers_total"
        );
        assert_eq!(
            coverage.layers_scanned,
            image.layers.len(),
            "{name}: layers_scanned"
        );
        assert!(coverage.config_scanned, "{name}: config_scanned is false");
        assert!(!coverage.partial, "{name}: coverage is partial");
        assert!(
            coverage.entries_scanned > 0,
            "{name}: no tar entries scanned"
        );
        assert_eq!(
            coverage.manifest_digest,
            expected_manifest_digest(image, form),
            "{name}: manifest_digest"
        );
    }
}

/// Checks that a clean image has no finding at all and that no absent
/// value is reported anywhere.
fn assert_clean_images_clean(truth: &GroundTruth, report: &Report, form: Form) {
    let names = value_names(truth);
    for image in truth.images.iter().filter(|image| image.clean) {
        let name = image_name(image, form);
        let found: Vec<String> = report
            .findings
            .iter()
            .filter(|finding| finding.image == name)
            .map(|finding| format!("  {}", describe_actual(finding, &names)))
            .collect();
        assert!(
            found.is_empty(),
            "{name} is clean, but the scan reported:\n{}",
            found.join("\n")
        );
    }
    for image in &truth.images {
        for absent in &image.absent_secrets {
            let fingerprint = format!("sha256:{}", absent.sha256);
            let found: Vec<String> = report
                .findings
                .iter()
                .filter(|finding| finding.fingerprint.as_str() == fingerprint)
                .map(|finding| format!("  {}", describe_actual(finding, &names)))
                .collect();
            assert!(
                found.is_empty(),
                "{} ({}, only given as a build secret to {}) must occur nowhere, but the scan reported:\n{}",
                absent.name,
                absent.kind,
                image.id,
                found.join("\n")
            );
        }
    }
}

fn check_form(form: Form) {
    let truth = load_ground_truth();
    let report = scan_all(&default_scanner(), &truth, form);
    assert_same_findings(
        &format!("{form:?}"),
        &expected_findings(&truth, form),
        &actual_findings(&truth, &report),
    );
    assert_clean_images_clean(&truth, &report, form);
    assert_complete_coverage(&truth, &report, form);
}

#[test]
fn docker_archives_match_ground_truth() {
    check_form(Form::DockerArchive);
}

#[test]
fn oci_layouts_match_ground_truth() {
    check_form(Form::Oci);
}

#[test]
fn ground_truth_lists_every_image_form() {
    let truth = load_ground_truth();
    let dir = fixtures_dir();
    assert_eq!(
        truth.images.len(),
        8,
        "ground truth should list eight image tags"
    );
    for image in &truth.images {
        for form in [Form::DockerArchive, Form::Oci] {
            let path = dir.join(input_path(image, form));
            assert!(
                path.exists(),
                "{}: {form:?} input {} is missing",
                image.id,
                path.display()
            );
        }
    }
}

#[test]
fn known_value_matches_two_app_tags() {
    let truth = load_ground_truth();
    let planted = truth
        .all_values
        .iter()
        .find(|value| value.name == "APP_POSTGRES_URL")
        .expect("ground truth lists APP_POSTGRES_URL");
    let mut known = KnownValues::new();
    known.add(Secret::new(planted.value.as_bytes().to_vec()));
    let scanner = Scanner::builder()
        .builtin_rules(false)
        .known_values(known)
        .build()
        .expect("scanner with one known value builds");
    let fingerprint = format!("sha256:{}", planted.sha256);

    for form in [Form::DockerArchive, Form::Oci] {
        let report = scan_all(&scanner, &truth, form);
        assert!(
            report.coverage.complete,
            "{form:?}: coverage.complete is false"
        );

        let mut expected = Vec::new();
        for image in truth
            .images
            .iter()
            .filter(|image| planted.images.contains(&image.id))
        {
            let name = image_name(image, form);
            expected.push(format!(
                "{name} {fingerprint} rule=known-value at Env {{ key: \"DATABASE_URL\" }}"
            ));
            expected.push(format!(
                "{name} {fingerprint} rule=known-value at History {{ index: 4, layer_index: None }}"
            ));
        }
        let actual = report.findings.iter().map(|finding| {
            format!(
                "{} {} rule={} at {:?}",
                finding.image,
                finding.fingerprint.as_str(),
                finding.rule,
                finding.location
            )
        });
        assert_same_findings(
            &format!("{form:?} known value"),
            &count(expected),
            &count(actual),
        );

        let images: BTreeSet<&str> = report
            .findings
            .iter()
            .map(|finding| finding.image.as_str())
            .collect();
        let expected_images: BTreeSet<String> = ["app:1.0", "app:1.1"]
            .iter()
            .map(|id| {
                let image = truth
                    .images
                    .iter()
                    .find(|image| image.id == *id)
                    .expect("ground truth lists app images");
                image_name(image, form)
            })
            .collect();
        let expected_images: BTreeSet<&str> = expected_images.iter().map(String::as_str).collect();
        assert_eq!(
            images, expected_images,
            "{form:?}: images where the known postgres URL was found"
        );
    }
}
