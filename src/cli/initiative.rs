//! `accord initiative …`: create, show, list, update, change the stage of, and archive
//! initiatives. Initiatives are named by key (`CHECKOUT-42`) or id everywhere.

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::output::{Cell, Output, Table, Tone};
use super::resolve::{self, short_decision_id};
use super::status::ListFilters;
use super::views::{self, alignment_json, decision_alignment_name, decision_status_name, role_name, stage_name};
use super::{CommandFlags, Context, Failure, appended, initiative_label};
use crate::proto as pb;

pub const EXAMPLES: &str = "\
Examples:
  accord --as pm@example.com initiative create CHECKOUT-42 --title \"New checkout\"
  accord initiative show CHECKOUT-42
  accord initiative list --stage discovery
  accord --as pm@example.com initiative stage CHECKOUT-42 delivery";

#[derive(Debug, Subcommand)]
pub enum InitiativeCommand {
    /// Create an initiative; you become its owner unless --owner says otherwise.
    #[command(
        after_help = "Example:\n  accord --as pm@example.com initiative create CHECKOUT-42 --title \"New checkout\" \\\n      --summary \"Rebuild checkout around a payment provider.\" --functions engineering,design,business"
    )]
    Create(CreateArgs),
    /// Show an initiative: its summary, owner, stage, stakeholders and decisions.
    #[command(
        after_help = "Example:\n  accord initiative show CHECKOUT-42\n  accord --json initiative show CHECKOUT-42 | jq '.stakeholders'"
    )]
    Show {
        /// Key (CHECKOUT-42) or id of the initiative.
        initiative: String,
    },
    /// List initiatives (title, stage, owner, status), filtered.
    #[command(
        after_help = "Example:\n  accord initiative list\n  accord initiative list --owner pm@example.com --text checkout --archived"
    )]
    List(ListFilters),
    /// Change the title, summary, owner or required functions of an initiative.
    #[command(
        after_help = "Example:\n  accord --as pm@example.com initiative update CHECKOUT-42 --title \"Checkout v2\" \\\n      --functions engineering,design,business,legal"
    )]
    Update(UpdateArgs),
    /// Move an initiative to another lifecycle stage.
    #[command(after_help = "Example:\n  accord --as pm@example.com initiative stage CHECKOUT-42 delivery")]
    Stage {
        /// Key (CHECKOUT-42) or id of the initiative.
        initiative: String,
        /// The new stage.
        #[arg(value_enum)]
        stage: StageArg,
        #[command(flatten)]
        flags: CommandFlags,
    },
    /// Archive an initiative: it takes no more commands and leaves every inbox.
    #[command(
        after_help = "Example:\n  accord --as pm@example.com initiative archive CHECKOUT-42 --reason \"Cancelled in Q3 planning\""
    )]
    Archive {
        /// Key (CHECKOUT-42) or id of the initiative.
        initiative: String,
        /// Why it is archived.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        flags: CommandFlags,
    },
}

/// A lifecycle stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StageArg {
    Discovery,
    Definition,
    Delivery,
    Launched,
    Scaling,
    Sunset,
}

impl StageArg {
    pub fn proto(self) -> pb::Stage {
        match self {
            StageArg::Discovery => pb::Stage::Discovery,
            StageArg::Definition => pb::Stage::Definition,
            StageArg::Delivery => pb::Stage::Delivery,
            StageArg::Launched => pb::Stage::Launched,
            StageArg::Scaling => pb::Stage::Scaling,
            StageArg::Sunset => pb::Stage::Sunset,
        }
    }
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Unique key: upper-case letters, digits and dashes, starting with a letter (CHECKOUT-42).
    pub key: String,
    /// What the initiative is called.
    #[arg(long)]
    pub title: String,
    /// A few sentences on what it is about.
    #[arg(long, default_value = "")]
    pub summary: String,
    /// Who owns it [default: you].
    #[arg(long, value_name = "PRINCIPAL")]
    pub owner: Option<String>,
    /// Stage it starts in [default: discovery].
    #[arg(long, value_enum)]
    pub stage: Option<StageArg>,
    /// Functions whose agreement alignment needs, comma-separated [default: engineering,design,business].
    #[arg(long, value_delimiter = ',', value_name = "FUNCTION,…")]
    pub functions: Vec<String>,
    #[command(flatten)]
    pub flags: CommandFlags,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Key (CHECKOUT-42) or id of the initiative.
    pub initiative: String,
    #[arg(long)]
    pub title: Option<String>,
    #[arg(long)]
    pub summary: Option<String>,
    #[arg(long, value_name = "PRINCIPAL")]
    pub owner: Option<String>,
    /// Replaces the required functions, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "FUNCTION,…")]
    pub functions: Vec<String>,
    #[command(flatten)]
    pub flags: CommandFlags,
}

