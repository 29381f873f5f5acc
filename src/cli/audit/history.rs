//! `accord audit history`: the log as a timeline people can read — when, who, what — or,
//! with `--json`, one JSON object per event; with `--follow`, live until Ctrl-C. Each
//! event's sentence comes from the domain's narrator (`domain::narrate`), read as a
//! terminal reads it: decisions by the short ids `status` shows.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::{self, Write};

use clap::Args;
use serde_json::{Value, json};

use super::log::{event_line, events_in_log, next_message};
use super::plural;
use super::sink::still_open;
use crate::cli::client::Client;
use crate::cli::output::{Style, Tone, one_line};
use crate::cli::resolve::{self, short_decision_id, short_id_wide};
use crate::cli::views::time_text;
use crate::cli::{Context, Failure, Output};
use crate::domain::event::{EVENT_TYPES, Event};
use crate::domain::narrate::{self, Reader, narrate};
use crate::domain::values::{DecisionId, FeedbackId};
use crate::proto as pb;

pub(super) const EXAMPLES: &str = "\
Examples:
  accord audit history CHECKOUT-42
  accord audit history CHECKOUT-42 --from-version 6 --type SignOffRecorded,DecisionRevised
  accord audit history --after-position 1200 --follow         # the whole log, then live (Ctrl-C stops)
  accord --json audit history CHECKOUT-42 | jq -r '.event_type'

One line per event: when (UTC), the initiative (for the whole log), its stream version,
its global position, who, the event type and what it did. With --json, one JSON object
per line with every stored field (as `accord audit export` writes them); with --follow,
the line {\"caught_up\": {\"position\": P}} marks the end of the history.";

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

/// Events shown before the first table is printed: their widths set the columns.
const TIMELINE_BATCH: usize = 500;

pub(super) async fn history(ctx: &Context, args: HistoryArgs) -> Result<Output, Failure> {
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
    /// A decision's id as `status` shows it (or its first 8 digits, off the board).
    fn short_decision(&self, id: &str) -> String {
        match &self.view {
            Some(view) if view.decisions.iter().any(|d| d.decision_id == id) => short_decision_id(id, view),
            _ => id.chars().take(8).collect(),
        }
    }

    fn short_feedback(&self, id: &str) -> String {
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
        let (summary, tone) = summarise(&event.event_type, event.schema_version, &payload, known);
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

/// A terminal reads decisions by the short ids `status` shows, feedback by ids that are
/// unambiguous among those seen so far, titles in Rust string syntax, and free text on
/// one line.
impl Reader for Known {
    fn decision(&self, id: &DecisionId) -> String {
        format!("decision {}", self.short_decision(&id.to_string()))
    }

    fn feedback(&self, id: &FeedbackId) -> Option<String> {
        Some(self.short_feedback(&id.to_string()))
    }

    fn title(&self, title: &str) -> String {
        format!("{title:?}")
    }

    fn brief(&self, text: &str) -> String {
        brief(text)
    }
}

/// Free text (bodies, reasons) on one line, cut to a readable length.
fn brief(text: &str) -> String {
    const MAX: usize = 100;
    let text = one_line(text);
    if text.chars().count() <= MAX { text } else { format!("{}…", text.chars().take(MAX - 1).collect::<String>()) }
}

/// What an event did, in a few words (the actor is shown beside it), and how it reads;
/// an event this client cannot read is shown by its type and payload.
fn summarise(event_type: &str, schema_version: i32, payload: &Value, known: &Known) -> (String, Option<Tone>) {
    let Ok(event) = Event::from_stored(event_type, schema_version, payload.clone()) else {
        let payload = payload.to_string();
        return (format!("{event_type}: {}", brief(&payload)), None);
    };
    let told = narrate(&event, known);
    let tone = match told.tone {
        narrate::Tone::Plain => None,
        narrate::Tone::Good => Some(Tone::Good),
        narrate::Tone::Warn => Some(Tone::Warn),
        narrate::Tone::Bad => Some(Tone::Bad),
    };
    (told.text, tone)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            1,
            &json!({"decision_id": decision, "revision": 2, "function": "business", "verdict": "reject",
                    "reason": "Fees\nare high.", "comment": ""}),
            &known,
        );
        assert_eq!(text, "rejected decision 0198a1b2 (revision 2) for business: Fees are high.");
        assert_eq!(tone, Some(Tone::Bad));
        let content = json!({"title": "Use Stripe", "context": "", "options": [], "proposal": "", "rationale": ""});
        let (text, _) = summarise(
            "DecisionRevised",
            1,
            &json!({"decision_id": decision, "revision": 2, "kind": "material", "note": "Negotiated.",
                    "content": content, "required_functions": ["engineering"],
                    "stale": [{"signer": "eve@example.com", "function": "engineering", "revision": 1}]}),
            &known,
        );
        assert_eq!(
            text,
            "revised decision 0198a1b2 to revision 2 (material); stale now: eve@example.com for engineering — Negotiated."
        );
        let (text, tone) = summarise(
            "DecisionAccepted",
            1,
            &json!({"decision_id": decision, "revision": 1,
                    "override": {"reason": "Launch is fixed.", "unaligned": [["business", "blocked"]], "objections": []}}),
            &known,
        );
        assert_eq!(
            text,
            "accepted decision 0198a1b2 (revision 1) by OVERRIDE although business blocked: Launch is fixed."
        );
        assert_eq!(tone, Some(Tone::Bad));
        assert_eq!(summarise("SomethingNew", 1, &json!({"a": 1}), &known).0, "SomethingNew: {\"a\":1}");
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
