//! `accord status [KEY]` — the alignment board: one line per initiative with each
//! function's state, the score and what is outstanding; with a key, one initiative in
//! detail (its decisions, who is waited on and why, stale sign-offs, open objections
//! and concerns, overrides). And `accord inbox [PERSON]`: the sign-offs waiting on
//! someone.

use clap::{Args, ValueEnum};
use serde_json::json;

use super::client::Client;
use super::initiative::StageArg;
use super::output::{Cell, Style, Table, Tone, tone_of};
use super::resolve::{self, short_decision_id, short_id_wide};
use super::views::{
    alignment_json, decision_alignment_name, decision_status_name, feedback_source_name, inbox_item_json,
    initiative_status_name, state_word, time_text,
};
use super::{Context, Failure, Output};
use crate::proto as pb;

pub const STATUS_EXAMPLES: &str = "\
Examples:
  accord status                                  # every initiative, one line each
  accord status --status blocked --pending design
  accord status CHECKOUT-42                      # one initiative in detail
  accord --json status CHECKOUT-42 | jq '.outstanding'";

pub const INBOX_EXAMPLES: &str = "\
Examples:
  accord --as dee@example.com inbox
  accord inbox eve@example.com
  accord --json inbox eve@example.com | jq '.items | length'";

/// An initiative status to filter on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    #[value(alias = "no_decisions")]
    NoDecisions,
    Pending,
    Blocked,
    Aligned,
}

impl StatusArg {
    fn proto(self) -> pb::InitiativeStatus {
        match self {
            StatusArg::NoDecisions => pb::InitiativeStatus::NoDecisions,
            StatusArg::Pending => pb::InitiativeStatus::Pending,
            StatusArg::Blocked => pb::InitiativeStatus::Blocked,
            StatusArg::Aligned => pb::InitiativeStatus::Aligned,
        }
    }
}

/// Filters of the initiative list and the board.
#[derive(Clone, Debug, Default, Args)]
pub struct ListFilters {
    /// Only initiatives with this overall status.
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,
    /// Only initiatives where this function is still outstanding on an open decision.
    #[arg(long, value_name = "FUNCTION")]
    pub pending: Option<String>,
    /// Only initiatives in this stage.
    #[arg(long, value_enum)]
    pub stage: Option<StageArg>,
    /// Only initiatives this person owns.
    #[arg(long, value_name = "PRINCIPAL")]
    pub owner: Option<String>,
    /// Only initiatives whose key or title contains this text (any case).
    #[arg(long)]
    pub text: Option<String>,
    /// Include archived initiatives.
    #[arg(long)]
    pub archived: bool,
    /// Show at most this many.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

const PAGE_SIZE: u32 = 200;

impl ListFilters {
    fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.pending.is_none()
            && self.stage.is_none()
            && self.owner.is_none()
            && self.text.is_none()
            && !self.archived
            && self.limit.is_none()
    }

    /// Every matching initiative, page after page, ordered by key (up to --limit).
    pub async fn fetch(&self, client: &Client) -> Result<Vec<pb::InitiativeAlignment>, Failure> {
        let mut found = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = pb::ListAlignmentsRequest {
                status: self.status.map(StatusArg::proto).unwrap_or(pb::InitiativeStatus::Unspecified).into(),
                pending_function: self.pending.clone().unwrap_or_default(),
                stage: self.stage.map(StageArg::proto).unwrap_or(pb::Stage::Unspecified).into(),
                owner: self.owner.clone().unwrap_or_default(),
                text: self.text.clone().unwrap_or_default(),
                include_archived: self.archived,
                page_size: PAGE_SIZE,
                page_token,
            };
            let page = client.reply(client.queries().list_alignments(request).await)?;
            found.extend(page.initiatives);
            if let Some(limit) = self.limit
                && found.len() >= limit
            {
                found.truncate(limit);
                return Ok(found);
            }
            if page.next_page_token.is_empty() {
                return Ok(found);
            }
            page_token = page.next_page_token;
        }
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Key (CHECKOUT-42) or id of one initiative to show in detail [default: the board of all].
    pub initiative: Option<String>,
    #[command(flatten)]
    pub filters: ListFilters,
}

#[derive(Debug, Args)]
pub struct InboxArgs {
    /// Whose inbox [default: you, as given by --as].
    pub person: Option<String>,
}

