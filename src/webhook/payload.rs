//! The bodies of webhook messages, byte for byte: a redelivery re-derives its body from
//! the log and must get the same bytes (the signature covers them), so everything here
//! is a pure function of its arguments — no clock, no map with a random order.
//!
//! Two formats:
//! - `Standard`: the envelope Standard Webhooks recommends, `{"type", "timestamp",
//!   "data"}`, with types `event.<EventType>`, `notification.<kind>` and `digest`. The
//!   data carries the structured fields whole, and a raw event its stored payload whole
//!   (it is the event; its size is bounded by the domain's field limits).
//! - `Slack`: an incoming-webhook message, `{"text", "blocks"}`: a fallback line, a
//!   section naming who must act and a context block with the initiative and a link to
//!   the board. Text people wrote is cut to a preview (`SLACK_*` limits) before it is
//!   escaped, so one message stays a few KiB whatever was written; `&`, `<` and `>` are
//!   escaped as Slack requires, so no text can become a mention (`<!channel>`) or a link.
//!   People are named by their principal (an e-mail address) as plain text.
//!
//! Times are RFC 3339 in UTC with microseconds (`2023-11-14T22:13:20.000000Z`). A
//! digest's timestamp is the start (00:00 UTC) of the day it is sent for.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::alignment::preview;
use crate::domain::event::Recorded;
use crate::domain::narrate::{Reader, narrate};
use crate::domain::notify::{Digest, DigestItem, Notification, NotificationKind};
use crate::domain::values::{DecisionId, FeedbackId, Function, InitiativeId, InitiativeKey, Principal, clip};
use crate::store::StoredEvent;

/// How a subscriber wants its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Standard,
    Slack,
}

impl Format {
    pub const ALL: [Format; 2] = [Format::Standard, Format::Slack];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Standard => "standard",
            Format::Slack => "slack",
        }
    }

    pub fn parse(name: &str) -> Option<Format> {
        Self::ALL.into_iter().find(|format| format.as_str() == name)
    }
}

/// Where the board is, for links: with base `https://accord.example.com` an initiative's
/// link is `https://accord.example.com/?initiative=CHECKOUT-42`, which opens its detail
/// (the board also takes the initiative's id there). `None`: messages carry no links.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BoardLinks {
    pub base: Option<String>,
}

impl BoardLinks {
    /// The board's own address.
    pub fn board(&self) -> Option<String> {
        self.trimmed_base().map(|base| format!("{base}/"))
    }

    /// The link that opens one initiative, named by its key or id.
    pub fn initiative(&self, key_or_id: &str) -> Option<String> {
        self.trimmed_base().map(|base| format!("{base}/?initiative={key_or_id}"))
    }

    fn trimmed_base(&self) -> Option<&str> {
        self.base.as_deref().map(|base| base.trim().trim_end_matches('/')).filter(|base| !base.is_empty())
    }
}

/// The message type of a raw event: `event.SignOffRecorded`.
pub fn event_message_type(event_type: &str) -> String {
    format!("event.{event_type}")
}

/// The message type of a notification: `notification.sign_off_requested`.
pub fn notification_message_type(kind: NotificationKind) -> String {
    format!("notification.{}", kind.as_str())
}

/// The message type of a digest.
pub const DIGEST_MESSAGE_TYPE: &str = "digest";

/// Longest event summary (a narration sentence), in bytes.
pub const SUMMARY_BYTES: usize = 600;
/// Characters of a free text (a body, a reason, a note) a narration quotes.
pub const BRIEF_CHARS: usize = 200;
/// Characters of a title a narration quotes.
pub const TITLE_CHARS: usize = 80;
// The Slack limits count escaped characters (`&` is five), as Slack does; a section may
// hold at most 3000.
/// Characters of a title a Slack message quotes.
pub const SLACK_TITLE_CHARS: usize = 80;
/// Characters of a person's name a Slack message quotes.
pub const SLACK_NAME_CHARS: usize = 80;
/// Characters of a decision title one digest line quotes in Slack.
pub const SLACK_DIGEST_TITLE_CHARS: usize = 60;
/// Characters of a notification's sentence a Slack message quotes.
pub const SLACK_ACTION_CHARS: usize = 800;
/// Characters of a notification's reason a Slack message quotes.
pub const SLACK_REASON_CHARS: usize = 400;
/// Characters of an event's summary a Slack message quotes.
pub const SLACK_SUMMARY_CHARS: usize = 800;
/// Characters of a Slack fallback line.
pub const SLACK_FALLBACK_CHARS: usize = 300;

