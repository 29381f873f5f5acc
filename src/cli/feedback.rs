//! `accord feedback …`: record a comment, question, concern or objection on an
//! initiative or one of its decisions, resolve or reopen it, and list it in full (an
//! alignment view shows only the most recent open items, as previews). Feedback is named
//! by its id or a short unambiguous prefix.

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::resolve::{self, short_id_wide};
use super::views::{feedback_json, feedback_kind_name, feedback_source_name};
use super::{CommandFlags, Context, Failure, Output, appended};
use crate::proto as pb;

pub const EXAMPLES: &str = "\
Examples:
  accord --as dee@example.com feedback add CHECKOUT-42 \"Participants distrusted the redirect.\" \\
      --decision 0198c3a1 --kind concern --source user-research
  accord --as bo@example.com feedback resolve CHECKOUT-42 0198c3a1-d2e3 --resolution \"Rate matches Adyen's.\"
  accord feedback list CHECKOUT-42 --open --kind objection";

#[derive(Debug, Subcommand)]
pub enum FeedbackCommand {
    /// Record feedback for a function you hold a role in; an objection blocks alignment.
    #[command(
        after_help = "Example:\n  accord --as dee@example.com feedback add CHECKOUT-42 \"Participants distrusted the redirect.\" \\\n      --decision 0198c3a1 --kind concern --source user-research\n  accord --as bo@example.com feedback add CHECKOUT-42 \"Fees are above our rate.\" --decision 0198c3a1 --kind objection"
    )]
    Add(AddArgs),
    /// Resolve feedback (its author or a driver), saying how.
    #[command(
        after_help = "Example:\n  accord --as bo@example.com feedback resolve CHECKOUT-42 0198c3a1-d2e3 --resolution \"The enterprise rate matches Adyen's.\""
    )]
    Resolve {
        /// Key (CHECKOUT-42) or id of the initiative.
        initiative: String,
        /// The feedback's id, or a prefix of at least 4 hex digits.
        feedback: String,
        /// How it was resolved.
        #[arg(long)]
        resolution: String,
        #[command(flatten)]
        flags: CommandFlags,
    },
    /// List an initiative's feedback in full, oldest first.
    #[command(
        after_help = "Example:\n  accord feedback list CHECKOUT-42\n  accord feedback list CHECKOUT-42 --decision 0198c3a1 --open --kind objection --kind concern"
    )]
    List {
        /// Key (CHECKOUT-42) or id of the initiative.
        initiative: String,
        /// Only feedback on this decision (id or prefix).
        #[arg(long, value_name = "DECISION")]
        decision: Option<String>,
        /// Only these kinds (repeatable).
        #[arg(long, value_enum)]
        kind: Vec<KindArg>,
        /// Only feedback not yet resolved.
        #[arg(long)]
        open: bool,
    },
    /// Reopen resolved feedback (its author or a driver).
    #[command(
        after_help = "Example:\n  accord --as bo@example.com feedback reopen CHECKOUT-42 0198c3a1-d2e3 --reason \"The rate was not signed.\""
    )]
    Reopen {
        /// Key (CHECKOUT-42) or id of the initiative.
        initiative: String,
        /// The feedback's id, or a prefix of at least 4 hex digits.
        feedback: String,
        /// Why it is reopened.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        flags: CommandFlags,
    },
}

/// What kind of feedback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    Comment,
    Question,
    /// Counted and shown; does not block.
    Concern,
    /// Blocks alignment of its decision (or of the initiative) until resolved.
    Objection,
}

/// Where the feedback comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    Internal,
    #[value(alias = "user_research")]
    UserResearch,
    Customer,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Key (CHECKOUT-42) or id of the initiative.
    pub initiative: String,
    /// The feedback itself.
    pub body: String,
    /// The decision it is about (id or prefix) [default: the initiative as a whole].
    #[arg(long, value_name = "DECISION")]
    pub decision: Option<String>,
    /// The function you speak for [default: the one function you hold a role in].
    #[arg(long)]
    pub function: Option<String>,
    #[arg(long, value_enum, default_value_t = KindArg::Comment)]
    pub kind: KindArg,
    #[arg(long, value_enum, default_value_t = SourceArg::Internal)]
    pub source: SourceArg,
    #[command(flatten)]
    pub flags: CommandFlags,
}

impl KindArg {
    fn proto(self) -> pb::FeedbackKind {
        match self {
            KindArg::Comment => pb::FeedbackKind::Comment,
            KindArg::Question => pb::FeedbackKind::Question,
            KindArg::Concern => pb::FeedbackKind::Concern,
            KindArg::Objection => pb::FeedbackKind::Objection,
        }
    }
}

impl SourceArg {
    fn proto(self) -> pb::FeedbackSource {
        match self {
            SourceArg::Internal => pb::FeedbackSource::Internal,
            SourceArg::UserResearch => pb::FeedbackSource::UserResearch,
            SourceArg::Customer => pb::FeedbackSource::Customer,
        }
    }
}

