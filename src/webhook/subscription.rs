//! A webhook subscription: what an administrator set (target, secrets, filter, format,
//! digest) as the store keeps it (`Settings`, JSON in the subscription's row), and as
//! the dispatcher uses it (`Subscription`: every field parsed, so a bad stored value is
//! found when it is loaded, not while sending). `Filter::wants_*` say which of the
//! log's messages a subscription receives.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::payload::Format;
use super::sign::Secret;
use super::target::TargetUrl;
use crate::domain::DomainError;
use crate::domain::event::{EVENT_TYPES, Event};
use crate::domain::notify::{Notification, NotificationKind};
use crate::domain::values::{Function, Principal};
use crate::store::GlobalCursor;
use crate::store::webhooks::SubscriptionRow;

/// Most initiatives, types, functions or digest people one subscription names.
pub const MAX_LIST: usize = 200;
/// Longest description.
pub const MAX_DESCRIPTION: usize = 500;
/// Most signing secrets at once (a rotation keeps the previous ones for a while).
pub const MAX_SECRETS: usize = 5;

/// A subscription's settings as stored (the `config` column).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub url: String,
    #[serde(default)]
    pub description: String,
    /// Newest first.
    pub secrets: Vec<StoredSecret>,
    #[serde(default)]
    pub filter: StoredFilter,
    pub format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<StoredDigest>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredSecret {
    pub secret: String,
    pub added_at: DateTime<Utc>,
    /// When it stops signing (a rotated-out secret); `None`: until rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredFilter {
    /// Initiative ids.
    #[serde(default)]
    pub initiatives: Vec<Uuid>,
    #[serde(default)]
    pub types: Vec<String>,
    #[serde(default)]
    pub functions: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredDigest {
    pub people: Vec<String>,
    pub hour: u32,
    pub timezone: String,
}

/// enabled, paused or disabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Enabled,
    Paused,
    Disabled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Enabled => "enabled",
            State::Paused => "paused",
            State::Disabled => "disabled",
        }
    }

    pub fn parse(field: &str, text: &str) -> Result<State, DomainError> {
        match text {
            "enabled" => Ok(State::Enabled),
            "paused" => Ok(State::Paused),
            "disabled" => Ok(State::Disabled),
            other => {
                Err(DomainError::invalid(field, format!("{:?} is not enabled, paused or disabled", prefix(other))))
            }
        }
    }
}

/// What a subscription receives, parsed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    pub initiatives: BTreeSet<Uuid>,
    pub event_types: BTreeSet<&'static str>,
    pub notifications: BTreeSet<&'static str>,
    pub functions: BTreeSet<Function>,
}

impl Filter {
    /// The stored filter, its types split into event types and notification kinds.
    pub fn parse(stored: &StoredFilter) -> Result<Filter, DomainError> {
        bounded("filter.initiatives", stored.initiatives.len())?;
        bounded("filter.types", stored.types.len())?;
        bounded("filter.functions", stored.functions.len())?;
        let mut filter = Filter { initiatives: stored.initiatives.iter().copied().collect(), ..Filter::default() };
        for name in &stored.types {
            if let Some(event) = EVENT_TYPES.iter().find(|known| **known == name) {
                filter.event_types.insert(event);
            } else if let Some(kind) = NotificationKind::parse(name) {
                filter.notifications.insert(kind.as_str());
            } else {
                return Err(DomainError::invalid(
                    "filter.types",
                    format!("{:?} is neither an event type nor a notification kind", prefix(name)),
                ));
            }
        }
        for function in &stored.functions {
            filter.functions.insert(Function::parse("filter.functions", function)?);
        }
        Ok(filter)
    }

    fn wants_initiative(&self, initiative: Uuid) -> bool {
        self.initiatives.is_empty() || self.initiatives.contains(&initiative)
    }

    fn wants_functions<'a>(&self, functions: impl IntoIterator<Item = &'a Function>) -> bool {
        self.functions.is_empty() || functions.into_iter().any(|function| self.functions.contains(function))
    }

    fn no_types(&self) -> bool {
        self.event_types.is_empty() && self.notifications.is_empty()
    }

    /// Whether the raw event is sent: its initiative, its type, and (with a functions
    /// filter) a function it concerns all match. The slack format sends raw events
    /// only when their types are named.
    pub fn wants_event(&self, format: Format, stream: Uuid, event_type: &str, event: &Event) -> bool {
        let typed = if self.no_types() { format == Format::Standard } else { self.event_types.contains(event_type) };
        typed && self.wants_initiative(stream) && self.wants_functions(&event_functions(event))
    }

    /// Whether the notification is sent.
    pub fn wants_notification(&self, notification: &Notification) -> bool {
        let typed = self.no_types() || self.notifications.contains(notification.kind.as_str());
        typed && self.wants_initiative(notification.initiative_id.0) && self.wants_functions(&notification.functions)
    }
}