/// The body of a raw event.
pub fn event_body(format: Format, event: &StoredEvent, recorded: &Recorded, links: &BoardLinks) -> Vec<u8> {
    let event_type = recorded.event.event_type();
    let summary = clip(&narrate(&recorded.event, &WebhookReader).text, SUMMARY_BYTES).into_owned();
    let board_url = links.initiative(&event.stream_id.to_string());
    match format {
        Format::Standard => encode(&Envelope {
            r#type: event_message_type(event_type),
            timestamp: timestamp(&recorded.recorded_at),
            data: EventData {
                position: event.position,
                event_id: event.event_id,
                event_type,
                schema_version: event.schema_version,
                initiative_id: event.stream_id,
                stream_version: event.stream_version,
                actor: &recorded.actor,
                recorded_at: timestamp(&recorded.recorded_at),
                correlation_id: &event.correlation_id,
                payload: &event.payload,
                summary,
                board_url,
            },
        }),
        Format::Slack => {
            let actor = slack_text(recorded.actor.as_str(), SLACK_NAME_CHARS);
            let fallback = slack_text(&format!("{} {summary}", recorded.actor), SLACK_FALLBACK_CHARS);
            let section = format!("*{actor}* {}", slack_text(&summary, SLACK_SUMMARY_CHARS));
            let context = [
                format!("`{event_type}`"),
                format!("initiative {} · version {}", event.stream_id, event.stream_version),
            ];
            encode(&slack_message(fallback, vec![section], &context, board_url.as_deref()))
        }
    }
}

/// The body of a notification derived from `event`.
pub fn notification_body(
    format: Format,
    notification: &Notification,
    event: &StoredEvent,
    links: &BoardLinks,
) -> Vec<u8> {
    let board_url = links.initiative(notification.initiative_key.as_str());
    match format {
        Format::Standard => encode(&Envelope {
            r#type: notification_message_type(notification.kind),
            timestamp: timestamp(&event.recorded_at),
            data: NotificationData { notification, position: event.position, event_id: event.event_id, board_url },
        }),
        Format::Slack => {
            let fallback =
                slack_text(&format!("[{}] {}", notification.initiative_key, notification.action), SLACK_FALLBACK_CHARS);
            let mut section =
                format!("*{}* · {}", headline(notification.kind), slack_text(&notification.action, SLACK_ACTION_CHARS));
            if !notification.reason.trim().is_empty() {
                section.push_str(&format!("\n>{}", slack_text(&notification.reason, SLACK_REASON_CHARS)));
            }
            let mut context = vec![initiative_line(&notification.initiative_key, &notification.initiative_title)];
            if notification.decision_id.is_some() {
                context.push(format!(
                    "“{}” (revision {})",
                    slack_text(&notification.decision_title, SLACK_TITLE_CHARS),
                    notification.revision
                ));
            }
            encode(&slack_message(fallback, vec![section], &context, board_url.as_deref()))
        }
    }
}

/// The body of `digest`, sent for the day `sent_for`.
pub fn digest_body(format: Format, digest: &Digest, sent_for: NaiveDate, links: &BoardLinks) -> Vec<u8> {
    let date = sent_for.format("%Y-%m-%d").to_string();
    let timestamp = timestamp(&sent_for.and_time(NaiveTime::MIN).and_utc());
    match format {
        Format::Standard => encode(&Envelope {
            r#type: DIGEST_MESSAGE_TYPE.to_owned(),
            timestamp,
            data: DigestData {
                person: &digest.person,
                date,
                items: digest.items.iter().map(|item| DigestItemData::of(item, links)).collect(),
                total: digest.total,
                board_url: links.board(),
            },
        }),
        Format::Slack => {
            let person = slack_text(digest.person.as_str(), SLACK_NAME_CHARS);
            let waiting = match digest.total {
                0 => format!("Nothing waits on {person}"),
                1 => format!("1 sign-off waits on {person}"),
                n => format!("{n} sign-offs wait on {person}"),
            };
            let fallback = format!("{waiting} ({date})");
            // One section per item: Slack refuses a section over 3000 characters, and
            // twenty linked lines could pass that.
            let mut sections = vec![format!("*{waiting}* ({date})")];
            sections.extend(digest.items.iter().map(|item| digest_line(item, links)));
            let more = digest.total.saturating_sub(digest.items.len());
            if more > 0 {
                sections.push(format!("…and {more} more"));
            }
            let context = ["Accord daily digest".to_owned()];
            encode(&slack_message(fallback, sections, &context, links.board().as_deref()))
        }
    }
}

