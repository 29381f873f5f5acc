//! `accord decision …`: propose, revise, accept (optionally overriding), reject,
//! withdraw, supersede and show decisions. A decision is named by its id or a short
//! unambiguous prefix of it, within its initiative.

use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{Cell, Style, Table, Tone};
use super::resolve::{self, short_decision_id, short_id_wide};
use super::views::{
    decision_alignment_name, decision_json, decision_status_name, feedback_kind_name, feedback_source_name, is_stale,
    revision_kind_name, state_word, time_text, verdict_name,
};
use super::{CommandFlags, Context, Failure, Output, appended};
use crate::proto as pb;

pub const EXAMPLES: &str = "\
Examples:
  accord --as dana@example.com decision propose CHECKOUT-42 --title \"Use Stripe for payments\" \\
      --option Stripe --option Adyen --proposal \"Integrate Stripe Checkout.\" --rationale \"Fastest to integrate.\"
  accord decision show CHECKOUT-42 0198c3a1
  accord --as dana@example.com decision accept CHECKOUT-42 0198c3a1";

#[derive(Debug, Subcommand)]
pub enum DecisionCommand {
    /// Propose a decision: title, context, options, the proposal and its rationale.
    #[command(
        after_help = "Example:\n  accord --as dana@example.com decision propose CHECKOUT-42 --title \"Use Stripe for payments\" \\\n      --context \"Checkout needs a payment provider.\" --option Stripe --option Adyen \\\n      --proposal \"Integrate Stripe Checkout.\" --rationale \"Fastest to integrate.\""
    )]
    Propose(ProposeArgs),
    /// Revise a decision: --material makes earlier approvals stale, --editorial keeps them.
    #[command(
        after_help = "Example:\n  accord --as dana@example.com decision revise CHECKOUT-42 0198c3a1 --material \\\n      --proposal \"Integrate Stripe at the negotiated rate.\" --note \"Negotiated enterprise pricing.\""
    )]
    Revise(ReviseArgs),
    /// Accept a decision (as its driver); an unaligned one needs --override REASON.
    #[command(
        after_help = "Example:\n  accord --as dana@example.com decision accept CHECKOUT-42 0198c3a1\n  accord --as dana@example.com decision accept CHECKOUT-42 0198c3a1 --override \"Launch date is fixed; we revisit in Q3.\""
    )]
    Accept {
        #[command(flatten)]
        target: DecisionTarget,
        /// Accept although it is not aligned ("disagree and commit"), for this reason.
        #[arg(long = "override", value_name = "REASON")]
        override_reason: Option<String>,
        #[command(flatten)]
        flags: CommandFlags,
    },
    /// Reject a decision (as its driver).
    #[command(
        after_help = "Example:\n  accord --as dana@example.com decision reject CHECKOUT-42 0198c3a1 --reason \"Too expensive.\""
    )]
    Reject {
        #[command(flatten)]
        target: DecisionTarget,
        /// Why it is rejected.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        flags: CommandFlags,
    },
    /// Withdraw a decision (its driver or proposer).
    #[command(
        after_help = "Example:\n  accord --as dana@example.com decision withdraw CHECKOUT-42 0198c3a1 --reason \"Superseded by the platform plan.\""
    )]
    Withdraw {
        #[command(flatten)]
        target: DecisionTarget,
        /// Why it is withdrawn.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        flags: CommandFlags,
    },
    /// Record that an accepted decision is replaced by another accepted one.
    #[command(
        after_help = "Example:\n  accord --as dana@example.com decision supersede CHECKOUT-42 0198c3a1 --by 0198d4b2"
    )]
    Supersede {
        #[command(flatten)]
        target: DecisionTarget,
        /// The accepted decision that replaces it (id or prefix).
        #[arg(long = "by", value_name = "DECISION")]
        superseded_by: String,
        #[command(flatten)]
        flags: CommandFlags,
    },
    /// Show a decision in full: revisions, sign-offs and their history, feedback thread.
    #[command(
        after_help = "Example:\n  accord decision show CHECKOUT-42 0198c3a1\n  accord --json decision show CHECKOUT-42 0198c3a1 | jq '.sign_off_history'"
    )]
    Show {
        #[command(flatten)]
        target: DecisionTarget,
    },
}

