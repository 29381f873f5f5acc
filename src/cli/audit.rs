//! `accord audit …`: the history as auditors read it, over the server's `AuditService`.
//!
//! - `history` reads the log (one initiative's stream, or the global log) and prints a
//!   timeline people can read — when, who, what — or, with `--json`, every stored field of
//!   each event, one JSON object per line. `--follow` keeps reading live until Ctrl-C.
//! - `as-of` and `explain` replay one initiative to a past time or stream version on the
//!   server; `as-of` shows the board as `status` does, `explain` the events behind each
//!   function's state and each decision's lifecycle.
//! - `verify` recomputes the hash chains on the server and exits 7 at the first broken link;
//!   with `--checkpoints`, it checks the log (from the server, or an export file with
//!   `--export`) against signed checkpoints kept outside the database instead.
//! - `checkpoint` records or lists checkpoints of the log tree, and `export`s the signed
//!   ones for keeping elsewhere; `keygen` makes the server's checkpoint signing key.
//! - `export` writes the log as JSON Lines (the same objects as `history --json`); `import`
//!   streams such a file to an empty server, which checks every hash and keeps all or nothing.
//!
//! History and export print as the events arrive (a log can be large, and a followed one
//! never ends), so they write to stdout themselves and return [`Output::streamed`].

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use clap::{ArgGroup, Args, Subcommand};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::Stream;

use super::client::Client;
use super::output::{Cell, ExitClass, Style, Table, Tone, one_line, tone_of};
use super::resolve::{self, short_decision_id, short_id_wide};
use super::status::{ListFilters, alignment_text};
use super::views::{
    alignment_json, decision_alignment_name, decision_status_name, function_state_name, initiative_status_name,
    state_word, time, time_text,
};
use super::{Context, Failure, Output};
use crate::domain::event::EVENT_TYPES;
use crate::proto as pb;
use crate::store::audit::{CheckpointRecord, CheckpointTree, ExportLine, StreamHead};
use crate::store::note::{CheckpointVerifier, KeptCheckpoint, generate_key, kept_marks, parse_kept};
use crate::store::tlog::LogAudit;

pub const EXAMPLES: &str = "\
Examples:
  accord audit history CHECKOUT-42                     # who did what, when
  accord audit as-of CHECKOUT-42 --version 10          # the board as it was then
  accord audit explain CHECKOUT-42 --at 2026-03-01     # why each function was in its state
  accord audit verify                                  # recompute every hash chain
  accord audit verify --checkpoints kept.jsonl --key \"$(cat verifier.key)\"   # against checkpoints kept elsewhere
  accord audit export -o accord.jsonl && accord --server http://new:50051 audit import accord.jsonl";

const HISTORY_EXAMPLES: &str = "\
Examples:
  accord audit history CHECKOUT-42
  accord audit history CHECKOUT-42 --from-version 6 --type SignOffRecorded,DecisionRevised
  accord audit history --after-position 1200 --follow         # the whole log, then live (Ctrl-C stops)
  accord --json audit history CHECKOUT-42 | jq -r '.event_type'

One line per event: when (UTC), the initiative (for the whole log), its stream version,
its global position, who, the event type and what it did. With --json, one JSON object
per line with every stored field (as `accord audit export` writes them); with --follow,
the line {\"caught_up\": {\"position\": P}} marks the end of the history.";

const AS_OF_EXAMPLES: &str = "\
Examples:
  accord audit as-of CHECKOUT-42 --version 10
  accord audit as-of CHECKOUT-42 --at 2026-03-01T09:30:00Z
  accord audit as-of CHECKOUT-42 --at 2026-03-01            # a date: as at the end of that day (UTC)
  accord --json audit as-of CHECKOUT-42 --version 10 | jq .status";

const EXPLAIN_EXAMPLES: &str = "\
Examples:
  accord audit explain CHECKOUT-42                      # every decision, now
  accord audit explain CHECKOUT-42 01a21566 --version 10
  accord --json audit explain CHECKOUT-42 --at 2026-03-01 | jq '.decisions[].functions'";

const VERIFY_EXAMPLES: &str = "\
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

const CHECKPOINT_EXAMPLES: &str = "\
Examples:
  accord audit checkpoint create
  accord audit checkpoint list
  accord audit checkpoint create --root-only >> roots-kept-elsewhere.txt
  accord audit checkpoint export -o kept.jsonl                           # the signed notes, to keep elsewhere
  accord audit checkpoint export --after 41 >> kept.jsonl                # only those newer than checkpoint 41";

const KEYGEN_EXAMPLES: &str = "\
Examples:
  accord audit keygen --name accord.acme.com/prod -o checkpoint.key > verifier.key
  accord serve --checkpoint-key checkpoint.key

Writes a new Ed25519 key to FILE (readable by you only; never overwritten) in Go's note
format, and prints its verifier key (name+hash+base64) for auditors. The name is the
origin line of every checkpoint the key signs: one name per log, stable for its life.";

const EXPORT_EXAMPLES: &str = "\
Examples:
  accord audit export -o accord.jsonl           # the whole log; the count goes to stderr
  accord audit export CHECKOUT-42 > checkout-42.jsonl
  accord audit export | jq -c 'select(.event_type == \"DecisionAccepted\")'";

const IMPORT_EXAMPLES: &str = "\
Examples:
  accord --server http://127.0.0.1:50052 audit import accord.jsonl
  accord audit export --server http://old:50051 | accord --server http://new:50051 audit import -

The server must hold no events yet. It checks every line (JSON, chain order, hashes)
and writes all of them or nothing; a refusal names the line.";

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The history, one line per event (when, who, what): one initiative's, or the whole log.
    #[command(after_help = HISTORY_EXAMPLES)]
    History(HistoryArgs),
    /// The board of an initiative as it was at a past time or stream version.
    #[command(after_help = AS_OF_EXAMPLES)]
    AsOf(AsOfArgs),
    /// Why each function is in its state on each decision: the reason and the events behind it.
    #[command(after_help = EXPLAIN_EXAMPLES)]
    Explain(ExplainArgs),
    /// Recompute the hash chains (one initiative or all) and check them against every checkpoint.
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(VerifyArgs),
    /// Record a checkpoint of the log tree, list them, or export the signed ones.
    #[command(after_help = CHECKPOINT_EXAMPLES)]
    Checkpoint(CheckpointArgs),
    /// Make a checkpoint signing key for the server (`serve --checkpoint-key`); prints its verifier key.
    #[command(after_help = KEYGEN_EXAMPLES)]
    Keygen(KeygenArgs),
    /// Write the log (or one initiative's events) as JSON Lines, every field of every event.
    #[command(after_help = EXPORT_EXAMPLES)]
    Export(ExportArgs),
    /// Load an export into an empty server, verifying every hash; all or nothing.
    #[command(after_help = IMPORT_EXAMPLES)]
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Key (CHECKOUT-42) or id of one initiative [default: the whole log].
    pub initiative: Option<String>,
    /// Start at this stream version of the initiative.
    #[arg(long, value_name = "N", requires = "initiative", conflicts_with = "after_position")]
    pub from_version: Option<u64>,
    /// Start after this global position (the whole log only).
    #[arg(long, value_name = "P", conflicts_with = "initiative")]
    pub after_position: Option<u64>,
    /// Only events of these types (repeat, or separate with commas), e.g. SignOffRecorded.
    #[arg(long = "type", value_name = "TYPE", value_delimiter = ',')]
    pub types: Vec<String>,
    /// After the history, keep printing new events as they are recorded, until Ctrl-C.
    #[arg(long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("point").required(true).args(["at", "version"])))]
pub struct AsOfArgs {
    /// Key (CHECKOUT-42) or id of the initiative.
    pub initiative: String,
    /// A time: RFC 3339 (2026-03-01T09:30:00Z), UTC (2026-03-01 09:30:00), or a date (its end, UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_at)]
    pub at: Option<DateTime<Utc>>,
    /// A stream version of the initiative (as `audit history` shows them).
    #[arg(long, value_name = "N")]
    pub version: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Key (CHECKOUT-42) or id of the initiative.
    pub initiative: String,
    /// Only this decision: its id or a prefix of at least 4 hex digits [default: every decision].
    pub decision: Option<String>,
    /// Explain the state at this time: RFC 3339, UTC, or a date (its end) [default: now].
    #[arg(long, value_name = "TIME", value_parser = parse_at, conflicts_with = "version")]
    pub at: Option<DateTime<Utc>>,
    /// Explain the state at this stream version [default: now].
    #[arg(long, value_name = "N")]
    pub version: Option<u64>,
}

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

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The key's name, which is the log's origin [default: accord.example/log-<random>].
    #[arg(long)]
    pub name: Option<String>,
    /// Where to write the private key (a new file).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckpointExportArgs {
    /// Write to this file instead of stdout (written whole or not at all).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Only the checkpoints after this id (to add to a file kept before).
    #[arg(long, value_name = "ID")]
    pub after: Option<u64>,
}

