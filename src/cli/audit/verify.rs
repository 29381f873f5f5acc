//! `accord audit verify`: the server recomputes every hash chain and checks them against
//! its checkpoints; with `--checkpoints`, this client checks the log itself — the
//! server's, or an export file — against signed checkpoints kept outside the database.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use super::log::{event_line, events_in_log, next_message};
use super::plural;
use crate::cli::client::Client;
use crate::cli::output::{ExitClass, one_line};
use crate::cli::resolve;
use crate::cli::{Context, Failure, Output};
use crate::proto as pb;
use crate::store::audit::ExportLine;
use crate::store::note::{CheckpointVerifier, kept_marks, parse_kept};
use crate::store::tlog::LogAudit;

pub(super) const EXAMPLES: &str = "\
Examples:
  accord audit verify                 # every initiative's hash chain and every checkpoint
  accord audit verify CHECKOUT-42
  accord audit verify || echo \"exit $?: 7 means the history was altered\"
  accord audit verify --checkpoints kept.jsonl --key accord.example/prod+1a2b3c4d+AX…   # the server's log
  accord audit verify --checkpoints kept.jsonl --key verifier.key --export accord.jsonl   # an export, offline

With --checkpoints, the log is checked against signed checkpoints kept outside the
database (`accord audit checkpoint export`) — the server's log, or with --export a file
of `accord audit export`: every note must be signed by --key (the
verifier key, or a file holding it), every event's hash must recompute and link, and the
log tree must have each note's root at its size. A mismatch names the checkpoints between
which the log was rewritten, the events and the streams; events after the last kept
checkpoint are covered by none.";

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Key (CHECKOUT-42) or id of one initiative [default: the whole log].
    #[arg(conflicts_with = "checkpoints")]
    pub initiative: Option<String>,
    /// Check the log against these kept checkpoints (`accord audit checkpoint export`).
    #[arg(long, value_name = "FILE", requires = "key")]
    pub checkpoints: Option<PathBuf>,
    /// The verifier key the kept checkpoints are signed with (name+hash+base64), or a file holding it.
    #[arg(long, value_name = "KEY|FILE", requires = "checkpoints")]
    pub key: Option<String>,
    /// Check this export (JSON Lines, as `accord audit export` writes) instead of the server's log.
    #[arg(long, value_name = "FILE", requires = "checkpoints")]
    pub export: Option<PathBuf>,
}

pub(super) async fn verify(ctx: &Context, args: VerifyArgs) -> Result<Output, Failure> {
    let client = &ctx.client;
    let initiative = match &args.initiative {
        Some(given) => resolve::alignment(client, given).await?.initiative_id,
        None => String::new(),
    };
    let request = pb::VerifyRequest { initiative };
    let result = client.reply(client.audit_unbounded().verify(request).await)?;
    let checked = format!(
        "{} event{} in {} initiative{} verified, {} checkpoint{}",
        result.events_checked,
        plural(result.events_checked),
        result.streams_checked,
        plural(result.streams_checked),
        result.checkpoints_checked,
        plural(result.checkpoints_checked)
    );
    let mut json = json!({
        "ok": result.ok,
        "events_checked": result.events_checked,
        "streams_checked": result.streams_checked,
        "checkpoints_checked": result.checkpoints_checked,
        "first_break": null,
    });
    if result.ok {
        return Ok(Output::new(format!("OK: {checked}"), json));
    }
    let broken = result.first_break.unwrap_or_default();
    let key = stream_key(client, &broken.stream_id).await;
    let stream = match &key {
        Some(key) => format!("{key} (stream {})", broken.stream_id),
        None => format!("stream {}", broken.stream_id),
    };
    json["first_break"] = json!({
        "stream_id": broken.stream_id,
        "key": key,
        "stream_version": broken.stream_version,
        "position": broken.position,
        "reason": broken.reason,
    });
    if ctx.json {
        Output::new(String::new(), json).print(true);
    }
    Err(Failure::new(
        ExitClass::VerificationFailed,
        format!(
            "verification FAILED: {stream} at version {}, position {}: {}",
            broken.stream_version,
            broken.position,
            one_line(&broken.reason)
        ),
    ))
}

/// The key of a stream, when the server still knows it.
async fn stream_key(client: &Client, stream_id: &str) -> Option<String> {
    if stream_id.is_empty() {
        return None;
    }
    let request = pb::GetAlignmentRequest { initiative: stream_id.to_owned() };
    client.queries().get_alignment(request).await.ok().map(|r| r.into_inner().key)
}

