//! `accord audit import`: an export streamed line by line to an empty server, which
//! checks every hash and keeps all of it or nothing.

use std::io::{self, BufRead, BufReader};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use clap::Args;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::Stream;

use super::plural;
use crate::cli::output::ExitClass;
use crate::cli::{Context, Failure, Output};
use crate::proto as pb;

pub(super) const EXAMPLES: &str = "\
Examples:
  accord --server http://127.0.0.1:50052 audit import accord.jsonl
  accord audit export --server http://old:50051 | accord --server http://new:50051 audit import -

The server must hold no events yet. It checks every line (JSON, chain order, hashes)
and writes all of them or nothing; a refusal names the line.";

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The export (JSON Lines), or - for standard input.
    pub file: String,
}

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

pub(super) async fn import(ctx: &Context, args: ImportArgs) -> Result<Output, Failure> {
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