#[derive(Debug, Args)]
pub struct CheckpointArgs {
    #[command(subcommand)]
    pub command: Option<CheckpointCommand>,
    /// Print only the Merkle root (create) or each checkpoint's id and root (list).
    #[arg(long, global = true)]
    pub root_only: bool,
}

#[derive(Debug, Subcommand)]
pub enum CheckpointCommand {
    /// Record every stream's head hash now, combined into one Merkle root (keep it elsewhere too).
    #[command(
        after_help = "Example:\n  accord audit checkpoint create\n  accord --json audit checkpoint create > checkpoint.json    # the root and every stream head"
    )]
    Create,
    /// List the checkpoints, oldest first (the default of `accord audit checkpoint`).
    #[command(after_help = "Example:\n  accord audit checkpoint list\n  accord audit checkpoint list --root-only")]
    List,
    /// Write the signed checkpoints as JSON Lines (note, frontier, changed heads), to keep outside the database.
    #[command(
        after_help = "Example:\n  accord audit checkpoint export -o kept.jsonl\n  accord audit checkpoint export --after 41 >> kept.jsonl"
    )]
    Export(CheckpointExportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Key (CHECKOUT-42) or id of one initiative [default: the whole log].
    pub initiative: Option<String>,
    /// Write to this file instead of stdout (written whole or not at all).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The export (JSON Lines), or - for standard input.
    pub file: String,
}

impl AuditCommand {
    /// Whether the command needs no server: making a key, checking an export file.
    pub fn is_offline(&self) -> bool {
        match self {
            AuditCommand::Keygen(_) => true,
            AuditCommand::Verify(args) => args.export.is_some(),
            _ => false,
        }
    }
}

/// Runs a command that needs no server (see `AuditCommand::is_offline`).
pub async fn run_offline(json: bool, command: AuditCommand) -> Result<Output, Failure> {
    match command {
        AuditCommand::Keygen(args) => keygen(args),
        AuditCommand::Verify(args) => verify_kept(None, json, args).await,
        _ => Err(Failure::invalid("this audit command needs a server")),
    }
}

pub async fn run(ctx: &Context, command: AuditCommand) -> Result<Output, Failure> {
    match command {
        AuditCommand::History(args) => history(ctx, args).await,
        AuditCommand::AsOf(args) => as_of(ctx, &args.initiative, Point::of(args.at, args.version)).await,
        AuditCommand::Explain(args) => explain(ctx, args).await,
        AuditCommand::Verify(args) if args.checkpoints.is_some() => {
            verify_kept(Some(&ctx.client), ctx.json, args).await
        }
        AuditCommand::Verify(args) => verify(ctx, args).await,
        AuditCommand::Checkpoint(args) => checkpoint(ctx, args).await,
        AuditCommand::Keygen(args) => keygen(args),
        AuditCommand::Export(args) => export(ctx, args).await,
        AuditCommand::Import(args) => import(ctx, args).await,
    }
}

// ---------------------------------------------------------------------------------------
// Times and points in the past

/// Which state of an initiative: now, at a time, or at a stream version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Point {
    Now,
    Time(DateTime<Utc>),
    Version(u64),
}

impl Point {
    fn of(at: Option<DateTime<Utc>>, version: Option<u64>) -> Point {
        match (at, version) {
            (Some(at), _) => Point::Time(at),
            (None, Some(version)) => Point::Version(version),
            (None, None) => Point::Now,
        }
    }

    fn json(self) -> Value {
        match self {
            Point::Now => Value::Null,
            Point::Time(at) => json!({"time": at.to_rfc3339_opts(SecondsFormat::Micros, true)}),
            Point::Version(version) => json!({"version": version}),
        }
    }
}

fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(999_999_999),
    }
}

fn utc_text(at: DateTime<Utc>) -> String {
    time_text(Some(&timestamp(at)))
}

/// `--at`: an RFC 3339 time; a time without a zone, taken as UTC (also as this client
/// prints them, `2026-03-01 09:30:00 UTC`); or a date, meaning the end of that day in UTC.
pub fn parse_at(given: &str) -> Result<DateTime<Utc>, String> {
    let given = given.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(given) {
        return Ok(at.with_timezone(&Utc));
    }
    let local = given.strip_suffix("UTC").or_else(|| given.strip_suffix('Z')).unwrap_or(given).trim_end();
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(local, format) {
            return Ok(at.and_utc());
        }
    }
    if let Some(end) =
        NaiveDate::parse_from_str(local, "%Y-%m-%d").ok().and_then(|d| d.and_hms_micro_opt(23, 59, 59, 999_999))
    {
        return Ok(end.and_utc());
    }
    Err("expected an RFC 3339 time (2026-03-01T09:30:00Z), a UTC time (2026-03-01 09:30:00) \
         or a date (2026-03-01, meaning the end of that day, UTC)"
        .to_owned())
}

// ---------------------------------------------------------------------------------------
// Reading the whole log to its end
//
// A read of the global log ends where the server can hand events out without ever
// skipping a late commit: on PostgreSQL, a transaction still running anywhere on the
// database server holds global reads back until it ends (README, "The gap problem"). So
// a read of the whole log that must be complete (an export; a history without filters)
// first counts the events the log holds, reads as a follower, and stops only once it has
// them all, saying why if that takes a while.

/// How long a read of the whole log waits for events it knows are there before saying why.
const WAIT_NOTE: Duration = Duration::from_secs(2);

/// How many events the log holds: the sum of every initiative's stream version (archived
/// ones too). Projections are written in the transactions of their events, so this is
/// exactly the count of committed events.
async fn events_in_log(client: &Client) -> Result<u64, Failure> {
    let every = ListFilters { archived: true, ..ListFilters::default() };
    Ok(every.fetch(client).await?.iter().map(|view| view.version).sum())
}

/// The next message of a read. While `missing` events are still to come after the read
/// caught up, says once on stderr why it waits, if it waits long.
async fn next_message(
    events: &mut tonic::Streaming<pb::ReadEventsResponse>,
    missing: Option<u64>,
    noted: &mut bool,
    server: &str,
) -> Result<Option<pb::ReadEventsResponse>, Failure> {
    let next = events.message();
    tokio::pin!(next);
    let message = match missing {
        Some(missing) if !*noted => tokio::select! {
            message = &mut next => message,
            () = tokio::time::sleep(WAIT_NOTE) => {
                *noted = true;
                eprintln!(
                    "waiting for {missing} more event{} of the log: a transaction still running on the \
                     database holds reads of the whole log back (Ctrl-C stops)",
                    plural(missing)
                );
                next.await
            }
        },
        _ => next.await,
    };
    message.map_err(|status| Failure::from_status(&status, server))
}

