//! The command-line client: the same `accord` binary talks to a running server. Each
//! command group has its own module (arguments and handler side by side); `output`
//! holds tables, colour, JSON printing and the exit codes; `client` the connection and
//! the caller's identity; `resolve` key and id-prefix addressing; `demo` the narrated
//! acceptance scenario; `audit` the history, past boards, explanations, verification,
//! checkpoints, export and import.
//!
//! A handler returns an [`Output`] (human text and the same facts as JSON) or a
//! [`Failure`] (one line and its exit class); only [`run`] prints and decides the exit
//! code. The exceptions are the audit commands that stream (a history, an export): they
//! write each line as it arrives and return [`Output::streamed`].

pub mod audit;
pub mod client;
pub mod decision;
pub mod demo;
pub mod feedback;
pub mod initiative;
pub mod output;
pub mod resolve;
pub mod signoff;
pub mod stakeholder;
pub mod status;
pub mod views;
pub mod webhook;

use clap::Subcommand;
use clap::error::ErrorKind;
use serde_json::Value;
use uuid::Uuid;

use crate::proto as pb;
use client::Client;
pub use output::{ExitClass, Failure, Output, Style};

/// The client commands, flattened into `accord`'s command list.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Initiatives: create, show, list, update, change stage, archive.
    #[command(subcommand, after_help = initiative::EXAMPLES)]
    Initiative(initiative::InitiativeCommand),
    /// Stakeholders of an initiative: assign and remove a person's role in a function.
    #[command(subcommand, after_help = stakeholder::EXAMPLES)]
    Stakeholder(stakeholder::StakeholderCommand),
    /// Decisions: propose, revise, accept, reject, withdraw, supersede, show.
    #[command(subcommand, after_help = decision::EXAMPLES)]
    Decision(decision::DecisionCommand),
    /// Feedback on an initiative or one of its decisions: add, resolve, reopen.
    #[command(subcommand, after_help = feedback::EXAMPLES)]
    Feedback(feedback::FeedbackCommand),
    /// Sign-offs on a decision for a function you approve for: approve, reject, revoke.
    #[command(subcommand, after_help = signoff::EXAMPLES)]
    Signoff(signoff::SignoffCommand),
    /// The alignment board: one line per initiative, or one initiative in detail.
    #[command(after_help = status::STATUS_EXAMPLES)]
    Status(status::StatusArgs),
    /// The sign-offs waiting on a person (default: you, as given by --as).
    #[command(after_help = status::INBOX_EXAMPLES)]
    Inbox(status::InboxArgs),
    /// Audit: the history, past boards, explanations, hash-chain verification, checkpoints, export and import.
    #[command(subcommand, after_help = audit::EXAMPLES)]
    Audit(audit::AuditCommand),
    /// Webhooks (administrators): subscriptions, their delivery log, redelivery.
    #[command(subcommand, after_help = webhook::EXAMPLES)]
    Webhook(webhook::WebhookCommand),
    /// Play the spec's acceptance scenario, narrated, with the board after each step.
    #[command(after_help = demo::EXAMPLES)]
    Demo(demo::DemoArgs),
}

/// The global flags the client commands use.
#[derive(Clone, Debug, Default)]
pub struct Globals {
    /// `--server` / ACCORD_SERVER; `None` means the default address.
    pub server: Option<String>,
    /// `--as` / ACCORD_AS; `None` means `$USER@localhost`.
    pub actor: Option<String>,
    pub json: bool,
    pub correlation_id: Option<String>,
    /// Token and TLS settings.
    pub credentials: client::Credentials,
}

impl Globals {
    /// Who the commands act as: `--as`, else the subject of a JWT given as the token,
    /// else `$USER@localhost`. With a token the server decides; this name only fills in
    /// defaults (whose inbox, which function one signs for).
    pub fn actor(&self) -> String {
        self.actor
            .clone()
            .or_else(|| self.credentials.token.as_deref().and_then(client::token_subject))
            .unwrap_or_else(client::default_actor)
    }
}

/// What a handler works with: a connected client acting as the caller, the style, and
/// whether stdout takes JSON (for the commands that print as they go).
#[derive(Clone, Debug)]
pub struct Context {
    pub client: Client,
    pub style: Style,
    pub json: bool,
}

/// Runs one client command, prints its result or its one-line failure, and returns the
/// exit code.
pub async fn run(globals: Globals, command: ClientCommand) -> u8 {
    let style = Style::for_stdout(globals.json);
    let result = match command {
        ClientCommand::Demo(args) => demo::run(&globals, args, style).await,
        ClientCommand::Audit(command) if command.is_offline() => {
            audit::run_offline(globals.json, command).await.map(|output| output.print(globals.json))
        }
        command => match connect(&globals).await {
            Ok(client) => execute(&Context { client, style, json: globals.json }, command)
                .await
                .map(|output| output.print(globals.json)),
            Err(failure) => Err(failure),
        },
    };
    match result {
        Ok(()) => 0,
        Err(failure) => {
            eprintln!("accord: {}", failure.message);
            failure.class.code()
        }
    }
}

async fn connect(globals: &Globals) -> Result<Client, Failure> {
    let server = client::server_url(globals.server.as_deref())?;
    Client::connect(&server, &globals.actor(), &globals.credentials, globals.correlation_id.as_deref()).await
}