pub async fn run(ctx: &Context, command: FeedbackCommand) -> Result<Output, Failure> {
    let client = &ctx.client;
    match command {
        FeedbackCommand::Add(args) => {
            let view = resolve::alignment(client, &args.initiative).await?;
            let decision_id = match &args.decision {
                Some(given) => resolve::decision_id(&view, given)?,
                None => String::new(),
            };
            let needed: Vec<String> = view
                .decisions
                .iter()
                .filter(|d| d.decision_id == decision_id)
                .flat_map(|d| d.functions.iter().map(|f| f.function.clone()))
                .collect();
            let function = match args.function {
                Some(function) => function,
                None => resolve::caller_function(
                    &view,
                    client.actor(),
                    &[pb::Role::Driver, pb::Role::Approver, pb::Role::Contributor],
                    &needed,
                    "give feedback",
                )?,
            };
            let kind = args.kind.proto();
            let source = args.source.proto();
            let request = pb::RecordFeedbackRequest {
                options: args.flags.options(),
                initiative: view.initiative_id.clone(),
                decision_id: decision_id.clone(),
                function: function.clone(),
                kind: kind.into(),
                source: source.into(),
                body: args.body,
            };
            let response = client.reply(client.commands().record_feedback(request).await)?;
            let id = response.created_id.clone();
            let after = resolve::alignment(client, &view.initiative_id).await?;
            let siblings =
                after.open_objections.iter().chain(after.open_concerns.iter()).map(|f| f.feedback_id.as_str());
            let short = short_id_wide(&id, siblings);
            let on = if decision_id.is_empty() {
                "the initiative".to_owned()
            } else {
                format!("decision {}", resolve::short_decision_id(&decision_id, &after))
            };
            Ok(appended(
                format!(
                    "recorded {} {short} from {function} ({}) on {on}",
                    feedback_kind_name(kind),
                    feedback_source_name(source)
                ),
                &after.key,
                &response,
                json!({
                    "feedback_id": id,
                    "short_id": short,
                    "decision_id": if decision_id.is_empty() { None } else { Some(decision_id) },
                    "function": function,
                    "kind": feedback_kind_name(kind),
                    "source": feedback_source_name(source),
                }),
            ))
        }
        FeedbackCommand::Resolve { initiative, feedback, resolution, flags } => {
            let view = resolve::alignment(client, &initiative).await?;
            let id = resolve::feedback_id(client, &view, &feedback).await?;
            let request = pb::ResolveFeedbackRequest {
                options: flags.options(),
                initiative: view.initiative_id.clone(),
                feedback_id: id.clone(),
                resolution,
            };
            let response = client.reply(client.commands().resolve_feedback(request).await)?;
            Ok(appended(format!("resolved feedback {feedback}"), &view.key, &response, json!({"feedback_id": id})))
        }
        FeedbackCommand::List { initiative, decision, kind, open } => {
            let view = resolve::alignment(client, &initiative).await?;
            let decision_id = match &decision {
                Some(given) => resolve::decision_id(&view, given)?,
                None => String::new(),
            };
            let filters = pb::ListFeedbackRequest {
                decision_id,
                kinds: kind.iter().map(|k| k.proto().into()).collect(),
                open_only: open,
                ..Default::default()
            };
            let items = resolve::all_feedback(client, &view.initiative_id, filters).await?;
            let ids: Vec<&str> = items.iter().map(|f| f.feedback_id.as_str()).collect();
            let mut text = String::new();
            for f in &items {
                let state = if f.resolved { format!("resolved by {}", f.resolved_by) } else { "open".to_owned() };
                text.push_str(&format!(
                    "{} {} from {} ({}, {}) — {state}\n  {}\n",
                    short_id_wide(&f.feedback_id, ids.iter().copied()),
                    feedback_kind_name(f.kind()),
                    f.author,
                    f.function,
                    feedback_source_name(f.source()),
                    f.body.replace('\n', "\n  ")
                ));
            }
            if items.is_empty() {
                text.push_str(&format!("no feedback on {} matches\n", view.key));
            }
            let json = json!({"initiative": view.key, "items": items.iter().map(feedback_json).collect::<Vec<_>>()});
            Ok(Output::new(text.trim_end().to_owned(), json))
        }
        FeedbackCommand::Reopen { initiative, feedback, reason, flags } => {
            let view = resolve::alignment(client, &initiative).await?;
            let id = resolve::feedback_id(client, &view, &feedback).await?;
            let request = pb::ReopenFeedbackRequest {
                options: flags.options(),
                initiative: view.initiative_id.clone(),
                feedback_id: id.clone(),
                reason: reason.unwrap_or_default(),
            };
            let response = client.reply(client.commands().reopen_feedback(request).await)?;
            Ok(appended(format!("reopened feedback {feedback}"), &view.key, &response, json!({"feedback_id": id})))
        }
    }
}
