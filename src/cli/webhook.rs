//! `accord webhook …`: manage webhook subscriptions (administrators) — add one and see
//! its secret once, list and show them, change their filters or digest, pause and
//! resume (resume also re-enables one the dispatcher disabled), rotate the secret, and
//! read the delivery log and send a message again.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{Context, Failure, Output};
use crate::proto as pb;

pub const EXAMPLES: &str = "\
Examples:
  accord webhook add https://hooks.example.com/accord --types sign_off_requested,aligned --functions design
  accord webhook add https://hooks.slack.com/services/T0/B0/XYZ --format slack --digest-for ana@example.com --digest-hour 9 --digest-timezone Europe/Berlin
  accord webhook list
  accord webhook deliveries 0198c3d2-… --status dead
  accord webhook redeliver 0198c3d2-… msg_0198c3d2…
  accord webhook rotate-secret 0198c3d2-… --previous-valid-seconds 3600
  accord webhook resume 0198c3d2-…";

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Add a subscription; prints its signing secret (shown only now).
    #[command(
        after_help = "Example:\n  accord webhook add https://hooks.example.com/accord --types sign_off_requested,aligned --functions design"
    )]
    Add(AddArgs),
    /// Every subscription.
    #[command(after_help = "Example:\n  accord webhook list")]
    List,
    /// One subscription.
    #[command(after_help = "Example:\n  accord webhook show 0198c3d2-7a1b-7c00-8000-000000000001")]
    Show(IdArg),
    /// Change a subscription's URL, description, filter, format or digest.
    #[command(
        after_help = "Example:\n  accord webhook update 0198c3d2-7a1b-7c00-8000-000000000001 --types SignOffRecorded --functions design"
    )]
    Update(UpdateArgs),
    /// Stop sending (messages wait; nothing is skipped).
    #[command(after_help = "Example:\n  accord webhook pause 0198c3d2-7a1b-7c00-8000-000000000001")]
    Pause(IdArg),
    /// Send again from where it stopped (also re-enables a disabled subscription).
    #[command(after_help = "Example:\n  accord webhook resume 0198c3d2-7a1b-7c00-8000-000000000001")]
    Resume(IdArg),
    /// A new signing secret; the previous one keeps signing for a while beside it.
    #[command(
        after_help = "Example:\n  accord webhook rotate-secret 0198c3d2-7a1b-7c00-8000-000000000001 --previous-valid-seconds 3600"
    )]
    RotateSecret(RotateArgs),
    /// Delete a subscription and its delivery log.
    #[command(after_help = "Example:\n  accord webhook remove 0198c3d2-7a1b-7c00-8000-000000000001")]
    Remove(IdArg),
    /// The delivery log of a subscription, newest first.
    #[command(after_help = "Example:\n  accord webhook deliveries 0198c3d2-7a1b-7c00-8000-000000000001 --status dead")]
    Deliveries(DeliveriesArgs),
    /// Send a delivered or dead-lettered message again (same webhook-id).
    #[command(
        after_help = "Example:\n  accord webhook redeliver 0198c3d2-7a1b-7c00-8000-000000000001 msg_0198c3d27a1b7c008000000000000002"
    )]
    Redeliver(RedeliverArgs),
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// The subscription's id.
    pub id: String,
}

#[derive(Debug, Args, Default)]
pub struct FilterArgs {
    /// Only these initiatives (keys or ids, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub initiatives: Vec<String>,
    /// Only these event types and notification kinds (e.g.
    /// SignOffRecorded,sign_off_requested,blocked_by_objection,aligned,accepted_with_override).
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<String>,
    /// Only what concerns these functions.
    #[arg(long, value_delimiter = ',')]
    pub functions: Vec<String>,
}

impl FilterArgs {
    fn given(&self) -> bool {
        !(self.initiatives.is_empty() && self.types.is_empty() && self.functions.is_empty())
    }

    fn proto(&self) -> pb::SubscriptionFilter {
        pb::SubscriptionFilter {
            initiatives: self.initiatives.clone(),
            types: self.types.clone(),
            functions: self.functions.clone(),
        }
    }
}

#[derive(Debug, Args, Default)]
pub struct DigestArgs {
    /// Send the daily digest of these people (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub digest_for: Vec<String>,
    /// The hour (0-23) the digest is sent.
    #[arg(long, default_value_t = 9)]
    pub digest_hour: u32,
    /// The digest's IANA time zone.
    #[arg(long, default_value = "UTC")]
    pub digest_timezone: String,
}

