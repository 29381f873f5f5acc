//! `accord stakeholder …`: give a person a role (driver, approver, contributor,
//! informed) in one function of an initiative, or take it away.

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::views::role_name;
use super::{CommandFlags, Context, Failure, Output, appended, initiative_label};
use crate::proto as pb;

pub const EXAMPLES: &str = "\
Examples:
  accord --as pm@example.com stakeholder assign CHECKOUT-42 eve@example.com --function engineering --role approver
  accord --as pm@example.com stakeholder remove CHECKOUT-42 eve@example.com --function engineering --role approver";

#[derive(Debug, Subcommand)]
pub enum StakeholderCommand {
    /// Give a person a role in one function of an initiative.
    #[command(
        after_help = "Example:\n  accord --as pm@example.com stakeholder assign CHECKOUT-42 dana@example.com --function product --role driver\n  accord --as pm@example.com stakeholder assign CHECKOUT-42 eve@example.com --function engineering --role approver"
    )]
    Assign(StakeholderArgs),
    /// Take a role in one function of an initiative away from a person.
    #[command(
        after_help = "Example:\n  accord --as pm@example.com stakeholder remove CHECKOUT-42 eve@example.com --function engineering --role approver"
    )]
    Remove(StakeholderArgs),
}

/// A role on an initiative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Runs the decisions: may accept, reject and withdraw them.
    Driver,
    /// Signs off (approves or rejects) for the function.
    Approver,
    /// Gives feedback for the function.
    Contributor,
    /// Reads only.
    Informed,
}

impl RoleArg {
    pub fn proto(self) -> pb::Role {
        match self {
            RoleArg::Driver => pb::Role::Driver,
            RoleArg::Approver => pb::Role::Approver,
            RoleArg::Contributor => pb::Role::Contributor,
            RoleArg::Informed => pb::Role::Informed,
        }
    }
}

#[derive(Debug, Args)]
pub struct StakeholderArgs {
    /// Key (CHECKOUT-42) or id of the initiative.
    pub initiative: String,
    /// The person, e.g. an email address.
    pub principal: String,
    /// The function they act for (a lower-case slug: engineering, design, legal…).
    #[arg(long)]
    pub function: String,
    /// Their role in that function.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    #[command(flatten)]
    pub flags: CommandFlags,
}

pub async fn run(ctx: &Context, command: StakeholderCommand) -> Result<Output, Failure> {
    let client = &ctx.client;
    match command {
        StakeholderCommand::Assign(args) => {
            let label = initiative_label(&args.initiative);
            let role = role_name(args.role.proto());
            let what = format!("assigned {} as {role} for {} on {label}", args.principal, args.function);
            let extra = json!({"principal": args.principal, "function": args.function, "role": role});
            let request = pb::AssignStakeholderRequest {
                options: args.flags.options(),
                initiative: args.initiative,
                principal: args.principal,
                function: args.function,
                role: args.role.proto().into(),
            };
            let response = client.reply(client.commands().assign_stakeholder(request).await)?;
            Ok(appended(what, &label, &response, extra))
        }
        StakeholderCommand::Remove(args) => {
            let label = initiative_label(&args.initiative);
            let role = role_name(args.role.proto());
            let what = format!("removed {} as {role} for {} on {label}", args.principal, args.function);
            let extra = json!({"principal": args.principal, "function": args.function, "role": role});
            let request = pb::RemoveStakeholderRequest {
                options: args.flags.options(),
                initiative: args.initiative,
                principal: args.principal,
                function: args.function,
                role: args.role.proto().into(),
            };
            let response = client.reply(client.commands().remove_stakeholder(request).await)?;
            Ok(appended(what, &label, &response, extra))
        }
    }
}
