//! `accord audit export`: the log, or one initiative's events, as JSON Lines with every
//! stored field — written whole to a file, or streamed to stdout.

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::PathBuf;

use clap::Args;

use super::log::{event_line, events_in_log, next_message};
use super::plural;
use super::sink::Sink;
use crate::cli::client::Client;
use crate::cli::resolve;
use crate::cli::{Context, Failure, Output};
use crate::proto as pb;

pub(super) const EXAMPLES: &str = "\
Examples:
  accord audit export -o accord.jsonl           # the whole log; the count goes to stderr
  accord audit export CHECKOUT-42 > checkout-42.jsonl
  accord audit export | jq -c 'select(.event_type == \"DecisionAccepted\")'";

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Key (CHECKOUT-42) or id of one initiative [default: the whole log].
    pub initiative: Option<String>,
    /// Write to this file instead of stdout (written whole or not at all).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub(super) async fn export(ctx: &Context, args: ExportArgs) -> Result<Output, Failure> {
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