/// Which decision: its initiative, and its id or an id prefix.
#[derive(Clone, Debug, Args)]
pub struct DecisionTarget {
    /// Key (CHECKOUT-42) or id of the initiative.
    pub initiative: String,
    /// The decision's id, or a prefix of at least 4 hex digits that names one decision.
    pub decision: String,
}

#[derive(Debug, Args)]
pub struct ProposeArgs {
    /// Key (CHECKOUT-42) or id of the initiative.
    pub initiative: String,
    /// What is being decided, in a line.
    #[arg(long)]
    pub title: String,
    /// The situation that calls for a decision.
    #[arg(long, default_value = "")]
    pub context: String,
    /// An option that was considered (repeat for each).
    #[arg(long = "option", value_name = "OPTION")]
    pub options: Vec<String>,
    /// The chosen option.
    #[arg(long)]
    pub proposal: String,
    /// Why.
    #[arg(long, default_value = "")]
    pub rationale: String,
    /// Functions whose sign-off it needs, comma-separated [default: the initiative's].
    #[arg(long, value_delimiter = ',', value_name = "FUNCTION,…")]
    pub functions: Vec<String>,
    /// An accepted decision this one replaces once accepted (id or prefix).
    #[arg(long, value_name = "DECISION")]
    pub supersedes: Option<String>,
    #[command(flatten)]
    pub flags: CommandFlags,
}

/// Material or editorial: exactly one.
#[derive(Clone, Copy, Debug, Args)]
#[group(required = true, multiple = false)]
pub struct RevisionKindFlags {
    /// The proposal, options or rationale changed in substance: approvals go stale.
    #[arg(long)]
    pub material: bool,
    /// Wording, typos, links: approvals carry forward.
    #[arg(long)]
    pub editorial: bool,
}

#[derive(Debug, Args)]
pub struct ReviseArgs {
    #[command(flatten)]
    pub target: DecisionTarget,
    #[command(flatten)]
    pub kind: RevisionKindFlags,
    /// New title (the rest of the content is kept unless given).
    #[arg(long)]
    pub title: Option<String>,
    #[arg(long)]
    pub context: Option<String>,
    /// Replaces the options considered (repeat for each).
    #[arg(long = "option", value_name = "OPTION")]
    pub options: Vec<String>,
    #[arg(long)]
    pub proposal: Option<String>,
    #[arg(long)]
    pub rationale: Option<String>,
    /// Replaces the functions whose sign-off it needs, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "FUNCTION,…")]
    pub functions: Vec<String>,
    /// What changed and why.
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub flags: CommandFlags,
}

/// The initiative's alignment and the full id of the decision the target names.
async fn locate(ctx: &Context, target: &DecisionTarget) -> Result<(pb::InitiativeAlignment, String), Failure> {
    let view = resolve::alignment(&ctx.client, &target.initiative).await?;
    let id = resolve::decision_id(&view, &target.decision)?;
    Ok((view, id))
}

fn title_of(view: &pb::InitiativeAlignment, id: &str) -> String {
    view.decisions.iter().find(|d| d.decision_id == id).map(|d| d.title.clone()).unwrap_or_default()
}

/// How a decision is named in a result line: short id and title.
fn named(view: &pb::InitiativeAlignment, id: &str) -> String {
    let title = title_of(view, id);
    if title.is_empty() { short_decision_id(id, view) } else { format!("{} {title:?}", short_decision_id(id, view)) }
}

pub async fn fetch_detail(
    ctx: &Context,
    view: &pb::InitiativeAlignment,
    id: &str,
) -> Result<pb::DecisionDetail, Failure> {
    let request = pb::GetDecisionRequest { initiative: view.initiative_id.clone(), decision_id: id.to_owned() };
    ctx.client.reply(ctx.client.queries().get_decision(request).await)
}