pub async fn run(ctx: &Context, command: InitiativeCommand) -> Result<Output, Failure> {
    let client = &ctx.client;
    match command {
        InitiativeCommand::Create(args) => {
            let key = initiative_label(&args.key);
            let request = pb::CreateInitiativeRequest {
                options: args.flags.options(),
                key: args.key.clone(),
                title: args.title.clone(),
                summary: args.summary,
                owner: args.owner.clone().unwrap_or_default(),
                stage: args.stage.map(|s| s.proto()).unwrap_or(pb::Stage::Unspecified).into(),
                required_functions: args.functions,
            };
            let response = client.reply(client.commands().create_initiative(request).await)?;
            let owner = args.owner.unwrap_or_else(|| client.actor().to_owned());
            Ok(appended(
                format!("created initiative {key} {:?}, owned by {owner}", args.title),
                &key,
                &response,
                json!({"key": key}),
            ))
        }
        InitiativeCommand::Show { initiative } => {
            let view = resolve::alignment(client, &initiative).await?;
            Ok(Output::new(show_text(ctx, &view), alignment_json(&view)))
        }
        InitiativeCommand::List(filters) => {
            let views = filters.fetch(client).await?;
            Ok(Output::new(
                list_text(ctx, &views),
                json!({"initiatives": views.iter().map(alignment_json).collect::<Vec<_>>()}),
            ))
        }
        InitiativeCommand::Update(args) => {
            if args.title.is_none() && args.summary.is_none() && args.owner.is_none() && args.functions.is_empty() {
                return Err(Failure::invalid("nothing to update: give --title, --summary, --owner or --functions"));
            }
            let label = initiative_label(&args.initiative);
            let request = pb::UpdateInitiativeRequest {
                options: args.flags.options(),
                initiative: args.initiative,
                title: args.title,
                summary: args.summary,
                owner: args.owner,
                required_functions: args.functions,
            };
            let response = client.reply(client.commands().update_initiative(request).await)?;
            Ok(appended(format!("updated {label}"), &label, &response, json!({})))
        }
        InitiativeCommand::Stage { initiative, stage, flags } => {
            let label = initiative_label(&initiative);
            let request = pb::ChangeStageRequest { options: flags.options(), initiative, stage: stage.proto().into() };
            let response = client.reply(client.commands().change_stage(request).await)?;
            let stage = stage_name(stage.proto());
            Ok(appended(format!("moved {label} to {stage}"), &label, &response, json!({"stage": stage})))
        }
        InitiativeCommand::Archive { initiative, reason, flags } => {
            let label = initiative_label(&initiative);
            let request = pb::ArchiveInitiativeRequest {
                options: flags.options(),
                initiative,
                reason: reason.unwrap_or_default(),
            };
            let response = client.reply(client.commands().archive_initiative(request).await)?;
            Ok(appended(format!("archived {label}"), &label, &response, json!({})))
        }
    }
}

fn show_text(ctx: &Context, view: &pb::InitiativeAlignment) -> String {
    let style = ctx.style;
    let mut out = format!("{}  {}\n", style.paint(&view.key, Tone::Bold), view.title);
    if !view.summary.is_empty() {
        out.push_str(&format!("  {}\n", view.summary));
    }
    out.push_str(&format!(
        "owner {} · stage {}{} · needs {} · version {} · last activity {}\nid {}\n",
        view.owner,
        stage_name(view.stage()),
        if view.archived { " (archived)" } else { "" },
        view.required_functions.join(", "),
        view.version,
        views::time_text(view.last_activity.as_ref()),
        view.initiative_id,
    ));
    out.push_str("\nStakeholders\n");
    if view.stakeholders.is_empty() {
        out.push_str("  none yet: `accord stakeholder assign` adds them\n");
    } else {
        let mut table = Table::new(["PRINCIPAL", "FUNCTION", "ROLE"]).indented(2);
        for s in &view.stakeholders {
            table.row(vec![s.principal.clone().into(), s.function.clone().into(), role_name(s.role()).into()]);
        }
        out.push_str(&table.render(style));
    }
    out.push_str("\nDecisions\n");
    if view.decisions.is_empty() {
        out.push_str("  none yet: `accord decision propose` records one\n");
    } else {
        let mut table = Table::new(["ID", "TITLE", "REV", "STATUS", "ALIGNMENT", "APPROVED"]).indented(2);
        for d in &view.decisions {
            let approved = if d.required > 0 && d.status() == pb::DecisionStatus::Proposed {
                format!("{}/{}", d.approved, d.required)
            } else {
                "-".to_owned()
            };
            table.row(vec![
                short_decision_id(&d.decision_id, view).into(),
                d.title.clone().into(),
                d.revision.to_string().into(),
                Cell::state(decision_status_name(d.status())),
                Cell::state(decision_alignment_name(d.alignment())),
                approved.into(),
            ]);
        }
        out.push_str(&table.render(style));
    }
    out.push_str(&format!("\nAlignment: `accord status {}`\n", view.key));
    out
}

fn list_text(ctx: &Context, views: &[pb::InitiativeAlignment]) -> String {
    if views.is_empty() {
        return "no initiatives match (`accord initiative create` records one)".to_owned();
    }
    let mut table = Table::new(["KEY", "TITLE", "STAGE", "OWNER", "STATUS", "OPEN DECISIONS"]);
    for view in views {
        let open = view.decisions.iter().filter(|d| d.status() == pb::DecisionStatus::Proposed).count();
        let stage = format!("{}{}", stage_name(view.stage()), if view.archived { " (archived)" } else { "" });
        table.row(vec![
            view.key.clone().into(),
            view.title.clone().into(),
            stage.into(),
            view.owner.clone().into(),
            Cell::state(views::initiative_status_name(view.status())),
            open.to_string().into(),
        ]);
    }
    table.render(ctx.style)
}
