//! The human summary of a remediation report.

use std::fmt::Write;

use leak_core::Location;
use leak_rotators::{JournalEntry, Record, Step};

use crate::plan::{CredentialPlan, ExposurePlace, Liveness, Rotation};
use crate::report::{ActionStatus, CredentialOutcome, CredentialStatus, Mode, RemediationReport};

/// Renders the summary; see [`RemediationReport::summary`].
pub(crate) fn render(report: &RemediationReport) -> String {
    let mut out = String::new();
    let plan = &report.plan;
    let mode = match report.mode {
        Mode::DryRun => "DRY RUN: nothing was changed; pass --execute to act",
        Mode::Execute => "EXECUTED",
    };
    let _ = writeln!(out, "Remediation of {} ({mode})", plan.scope);
    if !plan.coverage_complete {
        let _ = writeln!(
            out,
            "WARNING: the scan is partial ({} gaps); secrets may be missing below",
            plan.gaps.len()
        );
    }
    if plan.credentials.is_empty() {
        let _ = writeln!(out, "\nNo leaked credential was found.");
    } else {
        let _ = writeln!(
            out,
            "\nWhat leaked: {} credential(s)",
            plan.credentials.len()
        );
    }
    for (number, (credential, outcome)) in
        plan.credentials.iter().zip(&report.credentials).enumerate()
    {
        render_credential(&mut out, number + 1, credential, outcome);
    }
    render_registry(&mut out, report);
    if !report.manual_steps.is_empty() {
        let _ = writeln!(out, "\nLeft to do by hand:");
        for step in &report.manual_steps {
            let _ = writeln!(out, "  - {step}");
        }
    }
    if let Some(journal) = &report.journal {
        let _ = writeln!(out, "\nJournal: {}", journal.display());
    }
    out
}