pub async fn run(ctx: &Context, command: DecisionCommand) -> Result<Output, Failure> {
    let client = &ctx.client;
    match command {
        DecisionCommand::Propose(args) => {
            let view = resolve::alignment(client, &args.initiative).await?;
            let supersedes = match &args.supersedes {
                Some(given) => resolve::decision_id(&view, given)?,
                None => String::new(),
            };
            let request = pb::ProposeDecisionRequest {
                options: args.flags.options(),
                initiative: view.initiative_id.clone(),
                content: Some(pb::DecisionContent {
                    title: args.title,
                    context: args.context,
                    options: args.options,
                    proposal: args.proposal,
                    rationale: args.rationale,
                }),
                required_functions: args.functions,
                supersedes,
            };
            let response = client.reply(client.commands().propose_decision(request).await)?;
            let after = resolve::alignment(client, &view.initiative_id).await?;
            let id = response.created_id.clone();
            Ok(appended(
                format!("proposed decision {} on {}", named(&after, &id), after.key),
                &after.key,
                &response,
                json!({"decision_id": id, "short_id": short_decision_id(&id, &after)}),
            ))
        }
        DecisionCommand::Revise(args) => {
            let (view, id) = locate(ctx, &args.target).await?;
            let unchanged = args.title.is_none()
                && args.context.is_none()
                && args.options.is_empty()
                && args.proposal.is_none()
                && args.rationale.is_none()
                && args.functions.is_empty();
            if unchanged {
                return Err(Failure::invalid(
                    "nothing to revise: give --title, --context, --option, --proposal, --rationale or --functions",
                ));
            }
            let detail = fetch_detail(ctx, &view, &id).await?;
            let current = detail.content.unwrap_or_default();
            let kind = if args.kind.material { pb::RevisionKind::Material } else { pb::RevisionKind::Editorial };
            let content = pb::DecisionContent {
                title: args.title.unwrap_or(current.title),
                context: args.context.unwrap_or(current.context),
                options: if args.options.is_empty() { current.options } else { args.options },
                proposal: args.proposal.unwrap_or(current.proposal),
                rationale: args.rationale.unwrap_or(current.rationale),
            };
            let request = pb::ReviseDecisionRequest {
                options: args.flags.options(),
                initiative: view.initiative_id.clone(),
                decision_id: id.clone(),
                kind: kind.into(),
                content: Some(content),
                required_functions: args.functions,
                note: args.note.unwrap_or_default(),
            };
            let response = client.reply(client.commands().revise_decision(request).await)?;
            let kind = revision_kind_name(kind);
            Ok(appended(
                format!("revised decision {} ({kind}): now revision {}", named(&view, &id), detail.revision + 1),
                &view.key,
                &response,
                json!({"decision_id": id, "kind": kind, "revision": detail.revision + 1}),
            ))
        }
        DecisionCommand::Accept { target, override_reason, flags } => {
            let (view, id) = locate(ctx, &target).await?;
            let overriding = override_reason.is_some();
            let request = pb::AcceptDecisionRequest {
                options: flags.options(),
                initiative: view.initiative_id.clone(),
                decision_id: id.clone(),
                override_reason: override_reason.unwrap_or_default(),
            };
            let response = client.reply(client.commands().accept_decision(request).await)?;
            let how = if overriding { " (override: recorded with its reason)" } else { "" };
            Ok(appended(
                format!("accepted decision {}{how}", named(&view, &id)),
                &view.key,
                &response,
                json!({"decision_id": id, "override": overriding}),
            ))
        }
        DecisionCommand::Reject { target, reason, flags } => {
            let (view, id) = locate(ctx, &target).await?;
            let request = pb::RejectDecisionRequest {
                options: flags.options(),
                initiative: view.initiative_id.clone(),
                decision_id: id.clone(),
                reason,
            };
            let response = client.reply(client.commands().reject_decision(request).await)?;
            Ok(appended(
                format!("rejected decision {}", named(&view, &id)),
                &view.key,
                &response,
                json!({"decision_id": id}),
            ))
        }
        DecisionCommand::Withdraw { target, reason, flags } => {
            let (view, id) = locate(ctx, &target).await?;
            let request = pb::WithdrawDecisionRequest {
                options: flags.options(),
                initiative: view.initiative_id.clone(),
                decision_id: id.clone(),
                reason: reason.unwrap_or_default(),
            };
            let response = client.reply(client.commands().withdraw_decision(request).await)?;
            Ok(appended(
                format!("withdrew decision {}", named(&view, &id)),
                &view.key,
                &response,
                json!({"decision_id": id}),
            ))
        }
        DecisionCommand::Supersede { target, superseded_by, flags } => {
            let (view, id) = locate(ctx, &target).await?;
            let by = resolve::decision_id(&view, &superseded_by)?;
            let request = pb::SupersedeDecisionRequest {
                options: flags.options(),
                initiative: view.initiative_id.clone(),
                decision_id: id.clone(),
                superseded_by: by.clone(),
            };
            let response = client.reply(client.commands().supersede_decision(request).await)?;
            Ok(appended(
                format!("decision {} is superseded by {}", named(&view, &id), named(&view, &by)),
                &view.key,
                &response,
                json!({"decision_id": id, "superseded_by": by}),
            ))
        }
        DecisionCommand::Show { target } => {
            let (view, id) = locate(ctx, &target).await?;
            let detail = fetch_detail(ctx, &view, &id).await?;
            Ok(Output::new(detail_text(&detail, &view, ctx.style), decision_json(&detail)))
        }
    }
}