/// Runs one client command against a connected server (the demo runs its steps here too).
pub async fn execute(ctx: &Context, command: ClientCommand) -> Result<Output, Failure> {
    match command {
        ClientCommand::Initiative(command) => initiative::run(ctx, command).await,
        ClientCommand::Stakeholder(command) => stakeholder::run(ctx, command).await,
        ClientCommand::Decision(command) => decision::run(ctx, command).await,
        ClientCommand::Feedback(command) => feedback::run(ctx, command).await,
        ClientCommand::Signoff(command) => signoff::run(ctx, command).await,
        ClientCommand::Status(args) => status::status(ctx, args).await,
        ClientCommand::Inbox(args) => status::inbox(ctx, args).await,
        ClientCommand::Audit(command) => audit::run(ctx, command).await,
        ClientCommand::Webhook(command) => webhook::run(ctx, command).await,
        ClientCommand::Demo(_) => Err(Failure::invalid("the demo cannot run as a step of itself")),
    }
}

/// Prints a command-line parse error as one line (help and version as usual) and
/// returns the exit code: 0 for help and version, 2 for a usage error. `argv` (the
/// arguments as given) tells which subcommand's `--help` to point at.
pub fn report_usage_error(error: &clap::Error, argv: &[String]) -> u8 {
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = error.print();
            0
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            ExitClass::InvalidInput.code()
        }
        _ => {
            eprintln!("accord: {}; see `{} --help`", usage_line(&error.render().to_string()), command_path(argv));
            ExitClass::InvalidInput.code()
        }
    }
}

/// clap's several-line error as one line: the message and its tips.
fn usage_line(rendered: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("Usage:") || line.starts_with("For more information") {
            continue;
        }
        let line = line.strip_prefix("error: ").unwrap_or(line);
        if line.starts_with("tip:") {
            parts.push(format!("({line})"));
        } else {
            parts.push(line.to_owned());
        }
    }
    output::one_line(&parts.join(" "))
}

/// The deepest subcommand `argv` names ("accord stakeholder assign"), skipping options
/// and their values.
fn command_path(argv: &[String]) -> String {
    let mut command = <crate::config::Cli as clap::CommandFactory>::command();
    command.build();
    let mut path = vec![command.get_name().to_owned()];
    let mut skip_value = false;
    for token in argv.iter().skip(1) {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        if let Some(long) = token.strip_prefix("--") {
            if !long.contains('=') {
                skip_value =
                    command.get_arguments().any(|a| a.get_long() == Some(long) && a.get_action().takes_values());
            }
            continue;
        }
        if token.starts_with('-') {
            continue;
        }
        match command.find_subcommand(token) {
            Some(sub) => {
                path.push(sub.get_name().to_owned());
                command = sub.clone();
            }
            None => {
                if command.has_subcommands() {
                    break;
                }
            }
        }
    }
    path.join(" ")
}

/// The flags every command that appends events takes.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct CommandFlags {
    /// Refuse (exit 4) unless the initiative is at this stream version.
    #[arg(long, value_name = "VERSION")]
    pub expected_version: Option<u64>,
    /// Idempotency key: repeating a command with the same id writes nothing new.
    #[arg(long, value_name = "ID")]
    pub command_id: Option<String>,
}

impl CommandFlags {
    pub fn options(&self) -> Option<pb::CommandOptions> {
        Some(pb::CommandOptions {
            command_id: self.command_id.clone().unwrap_or_default(),
            expected_version: self.expected_version,
        })
    }
}

/// How an initiative the user named is shown: keys upper-cased (as the server does), ids as given.
pub fn initiative_label(given: &str) -> String {
    let given = given.trim();
    if Uuid::try_parse(given).is_ok() { given.to_owned() } else { given.to_uppercase() }
}

/// The result of a command that appended events: one line, and the response as JSON with
/// `extra` fields (ids the command resolved) merged in.
pub fn appended(what: impl Into<String>, initiative: &str, response: &pb::CommandResponse, extra: Value) -> Output {
    let what = what.into();
    let mut text = if what.contains(initiative) {
        format!("{what} (version {})", response.stream_version)
    } else {
        format!("{what} ({initiative} at version {})", response.stream_version)
    };
    if response.replayed {
        text.push_str(" — a repeat of an earlier command: nothing new was written");
    }
    let mut json = views::command_json(response);
    if let (Value::Object(fields), Value::Object(more)) = (&mut json, extra) {
        fields.insert("initiative".to_owned(), Value::String(initiative.to_owned()));
        fields.extend(more);
    }
    Output::new(text, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_become_one_line_naming_the_help_to_read() {
        let rendered = "error: invalid value 'boss' for '--role <ROLE>'\n  [possible values: driver, approver]\n\n  tip: a similar value exists: 'driver'\n\nUsage: accord stakeholder assign --function <FUNCTION> --role <ROLE> <INITIATIVE> <PRINCIPAL>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            usage_line(rendered),
            "invalid value 'boss' for '--role <ROLE>' [possible values: driver, approver] (tip: a similar value exists: 'driver')"
        );
        let argv: Vec<String> =
            ["accord", "--as", "pm@x", "stakeholder", "assign", "K", "p", "--role", "boss"].map(String::from).to_vec();
        assert_eq!(command_path(&argv), "accord stakeholder assign");
    }
}