pub async fn status(ctx: &Context, args: StatusArgs) -> Result<Output, Failure> {
    match args.initiative {
        Some(initiative) => {
            if !args.filters.is_empty() {
                return Err(Failure::invalid(
                    "filters (--status, --pending, …) apply to the board, not to one initiative",
                ));
            }
            let view = resolve::alignment(&ctx.client, &initiative).await?;
            Ok(Output::new(alignment_text(&view, ctx.style), alignment_json(&view)))
        }
        None => {
            let views = args.filters.fetch(&ctx.client).await?;
            let text = if views.is_empty() {
                "no initiatives match (`accord initiative create` records one)".to_owned()
            } else {
                board_table(&views, true).render(ctx.style)
            };
            Ok(Output::new(text, json!({"initiatives": views.iter().map(alignment_json).collect::<Vec<_>>()})))
        }
    }
}

pub async fn inbox(ctx: &Context, args: InboxArgs) -> Result<Output, Failure> {
    let client = &ctx.client;
    let person = args.person.unwrap_or_else(|| client.actor().to_owned());
    let request = pb::GetInboxRequest { principal: person.clone() };
    let inbox = client.reply(client.queries().get_inbox(request).await)?;
    let json = json!({"principal": person, "items": inbox.items.iter().map(inbox_item_json).collect::<Vec<_>>()});
    if inbox.items.is_empty() {
        return Ok(Output::new(format!("no sign-off waits on {person}"), json));
    }
    let count = inbox.items.len();
    let mut text = format!("{count} sign-off{} waiting on {person}\n", if count == 1 { "" } else { "s" });
    let mut views: Vec<pb::InitiativeAlignment> = Vec::new();
    for item in &inbox.items {
        if !views.iter().any(|v| v.initiative_id == item.initiative_id) {
            views.push(resolve::alignment(client, &item.initiative_id).await?);
        }
    }
    let mut table = Table::new(["INITIATIVE", "DECISION", "TITLE", "REV", "FUNCTION", "WHY"]);
    for item in &inbox.items {
        let short = match views.iter().find(|v| v.initiative_id == item.initiative_id) {
            Some(view) => short_decision_id(&item.decision_id, view),
            None => item.decision_id.clone(),
        };
        table.row(vec![
            item.initiative_key.clone().into(),
            short.into(),
            item.decision_title.clone().into(),
            item.revision.to_string().into(),
            if item.via_team.is_empty() {
                item.function.clone().into()
            } else {
                format!("{} (as {})", item.function, item.via_team).into()
            },
            item.reason.clone().into(),
        ]);
    }
    text.push_str(&table.render(ctx.style));
    Ok(Output::new(text, json))
}

fn score(view: &pb::InitiativeAlignment) -> String {
    if view.total_pairs == 0 { "-".to_owned() } else { format!("{}/{}", view.approved_pairs, view.total_pairs) }
}

/// The functions that get a column: engineering, design, business first, then the rest
/// in the order met.
fn function_columns(views: &[pb::InitiativeAlignment]) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    let defaults = ["engineering", "design", "business"];
    for function in defaults {
        if views.iter().any(|v| v.functions.iter().any(|f| f.function == function)) {
            columns.push(function.to_owned());
        }
    }
    for view in views {
        for f in &view.functions {
            if !columns.contains(&f.function) {
                columns.push(f.function.clone());
            }
        }
    }
    columns
}

/// What an initiative waits for, in a few words: "design → dee@example.com, business blocked".
fn outstanding_summary(view: &pb::InitiativeAlignment) -> String {
    let mut pieces: Vec<String> = Vec::new();
    for item in &view.outstanding {
        let piece = match item.state() {
            pb::FunctionState::Pending if item.can_sign.is_empty() => format!("{} (no approver)", item.function),
            pb::FunctionState::Pending => format!("{} → {}", item.function, item.can_sign.join(" or ")),
            other => format!("{} {}", item.function, state_word(other)),
        };
        if !pieces.contains(&piece) {
            pieces.push(piece);
        }
    }
    if pieces.is_empty() { "-".to_owned() } else { pieces.join(", ") }
}