/// How a narration reads in a webhook: decisions by the start of their id (an event
/// alone does not carry the title), feedback not told apart, texts as short previews.
struct WebhookReader;

impl Reader for WebhookReader {
    fn decision(&self, id: &DecisionId) -> String {
        format!("decision {}", short_id(id.0))
    }

    fn feedback(&self, _id: &FeedbackId) -> Option<String> {
        None
    }

    fn title(&self, title: &str) -> String {
        format!("“{}”", preview(&one_line(title), TITLE_CHARS))
    }

    fn brief(&self, text: &str) -> String {
        preview(&one_line(text), BRIEF_CHARS)
    }
}

#[derive(Serialize)]
struct Envelope<D> {
    r#type: String,
    timestamp: String,
    data: D,
}

#[derive(Serialize)]
struct EventData<'a> {
    position: i64,
    event_id: Uuid,
    event_type: &'a str,
    schema_version: i32,
    initiative_id: Uuid,
    stream_version: i64,
    actor: &'a Principal,
    recorded_at: String,
    correlation_id: &'a str,
    payload: &'a serde_json::Value,
    summary: String,
    board_url: Option<String>,
}

#[derive(Serialize)]
struct NotificationData<'a> {
    #[serde(flatten)]
    notification: &'a Notification,
    position: i64,
    event_id: Uuid,
    board_url: Option<String>,
}

#[derive(Serialize)]
struct DigestData<'a> {
    person: &'a Principal,
    date: String,
    items: Vec<DigestItemData<'a>>,
    total: usize,
    board_url: Option<String>,
}

#[derive(Serialize)]
struct DigestItemData<'a> {
    initiative_id: InitiativeId,
    initiative_key: &'a InitiativeKey,
    initiative_title: &'a str,
    decision_id: DecisionId,
    decision_title: &'a str,
    revision: u32,
    function: &'a Function,
    waiting_since: String,
    board_url: Option<String>,
}

impl<'a> DigestItemData<'a> {
    fn of(item: &'a DigestItem, links: &BoardLinks) -> Self {
        Self {
            initiative_id: item.initiative_id,
            initiative_key: &item.initiative_key,
            initiative_title: &item.initiative_title,
            decision_id: item.decision_id,
            decision_title: &item.decision_title,
            revision: item.revision,
            function: &item.function,
            waiting_since: timestamp(&item.waiting_since),
            board_url: links.initiative(item.initiative_key.as_str()),
        }
    }
}