fn render_credential(
    out: &mut String,
    number: usize,
    credential: &CredentialPlan,
    outcome: &CredentialOutcome,
) {
    let key = credential
        .key_id
        .as_deref()
        .map(|id| format!(", key id {id}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "\n{number}. {} {}{key}\n   fingerprint {}",
        credential.kind, credential.redacted, credential.id
    );
    let _ = writeln!(out, "   live: {}", describe_liveness(&credential.liveness));
    let _ = writeln!(
        out,
        "   exposed at {} place(s):",
        credential.exposures.len()
    );
    for place in &credential.exposures {
        let _ = writeln!(out, "     - {}", describe_place(place));
    }
    let _ = writeln!(
        out,
        "   rotation: {}",
        describe_rotation(&credential.rotation)
    );
    match &outcome.status {
        CredentialStatus::Planned | CredentialStatus::Manual { .. } => {}
        CredentialStatus::Failed { error } => {
            let _ = writeln!(out, "   result: FAILED: {error}");
        }
        CredentialStatus::Rotated { result } => {
            let new_key = result.new_key_id.as_deref().unwrap_or("none");
            let dead = match result.leaked_dead_confirmed {
                Some(true) => "confirmed dead",
                Some(false) => "revoked, not yet confirmed dead",
                None => "not revoked",
            };
            let _ = writeln!(
                out,
                "   result: {:?} by {} for owner {}: leaked key {} {dead}; new key {new_key}, its secret in {}",
                result.outcome,
                result.rotator,
                result.owner.id,
                result.leaked_key_id,
                result.sink.display()
            );
        }
    }
    if !outcome.timeline.is_empty() {
        let _ = writeln!(out, "   timeline (UTC):");
        for entry in &outcome.timeline {
            let _ = writeln!(out, "     {} {}", clock(entry.at_ms), describe_entry(entry));
        }
    }
}

fn render_registry(out: &mut String, report: &RemediationReport) {
    if report.plan.registry.is_none() {
        if !report.plan.credentials.is_empty() {
            let _ = writeln!(
                out,
                "\nRegistry: none in scope. If this image was pushed, run remediate on \
                 REGISTRY/REPOSITORY to find and clean every tag that carries it."
            );
        }
        return;
    }
    if report.registry_actions.is_empty() {
        let _ = writeln!(out, "\nRegistry: nothing to change.");
        return;
    }
    let _ = writeln!(out, "\nRegistry actions (after the rotations):");
    for action in &report.registry_actions {
        let status = match &action.result {
            ActionStatus::Planned => "planned".to_owned(),
            ActionStatus::Done { detail } => format!("done: {detail}"),
            ActionStatus::Failed { error } => format!("FAILED: {error}"),
            ActionStatus::NotRun => "not run".to_owned(),
        };
        let _ = writeln!(out, "  - {}: {status}", action.action.describe());
    }
}

fn describe_liveness(liveness: &Liveness) -> String {
    match liveness {
        Liveness::Live => {
            "YES: the provider accepted it; anyone with the image can use it".to_owned()
        }
        Liveness::Dead { reason } => format!("no, the provider rejected it ({reason})"),
        Liveness::Indeterminate { reason } => {
            format!("unknown, the check was inconclusive ({reason})")
        }
        Liveness::NotChecked { reason } => format!("not checked: {reason}"),
    }
}

fn describe_rotation(rotation: &Rotation) -> String {
    match rotation {
        Rotation::Rotator { rotator, plan } => {
            let steps: Vec<String> = plan.steps.iter().map(describe_step).collect();
            let outage = if plan.outage {
                " (consumers see an outage)"
            } else {
                ""
            };
            format!(
                "{rotator} for owner {}: {:?}{outage}: {}",
                plan.owner.id,
                plan.strategy,
                steps.join(", ")
            )
        }
        Rotation::PlanFailed { rotator, error } => {
            format!("{rotator} could not plan it: {error}")
        }
        Rotation::Manual { reason, .. } => format!("by hand ({reason}); see below"),
    }
}

fn describe_step(step: &Step) -> String {
    match step {
        Step::RevokeOther { key_id } => format!("revoke other key {key_id}"),
        Step::Create => "create a new key".to_owned(),
        Step::PutPending => "store it as pending".to_owned(),
        Step::VerifyNew => "verify it".to_owned(),
        Step::Promote => "promote it".to_owned(),
        Step::Deactivate { key_id } => format!("deactivate {key_id}"),
        Step::Revoke { key_id } => format!("revoke {key_id}"),
        Step::VerifyRevoked { key_id } => format!("check {key_id} is dead"),
        Step::RevokeNew { key_id } => format!("revoke new key {key_id}"),
        Step::RevokeOrphan { key_id } => format!("revoke orphan key {key_id}"),
        Step::Discard { key_id, .. } => format!("discard pending key {key_id}"),
        Step::Reactivate { key_id } => format!("reactivate {key_id}"),
    }
}

fn describe_entry(entry: &JournalEntry) -> String {
    match &entry.record {
        Record::Plan { plan } => format!("plan {:?} for owner {}", plan.strategy, plan.owner.id),
        Record::Intent { step, .. } => format!("start: {}", describe_step(step)),
        Record::Done {
            step,
            key_id,
            detail,
            ..
        } => {
            let mut text = format!("done: {}", describe_step(step));
            if let Some(key_id) = key_id {
                let _ = write!(text, " (key {key_id})");
            }
            if let Some(detail) = detail {
                let _ = write!(text, ": {detail}");
            }
            text
        }
        Record::Failed { step, error, .. } => format!("failed: {}: {error}", describe_step(step)),
        Record::Restart { from, reason } => format!("restart from step {from}: {reason}"),
        Record::Rollback { reason } => format!("rollback: {reason}"),
        Record::Finished { outcome } => format!("finished: {outcome:?}"),
    }
}

fn describe_place(place: &ExposurePlace) -> String {
    let mut text = place.image.clone();
    if place.tags.len() > 1 {
        let _ = write!(text, " (tags {})", place.tags.join(", "));
    }
    if let Some(platform) = &place.platform {
        let _ = write!(text, " [{platform}]");
    }
    let _ = write!(
        text,
        " {}: {}",
        place.kind,
        describe_location(&place.location)
    );
    text
}

fn describe_location(location: &Location) -> String {
    match location {
        Location::Layer {
            layer_index,
            layer_digest,
            path,
            line,
            present_in_final_fs,
            removed_by_layer,
            ..
        } => {
            let line = line.map(|line| format!(":{line}")).unwrap_or_default();
            let removed = match (present_in_final_fs, removed_by_layer) {
                (true, _) => String::new(),
                (false, Some(by)) => {
                    format!(" (deleted by layer {by}, but still in this layer's blob)")
                }
                (false, None) => {
                    " (hidden in the final filesystem, but still in this layer's blob)".to_owned()
                }
            };
            format!("layer {layer_index} ({layer_digest}) file /{path}{line}{removed}")
        }
        Location::Env { key } => format!("config Env {key}"),
        Location::Label { key } => format!("config label {key}"),
        Location::History { index, .. } => format!("config history step {index} (created_by)"),
        Location::Annotation { key, .. } => format!("annotation {key}"),
        Location::Cmd => "config Cmd".to_owned(),
        Location::Entrypoint => "config Entrypoint".to_owned(),
    }
}

/// Formats milliseconds since the epoch as `HH:MM:SS.mmm` UTC.
fn clock(at_ms: u64) -> String {
    let millis = at_ms % 1000;
    let seconds = (at_ms / 1000) % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{millis:03}",
        seconds / 3600,
        (seconds / 60) % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_formats_utc() {
        assert_eq!(clock(3_723_004), "01:02:03.004");
    }
}