/// The functions an event concerns (none for events about the initiative as a whole).
pub fn event_functions(event: &Event) -> Vec<Function> {
    match event {
        Event::InitiativeCreated { required_functions, .. } => required_functions.iter().cloned().collect(),
        Event::InitiativeUpdated { required_functions, .. } => required_functions.iter().flatten().cloned().collect(),
        Event::StakeholderAssigned { function, .. }
        | Event::StakeholderRemoved { function, .. }
        | Event::FeedbackRecorded { function, .. }
        | Event::SignOffRecorded { function, .. }
        | Event::SignOffRevoked { function, .. } => vec![function.clone()],
        Event::DecisionProposed { required_functions, .. } | Event::DecisionRevised { required_functions, .. } => {
            required_functions.iter().cloned().collect()
        }
        Event::DecisionAccepted { r#override, .. } => {
            r#override.iter().flat_map(|record| record.unaligned.iter().map(|(function, _)| function.clone())).collect()
        }
        _ => Vec::new(),
    }
}

/// Whose digest a subscription receives, and when.
#[derive(Clone, Debug, PartialEq)]
pub struct DigestPlan {
    pub people: Vec<Principal>,
    pub hour: u32,
    pub timezone: chrono_tz::Tz,
}

impl DigestPlan {
    pub fn parse(stored: &StoredDigest) -> Result<DigestPlan, DomainError> {
        bounded("digest.people", stored.people.len())?;
        if stored.people.is_empty() {
            return Err(DomainError::invalid("digest.people", "name at least one person"));
        }
        let people = stored
            .people
            .iter()
            .map(|person| Principal::parse("digest.people", person))
            .collect::<Result<BTreeSet<_>, _>>()?
            .into_iter()
            .collect();
        if stored.hour > 23 {
            return Err(DomainError::invalid(
                "digest.hour",
                format!("{} is not an hour of the day (0-23)", stored.hour),
            ));
        }
        let name = if stored.timezone.is_empty() { "UTC" } else { stored.timezone.as_str() };
        let timezone = name.parse::<chrono_tz::Tz>().map_err(|_| {
            DomainError::invalid("digest.timezone", format!("{:?} is not an IANA time zone name", prefix(name)))
        })?;
        Ok(DigestPlan { people, hour: stored.hour, timezone })
    }

    /// The day (in the plan's zone) whose digest is due at `now`, if one is: the hour
    /// has come and that day's digest was not sent (`last_sent`).
    pub fn due(&self, now: DateTime<Utc>, last_sent: Option<&str>) -> Option<chrono::NaiveDate> {
        use chrono::Timelike;
        let local = now.with_timezone(&self.timezone);
        let today = local.date_naive();
        let sent_today = last_sent.is_some_and(|day| day == today.format("%Y-%m-%d").to_string());
        (local.hour() >= self.hour && !sent_today).then_some(today)
    }

    /// How long until the next digest may be due, from `now` (at most an hour, so that a
    /// change of the clock or of the plan is seen soon).
    pub fn wait(&self, now: DateTime<Utc>) -> std::time::Duration {
        use chrono::Timelike;
        let local = now.with_timezone(&self.timezone);
        let into_hour = u64::from(local.minute()) * 60 + u64::from(local.second());
        std::time::Duration::from_secs(3600u64.saturating_sub(into_hour).max(1))
    }
}

/// A subscription with every setting parsed: what the dispatcher sends by.
#[derive(Clone, Debug)]
pub struct Subscription {
    pub id: Uuid,
    pub url: TargetUrl,
    pub description: String,
    pub secrets: Vec<(Secret, Option<DateTime<Utc>>)>,
    pub filter: Filter,
    pub format: Format,
    pub digest: Option<DigestPlan>,
    pub state: State,
    pub disabled_reason: String,
    pub cursor: GlobalCursor,
    pub dead_in_a_row: i64,
    pub last_digest_on: Option<String>,
    pub version: i64,
    pub row: SubscriptionRow,
}

impl Subscription {
    /// A stored row, parsed; a row that does not parse is reported as corrupt.
    pub fn from_row(row: SubscriptionRow) -> Result<Subscription, DomainError> {
        let settings: Settings = serde_json::from_value(row.config.clone())
            .map_err(|e| DomainError::invalid("config", format!("stored settings do not parse: {e}")))?;
        let secrets = settings
            .secrets
            .iter()
            .map(|stored| Ok((Secret::parse("secret", &stored.secret).map_err(secret_error)?, stored.expires_at)))
            .collect::<Result<Vec<_>, DomainError>>()?;
        Ok(Subscription {
            id: row.id,
            url: TargetUrl::parse("url", &settings.url).map_err(target_error)?,
            description: settings.description.clone(),
            secrets,
            filter: Filter::parse(&settings.filter)?,
            format: parse_format(&settings.format)?,
            digest: settings.digest.as_ref().map(DigestPlan::parse).transpose()?,
            state: State::parse("state", &row.state)?,
            disabled_reason: row.disabled_reason.clone(),
            cursor: row.cursor,
            dead_in_a_row: row.dead_in_a_row,
            last_digest_on: row.last_digest_on.clone(),
            version: row.version,
            row,
        })
    }

