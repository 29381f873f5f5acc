//! `accord signoff …`: approve or reject the current revision of a decision for a
//! function you approve for, or revoke your verdict. `--function` may be left out when
//! you approve for exactly one of the functions the decision needs.

use clap::{Args, Subcommand};
use serde_json::json;

use super::decision::DecisionTarget;
use super::resolve;
use super::{CommandFlags, Context, Failure, Output, appended};
use crate::proto as pb;

pub const EXAMPLES: &str = "\
Examples:
  accord --as eve@example.com signoff approve CHECKOUT-42 0198c3a1
  accord --as bo@example.com signoff reject CHECKOUT-42 0198c3a1 --reason \"Fees are above our rate.\"
  accord --as eve@example.com signoff revoke CHECKOUT-42 0198c3a1 --function engineering";

#[derive(Debug, Subcommand)]
pub enum SignoffCommand {
    /// Approve the decision's current revision for your function.
    #[command(
        after_help = "Example:\n  accord --as eve@example.com signoff approve CHECKOUT-42 0198c3a1\n  accord --as eve@example.com signoff approve CHECKOUT-42 0198c3a1 --function engineering --revision 2 --comment \"LGTM\""
    )]
    Approve(VerdictArgs),
    /// Reject the decision for your function, with a reason (sticky across revisions).
    #[command(
        after_help = "Example:\n  accord --as bo@example.com signoff reject CHECKOUT-42 0198c3a1 --reason \"Fees are above our negotiated rate.\""
    )]
    Reject {
        #[command(flatten)]
        verdict: VerdictArgs,
        /// Why (required for a rejection).
        #[arg(long)]
        reason: String,
    },
    /// Revoke your verdict on the decision for your function.
    #[command(
        after_help = "Example:\n  accord --as eve@example.com signoff revoke CHECKOUT-42 0198c3a1 --function engineering"
    )]
    Revoke {
        #[command(flatten)]
        target: DecisionTarget,
        /// The function [default: the one function of the decision you approve for].
        #[arg(long)]
        function: Option<String>,
        #[command(flatten)]
        flags: CommandFlags,
    },
}

#[derive(Debug, Args)]
pub struct VerdictArgs {
    #[command(flatten)]
    pub target: DecisionTarget,
    /// The function you sign for [default: the one function of the decision you approve for].
    #[arg(long)]
    pub function: Option<String>,
    /// The revision you read: refused (exit 4) if the decision has moved on since.
    #[arg(long)]
    pub revision: Option<u32>,
    #[arg(long)]
    pub comment: Option<String>,
    #[command(flatten)]
    pub flags: CommandFlags,
}

/// The initiative, the decision's full id and the function to sign for.
async fn locate(
    ctx: &Context,
    target: &DecisionTarget,
    function: Option<String>,
) -> Result<(pb::InitiativeAlignment, String, String), Failure> {
    let view = resolve::alignment(&ctx.client, &target.initiative).await?;
    let id = resolve::decision_id(&view, &target.decision)?;
    let function = match function {
        Some(function) => function,
        None => {
            let needed: Vec<String> = view
                .decisions
                .iter()
                .filter(|d| d.decision_id == id)
                .flat_map(|d| d.functions.iter().map(|f| f.function.clone()))
                .collect();
            resolve::caller_function(&view, ctx.client.actor(), &[pb::Role::Approver], &needed, "sign off")?
        }
    };
    Ok((view, id, function))
}

async fn record(ctx: &Context, args: VerdictArgs, verdict: pb::Verdict, reason: String) -> Result<Output, Failure> {
    let (view, id, function) = locate(ctx, &args.target, args.function).await?;
    let request = pb::RecordSignOffRequest {
        options: args.flags.options(),
        initiative: view.initiative_id.clone(),
        decision_id: id.clone(),
        function: function.clone(),
        verdict: verdict.into(),
        reason,
        comment: args.comment.unwrap_or_default(),
        revision: args.revision,
    };
    let response = ctx.client.reply(ctx.client.commands().record_sign_off(request).await)?;
    let word = if verdict == pb::Verdict::Approve { "approved" } else { "rejected" };
    let revision = view.decisions.iter().find(|d| d.decision_id == id).map(|d| d.revision).unwrap_or_default();
    Ok(appended(
        format!(
            "{} {word} decision {} (revision {revision}) for {function}",
            ctx.client.actor(),
            resolve::short_decision_id(&id, &view)
        ),
        &view.key,
        &response,
        json!({"decision_id": id, "function": function, "verdict": super::views::verdict_name(verdict), "revision": revision}),
    ))
}

pub async fn run(ctx: &Context, command: SignoffCommand) -> Result<Output, Failure> {
    match command {
        SignoffCommand::Approve(args) => record(ctx, args, pb::Verdict::Approve, String::new()).await,
        SignoffCommand::Reject { verdict, reason } => record(ctx, verdict, pb::Verdict::Reject, reason).await,
        SignoffCommand::Revoke { target, function, flags } => {
            let (view, id, function) = locate(ctx, &target, function).await?;
            let request = pb::RevokeSignOffRequest {
                options: flags.options(),
                initiative: view.initiative_id.clone(),
                decision_id: id.clone(),
                function: function.clone(),
            };
            let response = ctx.client.reply(ctx.client.commands().revoke_sign_off(request).await)?;
            Ok(appended(
                format!(
                    "{} revoked their verdict on decision {} for {function}",
                    ctx.client.actor(),
                    resolve::short_decision_id(&id, &view)
                ),
                &view.key,
                &response,
                json!({"decision_id": id, "function": function}),
            ))
        }
    }
}