// ---------------------------------------------------------------------------------------
// history

/// Events shown before the first table is printed: their widths set the columns.
const TIMELINE_BATCH: usize = 500;

async fn history(ctx: &Context, args: HistoryArgs) -> Result<Output, Failure> {
    let client = &ctx.client;
    let scope = match &args.initiative {
        Some(given) => Some(resolve::alignment(client, given).await?),
        None => None,
    };
    // The whole log, unfiltered, is read to the count of events it holds (see `events_in_log`).
    let whole_log = scope.is_none() && args.types.is_empty() && args.after_position.is_none() && !args.follow;
    let expected = if whole_log { Some(events_in_log(client).await?) } else { None };
    let request = pb::ReadEventsRequest {
        initiative: scope.as_ref().map(|v| v.initiative_id.clone()).unwrap_or_default(),
        after_position: args.after_position.unwrap_or(0),
        from_version: args.from_version.unwrap_or(0),
        event_types: args.types.iter().map(|t| event_type_name(t)).collect(),
        follow: args.follow || expected.is_some(),
    };
    let mut events = client.reply(client.audit().read_events(request).await)?;
    let mut names = Streams::new(client, scope.clone());
    let mut timeline = Timeline::new(scope.is_none(), ctx.style);
    // Buffered, and flushed once caught up and after every live event.
    let mut out = io::BufWriter::new(io::stdout());
    let mut shown = 0u64;
    // Past the caught-up marker of a followed read: every event is printed as it comes.
    let mut live = false;
    let (mut caught_up, mut noted) = (false, false);
    // Ctrl-C ends a followed read (exit 0); if it cannot be caught, the default applies.
    let interrupted = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(interrupted);
    loop {
        if let Some(expected) = expected
            && caught_up
            && shown >= expected
        {
            break;
        }
        let message = if args.follow {
            tokio::select! {
                // Polled first, so Ctrl-C is caught from the first event on.
                biased;
                () = &mut interrupted => break,
                message = events.message() => message.map_err(|status| Failure::from_status(&status, client.server())),
            }
        } else {
            let missing = expected.filter(|_| caught_up).map(|n| n.saturating_sub(shown));
            next_message(&mut events, missing, &mut noted, client.server()).await
        };
        let item = match message? {
            None => break,
            Some(pb::ReadEventsResponse { item: Some(item) }) => item,
            Some(pb::ReadEventsResponse { item: None }) => continue,
        };
        let written = match item {
            pb::read_events_response::Item::Event(event) => {
                shown += 1;
                if ctx.json {
                    writeln!(out, "{}", event_line(&event)?).and_then(|()| if live { out.flush() } else { Ok(()) })
                } else {
                    let row = names.row(&event).await;
                    timeline.push(row);
                    if live || timeline.rows.len() >= TIMELINE_BATCH { timeline.flush(&mut out) } else { Ok(()) }
                }
            }
            pb::read_events_response::Item::CaughtUp(caught_up) if args.follow => {
                live = true;
                if ctx.json {
                    writeln!(out, "{}", json!({"caught_up": {"position": caught_up.position}}))
                        .and_then(|()| out.flush())
                } else {
                    timeline.flush(&mut out).and_then(|()| {
                        let marker = format!(
                            "— caught up at position {} ({shown} event{} so far); following new events, Ctrl-C stops —",
                            caught_up.position,
                            plural(shown)
                        );
                        writeln!(out, "{}", ctx.style.paint(&marker, Tone::Dim))
                    })
                    .and_then(|()| out.flush())
                }
            }
            pb::read_events_response::Item::CaughtUp(_) => {
                caught_up = true;
                Ok(())
            }
        };
        if !still_open(written)? {
            return Ok(Output::streamed());
        }
    }
    let written = timeline.flush(&mut out).and_then(|()| {
        if shown == 0 && !ctx.json && !args.follow {
            let what = match &scope {
                Some(view) => format!("{} has no events", view.key),
                None => "the log has no events".to_owned(),
            };
            let filtered = !args.types.is_empty() || args.from_version.is_some() || args.after_position.is_some();
            writeln!(out, "{what}{}", if filtered { " that match" } else { "" })
        } else {
            Ok(())
        }
    });
    still_open(written.and_then(|()| out.flush()))?;
    Ok(Output::streamed())
}

/// Whether stdout still takes lines: a closed pipe (`| head`) ends the command quietly.
fn still_open(written: io::Result<()>) -> Result<bool, Failure> {
    match written {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(Failure::new(ExitClass::Internal, format!("cannot write to stdout: {error}"))),
    }
}

/// An event type as the server names it, from any spelling (`signoffrecorded`,
/// `sign-off-recorded`); anything else is passed on for the server to refuse.
fn event_type_name(given: &str) -> String {
    let squash = |s: &str| s.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    let wanted = squash(given);
    EVENT_TYPES.iter().find(|t| squash(t) == wanted).map_or_else(|| given.trim().to_owned(), |t| (*t).to_owned())
}

/// What the timeline knows of each initiative met in the log: its key and board (for
/// short decision ids as `status` shows them) and the feedback seen so far.
struct Streams<'a> {
    client: &'a Client,
    known: HashMap<String, Known>,
}

struct Known {
    key: String,
    view: Option<pb::InitiativeAlignment>,
    feedback: Vec<String>,
}

impl Known {
    fn decision(&self, id: &str) -> String {
        match &self.view {
            Some(view) if view.decisions.iter().any(|d| d.decision_id == id) => short_decision_id(id, view),
            _ => id.chars().take(8).collect(),
        }
    }

    fn feedback(&self, id: &str) -> String {
        short_id_wide(id, self.feedback.iter().map(String::as_str))
    }
}

impl<'a> Streams<'a> {
    fn new(client: &'a Client, scope: Option<pb::InitiativeAlignment>) -> Streams<'a> {
        let mut known = HashMap::new();
        if let Some(view) = scope {
            known.insert(
                view.initiative_id.clone(),
                Known { key: view.key.clone(), view: Some(view), feedback: vec![] },
            );
        }
        Streams { client, known }
    }

    /// What is known of a stream, asking the server for its board the first time (a
    /// stream it cannot show is named by the start of its id).
    async fn get(&mut self, stream_id: &str) -> &mut Known {
        let client = self.client;
        match self.known.entry(stream_id.to_owned()) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(slot) => {
                let request = pb::GetAlignmentRequest { initiative: stream_id.to_owned() };
                let view = client.queries().get_alignment(request).await.ok().map(tonic::Response::into_inner);
                let key = view.as_ref().map_or_else(|| stream_id.chars().take(8).collect(), |v| v.key.clone());
                slot.insert(Known { key, view, feedback: vec![] })
            }
        }
    }

    /// One timeline line: when, (which initiative,) version, position, who, what.
    async fn row(&mut self, event: &pb::StoredEvent) -> Vec<(String, Option<Tone>)> {
        let payload: Value = serde_json::from_str(&event.payload_json).unwrap_or(Value::Null);
        let known = self.get(&event.stream_id).await;
        if event.event_type == "FeedbackRecorded"
            && let Some(id) = payload.get("feedback_id").and_then(Value::as_str)
            && !known.feedback.iter().any(|f| f == id)
        {
            known.feedback.push(id.to_owned());
        }
        if event.event_type == "InitiativeCreated"
            && let Some(key) = payload.get("key").and_then(Value::as_str)
        {
            key.clone_into(&mut known.key);
        }
        let (summary, tone) = summarise(&event.event_type, &payload, known);
        vec![
            (time_text(event.recorded_at.as_ref()), None),
            (known.key.clone(), None),
            (event.stream_version.to_string(), None),
            (event.position.to_string(), None),
            (event.actor.clone(), None),
            (event.event_type.clone(), tone),
            (summary, None),
        ]
    }
}