/// The board: one line per initiative.
pub fn board_table(views: &[pb::InitiativeAlignment], with_outstanding: bool) -> Table {
    let columns = function_columns(views);
    let mut headers = vec!["KEY".to_owned(), "STATUS".to_owned(), "SCORE".to_owned()];
    headers.extend(columns.iter().map(|c| c.to_uppercase()));
    if with_outstanding {
        headers.push("OUTSTANDING".to_owned());
    } else {
        headers.push("VERSION".to_owned());
    }
    let mut table = Table::new(headers);
    for view in views {
        let mut row = vec![
            Cell::plain(view.key.clone()),
            Cell::state(initiative_status_name(view.status())),
            Cell::plain(score(view)),
        ];
        for column in &columns {
            match view.functions.iter().find(|f| &f.function == column) {
                Some(f) if f.state() == pb::FunctionState::NotApplicable && agreed_on(view, column) => {
                    row.push(Cell::toned("agreed", Some(Tone::Good)));
                }
                Some(f) => row.push(Cell::state(state_word(f.state()))),
                None => row.push(Cell::toned("-", Some(Tone::Dim))),
            }
        }
        if with_outstanding {
            row.push(Cell::plain(outstanding_summary(view)));
        } else {
            row.push(Cell::plain(view.version.to_string()));
        }
        table.row(row);
    }
    table
}

/// Whether `function` approved the latest accepted decision that needed it: what the
/// board shows for a function no open decision needs.
fn agreed_on(view: &pb::InitiativeAlignment, function: &str) -> bool {
    view.agreed
        .iter()
        .rev()
        .find_map(|agreed| agreed.functions.iter().find(|f| f.function == function))
        .is_some_and(|f| f.state() == pb::FunctionState::Approved)
}

