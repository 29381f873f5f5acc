//! `accord audit checkpoint` and `accord audit keygen`: checkpoints of the log tree —
//! recorded, listed, and the signed ones exported for keeping elsewhere — and the key
//! the server signs them with.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::plural;
use super::sink::Sink;
use crate::cli::client::Client;
use crate::cli::output::{ExitClass, Table};
use crate::cli::views::{time, time_json, time_text};
use crate::cli::{Context, Failure, Output};
use crate::proto as pb;
use crate::store::audit::{CheckpointRecord, CheckpointTree, StreamHead};
use crate::store::note::{KeptCheckpoint, generate_key};

pub(super) const CHECKPOINT_EXAMPLES: &str = "\
Examples:
  accord audit checkpoint create
  accord audit checkpoint list
  accord audit checkpoint create --root-only >> roots-kept-elsewhere.txt
  accord audit checkpoint export -o kept.jsonl                           # the signed notes, to keep elsewhere
  accord audit checkpoint export --after 41 >> kept.jsonl                # only those newer than checkpoint 41";

pub(super) const KEYGEN_EXAMPLES: &str = "\
Examples:
  accord audit keygen --name accord.acme.com/prod -o checkpoint.key > verifier.key
  accord serve --checkpoint-key checkpoint.key

Writes a new Ed25519 key to FILE (readable by you only; never overwritten) in Go's note
format, and prints its verifier key (name+hash+base64) for auditors. The name is the
origin line of every checkpoint the key signs: one name per log, stable for its life.";

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

fn checkpoint_json(c: &pb::Checkpoint) -> Value {
    let tree = match c.tree() {
        pb::CheckpointTree::Log => "log",
        pb::CheckpointTree::StreamHeads => "stream-heads",
        pb::CheckpointTree::Unspecified => "unspecified",
    };
    json!({
        "id": c.id,
        "created_at": time_json(c.created_at.as_ref()),
        "tree": tree,
        "streams": c.streams,
        "events": c.events,
        "root": c.root,
        "frontier": c.frontier,
        "note": (!c.note.is_empty()).then(|| c.note.clone()),
        "heads": c.heads.iter().map(|h| json!({"stream_id": h.stream_id, "version": h.version, "hash": h.hash})).collect::<Vec<_>>(),
    })
}

pub(super) async fn checkpoint(ctx: &Context, args: CheckpointArgs) -> Result<Output, Failure> {
    let client = &ctx.client;
    match args.command.unwrap_or(CheckpointCommand::List) {
        CheckpointCommand::Create => {
            let c = client.reply(client.audit().create_checkpoint(pb::CreateCheckpointRequest {}).await)?;
            if args.root_only {
                return Ok(Output::new(c.root.clone(), json!({"id": c.id, "root": c.root})));
            }
            let created =
                if c.already_covered { "already covers the log (nothing appended since): created" } else { "created" };
            let mut text = format!(
                "checkpoint {} {created} at {}: {} initiative{}, {} event{}\nroot {}",
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
            let mut json = checkpoint_json(&c);
            json["already_covered"] = json!(c.already_covered);
            Ok(Output::new(text, json))
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

pub(super) fn keygen(args: KeygenArgs) -> Result<Output, Failure> {
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