impl DigestArgs {
    fn proto(&self) -> Option<pb::DigestSettings> {
        (!self.digest_for.is_empty()).then(|| pb::DigestSettings {
            people: self.digest_for.clone(),
            hour: self.digest_hour,
            timezone: self.digest_timezone.clone(),
        })
    }
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Where messages are POSTed (http or https).
    pub url: String,
    #[arg(long, default_value = "")]
    pub description: String,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// standard (Standard Webhooks JSON) or slack (incoming-webhook blocks).
    #[arg(long, default_value = "standard")]
    pub format: String,
    #[command(flatten)]
    pub digest: DigestArgs,
    /// Use this signing secret (whsec_…) instead of a generated one.
    #[arg(long)]
    pub secret: Option<String>,
    /// Deliver the whole log from its first event (default: only what comes next).
    #[arg(long)]
    pub from_start: bool,
    /// Create it paused.
    #[arg(long)]
    pub paused: bool,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    pub id: String,
    #[arg(long)]
    pub url: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// With any filter option: the whole filter is replaced by what is given.
    #[command(flatten)]
    pub filter: FilterArgs,
    #[arg(long)]
    pub format: Option<String>,
    #[command(flatten)]
    pub digest: DigestArgs,
    /// Remove the digest.
    #[arg(long, conflicts_with = "digest_for")]
    pub no_digest: bool,
    /// Fail unless the subscription is at this version.
    #[arg(long)]
    pub expected_version: Option<u64>,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    pub id: String,
    /// Use this secret (whsec_…) instead of a generated one.
    #[arg(long)]
    pub secret: Option<String>,
    /// How long the previous secrets keep signing (default one day).
    #[arg(long)]
    pub previous_valid_seconds: Option<u64>,
}

#[derive(Debug, Args)]
pub struct DeliveriesArgs {
    pub id: String,
    /// Only delivered, failing, dead or queued ones.
    #[arg(long, default_value = "")]
    pub status: String,
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// The page token a previous page printed.
    #[arg(long, default_value = "")]
    pub page_token: String,
}

#[derive(Debug, Args)]
pub struct RedeliverArgs {
    pub id: String,
    /// The message's webhook-id.
    pub message_id: String,
}

fn subscription_json(s: &pb::Subscription) -> Value {
    let filter = s.filter.clone().unwrap_or_default();
    json!({
        "id": s.id, "url": s.url, "description": s.description, "format": s.format, "state": s.state,
        "disabled_reason": s.disabled_reason, "position": s.position, "dead_in_a_row": s.dead_in_a_row,
        "active_secrets": s.active_secrets, "version": s.version, "created_by": s.created_by,
        "filter": {"initiatives": filter.initiatives, "types": filter.types, "functions": filter.functions},
        "digest": s.digest.as_ref().map(|d| json!({"people": d.people, "hour": d.hour, "timezone": d.timezone})),
    })
}

fn subscription_line(s: &pb::Subscription) -> String {
    let reason = if s.disabled_reason.is_empty() { String::new() } else { format!(" ({})", s.disabled_reason) };
    format!("{}  {}  {}{}  {}  at position {}", s.id, s.state, s.format, reason, s.url, s.position)
}

fn delivery_json(d: &pb::Delivery) -> Value {
    let time = |t: &Option<prost_types::Timestamp>| t.as_ref().map(|t| t.to_string());
    json!({
        "message_id": d.message_id, "message_type": d.message_type, "position": d.position,
        "initiative_id": d.initiative_id, "status": d.status, "attempts": d.attempts,
        "response_code": d.response_code, "error": d.error, "latency_ms": d.latency_ms,
        "first_attempt_at": time(&d.first_attempt_at), "last_attempt_at": time(&d.last_attempt_at),
        "delivered_at": time(&d.delivered_at),
    })
}

fn delivery_line(d: &pb::Delivery) -> String {
    let code = if d.response_code == 0 { "-".to_owned() } else { d.response_code.to_string() };
    let error = if d.error.is_empty() { String::new() } else { format!("  {}", d.error) };
    format!(
        "{:<9} {:>3} ×{:<2} {:>6} ms  {}  {}{}",
        d.status, code, d.attempts, d.latency_ms, d.message_id, d.message_type, error
    )
}