/// `--key`: a verifier key, or a file that holds one.
fn verifier_key(given: &str) -> Result<CheckpointVerifier, Failure> {
    match CheckpointVerifier::parse(given) {
        Ok(key) => Ok(key),
        Err(not_a_key) => match std::fs::read_to_string(given) {
            Ok(text) => CheckpointVerifier::parse(&text).map_err(|e| Failure::invalid(format!("--key {given}: {e}"))),
            Err(_) => Err(Failure::invalid(format!("--key: {not_a_key}"))),
        },
    }
}

pub(super) async fn verify_kept(client: Option<&Client>, json_out: bool, args: VerifyArgs) -> Result<Output, Failure> {
    let (Some(path), Some(key)) = (&args.checkpoints, &args.key) else {
        return Err(Failure::invalid("--checkpoints FILE needs --key KEY"));
    };
    let key = verifier_key(key)?;
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Failure::invalid(format!("cannot read {file}: {e}")))?;
    let kept = parse_kept(&text).map_err(|e| Failure::invalid(format!("{file}: {e}")))?;
    if kept.is_empty() {
        return Err(Failure::invalid(format!("{file} holds no kept checkpoint")));
    }
    let marks = kept_marks(&kept, &key)
        .map_err(|e| Failure::new(ExitClass::VerificationFailed, format!("verification FAILED: {file}, {e}")))?;
    let (count, largest) = (marks.len() as u64, marks.iter().map(|mark| mark.size).max().unwrap_or_default());
    let mut audit = LogAudit::new(marks);
    let source = match (&args.export, client) {
        (Some(log), _) => {
            read_log_file(log, &mut audit)?;
            log.display().to_string()
        }
        (None, Some(client)) => {
            read_log_from(client, &mut audit).await?;
            format!("the log of {}", client.server())
        }
        (None, None) => return Err(Failure::invalid("--checkpoints without --export needs a server")),
    };
    let report = audit.finish();
    let json = json!({
        "ok": report.ok(),
        "events_checked": report.events_checked,
        "checkpoints_kept": count,
        "checkpoints_matched": report.checkpoints_matched,
        "covered": largest,
        "broken_chain": report.broken_chain,
        "mismatch": report.mismatch,
    });
    if report.ok() {
        return Ok(Output::new(
            format!(
                "OK: {source} matches all {count} kept checkpoint{} (its first {largest} event{}; {} checked). \
                 Events after the last kept checkpoint are covered by none.",
                plural(count),
                plural(largest),
                report.events_checked
            ),
            json,
        ));
    }
    if json_out {
        Output::new(String::new(), json).print(true);
    }
    let message = match (&report.broken_chain, &report.mismatch) {
        (Some(broken), _) => format!(
            "verification FAILED: {source}: stream {} at version {}, position {}: {}",
            broken.stream_id,
            broken.stream_version,
            broken.position,
            one_line(&broken.reason)
        ),
        (None, Some(mismatch)) => format!("verification FAILED against {file}: {}", one_line(&mismatch.describe())),
        (None, None) => "verification FAILED".to_owned(),
    };
    Err(Failure::new(ExitClass::VerificationFailed, message))
}

/// Feeds an export file's events, in the file's order (commit order), to the audit.
fn read_log_file(path: &Path, audit: &mut LogAudit) -> Result<(), Failure> {
    let name = path.display();
    let file = std::fs::File::open(path).map_err(|e| Failure::invalid(format!("cannot read {name}: {e}")))?;
    for (number, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Failure::invalid(format!("line {} of {name} cannot be read: {e}", number + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        let event = ExportLine::parse(number + 1, &line).map_err(|e| Failure::invalid(format!("{name}: {e}")))?;
        audit.push(&event);
        if audit.is_done() {
            break;
        }
    }
    Ok(())
}

/// Feeds the server's whole log, read in commit order, to the audit, until the outcome
/// is known or every event the log held when the read started has come.
async fn read_log_from(client: &Client, audit: &mut LogAudit) -> Result<(), Failure> {
    let expected = events_in_log(client).await?;
    let request = pb::ReadEventsRequest { follow: true, ..Default::default() };
    let mut events = client.reply(client.audit().read_events(request).await)?;
    let (mut count, mut caught_up, mut noted) = (0u64, false, false);
    while !(audit.is_done() || caught_up && count >= expected) {
        let missing = Some(expected.saturating_sub(count)).filter(|_| caught_up);
        let Some(message) = next_message(&mut events, missing, &mut noted, client.server()).await? else { break };
        match message.item {
            Some(pb::read_events_response::Item::Event(event)) => {
                count += 1;
                let line = event_line(&event)?;
                let event = ExportLine::parse(usize::try_from(count).unwrap_or(usize::MAX), &line).map_err(|e| {
                    Failure::new(ExitClass::Internal, format!("event {count} of the server's log cannot be read: {e}"))
                })?;
                audit.push(&event);
            }
            Some(pb::read_events_response::Item::CaughtUp(_)) => caught_up = true,
            None => {}
        }
    }
    Ok(())
}