/// The timeline as an aligned table that can grow: rows are printed in batches, each
/// batch widening the columns as needed, and live rows one at a time.
struct Timeline {
    with_initiative: bool,
    style: Style,
    widths: Vec<usize>,
    rows: Vec<Vec<(String, Option<Tone>)>>,
    header_done: bool,
}

const TIMELINE_HEADERS: [&str; 7] = ["AT", "INITIATIVE", "VER", "POS", "BY", "EVENT", "WHAT"];

impl Timeline {
    fn new(with_initiative: bool, style: Style) -> Timeline {
        Timeline { with_initiative, style, widths: vec![0; TIMELINE_HEADERS.len()], rows: vec![], header_done: false }
    }

    fn push(&mut self, row: Vec<(String, Option<Tone>)>) {
        self.rows.push(row);
    }

    fn columns(&self) -> impl Iterator<Item = usize> + use<> {
        let with_initiative = self.with_initiative;
        (0..TIMELINE_HEADERS.len()).filter(move |&i| with_initiative || i != 1)
    }

    fn flush(&mut self, out: &mut impl Write) -> io::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        for (i, header) in TIMELINE_HEADERS.iter().enumerate() {
            self.widths[i] = self.widths[i].max(header.chars().count());
        }
        for row in &self.rows {
            for (i, (text, _)) in row.iter().enumerate() {
                self.widths[i] = self.widths[i].max(text.chars().count());
            }
        }
        let mut text = String::new();
        if !self.header_done {
            let header: Vec<(String, Option<Tone>)> =
                TIMELINE_HEADERS.iter().map(|h| ((*h).to_owned(), Some(Tone::Bold))).collect();
            text.push_str(&self.line(&header));
            self.header_done = true;
        }
        for row in std::mem::take(&mut self.rows) {
            text.push_str(&self.line(&row));
        }
        out.write_all(text.as_bytes())?;
        out.flush()
    }

    fn line(&self, row: &[(String, Option<Tone>)]) -> String {
        let columns: Vec<usize> = self.columns().collect();
        let mut line = String::new();
        for (n, &i) in columns.iter().enumerate() {
            let (text, tone) = &row[i];
            line.push_str(&self.style.paint_opt(text, *tone));
            if n + 1 < columns.len() {
                line.push_str(&" ".repeat(self.widths[i] - text.chars().count() + 2));
            }
        }
        let mut line = line.trim_end().to_owned();
        line.push('\n');
        line
    }
}

// ---------------------------------------------------------------------------------------
// Event summaries: one short line from the event type and its payload

/// Text of a payload field ("" when absent).
fn field<'a>(payload: &'a Value, name: &str) -> &'a str {
    payload.get(name).and_then(Value::as_str).unwrap_or("")
}