fn shown(s: &pb::Subscription, secret: Option<&str>) -> Output {
    let mut text = subscription_line(s);
    let mut json = subscription_json(s);
    if let Some(secret) = secret {
        text.push_str(&format!(
            "\nsigning secret (shown only now; receivers verify webhook-signature with it):\n  {secret}"
        ));
        json["secret"] = Value::String(secret.to_owned());
    }
    Output::new(text, json)
}

pub async fn run(ctx: &Context, command: WebhookCommand) -> Result<Output, Failure> {
    let client = &ctx.client;
    let mut api = client.webhooks();
    match command {
        WebhookCommand::Add(args) => {
            let request = pb::CreateSubscriptionRequest {
                url: args.url,
                description: args.description,
                filter: Some(args.filter.proto()),
                format: args.format,
                digest: args.digest.proto(),
                secret: args.secret.unwrap_or_default(),
                from_start: args.from_start,
                paused: args.paused,
            };
            let created = client.reply(api.create_subscription(request).await)?;
            let subscription = created.subscription.unwrap_or_default();
            Ok(shown(&subscription, Some(&created.secret)))
        }
        WebhookCommand::List => {
            let listed = client.reply(api.list_subscriptions(pb::ListSubscriptionsRequest {}).await)?;
            let text = if listed.subscriptions.is_empty() {
                "no webhook subscriptions".to_owned()
            } else {
                listed.subscriptions.iter().map(subscription_line).collect::<Vec<_>>().join("\n")
            };
            Ok(Output::new(text, Value::Array(listed.subscriptions.iter().map(subscription_json).collect())))
        }
        WebhookCommand::Show(IdArg { id }) => {
            let found = client.reply(api.get_subscription(pb::GetSubscriptionRequest { id }).await)?;
            Ok(shown(&found, None))
        }
        WebhookCommand::Update(args) => {
            let request = pb::UpdateSubscriptionRequest {
                id: args.id,
                expected_version: args.expected_version,
                url: args.url,
                description: args.description,
                filter: args.filter.given().then(|| args.filter.proto()),
                format: args.format,
                digest: args.digest.proto(),
                clear_digest: args.no_digest,
                state: None,
            };
            let updated = client.reply(api.update_subscription(request).await)?;
            Ok(shown(&updated, None))
        }
        WebhookCommand::Pause(IdArg { id }) => set_state(ctx, id, "paused").await,
        WebhookCommand::Resume(IdArg { id }) => set_state(ctx, id, "enabled").await,
        WebhookCommand::RotateSecret(args) => {
            let request = pb::RotateSecretRequest {
                id: args.id,
                secret: args.secret.unwrap_or_default(),
                previous_valid_seconds: args.previous_valid_seconds,
            };
            let rotated = client.reply(api.rotate_secret(request).await)?;
            Ok(shown(&rotated.subscription.unwrap_or_default(), Some(&rotated.secret)))
        }
        WebhookCommand::Remove(IdArg { id }) => {
            client.reply(api.delete_subscription(pb::DeleteSubscriptionRequest { id: id.clone() }).await)?;
            Ok(Output::new(format!("removed webhook subscription {id}"), json!({"removed": id})))
        }
        WebhookCommand::Deliveries(args) => {
            let request = pb::ListDeliveriesRequest {
                subscription_id: args.id,
                status: args.status,
                limit: args.limit,
                page_token: args.page_token,
            };
            let page = client.reply(api.list_deliveries(request).await)?;
            let mut text = if page.deliveries.is_empty() {
                "no deliveries".to_owned()
            } else {
                page.deliveries.iter().map(delivery_line).collect::<Vec<_>>().join("\n")
            };
            if !page.next_page_token.is_empty() {
                text.push_str(&format!("\nmore: --page-token {}", page.next_page_token));
            }
            let json = json!({
                "deliveries": page.deliveries.iter().map(delivery_json).collect::<Vec<_>>(),
                "next_page_token": page.next_page_token,
            });
            Ok(Output::new(text, json))
        }
        WebhookCommand::Redeliver(args) => {
            let request = pb::RedeliverRequest { subscription_id: args.id, message_id: args.message_id };
            let queued = client.reply(api.redeliver(request).await)?;
            Ok(Output::new(format!("queued {} to be sent again", queued.message_id), delivery_json(&queued)))
        }
    }
}

async fn set_state(ctx: &Context, id: String, state: &str) -> Result<Output, Failure> {
    let request = pb::UpdateSubscriptionRequest { id, state: Some(state.to_owned()), ..Default::default() };
    let updated = ctx.client.reply(ctx.client.webhooks().update_subscription(request).await)?;
    Ok(shown(&updated, None))
}