#[derive(Serialize)]
struct SlackMessage {
    text: String,
    blocks: Vec<SlackBlock>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum SlackBlock {
    Section { text: SlackText },
    Context { elements: Vec<SlackText> },
}

#[derive(Serialize)]
struct SlackText {
    r#type: &'static str,
    text: String,
}

impl SlackText {
    fn mrkdwn(text: String) -> Self {
        Self { r#type: "mrkdwn", text }
    }
}

/// A message of escaped mrkdwn sections, and a context line of `context` with the link.
fn slack_message(fallback: String, sections: Vec<String>, context: &[String], link: Option<&str>) -> SlackMessage {
    let mut blocks: Vec<SlackBlock> =
        sections.into_iter().map(|text| SlackBlock::Section { text: SlackText::mrkdwn(text) }).collect();
    let mut context = context.join(" · ");
    if let Some(link) = link {
        context.push_str(&format!(" · {}", slack_link(link, "Open on the board")));
    }
    blocks.push(SlackBlock::Context { elements: vec![SlackText::mrkdwn(context)] });
    SlackMessage { text: fallback, blocks }
}

/// `<url|label>`, with the URL escaped so that it cannot close the link early.
fn slack_link(url: &str, label: &str) -> String {
    format!("<{}|{}>", slack_escape(url).replace('|', "%7C"), slack_escape(label))
}

fn initiative_line(key: &InitiativeKey, title: &str) -> String {
    format!("*{key}* {}", slack_text(title, SLACK_TITLE_CHARS))
}

/// One line of a Slack digest: the initiative (linked), the decision, the function and
/// since when it waits.
fn digest_line(item: &DigestItem, links: &BoardLinks) -> String {
    let key = item.initiative_key.as_str();
    let initiative = match links.initiative(key) {
        Some(url) => slack_link(&url, key),
        None => key.to_owned(),
    };
    format!(
        "• {initiative} “{}” (revision {}) for {} — waiting since {}",
        slack_text(&item.decision_title, SLACK_DIGEST_TITLE_CHARS),
        item.revision,
        item.function,
        item.waiting_since.format("%Y-%m-%d %H:%M UTC")
    )
}

fn headline(kind: NotificationKind) -> &'static str {
    match kind {
        NotificationKind::SignOffRequested => "Sign-off requested",
        NotificationKind::BlockedByObjection => "Blocked by an objection",
        NotificationKind::Aligned => "Aligned",
        NotificationKind::AcceptedWithOverride => "Accepted with override",
    }
}

/// Slack's three control characters as the entities it requires.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Text people wrote, as a Slack text: on one line (control characters, line breaks
/// among them, as spaces), escaped, and at most `limit` characters once escaped — the
/// length Slack counts — ending in "…" when cut. An entity is never cut in two.
fn slack_text(text: &str, limit: usize) -> String {
    let pieces = text.chars().map(|c| match c {
        '&' => Cow::Borrowed("&amp;"),
        '<' => Cow::Borrowed("&lt;"),
        '>' => Cow::Borrowed("&gt;"),
        c if c.is_control() => Cow::Borrowed(" "),
        c => Cow::Owned(c.to_string()),
    });
    let escaped: Vec<Cow<'_, str>> = pieces.collect();
    let total: usize = escaped.iter().map(|p| p.chars().count()).sum();
    if total <= limit {
        return escaped.concat();
    }
    let mut kept = String::new();
    let mut used = 0;
    for piece in escaped {
        let cost = piece.chars().count();
        // One character is kept for the ellipsis.
        if used + cost >= limit {
            break;
        }
        kept.push_str(&piece);
        used += cost;
    }
    kept.push('…');
    kept
}

/// Line breaks as spaces: a title or a brief stays on its line of the sentence.
fn one_line(text: &str) -> String {
    text.split(['\n', '\r']).filter(|line| !line.is_empty()).collect::<Vec<_>>().join(" ")
}

fn short_id(id: Uuid) -> String {
    id.simple().to_string()[..8].to_owned()
}

fn timestamp(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn encode(body: &impl Serialize) -> Vec<u8> {
    // Plain structs with string keys and JSON values always serialise.
    serde_json::to_vec(body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};

    use super::*;
    use crate::domain::alignment::bounds;
    use crate::domain::event::{DecisionContent, Event, StaleApproval};
    use crate::domain::values::{MAX_PRINCIPAL, MAX_REASON, MAX_TITLE, RevisionKind, Verdict};

    const HOSTILE: &str = "<@U123> <!channel> <!here> <https://evil.example|click> & co";
    const INITIATIVE: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
    const DECISION: DecisionId = DecisionId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_d001));

    fn who(name: &str) -> Principal {
        Principal::parse("principal", name).expect("valid principal")
    }

    fn func(name: &str) -> Function {
        Function::parse("function", name).expect("valid function")
    }

