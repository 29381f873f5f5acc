//! `accord audit as-of` and `accord audit explain`: one initiative replayed on the server
//! to a past time or stream version — its board as it was, or the events behind each
//! function's state and each decision's lifecycle.

use chrono::{DateTime, Utc};
use clap::{ArgGroup, Args};
use serde_json::{Value, json};

use super::point::{Point, parse_at, timestamp, utc_text};
use crate::cli::output::{Cell, Style, Table, Tone, tone_of};
use crate::cli::resolve::{self, short_decision_id};
use crate::cli::status::alignment_text;
use crate::cli::views::{
    alignment_json, decision_alignment_name, decision_status_name, function_state_name, initiative_status_name,
    state_word, time_json, time_text,
};
use crate::cli::{Context, Failure, Output};
use crate::proto as pb;

pub(super) const AS_OF_EXAMPLES: &str = "\
Examples:
  accord audit as-of CHECKOUT-42 --version 10
  accord audit as-of CHECKOUT-42 --at 2026-03-01T09:30:00Z
  accord audit as-of CHECKOUT-42 --at 2026-03-01            # a date: as at the end of that day (UTC)
  accord --json audit as-of CHECKOUT-42 --version 10 | jq .status";

pub(super) const EXPLAIN_EXAMPLES: &str = "\
Examples:
  accord audit explain CHECKOUT-42                      # every decision, now
  accord audit explain CHECKOUT-42 01a21566 --version 10
  accord --json audit explain CHECKOUT-42 --at 2026-03-01 | jq '.decisions[].functions'";

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

pub(super) async fn as_of(ctx: &Context, initiative: &str, point: Point) -> Result<Output, Failure> {
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

pub(super) async fn explain(ctx: &Context, args: ExplainArgs) -> Result<Output, Failure> {
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
        "recorded_at": time_json(event.recorded_at.as_ref()),
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