/// One decision in full, for people: content, where it stands, revisions, sign-offs in
/// force and their whole history (stale, replaced and revoked marked), the feedback
/// thread, and how it was closed (an override shown as such).
pub fn detail_text(detail: &pb::DecisionDetail, view: &pb::InitiativeAlignment, style: Style) -> String {
    let content = detail.content.clone().unwrap_or_default();
    let status = decision_status_name(detail.status());
    let mut out = format!(
        "{} {}  {}  on {}\n",
        style.paint("Decision", Tone::Bold),
        short_decision_id(&detail.decision_id, view),
        style.paint(&format!("{:?}", content.title), Tone::Bold),
        detail.initiative_key
    );
    out.push_str(&format!(
        "{} · revision {} · proposed by {} at {} · needs {}\nid {}\n",
        style.paint_opt(status, super::output::tone_of(status)),
        detail.revision,
        detail.proposed_by,
        time_text(detail.proposed_at.as_ref()),
        detail.required_functions.join(", "),
        detail.decision_id
    ));
    if !content.context.is_empty() {
        out.push_str(&format!("  context:   {}\n", content.context));
    }
    if !content.options.is_empty() {
        out.push_str(&format!("  options:   {}\n", content.options.join(" · ")));
    }
    out.push_str(&format!("  proposal:  {}\n", content.proposal));
    if !content.rationale.is_empty() {
        out.push_str(&format!("  rationale: {}\n", content.rationale));
    }
    if detail.status() == pb::DecisionStatus::Proposed {
        let functions: Vec<String> = detail
            .functions
            .iter()
            .map(|f| {
                let word = state_word(f.state());
                format!("{} {}", f.function, style.paint_opt(word, super::output::tone_of(word)))
            })
            .collect();
        let alignment = decision_alignment_name(detail.alignment());
        out.push_str(&format!(
            "\nAlignment: {} — {}\n",
            style.paint_opt(alignment, super::output::tone_of(alignment)),
            functions.join(", ")
        ));
        for item in &detail.outstanding {
            out.push_str(&format!("  waiting on {}: {}\n", item.function, item.reason));
        }
    }

    out.push_str("\nRevisions\n");
    let mut revisions = Table::new(["REV", "KIND", "BY", "AT", "NOTE"]).indented(2);
    for r in &detail.revisions {
        let kind = if r.number == 1 { "initial" } else { revision_kind_name(r.kind()) };
        revisions.row(vec![
            r.number.to_string().into(),
            Cell::toned(kind, (r.number > 1 && r.kind() == pb::RevisionKind::Material).then_some(Tone::Warn)),
            r.revised_by.clone().into(),
            time_text(r.revised_at.as_ref()).into(),
            r.note.clone().into(),
        ]);
    }
    out.push_str(&revisions.render(style));

    out.push_str("\nSign-offs in force\n");
    if detail.sign_offs.is_empty() {
        out.push_str("  none\n");
    } else {
        let mut table = Table::new(["FUNCTION", "SIGNER", "VERDICT", "REV", "COUNTS", "REASON / COMMENT"]).indented(2);
        for s in &detail.sign_offs {
            let counts = if s.counts {
                Cell::toned("yes", Some(Tone::Good))
            } else if is_stale(detail, s) {
                Cell::toned("no: stale", Some(Tone::Warn))
            } else {
                Cell::toned("no", Some(Tone::Dim))
            };
            table.row(vec![
                s.function.clone().into(),
                s.signer.clone().into(),
                Cell::state(verdict_name(s.verdict())),
                s.revision.to_string().into(),
                counts,
                words(&s.reason, &s.comment).into(),
            ]);
        }
        out.push_str(&table.render(style));
    }

    out.push_str("\nSign-off history (oldest first)\n");
    if detail.sign_off_history.is_empty() {
        out.push_str("  none\n");
    } else {
        let mut table =
            Table::new(["AT", "FUNCTION", "SIGNER", "VERDICT", "REV", "MARK", "REASON / COMMENT"]).indented(2);
        for s in &detail.sign_off_history {
            let mut marks = Vec::new();
            if is_stale(detail, s) {
                marks.push("stale");
            }
            if s.replaced {
                marks.push("replaced");
            }
            if s.revoked {
                marks.push("revoked");
            }
            let mark = if marks.is_empty() { "-".to_owned() } else { marks.join(", ") };
            let tone = if marks.is_empty() { Some(Tone::Dim) } else { Some(Tone::Warn) };
            table.row(vec![
                time_text(s.signed_at.as_ref()).into(),
                s.function.clone().into(),
                s.signer.clone().into(),
                Cell::state(verdict_name(s.verdict())),
                s.revision.to_string().into(),
                Cell::toned(mark, tone),
                words(&s.reason, &s.comment).into(),
            ]);
        }
        out.push_str(&table.render(style));
    }

    out.push_str("\nFeedback thread\n");
    if detail.feedback.is_empty() {
        out.push_str("  none\n");
    } else {
        let ids: Vec<&str> = detail.feedback.iter().map(|f| f.feedback_id.as_str()).collect();
        let mut table = Table::new(["ID", "KIND", "FROM", "SOURCE", "AT", "STATE", "BODY", "RESOLUTION"]).indented(2);
        for f in &detail.feedback {
            let (state, resolution) = if f.resolved {
                (Cell::toned("resolved", Some(Tone::Dim)), format!("{}: {}", f.resolved_by, f.resolution))
            } else {
                (Cell::toned("open", (f.kind() == pb::FeedbackKind::Objection).then_some(Tone::Bad)), String::new())
            };
            table.row(vec![
                short_id_wide(&f.feedback_id, ids.iter().copied()).into(),
                feedback_kind_name(f.kind()).into(),
                format!("{} ({})", f.author, f.function).into(),
                feedback_source_name(f.source()).into(),
                time_text(f.recorded_at.as_ref()).into(),
                state,
                f.body.clone().into(),
                resolution.into(),
            ]);
        }
        out.push_str(&table.render(style));
    }

    if !detail.closed_by.is_empty() {
        out.push_str(&format!(
            "\n{} by {} at {}{}\n",
            style.paint_opt(&capitalised(status), super::output::tone_of(status)),
            detail.closed_by,
            time_text(detail.closed_at.as_ref()),
            if detail.close_reason.is_empty() { String::new() } else { format!(": {}", detail.close_reason) }
        ));
    }
    if let Some(record) = &detail.r#override {
        let unaligned: Vec<String> =
            record.unaligned.iter().map(|f| format!("{} {}", f.function, state_word(f.state()))).collect();
        out.push_str(&format!(
            "{} accepted by {} although {} — reason: {}\n",
            style.paint("OVERRIDE:", Tone::Bad),
            record.accepted_by,
            unaligned.join(", "),
            record.reason
        ));
    }
    if !detail.supersedes.is_empty() {
        out.push_str(&format!("supersedes {}\n", short_decision_id(&detail.supersedes, view)));
    }
    if !detail.superseded_by.is_empty() {
        out.push_str(&format!("superseded by {}\n", short_decision_id(&detail.superseded_by, view)));
    }
    out
}

fn words(reason: &str, comment: &str) -> String {
    match (reason.is_empty(), comment.is_empty()) {
        (true, true) => String::new(),
        (false, true) => reason.to_owned(),
        (true, false) => comment.to_owned(),
        (false, false) => format!("{reason} — {comment}"),
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