    fn key() -> InitiativeKey {
        InitiativeKey::parse("key", "CHECKOUT-42").expect("valid key")
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).expect("valid time")
    }

    fn links() -> BoardLinks {
        BoardLinks { base: Some("https://accord.example.com/".into()) }
    }

    fn recorded(event: Event) -> Recorded {
        Recorded { version: 9, actor: who("erin@example.com"), recorded_at: at(1_700_000_000), event }
    }

    fn stored(recorded: &Recorded) -> StoredEvent {
        StoredEvent {
            position: 42,
            stream_id: INITIATIVE,
            stream_version: 9,
            event_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_e009),
            event_type: recorded.event.event_type().to_owned(),
            schema_version: 1,
            payload: recorded.event.payload(),
            actor: recorded.actor.to_string(),
            command_id: "command-1".into(),
            correlation_id: "correlation-1".into(),
            causation_id: String::new(),
            recorded_at: recorded.recorded_at,
            prev_hash: Vec::new(),
            hash: Vec::new(),
        }
    }

    fn sign_off(reason: &str) -> Recorded {
        recorded(Event::SignOffRecorded {
            decision_id: DECISION,
            revision: 2,
            function: func("engineering"),
            verdict: Verdict::Reject,
            reason: reason.into(),
            comment: String::new(),
            via_team: None,
        })
    }

    fn notification(text: &str) -> Notification {
        Notification {
            kind: NotificationKind::BlockedByObjection,
            initiative_id: InitiativeId(INITIATIVE),
            initiative_key: key(),
            initiative_title: format!("Checkout {text}"),
            decision_id: Some(DECISION),
            decision_title: format!("Use Stripe {text}"),
            revision: 2,
            functions: vec![func("engineering")],
            who_must_act: vec![who("dana@example.com"), who("olivia@example.com")],
            action: format!(
                "dana@example.com and olivia@example.com must resolve the engineering objection by carl@example.com \
                 on “Use Stripe {text}” (revision 2)."
            ),
            reason: format!("Fees are high {text}"),
        }
    }

    fn item(n: u32, title: &str) -> DigestItem {
        DigestItem {
            initiative_id: InitiativeId(INITIATIVE),
            initiative_key: key(),
            initiative_title: "Checkout".into(),
            decision_id: DecisionId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_d000 + u128::from(n))),
            decision_title: title.into(),
            revision: n,
            function: func("engineering"),
            waiting_since: at(1_700_000_000 + i64::from(n) * 60),
        }
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2023, 11, 15).expect("valid date")
    }

    fn parsed(body: &[u8]) -> Value {
        serde_json::from_slice(body).expect("a body is JSON")
    }

    /// Every mrkdwn text of a Slack message: its fallback and each block's.
    fn slack_texts(body: &[u8]) -> Vec<String> {
        let message = parsed(body);
        let mut texts = vec![message["text"].as_str().expect("a fallback text").to_owned()];
        for block in message["blocks"].as_array().expect("blocks") {
            match block["type"].as_str() {
                Some("section") => texts.push(block["text"]["text"].as_str().expect("section text").to_owned()),
                Some("context") => {
                    for element in block["elements"].as_array().expect("elements") {
                        assert_eq!(element["type"], "mrkdwn");
                        texts.push(element["text"].as_str().expect("element text").to_owned());
                    }
                }
                other => panic!("unexpected block {other:?}"),
            }
        }
        texts
    }

    /// No `<` opens anything but the board's own link, so nothing written can mention
    /// or link.
    #[track_caller]
    fn assert_no_slack_markup_from_input(body: &[u8]) {
        for text in slack_texts(body) {
            for (at, _) in text.match_indices('<') {
                assert!(
                    text[at..].starts_with("<https://accord.example.com/"),
                    "a '<' that is not the board link in {text:?}"
                );
            }
            assert!(!text.contains("<@") && !text.contains("<!"), "{text:?}");
        }
    }

    #[test]
    fn formats_have_stable_names_that_parse_back() {
        for format in Format::ALL {
            assert_eq!(Format::parse(format.as_str()), Some(format));
        }
        assert_eq!(Format::parse("standard"), Some(Format::Standard));
        assert_eq!(Format::parse("slack"), Some(Format::Slack));
        assert_eq!(Format::parse("Slack"), None);
    }

    #[test]
    fn links_open_an_initiative_on_the_board_and_an_empty_base_gives_none() {
        assert_eq!(
            links().initiative("CHECKOUT-42").as_deref(),
            Some("https://accord.example.com/?initiative=CHECKOUT-42")
        );
        assert_eq!(links().board().as_deref(), Some("https://accord.example.com/"));
        let bare = BoardLinks { base: Some("https://accord.example.com".into()) };
        assert_eq!(bare.initiative("CHECKOUT-42"), links().initiative("CHECKOUT-42"));
        for none in [BoardLinks::default(), BoardLinks { base: Some("  ".into()) }] {
            assert_eq!(none.initiative("CHECKOUT-42"), None);
            assert_eq!(none.board(), None);
        }
    }

    #[test]
    fn a_standard_event_body_is_the_envelope_with_the_stored_event() {
        let recorded = sign_off("too expensive");
        let event = stored(&recorded);
        let body = parsed(&event_body(Format::Standard, &event, &recorded, &links()));
        assert_eq!(body["type"], "event.SignOffRecorded");
        assert_eq!(body["timestamp"], "2023-11-14T22:13:20.000000Z");
        let data = &body["data"];
        assert_eq!(data["position"], 42);
        assert_eq!(data["event_id"], event.event_id.to_string());
        assert_eq!(data["event_type"], "SignOffRecorded");
        assert_eq!(data["schema_version"], 1);
        assert_eq!(data["initiative_id"], INITIATIVE.to_string());
        assert_eq!(data["stream_version"], 9);
        assert_eq!(data["actor"], "erin@example.com");
        assert_eq!(data["recorded_at"], "2023-11-14T22:13:20.000000Z");
        assert_eq!(data["correlation_id"], "correlation-1");
        assert_eq!(data["payload"], recorded.event.payload());
        assert_eq!(data["summary"], "rejected decision 01900000 (revision 2) for engineering: too expensive");
        assert_eq!(data["board_url"], format!("https://accord.example.com/?initiative={INITIATIVE}"));
        let unlinked = parsed(&event_body(Format::Standard, &event, &recorded, &BoardLinks::default()));
        assert_eq!(unlinked["data"]["board_url"], Value::Null);
    }

    #[test]
    fn a_slack_event_body_names_the_actor_and_links_the_initiative() {
        let recorded = sign_off("too expensive");
        let body = event_body(Format::Slack, &stored(&recorded), &recorded, &links());
        let texts = slack_texts(&body);
        assert!(texts[0].starts_with("erin@example.com rejected decision 01900000"), "{texts:?}");
        assert!(texts[1].starts_with("*erin@example.com* rejected"), "{texts:?}");
        assert!(texts[2].contains("`SignOffRecorded`"), "{texts:?}");
        assert!(
            texts[2].ends_with(&format!("<https://accord.example.com/?initiative={INITIATIVE}|Open on the board>")),
            "{texts:?}"
        );
        let unlinked = event_body(Format::Slack, &stored(&recorded), &recorded, &BoardLinks::default());
        assert!(slack_texts(&unlinked).iter().all(|t| !t.contains('<')));
    }

    #[test]
    fn a_standard_notification_body_carries_its_fields_and_where_it_came_from() {
        let recorded = sign_off("");
        let event = stored(&recorded);
        let notification = notification("");
        let body = parsed(&notification_body(Format::Standard, &notification, &event, &links()));
        assert_eq!(body["type"], "notification.blocked_by_objection");
        assert_eq!(body["timestamp"], "2023-11-14T22:13:20.000000Z");
        let data = &body["data"];
        assert_eq!(data["kind"], "blocked_by_objection");
        assert_eq!(data["initiative_id"], INITIATIVE.to_string());
        assert_eq!(data["initiative_key"], "CHECKOUT-42");
        assert_eq!(data["decision_id"], DECISION.to_string());
        assert_eq!(data["revision"], 2);
        assert_eq!(data["functions"], json!(["engineering"]));
        assert_eq!(data["who_must_act"], json!(["dana@example.com", "olivia@example.com"]));
        assert_eq!(data["action"], notification.action);
        assert_eq!(data["reason"], notification.reason);
        assert_eq!(data["position"], 42);
        assert_eq!(data["event_id"], event.event_id.to_string());
        assert_eq!(data["board_url"], "https://accord.example.com/?initiative=CHECKOUT-42");
    }

    #[test]
    fn a_slack_notification_body_says_who_must_act_and_quotes_the_reason() {
        let recorded = sign_off("");
        let body = notification_body(Format::Slack, &notification(""), &stored(&recorded), &links());
        let texts = slack_texts(&body);
        assert!(
            texts[0].starts_with("[CHECKOUT-42] dana@example.com and olivia@example.com must resolve"),
            "{texts:?}"
        );
        assert!(
            texts[1].starts_with("*Blocked by an objection* · dana@example.com and olivia@example.com"),
            "{texts:?}"
        );
        assert!(texts[1].ends_with("\n>Fees are high "), "{texts:?}");
        assert!(texts[2].starts_with("*CHECKOUT-42* Checkout"), "{texts:?}");
        assert!(texts[2].contains("“Use Stripe ” (revision 2)"), "{texts:?}");
        assert!(texts[2].ends_with("<https://accord.example.com/?initiative=CHECKOUT-42|Open on the board>"));
    }

    #[test]
    fn digest_bodies_list_the_items_and_count_the_rest() {
        let digest = Digest {
            person: who("erin@example.com"),
            items: vec![item(1, "Use Stripe"), item(2, "Use Adyen")],
            total: 5,
        };
        let body = parsed(&digest_body(Format::Standard, &digest, day(), &links()));
        assert_eq!(body["type"], "digest");
        assert_eq!(body["timestamp"], "2023-11-15T00:00:00.000000Z");
        let data = &body["data"];
        assert_eq!(data["person"], "erin@example.com");
        assert_eq!(data["date"], "2023-11-15");
        assert_eq!(data["total"], 5);
        assert_eq!(data["board_url"], "https://accord.example.com/");
        let first = &data["items"][0];
        assert_eq!(first["decision_title"], "Use Stripe");
        assert_eq!(first["function"], "engineering");
        assert_eq!(first["waiting_since"], "2023-11-14T22:14:20.000000Z");
        assert_eq!(first["board_url"], "https://accord.example.com/?initiative=CHECKOUT-42");
        assert_eq!(data["items"].as_array().map(Vec::len), Some(2));

        let texts = slack_texts(&digest_body(Format::Slack, &digest, day(), &links()));
        assert_eq!(texts[0], "5 sign-offs wait on erin@example.com (2023-11-15)");
        assert!(texts[2].starts_with(
            "• <https://accord.example.com/?initiative=CHECKOUT-42|CHECKOUT-42> “Use Stripe” (revision 1) for engineering \
             — waiting since 2023-11-14 22:14 UTC"
        ), "{texts:?}");
        assert!(texts[3].contains("“Use Adyen” (revision 2)"), "{texts:?}");
        assert_eq!(texts[4], "…and 3 more");

        let empty = Digest { person: who("erin@example.com"), items: vec![], total: 0 };
        let texts = slack_texts(&digest_body(Format::Slack, &empty, day(), &BoardLinks::default()));
        assert_eq!(texts[0], "Nothing waits on erin@example.com (2023-11-15)");
    }

    #[test]
    fn hostile_text_never_becomes_a_slack_mention_or_link() {
        let recorded = sign_off(HOSTILE);
        let event = stored(&recorded);
        let hostile_person = who("<!channel>");
        let mut notification = notification(HOSTILE);
        notification.who_must_act = vec![hostile_person.clone()];
        notification.action = format!("{hostile_person} must act on {HOSTILE}");
        let digest = Digest { person: hostile_person, items: vec![item(1, HOSTILE)], total: 1 };
        let bodies = [
            event_body(Format::Slack, &event, &recorded, &links()),
            notification_body(Format::Slack, &notification, &event, &links()),
            digest_body(Format::Slack, &digest, day(), &links()),
        ];
        for body in &bodies {
            assert_no_slack_markup_from_input(body);
            let text = String::from_utf8_lossy(body);
            assert!(text.contains("&lt;@U123&gt;") || text.contains("&lt;!channel&gt;"), "{text}");
        }
        // The standard format carries the text as it was written: it is data, not markup.
        let standard = parsed(&notification_body(Format::Standard, &notification, &event, &links()));
        assert_eq!(standard["data"]["reason"], format!("Fees are high {HOSTILE}"));
    }

    #[test]
    fn every_body_is_the_same_bytes_on_every_call() {
        let recorded = sign_off(HOSTILE);
        let event = stored(&recorded);
        let notification = notification(HOSTILE);
        let digest = Digest { person: who("erin@example.com"), items: vec![item(1, "a"), item(2, "b")], total: 2 };
        for format in Format::ALL {
            for links in [links(), BoardLinks::default()] {
                assert_eq!(
                    event_body(format, &event, &recorded, &links),
                    event_body(format, &event, &recorded, &links)
                );
                assert_eq!(
                    notification_body(format, &notification, &event, &links),
                    notification_body(format, &notification, &event, &links)
                );
                assert_eq!(digest_body(format, &digest, day(), &links), digest_body(format, &digest, day(), &links));
            }
        }
    }

    /// The longest text of `chars` characters that costs the most: Slack escapes `&` to
    /// five bytes; JSON escapes control characters to six.
    fn costly(chars: usize) -> String {
        "&\u{1}".repeat(chars / 2 + 1).chars().take(chars).collect()
    }

    #[test]
    fn bodies_stay_small_whatever_people_wrote() {
        let longest_person = who(&"&".repeat(MAX_PRINCIPAL));
        let people: Vec<Principal> =
            (0..bounds::NAMES).map(|n| who(&format!("{n}{}", "&".repeat(MAX_PRINCIPAL - 1)))).collect();
        let notification = Notification {
            initiative_title: costly(MAX_TITLE),
            decision_title: costly(MAX_TITLE),
            functions: (0..32).map(|n| func(&format!("f{n:02}{}", "x".repeat(29)))).collect(),
            who_must_act: people.clone(),
            action: format!(
                "{} must act on “{}”.",
                people.iter().map(Principal::as_str).collect::<Vec<_>>().join(", "),
                costly(MAX_TITLE)
            ),
            reason: preview(&costly(MAX_REASON), bounds::PREVIEW_CHARS),
            ..notification("")
        };
        let revised = Recorded {
            actor: longest_person.clone(),
            ..recorded(Event::DecisionRevised {
                decision_id: DECISION,
                revision: 2,
                kind: RevisionKind::Material,
                content: DecisionContent {
                    title: costly(MAX_TITLE),
                    context: costly(2_000),
                    options: vec![costly(200); 10],
                    proposal: costly(2_000),
                    rationale: costly(2_000),
                },
                required_functions: BTreeSet::new(),
                note: costly(MAX_REASON),
                stale: (0..200)
                    .map(|_| StaleApproval {
                        signer: longest_person.clone(),
                        function: func("engineering"),
                        revision: 1,
                    })
                    .collect(),
            })
        };
        let event = stored(&revised);
        let payload_bytes = serde_json::to_vec(&event.payload).expect("payload encodes").len();
        let digest = Digest {
            person: longest_person,
            items: (1..=20)
                .map(|n| DigestItem { initiative_title: costly(MAX_TITLE), ..item(n, &costly(MAX_TITLE)) })
                .collect(),
            total: 1_000_000,
        };
        let long_links = BoardLinks { base: Some(format!("https://accord.example.com/{}", "a".repeat(100))) };

        let slack = [
            (event_body(Format::Slack, &event, &revised, &long_links), 8 * 1024),
            (notification_body(Format::Slack, &notification, &event, &long_links), 8 * 1024),
            (digest_body(Format::Slack, &digest, day(), &long_links), 12 * 1024),
        ];
        for (body, most) in &slack {
            assert!(body.len() <= *most, "a Slack body of {} bytes", body.len());
            for text in slack_texts(body) {
                assert!(text.chars().count() <= 3_000, "Slack refuses a text over 3000 characters: {}", text.len());
            }
        }
        let event_standard = event_body(Format::Standard, &event, &revised, &long_links);
        assert!(
            event_standard.len() <= payload_bytes + 4 * 1024,
            "{} bytes around a payload of {payload_bytes}",
            event_standard.len()
        );
        let summary = parsed(&event_standard)["data"]["summary"].as_str().expect("summary").len();
        assert!(summary <= SUMMARY_BYTES, "{summary}");
        let notification_standard = notification_body(Format::Standard, &notification, &event, &long_links);
        assert!(notification_standard.len() <= 32 * 1024, "{}", notification_standard.len());
        let digest_standard = digest_body(Format::Standard, &digest, day(), &long_links);
        assert!(digest_standard.len() <= 64 * 1024, "{}", digest_standard.len());
    }
}