/// A list field as "a, b, c".
fn list(payload: &Value, name: &str) -> String {
    payload
        .get(name)
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// Free text (bodies, reasons) on one line, cut to a readable length.
fn brief(text: &str) -> String {
    const MAX: usize = 100;
    let text = one_line(text);
    if text.chars().count() <= MAX { text } else { format!("{}…", text.chars().take(MAX - 1).collect::<String>()) }
}

/// ": text" when there is text.
fn colon(text: &str) -> String {
    if text.trim().is_empty() { String::new() } else { format!(": {}", brief(text)) }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// What an event did, in a few words (the actor is shown beside it), and how it reads:
/// approvals good, rejections, objections and overrides bad.
fn summarise(event_type: &str, payload: &Value, names: &Known) -> (String, Option<Tone>) {
    let decision = |name: &str| names.decision(field(payload, name));
    let feedback = || names.feedback(field(payload, "feedback_id"));
    match event_type {
        "InitiativeCreated" => (
            format!(
                "created {} {:?} — owner {}, stage {}, needs {}",
                field(payload, "key"),
                field(payload, "title"),
                field(payload, "owner"),
                field(payload, "stage"),
                list(payload, "required_functions")
            ),
            None,
        ),
        "InitiativeUpdated" => {
            let mut changes = Vec::new();
            if payload.get("title").is_some() {
                changes.push(format!("title {:?}", field(payload, "title")));
            }
            if payload.get("summary").is_some() {
                changes.push("summary".to_owned());
            }
            if payload.get("owner").is_some() {
                changes.push(format!("owner {}", field(payload, "owner")));
            }
            if payload.get("required_functions").is_some() {
                changes.push(format!("needs {}", list(payload, "required_functions")));
            }
            (format!("updated {}", if changes.is_empty() { "nothing".to_owned() } else { changes.join(", ") }), None)
        }
        "StageChanged" => (format!("stage {} → {}", field(payload, "from"), field(payload, "to")), None),
        "InitiativeArchived" => (format!("archived the initiative{}", colon(field(payload, "reason"))), None),
        "StakeholderAssigned" | "StakeholderRemoved" => (
            format!(
                "{} {} as {} {}",
                if event_type == "StakeholderAssigned" { "assigned" } else { "removed" },
                field(payload, "principal"),
                field(payload, "function"),
                field(payload, "role")
            ),
            None,
        ),
        "DecisionProposed" => {
            let title = payload.get("content").map_or("", |c| field(c, "title"));
            let supersedes = match field(payload, "supersedes") {
                "" => String::new(),
                _ => format!(", to supersede {}", decision("supersedes")),
            };
            (
                format!(
                    "proposed decision {} {title:?} (needs {}){supersedes}",
                    decision("decision_id"),
                    list(payload, "required_functions")
                ),
                None,
            )
        }
        "DecisionRevised" => {
            let kind = field(payload, "kind");
            let stale: Vec<String> = payload
                .get("stale")
                .and_then(Value::as_array)
                .map(|items| {
                    items.iter().map(|s| format!("{} for {}", field(s, "signer"), field(s, "function"))).collect()
                })
                .unwrap_or_default();
            let stale = if stale.is_empty() { String::new() } else { format!("; stale now: {}", stale.join(", ")) };
            let note = field(payload, "note");
            let note = if note.trim().is_empty() { String::new() } else { format!(" — {}", brief(note)) };
            (
                format!(
                    "revised decision {} to revision {} ({kind}){stale}{note}",
                    decision("decision_id"),
                    payload.get("revision").and_then(Value::as_u64).unwrap_or_default()
                ),
                (kind == "material").then_some(Tone::Warn),
            )
        }
        "DecisionAccepted" => {
            let revision = payload.get("revision").and_then(Value::as_u64).unwrap_or_default();
            match payload.get("override").filter(|o| !o.is_null()) {
                Some(record) => {
                    let unaligned: Vec<String> = record
                        .get("unaligned")
                        .and_then(Value::as_array)
                        .map(|pairs| {
                            pairs
                                .iter()
                                .filter_map(Value::as_array)
                                .map(|pair| {
                                    pair.iter()
                                        .filter_map(Value::as_str)
                                        .collect::<Vec<_>>()
                                        .join(" ")
                                        .replace('_', " ")
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    (
                        format!(
                            "accepted decision {} (revision {revision}) by OVERRIDE although {}{}",
                            decision("decision_id"),
                            if unaligned.is_empty() { "not aligned".to_owned() } else { unaligned.join(", ") },
                            colon(field(record, "reason"))
                        ),
                        Some(Tone::Bad),
                    )
                }
                None => (
                    format!("accepted decision {} (revision {revision}), aligned", decision("decision_id")),
                    Some(Tone::Good),
                ),
            }
        }
        "DecisionRejected" => (
            format!("rejected decision {}{}", decision("decision_id"), colon(field(payload, "reason"))),
            Some(Tone::Bad),
        ),
        "DecisionWithdrawn" => {
            (format!("withdrew decision {}{}", decision("decision_id"), colon(field(payload, "reason"))), None)
        }
        "DecisionSuperseded" => {
            (format!("decision {} is superseded by {}", decision("decision_id"), decision("superseded_by")), None)
        }
        "FeedbackRecorded" => {
            let kind = field(payload, "kind");
            let on = match field(payload, "decision_id") {
                "" => "the initiative".to_owned(),
                _ => format!("decision {}", decision("decision_id")),
            };
            let tone = match kind {
                "objection" => Some(Tone::Bad),
                "concern" => Some(Tone::Warn),
                _ => None,
            };
            (
                format!(
                    "{kind} {} from {} ({}) on {on}{}",
                    feedback(),
                    field(payload, "function"),
                    field(payload, "source"),
                    colon(field(payload, "body"))
                ),
                tone,
            )
        }
        "FeedbackResolved" => {
            (format!("resolved feedback {}{}", feedback(), colon(field(payload, "resolution"))), Some(Tone::Good))
        }
        "FeedbackReopened" => (format!("reopened feedback {}{}", feedback(), colon(field(payload, "reason"))), None),
        "SignOffRecorded" => {
            let verdict = field(payload, "verdict");
            let (word, tone) =
                if verdict == "reject" { ("rejected", Some(Tone::Bad)) } else { ("approved", Some(Tone::Good)) };
            let words: Vec<&str> = [field(payload, "reason"), field(payload, "comment")]
                .into_iter()
                .filter(|w| !w.trim().is_empty())
                .collect();
            (
                format!(
                    "{word} decision {} (revision {}) for {}{}",
                    decision("decision_id"),
                    payload.get("revision").and_then(Value::as_u64).unwrap_or_default(),
                    field(payload, "function"),
                    colon(&words.join(" — "))
                ),
                tone,
            )
        }
        "SignOffRevoked" => (
            format!("revoked the {} verdict on decision {}", field(payload, "function"), decision("decision_id")),
            None,
        ),
        other => (format!("{other}{}", colon(&payload.to_string())), None),
    }
}

// ---------------------------------------------------------------------------------------
// Stored events as JSON (history --json, export)

/// Every field of a stored event, in the proto's order, with the payload as JSON.
#[derive(Debug, Serialize)]
struct EventLine<'a> {
    position: u64,
    stream_id: &'a str,
    stream_version: u64,
    event_id: &'a str,
    event_type: &'a str,
    schema_version: i32,
    payload: Value,
    actor: &'a str,
    command_id: &'a str,
    correlation_id: &'a str,
    causation_id: &'a str,
    recorded_at: Option<String>,
    prev_hash: &'a str,
    hash: &'a str,
}

/// One event as one line of JSON.
fn event_line(event: &pb::StoredEvent) -> Result<String, Failure> {
    let payload: Value = serde_json::from_str(&event.payload_json).map_err(|e| {
        Failure::new(
            ExitClass::Internal,
            format!("the event at position {} came with a payload that is not JSON: {e}", event.position),
        )
    })?;
    let line = EventLine {
        position: event.position,
        stream_id: &event.stream_id,
        stream_version: event.stream_version,
        event_id: &event.event_id,
        event_type: &event.event_type,
        schema_version: event.schema_version,
        payload,
        actor: &event.actor,
        command_id: &event.command_id,
        correlation_id: &event.correlation_id,
        causation_id: &event.causation_id,
        recorded_at: time(event.recorded_at.as_ref()).map(|at| at.to_rfc3339_opts(SecondsFormat::Micros, true)),
        prev_hash: &event.prev_hash,
        hash: &event.hash,
    };
    serde_json::to_string(&line)
        .map_err(|e| Failure::new(ExitClass::Internal, format!("cannot encode the event as JSON: {e}")))
}

// ---------------------------------------------------------------------------------------
// as-of and explain

async fn as_of(ctx: &Context, initiative: &str, point: Point) -> Result<Output, Failure> {
    use pb::get_alignment_as_of_request::At;
    let client = &ctx.client;
    let at = match point {
        Point::Time(at) => Some(At::Time(timestamp(at))),
        Point::Version(version) => Some(At::Version(version)),
        Point::Now => None,
    };
    let request = pb::GetAlignmentAsOfRequest { initiative: initiative.trim().to_owned(), at };
    let view = client.reply(client.audit().get_alignment_as_of(request).await)?;
    let heading = match point {
        Point::Time(at) => format!(
            "{} as it was at {} (version {}, last event at {})",
            view.key,
            utc_text(at),
            view.version,
            time_text(view.last_activity.as_ref())
        ),
        _ => format!("{} as it was at version {} ({})", view.key, view.version, time_text(view.last_activity.as_ref())),
    };
    let text = format!("{}\n\n{}", ctx.style.paint(&heading, Tone::Bold), alignment_text(&view, ctx.style));
    let mut json = alignment_json(&view);
    if let Value::Object(fields) = &mut json {
        fields.insert("as_of".to_owned(), point.json());
    }
    Ok(Output::new(text, json))
}

async fn explain(ctx: &Context, args: ExplainArgs) -> Result<Output, Failure> {
    use pb::explain_request::At;
    let client = &ctx.client;
    let view = resolve::alignment(client, &args.initiative).await?;
    let decision_id = match &args.decision {
        Some(given) => resolve::decision_id(&view, given)?,
        None => String::new(),
    };
    let point = Point::of(args.at, args.version);
    let at = match point {
        Point::Time(at) => Some(At::Time(timestamp(at))),
        Point::Version(version) => Some(At::Version(version)),
        Point::Now => None,
    };
    let request = pb::ExplainRequest { initiative: view.initiative_id.clone(), decision_id, at };
    let explanation = client.reply(client.audit().explain(request).await)?;
    Ok(Output::new(explanation_text(&explanation, &view, point, ctx.style), explanation_json(&explanation, point)))
}

fn event_ref_json(event: &pb::EventRef) -> Value {
    json!({
        "stream_version": event.stream_version,
        "event_type": event.event_type,
        "actor": event.actor,
        "recorded_at": super::views::time_json(event.recorded_at.as_ref()),
        "summary": event.summary,
    })
}

fn explanation_json(e: &pb::ExplainResponse, point: Point) -> Value {
    json!({
        "initiative_id": e.initiative_id,
        "key": e.key,
        "status": initiative_status_name(e.status()),
        "version": e.version,
        "as_of": point.json(),
        "decisions": e.decisions.iter().map(|d| json!({
            "decision_id": d.decision_id,
            "title": d.title,
            "status": decision_status_name(d.status()),
            "alignment": decision_alignment_name(d.alignment()),
            "revision": d.revision,
            "functions": d.functions.iter().map(|f| json!({
                "function": f.function,
                "state": function_state_name(f.state()),
                "reason": f.reason,
                "events": f.events.iter().map(event_ref_json).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "other_objections": d.other_objections.iter().map(event_ref_json).collect::<Vec<_>>(),
            "lifecycle": d.lifecycle.iter().map(event_ref_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "initiative_objections": e.initiative_objections.iter().map(event_ref_json).collect::<Vec<_>>(),
    })
}

/// Events behind a state, one line each: version, when, who, what.
fn event_table(events: &[pb::EventRef], indent: usize, style: Style) -> String {
    let mut table = Table::new(Vec::<String>::new()).indented(indent);
    for event in events {
        table.row(vec![
            Cell::toned(format!("v{}", event.stream_version), Some(Tone::Dim)),
            time_text(event.recorded_at.as_ref()).into(),
            event.actor.clone().into(),
            event.summary.clone().into(),
        ]);
    }
    table.render(style)
}

fn explanation_text(e: &pb::ExplainResponse, view: &pb::InitiativeAlignment, point: Point, style: Style) -> String {
    let status = initiative_status_name(e.status());
    let when = match point {
        Point::Now => String::new(),
        Point::Time(at) => format!(" (as it was at {})", utc_text(at)),
        Point::Version(_) => " (as it was then)".to_owned(),
    };
    let mut out = format!(
        "{} is {} at version {}{when}\n",
        style.paint(&e.key, Tone::Bold),
        style.paint_opt(status, tone_of(status)),
        e.version
    );
    if e.decisions.is_empty() {
        out.push_str("\nno decisions yet\n");
    }
    for d in &e.decisions {
        let alignment = if d.status() == pb::DecisionStatus::Proposed {
            decision_alignment_name(d.alignment())
        } else {
            decision_status_name(d.status())
        };
        out.push_str(&format!(
            "\n{} {} {} · {} · revision {} · {}\n",
            style.paint("Decision", Tone::Bold),
            short_decision_id(&d.decision_id, view),
            style.paint(&format!("{:?}", d.title), Tone::Bold),
            decision_status_name(d.status()),
            d.revision,
            style.paint_opt(alignment, tone_of(alignment)),
        ));
        for f in &d.functions {
            let word = state_word(f.state());
            let reason = if f.reason.is_empty() { String::new() } else { format!(" — {}", f.reason) };
            out.push_str(&format!("  {}: {}{reason}\n", f.function, style.paint_opt(word, tone_of(word))));
            out.push_str(&event_table(&f.events, 6, style));
        }
        if !d.other_objections.is_empty() {
            out.push_str("  objections from functions it does not need (they block it too):\n");
            out.push_str(&event_table(&d.other_objections, 6, style));
        }
        out.push_str("  lifecycle:\n");
        out.push_str(&event_table(&d.lifecycle, 6, style));
    }
    if !e.initiative_objections.is_empty() {
        out.push_str(&format!("\n{}\n", style.paint("Objections to the whole initiative (block it)", Tone::Bold)));
        out.push_str(&event_table(&e.initiative_objections, 2, style));
    }
    out
}

// ---------------------------------------------------------------------------------------
// verify and checkpoints

async fn verify(ctx: &Context, args: VerifyArgs) -> Result<Output, Failure> {
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

fn checkpoint_json(c: &pb::Checkpoint) -> Value {
    let tree = match c.tree() {
        pb::CheckpointTree::Log => "log",
        pb::CheckpointTree::StreamHeads => "stream-heads",
        pb::CheckpointTree::Unspecified => "unspecified",
    };
    json!({
        "id": c.id,
        "created_at": super::views::time_json(c.created_at.as_ref()),
        "tree": tree,
        "streams": c.streams,
        "events": c.events,
        "root": c.root,
        "frontier": c.frontier,
        "note": (!c.note.is_empty()).then(|| c.note.clone()),
        "heads": c.heads.iter().map(|h| json!({"stream_id": h.stream_id, "version": h.version, "hash": h.hash})).collect::<Vec<_>>(),
    })
}

async fn checkpoint(ctx: &Context, args: CheckpointArgs) -> Result<Output, Failure> {
    let client = &ctx.client;
    match args.command.unwrap_or(CheckpointCommand::List) {
        CheckpointCommand::Create => {
            let c = client.reply(client.audit().create_checkpoint(pb::CreateCheckpointRequest {}).await)?;
            if args.root_only {
                return Ok(Output::new(c.root.clone(), json!({"id": c.id, "root": c.root})));
            }
            let mut text = format!(
                "checkpoint {} created at {}: {} initiative{}, {} event{}\nroot {}",
                c.id,
                time_text(c.created_at.as_ref()),
                c.streams,
                plural(c.streams),
                c.events,
                plural(c.events),
                c.root
            );
            if let Some(origin) = c.note.lines().next().filter(|_| !c.note.is_empty()) {
                text.push_str(&format!(
                    "\nsigned by {origin} (`accord audit checkpoint export` writes the notes to keep elsewhere)"
                ));
            }
            Ok(Output::new(text, checkpoint_json(&c)))
        }
        CheckpointCommand::Export(export) => export_checkpoints(client, export).await,
        CheckpointCommand::List => {
            let list = client.reply(client.audit().list_checkpoints(pb::ListCheckpointsRequest {}).await)?;
            if args.root_only {
                let text: Vec<String> = list.checkpoints.iter().map(|c| format!("{} {}", c.id, c.root)).collect();
                let json: Vec<Value> = list.checkpoints.iter().map(|c| json!({"id": c.id, "root": c.root})).collect();
                return Ok(Output::new(text.join("\n"), json!({"checkpoints": json})));
            }
            let json = json!({"checkpoints": list.checkpoints.iter().map(checkpoint_json).collect::<Vec<_>>()});
            if list.checkpoints.is_empty() {
                return Ok(Output::new("no checkpoints yet (`accord audit checkpoint create` records one)", json));
            }
            let mut table = Table::new(["ID", "CREATED", "INITIATIVES", "EVENTS", "ROOT"]);
            for c in &list.checkpoints {
                table.row(vec![
                    c.id.to_string().into(),
                    time_text(c.created_at.as_ref()).into(),
                    c.streams.to_string().into(),
                    c.events.to_string().into(),
                    c.root.clone().into(),
                ]);
            }
            Ok(Output::new(table.render(ctx.style), json))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Signed checkpoints: keygen, export, and verification against kept checkpoints

fn keygen(args: KeygenArgs) -> Result<Output, Failure> {
    let name = match args.name {
        Some(name) => name,
        None => {
            let mut random = [0u8; 4];
            getrandom::fill(&mut random)
                .map_err(|e| Failure::new(ExitClass::Internal, format!("no randomness from the system: {e}")))?;
            format!("accord.example/log-{}", hex::encode(random))
        }
    };
    let (private, verifier) = generate_key(&name).map_err(|e| Failure::invalid(format!("--name {e}")))?;
    let path = &args.output;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => {
            Failure::invalid(format!("-o {}: the file exists; a key is never overwritten", path.display()))
        }
        _ => Failure::invalid(format!("cannot write {}: {e}", path.display())),
    })?;
    writeln!(file, "{private}")
        .and_then(|()| file.sync_all())
        .map_err(|e| Failure::new(ExitClass::Internal, format!("cannot write {}: {e}", path.display())))?;
    eprintln!(
        "checkpoint key of log {name} written to {}: start the server with --checkpoint-key {0}, and give auditors \
         the verifier key below",
        path.display()
    );
    Ok(Output::new(
        verifier.clone(),
        json!({"name": name, "verifier_key": verifier, "key_file": path.display().to_string()}),
    ))
}

/// A checkpoint as the server listed it, back in the store's terms.
fn checkpoint_record(c: &pb::Checkpoint) -> Result<CheckpointRecord, Failure> {
    let bad = |what: String| Failure::new(ExitClass::Internal, format!("checkpoint {} from the server: {what}", c.id));
    let hash = |field: &str, text: &str| {
        let mut hash = [0u8; 32];
        hex::decode_to_slice(text, &mut hash).map(|()| hash).map_err(|_| bad(format!("{field} is not 64 hex digits")))
    };
    let heads = c
        .heads
        .iter()
        .map(|h| {
            let stream_id = h.stream_id.parse().map_err(|_| bad("a head's stream id is not a UUID".into()))?;
            Ok(StreamHead { stream_id, version: h.version, hash: hash("head hash", &h.hash)? })
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    Ok(CheckpointRecord {
        id: c.id,
        created_at: time(c.created_at.as_ref()).unwrap_or_default(),
        tree: match c.tree() {
            pb::CheckpointTree::Log => CheckpointTree::Log,
            _ => CheckpointTree::StreamHeads,
        },
        streams: c.streams,
        events: c.events,
        root: hash("root", &c.root)?,
        heads,
        frontier: c.frontier.iter().map(|node| hash("frontier", node)).collect::<Result<_, _>>()?,
        note: (!c.note.is_empty()).then(|| c.note.clone()),
    })
}

async fn export_checkpoints(client: &Client, args: CheckpointExportArgs) -> Result<Output, Failure> {
    let list = client.reply(client.audit().list_checkpoints(pb::ListCheckpointsRequest {}).await)?;
    let records = list.checkpoints.iter().map(checkpoint_record).collect::<Result<Vec<_>, _>>()?;
    let kept: Vec<KeptCheckpoint> = KeptCheckpoint::from_records(&records)
        .into_iter()
        .filter(|kept| args.after.is_none_or(|after| kept.id > after))
        .collect();
    let unsigned = records.iter().filter(|r| r.note.is_none() && args.after.is_none_or(|after| r.id > after)).count();
    if kept.is_empty() && args.after.is_none() {
        return Err(Failure::new(
            ExitClass::Conflict,
            format!(
                "no signed checkpoints to export ({unsigned} unsigned): start the server with --checkpoint-key FILE \
                 (`accord audit keygen` makes one), then `accord audit checkpoint create`"
            ),
        ));
    }
    let to_file = args.output.as_deref().filter(|p| p.as_os_str() != "-");
    let mut sink = match to_file {
        Some(path) => Sink::file(path)?,
        None => Sink::Stdout(io::BufWriter::new(io::stdout())),
    };
    for record in &kept {
        let line = record.to_json().map_err(|e| Failure::new(ExitClass::Internal, e))?;
        if let Err(error) = writeln!(sink, "{line}") {
            let failure = sink.write_failure(&error);
            sink.abandon();
            return Err(failure);
        }
    }
    if !sink.finish()? {
        return Ok(Output::streamed());
    }
    let place = to_file.map(|path| format!(" to {}", path.display())).unwrap_or_default();
    let skipped = if unsigned > 0 {
        format!(" ({unsigned} unsigned checkpoint{} left out)", plural(unsigned as u64))
    } else {
        String::new()
    };
    eprintln!("exported {} signed checkpoint{}{place}{skipped}", kept.len(), plural(kept.len() as u64));
    Ok(Output::streamed())
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

async fn verify_kept(client: Option<&Client>, json_out: bool, args: VerifyArgs) -> Result<Output, Failure> {
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

// ---------------------------------------------------------------------------------------
// export

async fn export(ctx: &Context, args: ExportArgs) -> Result<Output, Failure> {
    let client = &ctx.client;
    let (initiative, scope) = match &args.initiative {
        Some(given) => {
            let view = resolve::alignment(client, given).await?;
            (view.initiative_id.clone(), Some(view.key))
        }
        None => (String::new(), None),
    };
    let to_file = args.output.as_deref().filter(|p| p.as_os_str() != "-");
    let mut sink = match to_file {
        Some(path) => Sink::file(path)?,
        None => Sink::Stdout(io::BufWriter::new(io::stdout())),
    };
    let expected = if scope.is_none() { Some(events_in_log(client).await?) } else { None };
    let request = pb::ReadEventsRequest { initiative, follow: expected.is_some(), ..Default::default() };
    let written = write_export(client, request, expected, &mut sink).await;
    let (events, streams) = match written {
        Ok(counts) => counts,
        Err(failure) => {
            sink.abandon();
            return Err(failure);
        }
    };
    if !sink.finish()? {
        return Ok(Output::streamed());
    }
    let whose = match scope {
        Some(key) => format!("of {key}"),
        None => format!("of {streams} initiative{}", plural(streams)),
    };
    let place = match to_file {
        Some(path) => format!(" to {}", path.display()),
        None => String::new(),
    };
    eprintln!("exported {events} event{} {whose}{place}", plural(events));
    Ok(Output::streamed())
}

/// Reads the events (of the whole log: at least the `expected` many it held) and writes
/// one JSON line each; returns how many events and streams.
async fn write_export(
    client: &Client,
    request: pb::ReadEventsRequest,
    expected: Option<u64>,
    sink: &mut Sink,
) -> Result<(u64, u64), Failure> {
    let mut events = client.reply(client.audit().read_events(request).await)?;
    let mut count = 0u64;
    let mut streams: HashSet<String> = HashSet::new();
    let (mut caught_up, mut noted) = (false, false);
    loop {
        if let Some(expected) = expected
            && caught_up
            && count >= expected
        {
            break;
        }
        let missing = expected.filter(|_| caught_up).map(|n| n.saturating_sub(count));
        let Some(message) = next_message(&mut events, missing, &mut noted, client.server()).await? else { break };
        let event = match message.item {
            Some(pb::read_events_response::Item::Event(event)) => event,
            Some(pb::read_events_response::Item::CaughtUp(_)) => {
                caught_up = true;
                continue;
            }
            None => continue,
        };
        let line = event_line(&event)?;
        if let Err(error) = writeln!(sink, "{line}") {
            return match error.kind() {
                io::ErrorKind::BrokenPipe => Ok((count, streams.len() as u64)),
                _ => Err(sink.write_failure(&error)),
            };
        }
        count += 1;
        if !streams.contains(&event.stream_id) {
            streams.insert(event.stream_id);
        }
    }
    Ok((count, streams.len() as u64))
}

/// Where an export goes: stdout, or a file written beside its final name and renamed
/// into place when complete (so a failed export leaves no half file behind).
enum Sink {
    Stdout(io::BufWriter<io::Stdout>),
    File { temporary: PathBuf, target: PathBuf, writer: io::BufWriter<std::fs::File> },
}

impl Sink {
    fn file(target: &Path) -> Result<Sink, Failure> {
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.is_empty() {
            return Err(Failure::invalid(format!("-o {}: give a file name", target.display())));
        }
        let temporary = target.with_file_name(format!(".{name}.{}.partial", std::process::id()));
        let file = std::fs::File::create(&temporary)
            .map_err(|e| Failure::invalid(format!("cannot write {}: {e}", target.display())))?;
        Ok(Sink::File { temporary, target: target.to_owned(), writer: io::BufWriter::new(file) })
    }

    fn write_failure(&self, error: &io::Error) -> Failure {
        match self {
            Sink::Stdout(_) => Failure::new(ExitClass::Internal, format!("cannot write to stdout: {error}")),
            Sink::File { target, .. } => {
                Failure::new(ExitClass::Internal, format!("cannot write {}: {error}", target.display()))
            }
        }
    }

    /// Flushes and puts the file in place; `false` if stdout was closed by its reader.
    fn finish(self) -> Result<bool, Failure> {
        match self {
            Sink::Stdout(mut writer) => still_open(writer.flush()),
            Sink::File { temporary, target, writer } => {
                let done = writer
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .and_then(|file| file.sync_all())
                    .and_then(|()| std::fs::rename(&temporary, &target));
                done.map(|()| true).map_err(|error| {
                    let _ = std::fs::remove_file(&temporary);
                    Failure::new(ExitClass::Internal, format!("cannot write {}: {error}", target.display()))
                })
            }
        }
    }

    /// Leaves nothing behind after a failure.
    fn abandon(self) {
        if let Sink::File { temporary, writer, .. } = self {
            drop(writer);
            let _ = std::fs::remove_file(temporary);
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Stdout(writer) => writer.write(buf),
            Sink::File { writer, .. } => writer.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(writer) => writer.flush(),
            Sink::File { writer, .. } => writer.flush(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// import

/// Lines read ahead of the server.
const IMPORT_BUFFER: usize = 256;

/// What the reader of the file hands to the request stream.
enum Feed {
    Line(String),
    /// The whole input was read.
    End,
}

/// Sent in place of the rest of an input that could not be read: not an event, so the
/// server refuses the import and writes nothing.
const ABANDONED: &str = "accord import abandoned: the input could not be read to its end (not an event)";

/// The request stream of an import: one message per line, ending after the last. If the
/// reader stops before the end, the stream ends with [`ABANDONED`] instead. It must
/// never just stop short, nor may the call be cancelled: tonic hands the server a
/// cancelled request stream as a normal end, and the server would import the part it got.
struct ImportFeed {
    lines: mpsc::Receiver<Feed>,
    ended: bool,
}

impl Stream for ImportFeed {
    type Item = pb::ImportEventsRequest;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.lines.poll_recv(cx) {
            Poll::Ready(Some(Feed::Line(line))) => Poll::Ready(Some(pb::ImportEventsRequest { line, end: false })),
            Poll::Ready(Some(Feed::End)) => {
                self.ended = true;
                Poll::Ready(Some(pb::ImportEventsRequest { line: String::new(), end: true }))
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(Some(pb::ImportEventsRequest { line: ABANDONED.to_owned(), end: false }))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

async fn import(ctx: &Context, args: ImportArgs) -> Result<Output, Failure> {
    let client = &ctx.client;
    let name = if args.file == "-" { "standard input".to_owned() } else { args.file.clone() };
    let input: Box<dyn BufRead + Send> = if args.file == "-" {
        Box::new(BufReader::new(io::stdin()))
    } else {
        let file = std::fs::File::open(&args.file).map_err(|e| Failure::invalid(format!("cannot read {name}: {e}")))?;
        Box::new(BufReader::new(file))
    };
    let (lines, feed) = mpsc::channel::<Feed>(IMPORT_BUFFER);
    let (failed, mut failure) = oneshot::channel::<String>();
    let reader_name = name.clone();
    tokio::task::spawn_blocking(move || {
        for (number, line) in input.lines().enumerate() {
            let line = match line {
                Ok(line) => line,
                Err(error) => {
                    let what =
                        if error.kind() == io::ErrorKind::InvalidData { "is not UTF-8 text" } else { "cannot be read" };
                    // Said before the stream ends, so the reply always finds it.
                    let _ = failed.send(format!("line {} of {reader_name} {what}: {error}", number + 1));
                    return; // the stream ends with ABANDONED
                }
            };
            if lines.blocking_send(Feed::Line(line)).is_err() {
                return; // the call ended (the server refused a line): stop reading
            }
        }
        let _ = lines.blocking_send(Feed::End);
    });
    let reply = client.audit_unbounded().import_events(ImportFeed { lines: feed, ended: false }).await;
    if let Ok(message) = failure.try_recv() {
        return Err(match reply {
            Err(_) => Failure::invalid(format!("{message}; nothing was imported")),
            Ok(imported) => Failure::new(
                ExitClass::Internal,
                format!("{message}, yet the server took the import ({} events)", imported.into_inner().events),
            ),
        });
    }
    let imported = client.reply(reply)?;
    let text = format!(
        "imported {} event{} of {} initiative{} from {name}",
        imported.events,
        plural(imported.events),
        imported.initiatives,
        plural(imported.initiatives)
    );
    Ok(Output::new(text, json!({"events": imported.events, "initiatives": imported.initiatives})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc_or_a_date_meaning_its_end() {
        let at = |s: &str| parse_at(s).map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true));
        assert_eq!(at("2026-03-01T09:30:00Z").as_deref(), Ok("2026-03-01T09:30:00.000000Z"));
        assert_eq!(at("2026-03-01T10:30:00.25+01:00").as_deref(), Ok("2026-03-01T09:30:00.250000Z"));
        assert_eq!(at("2026-03-01 09:30:00").as_deref(), Ok("2026-03-01T09:30:00.000000Z"));
        assert_eq!(at("2026-03-01 09:30:00 UTC").as_deref(), Ok("2026-03-01T09:30:00.000000Z"));
        assert_eq!(at("2026-03-01T09:30").as_deref(), Ok("2026-03-01T09:30:00.000000Z"));
        assert_eq!(at("2026-03-01").as_deref(), Ok("2026-03-01T23:59:59.999999Z"));
        assert!(at("yesterday").is_err());
        assert!(at("2026-02-30").is_err());
    }

    #[test]
    fn event_types_are_named_in_any_spelling() {
        assert_eq!(event_type_name("signoffrecorded"), "SignOffRecorded");
        assert_eq!(event_type_name("decision-revised"), "DecisionRevised");
        assert_eq!(event_type_name("Bogus"), "Bogus");
    }

    #[test]
    fn summaries_say_what_happened_in_a_few_words() {
        let known = Known { key: "CHECKOUT-42".into(), view: None, feedback: vec![] };
        let decision = "0198a1b2-c3d4-7000-8000-000000000001";
        let (text, tone) = summarise(
            "SignOffRecorded",
            &json!({"decision_id": decision, "revision": 2, "function": "business", "verdict": "reject",
                    "reason": "Fees\nare high.", "comment": ""}),
            &known,
        );
        assert_eq!(text, "rejected decision 0198a1b2 (revision 2) for business: Fees are high.");
        assert_eq!(tone, Some(Tone::Bad));
        let (text, _) = summarise(
            "DecisionRevised",
            &json!({"decision_id": decision, "revision": 2, "kind": "material", "note": "Negotiated.",
                    "stale": [{"signer": "eve@example.com", "function": "engineering", "revision": 1}]}),
            &known,
        );
        assert_eq!(
            text,
            "revised decision 0198a1b2 to revision 2 (material); stale now: eve@example.com for engineering — Negotiated."
        );
        let (text, tone) = summarise(
            "DecisionAccepted",
            &json!({"decision_id": decision, "revision": 1,
                    "override": {"reason": "Launch is fixed.", "unaligned": [["business", "blocked"]], "objections": []}}),
            &known,
        );
        assert_eq!(
            text,
            "accepted decision 0198a1b2 (revision 1) by OVERRIDE although business blocked: Launch is fixed."
        );
        assert_eq!(tone, Some(Tone::Bad));
        assert_eq!(summarise("SomethingNew", &json!({"a": 1}), &known).0, "SomethingNew: {\"a\":1}");
    }

    #[test]
    fn a_timeline_grows_its_columns_and_drops_the_initiative_for_one_stream() {
        let mut timeline = Timeline::new(false, Style::plain());
        let row = |by: &str| {
            ["2026-01-01 00:00:00 UTC", "K-1", "1", "1", by, "StageChanged", "stage discovery → delivery"]
                .map(|s| (s.to_owned(), None))
                .to_vec()
        };
        timeline.push(row("a@x"));
        let mut out = Vec::new();
        timeline.flush(&mut out).expect("written");
        timeline.push(row("somebody@example.com"));
        timeline.flush(&mut out).expect("written");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "AT                       VER  POS  BY   EVENT         WHAT");
        assert_eq!(lines[1], "2026-01-01 00:00:00 UTC  1    1    a@x  StageChanged  stage discovery → delivery");
        assert!(lines[2].contains("somebody@example.com  StageChanged"), "{text}");
    }
}