    /// The secrets that sign at `now`, newest first.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&Secret> {
        self.secrets.iter().filter(|(_, expires)| expires.is_none_or(|at| at > now)).map(|(secret, _)| secret).collect()
    }
}

pub fn parse_format(text: &str) -> Result<Format, DomainError> {
    let text = if text.is_empty() { "standard" } else { text };
    Format::parse(text)
        .ok_or_else(|| DomainError::invalid("format", format!("{:?} is not standard or slack", prefix(text))))
}

pub fn secret_error(error: impl std::fmt::Display) -> DomainError {
    DomainError::invalid("secret", error.to_string())
}

pub fn target_error(error: impl std::fmt::Display) -> DomainError {
    DomainError::invalid("url", error.to_string())
}

fn bounded(field: &str, len: usize) -> Result<(), DomainError> {
    if len > MAX_LIST {
        return Err(DomainError::invalid(field, format!("names {len} entries; at most {MAX_LIST}")));
    }
    Ok(())
}

/// At most 40 characters of what a caller sent, for an error message.
pub fn prefix(text: &str) -> String {
    const SHOWN: usize = 40;
    if text.chars().count() > SHOWN {
        format!("{}…", text.chars().take(SHOWN).collect::<String>())
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn plan(hour: u32, zone: &str) -> DigestPlan {
        DigestPlan::parse(&StoredDigest { people: vec!["ana@example.com".into()], hour, timezone: zone.into() })
            .expect("plan")
    }

    #[test]
    fn a_digest_is_due_from_its_hour_in_its_zone_once_a_day() {
        let plan = plan(9, "Europe/Berlin");
        // 07:30 UTC is 08:30 in Berlin in winter: not yet.
        let before = Utc.with_ymd_and_hms(2026, 12, 7, 7, 30, 0).single().expect("time");
        assert_eq!(plan.due(before, None), None);
        // 08:05 UTC is 09:05 in Berlin.
        let at = Utc.with_ymd_and_hms(2026, 12, 7, 8, 5, 0).single().expect("time");
        let day = plan.due(at, None).expect("due");
        assert_eq!(day.to_string(), "2026-12-07");
        assert_eq!(plan.due(at, Some("2026-12-07")), None, "sent today already");
        assert!(plan.due(at, Some("2026-12-06")).is_some(), "yesterday's does not count");
        // 23:30 UTC on the 7th is already the 8th in Berlin, past 9? No: 00:30, not due.
        let late = Utc.with_ymd_and_hms(2026, 12, 7, 23, 30, 0).single().expect("time");
        assert_eq!(plan.due(late, Some("2026-12-07")), None);
        assert!(plan.wait(late) <= std::time::Duration::from_secs(3600));
    }

    #[test]
    fn a_half_hour_zone_counts_its_own_hours() {
        let plan = plan(10, "Asia/Kolkata");
        // 04:29 UTC is 09:59 in Kolkata; 04:30 is 10:00.
        let almost = Utc.with_ymd_and_hms(2026, 12, 7, 4, 29, 0).single().expect("time");
        let at = Utc.with_ymd_and_hms(2026, 12, 7, 4, 30, 0).single().expect("time");
        assert_eq!(plan.due(almost, None), None);
        assert!(plan.due(at, None).is_some());
        assert_eq!(plan.wait(almost), std::time::Duration::from_secs(60));
    }

    #[test]
    fn bad_digest_settings_name_their_field() {
        let parse = |hour, zone: &str, people: Vec<String>| {
            DigestPlan::parse(&StoredDigest { people, hour, timezone: zone.into() }).unwrap_err().to_string()
        };
        assert!(parse(24, "UTC", vec!["a@example.com".into()]).starts_with("digest.hour:"));
        assert!(parse(1, "Mars/Olympus", vec!["a@example.com".into()]).starts_with("digest.timezone:"));
        assert!(parse(1, "UTC", vec![]).starts_with("digest.people:"));
        let long = "x".repeat(5000);
        let message = parse(1, &long, vec!["a@example.com".into()]);
        assert!(message.len() < 200, "quotes a prefix only: {message}");
    }

    #[test]
    fn types_split_into_events_and_notifications_and_unknown_ones_are_refused() {
        let filter = Filter::parse(&StoredFilter {
            initiatives: vec![],
            types: vec!["SignOffRecorded".into(), "aligned".into()],
            functions: vec!["design".into()],
        })
        .expect("filter");
        assert!(filter.event_types.contains("SignOffRecorded"));
        assert!(filter.notifications.contains("aligned"));
        let refused = Filter::parse(&StoredFilter { types: vec!["Nope".into()], ..StoredFilter::default() });
        assert!(refused.unwrap_err().to_string().starts_with("filter.types:"));
    }
}
