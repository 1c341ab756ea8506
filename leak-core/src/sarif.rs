//! SARIF 2.1.0 output.

use serde_json::{Value, json};

use crate::report::{Location, Report};

/// Converts a report to a SARIF 2.1.0 log with one run. Each finding is a
/// result whose message carries the fingerprint and redacted preview, never
/// the secret; coverage gaps of severity `error` become tool notifications.
pub fn to_sarif(report: &Report) -> Value {
    let mut rule_ids: Vec<&str> = report.findings.iter().map(|f| f.rule.as_str()).collect();
    rule_ids.sort_unstable();
    rule_ids.dedup();
    let rules: Vec<Value> = rule_ids
        .iter()
        .map(|id| json!({ "id": id, "name": id, "shortDescription": { "text": format!("secret found by rule {id}") } }))
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|finding| {
            let (uri, line, place) = match &finding.location {
                Location::Layer { layer_index, path, line, present_in_final_fs, .. } => (
                    format!("layer/{layer_index}/{path}"),
                    *line,
                    format!(
                        "file {path} in layer {layer_index}{}",
                        if *present_in_final_fs { "" } else { " (deleted or replaced by a later layer)" }
                    ),
                ),
                other => {
                    let place = describe(other);
                    (format!("config/{}", place.replace(' ', "_")), None, place)
                }
            };
            let mut region = json!({});
            if let Some(line) = line {
                region = json!({ "startLine": line });
            }
            json!({
                "ruleId": finding.rule,
                "level": "error",
                "message": { "text": format!("{} {} ({}) in {} of image {}", finding.kind, finding.redacted, finding.fingerprint, place, finding.image) },
                "locations": [{
                    "physicalLocation": { "artifactLocation": { "uri": uri }, "region": region },
                    "logicalLocations": [{ "name": finding.image, "kind": "image" }]
                }],
                "partialFingerprints": { "secretSha256": finding.fingerprint.as_str() },
                "properties": { "image": finding.image, "manifestDigest": finding.manifest_digest, "platform": finding.platform, "location": finding.location }
            })
        })
        .collect();
    let notifications: Vec<Value> = report
        .coverage
        .gaps
        .iter()
        .map(|gap| json!({ "level": match gap.severity { crate::Severity::Error => "error", crate::Severity::Warning => "warning", crate::Severity::Info => "note" }, "message": { "text": gap.detail } }))
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": { "name": "leak-core", "version": env!("CARGO_PKG_VERSION"), "rules": rules } },
            "invocations": [{ "executionSuccessful": report.coverage.complete, "toolExecutionNotifications": notifications }],
            "results": results
        }]
    })
}

/// Describes a non-layer location in words.
pub fn describe(location: &Location) -> String {
    match location {
        Location::Layer {
            layer_index, path, ..
        } => format!("layer {layer_index} file {path}"),
        Location::Env { key } => format!("Env {key}"),
        Location::Label { key } => format!("label {key}"),
        Location::History { index, .. } => format!("history {index}"),
        Location::Annotation { key, .. } => format!("annotation {key}"),
        Location::Cmd => "Cmd".to_owned(),
        Location::Entrypoint => "Entrypoint".to_owned(),
    }
}