/// What an accepted decision agreed, one function per piece: `design approved by
/// carol@example.com (r2)`, or the state an override accepted it over.
fn agreed_summary(agreed: &pb::AgreedDecision) -> String {
    agreed
        .functions
        .iter()
        .map(|f| {
            let signers: Vec<String> = f.sign_offs.iter().map(|s| format!("{} (r{})", s.signer, s.revision)).collect();
            match (f.state(), signers.is_empty()) {
                (pb::FunctionState::Approved, false) => format!("{} approved by {}", f.function, signers.join(", ")),
                (pb::FunctionState::Rejected, false) => format!("{} rejected by {}", f.function, signers.join(", ")),
                (state, _) => format!("{} {}", f.function, state_word(state)),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The line under a list the view cut to its most recent items: how many there are and
/// where the rest is.
fn more(listed: usize, total: u32, which: &str, rest: &str) -> String {
    let total = total as usize;
    if total <= listed {
        return String::new();
    }
    format!("  … {listed} of {total} shown ({which}); the rest: `{rest}`\n")
}

/// One initiative's alignment in detail: the board line, then everything behind it.
pub fn alignment_text(view: &pb::InitiativeAlignment, style: Style) -> String {
    let mut out = board_table(std::slice::from_ref(view), false).render(style);
    let counts = view.counts.unwrap_or_default();
    let open: Vec<&pb::DecisionSummary> =
        view.decisions.iter().filter(|d| d.status() == pb::DecisionStatus::Proposed).collect();
    if !view.decisions.is_empty() {
        let mut table = Table::new(["DECISION", "TITLE", "REV", "STATUS", "APPROVED"]).indented(2);
        for d in &view.decisions {
            let (state, approved) = if d.status() == pb::DecisionStatus::Proposed {
                (decision_alignment_name(d.alignment()), format!("{}/{}", d.approved, d.required))
            } else {
                (decision_status_name(d.status()), "-".to_owned())
            };
            table.row(vec![
                short_decision_id(&d.decision_id, view).into(),
                d.title.clone().into(),
                d.revision.to_string().into(),
                Cell::state(state),
                approved.into(),
            ]);
        }
        out.push_str(&format!("\n{}\n", style.paint("Decisions", Tone::Bold)));
        out.push_str(&table.render(style));
        out.push_str(&more(
            view.decisions.len(),
            counts.decisions,
            "open ones first, then the most recent",
            "accord audit history KEY",
        ));
    }
    if !view.outstanding.is_empty() {
        let mut table = Table::new(["DECISION", "FUNCTION", "STATE", "CAN SIGN", "WHY"]).indented(2);
        for item in &view.outstanding {
            let word = state_word(item.state());
            table.row(vec![
                short_decision_id(&item.decision_id, view).into(),
                item.function.clone().into(),
                Cell::toned(word, tone_of(word)),
                (if item.can_sign.is_empty() {
                    "nobody: assign an approver".to_owned()
                } else {
                    item.can_sign.join(", ")
                })
                .into(),
                item.reason.clone().into(),
            ]);
        }
        out.push_str(&format!("\n{}\n", style.paint("Waiting on", Tone::Bold)));
        out.push_str(&table.render(style));
        out.push_str(&more(view.outstanding.len(), counts.outstanding, "the most recent", "accord inbox PERSON"));
    }
    if !view.stale_sign_offs.is_empty() {
        let mut table = Table::new(["DECISION", "FUNCTION", "SIGNER", "SIGNED REV", "STALE SINCE"]).indented(2);
        for stale in &view.stale_sign_offs {
            table.row(vec![
                short_decision_id(&stale.decision_id, view).into(),
                stale.function.clone().into(),
                stale.signer.clone().into(),
                stale.signed_revision.to_string().into(),
                format!("revision {} (material)", stale.stale_since_revision).into(),
            ]);
        }
        out.push_str(&format!("\n{}\n", style.paint("Stale sign-offs (must sign again)", Tone::Bold)));
        out.push_str(&table.render(style));
        out.push_str(&more(
            view.stale_sign_offs.len(),
            counts.stale_sign_offs,
            "the most recent",
            "accord decision show",
        ));
    }
    let feedback_ids: Vec<&str> =
        view.open_objections.iter().chain(view.open_concerns.iter()).map(|f| f.feedback_id.as_str()).collect();
    for (title, items, total) in [
        ("Open objections (block)", &view.open_objections, counts.open_objections),
        ("Open concerns", &view.open_concerns, counts.open_concerns),
    ] {
        if items.is_empty() {
            continue;
        }
        let mut table = Table::new(["ID", "ON", "FROM", "SOURCE", "BODY"]).indented(2);
        for f in items {
            let on = if f.decision_id.is_empty() {
                "initiative".to_owned()
            } else {
                short_decision_id(&f.decision_id, view)
            };
            table.row(vec![
                short_id_wide(&f.feedback_id, feedback_ids.iter().copied()).into(),
                on.into(),
                format!("{} ({})", f.author, f.function).into(),
                feedback_source_name(f.source()).into(),
                f.body.clone().into(),
            ]);
        }
        out.push_str(&format!("\n{}\n", style.paint(title, Tone::Bold)));
        out.push_str(&table.render(style));
        out.push_str(&more(items.len(), total, "the most recent, as previews", "accord feedback list KEY --open"));
    }
    for o in &view.overrides {
        let unaligned: Vec<String> =
            o.unaligned.iter().map(|f| format!("{} {}", f.function, state_word(f.state()))).collect();
        out.push_str(&format!(
            "\n{} {} {:?} accepted by {} although {} — reason: {}\n",
            style.paint("Override:", Tone::Bad),
            short_decision_id(&o.decision_id, view),
            o.decision_title,
            o.accepted_by,
            unaligned.join(", "),
            o.reason
        ));
    }
    if !view.agreed.is_empty() {
        let mut table = Table::new(["DECISION", "TITLE", "REV", "ACCEPTED BY", "AGREED"]).indented(2);
        for agreed in &view.agreed {
            let by = if agreed.overridden {
                Cell::toned(format!("{} (override)", agreed.accepted_by), Some(Tone::Bad))
            } else {
                Cell::plain(agreed.accepted_by.clone())
            };
            table.row(vec![
                short_decision_id(&agreed.decision_id, view).into(),
                agreed.title.clone().into(),
                agreed.revision.to_string().into(),
                by,
                agreed_summary(agreed).into(),
            ]);
        }
        out.push_str(&format!("\n{}\n", style.paint("Agreed (accepted decisions)", Tone::Bold)));
        out.push_str(&table.render(style));
        out.push_str(&more(view.agreed.len(), counts.agreed, "the most recent", "accord decision show"));
    }
    let evidence = view.evidence.unwrap_or_default();
    let open = counts.open_decisions.max(u32::try_from(open.len()).unwrap_or(u32::MAX));
    out.push_str(&format!(
        "\n{} open decision{} · evidence: {} user research, {} customer, {} internal · last activity {}\n",
        open,
        if open == 1 { "" } else { "s" },
        evidence.user_research,
        evidence.customer,
        evidence.internal,
        time_text(view.last_activity.as_ref())
    ));
    out
}
