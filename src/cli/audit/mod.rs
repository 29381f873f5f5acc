//! `accord audit …`: the history as auditors read it, over the server's `AuditService`.
//! One file per concern:
//!
//! - `history` reads the log (one initiative's stream, or the global log) and prints a
//!   timeline people can read — when, who, what — or, with `--json`, every stored field of
//!   each event, one JSON object per line. `--follow` keeps reading live until Ctrl-C.
//! - `replay`: `as-of` and `explain` replay one initiative to a past time or stream
//!   version on the server (`point` reads those times); `as-of` shows the board as
//!   `status` does, `explain` the events behind each function's state and each
//!   decision's lifecycle.
//! - `verify` recomputes the hash chains on the server and exits 7 at the first broken link;
//!   with `--checkpoints`, it checks the log (from the server, or an export file with
//!   `--export`) against signed checkpoints kept outside the database instead.
//! - `checkpoints`: `checkpoint` records or lists checkpoints of the log tree, and
//!   `export`s the signed ones for keeping elsewhere; `keygen` makes the server's
//!   checkpoint signing key.
//! - `export` writes the log as JSON Lines (the same objects as `history --json`; `log`
//!   reads the whole log to its end and writes those lines); `import` streams such a file
//!   to an empty server, which checks every hash and keeps all or nothing.
//!
//! History and export print as the events arrive (a log can be large, and a followed one
//! never ends), so they write to stdout themselves (`sink`) and return [`Output::streamed`].

mod checkpoints;
mod export;
mod history;
mod import;
mod log;
mod point;
mod replay;
mod sink;
mod verify;

use clap::Subcommand;

use super::{Context, Failure, Output};
use checkpoints::{CheckpointArgs, KeygenArgs};
use export::ExportArgs;
use history::HistoryArgs;
use import::ImportArgs;
use point::Point;
use replay::{AsOfArgs, ExplainArgs};
use verify::VerifyArgs;

pub const EXAMPLES: &str = "\
Examples:
  accord audit history CHECKOUT-42                     # who did what, when
  accord audit as-of CHECKOUT-42 --version 10          # the board as it was then
  accord audit explain CHECKOUT-42 --at 2026-03-01     # why each function was in its state
  accord audit verify                                  # recompute every hash chain
  accord audit verify --checkpoints kept.jsonl --key \"$(cat verifier.key)\"   # against checkpoints kept elsewhere
  accord audit export -o accord.jsonl && accord --server http://new:50051 audit import accord.jsonl";

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The history, one line per event (when, who, what): one initiative's, or the whole log.
    #[command(after_help = history::EXAMPLES)]
    History(HistoryArgs),
    /// The board of an initiative as it was at a past time or stream version.
    #[command(after_help = replay::AS_OF_EXAMPLES)]
    AsOf(AsOfArgs),
    /// Why each function is in its state on each decision: the reason and the events behind it.
    #[command(after_help = replay::EXPLAIN_EXAMPLES)]
    Explain(ExplainArgs),
    /// Recompute the hash chains (one initiative or all) and check them against every checkpoint.
    #[command(after_help = verify::EXAMPLES)]
    Verify(VerifyArgs),
    /// Record a checkpoint of the log tree, list them, or export the signed ones.
    #[command(after_help = checkpoints::CHECKPOINT_EXAMPLES)]
    Checkpoint(CheckpointArgs),
    /// Make a checkpoint signing key for the server (`serve --checkpoint-key`); prints its verifier key.
    #[command(after_help = checkpoints::KEYGEN_EXAMPLES)]
    Keygen(KeygenArgs),
    /// Write the log (or one initiative's events) as JSON Lines, every field of every event.
    #[command(after_help = export::EXAMPLES)]
    Export(ExportArgs),
    /// Load an export into an empty server, verifying every hash; all or nothing.
    #[command(after_help = import::EXAMPLES)]
    Import(ImportArgs),
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
        AuditCommand::Keygen(args) => checkpoints::keygen(args),
        AuditCommand::Verify(args) => verify::verify_kept(None, json, args).await,
        _ => Err(Failure::invalid("this audit command needs a server")),
    }
}

pub async fn run(ctx: &Context, command: AuditCommand) -> Result<Output, Failure> {
    match command {
        AuditCommand::History(args) => history::history(ctx, args).await,
        AuditCommand::AsOf(args) => replay::as_of(ctx, &args.initiative, Point::of(args.at, args.version)).await,
        AuditCommand::Explain(args) => replay::explain(ctx, args).await,
        AuditCommand::Verify(args) if args.checkpoints.is_some() => {
            verify::verify_kept(Some(&ctx.client), ctx.json, args).await
        }
        AuditCommand::Verify(args) => verify::verify(ctx, args).await,
        AuditCommand::Checkpoint(args) => checkpoints::checkpoint(ctx, args).await,
        AuditCommand::Keygen(args) => checkpoints::keygen(args),
        AuditCommand::Export(args) => export::export(ctx, args).await,
        AuditCommand::Import(args) => import::import(ctx, args).await,
    }
}

/// The "s" of a count that is not one.
fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}
