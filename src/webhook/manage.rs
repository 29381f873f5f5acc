//! Managing subscriptions, for the API: a request's fields, parsed (`Draft`), become a
//! stored row; updates, secret rotation and redelivery keep the rules in one place —
//! a new subscription starts after the log's head unless asked to start from the
//! beginning, enabling resumes from the stored cursor with the dead-letter count reset,
//! a rotation keeps the previous secrets signing for a while, and only a message that
//! was delivered or dead-lettered may be sent again.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::WebhookOptions;
use super::dispatch::head_cursor;
use super::payload::Format;
use super::sign::Secret;
use super::subscription::{
    DigestPlan, Filter, MAX_DESCRIPTION, MAX_LIST, MAX_SECRETS, Settings, State, StoredDigest, StoredFilter,
    StoredSecret, Subscription, parse_format, prefix, secret_error, target_error,
};
use super::target::{self, TargetUrl};
use crate::domain::DomainError;
use crate::domain::values::{InitiativeRef, Principal};
use crate::store::webhooks::{DeliveryRow, SubscriptionRow, SubscriptionUpdate};
use crate::store::{GlobalCursor, Store, StoreError};

/// A filter as a caller names it: initiatives by key or id.
#[derive(Clone, Debug, Default)]
pub struct FilterInput {
    pub initiatives: Vec<String>,
    pub types: Vec<String>,
    pub functions: Vec<String>,
}

/// What a caller asks a subscription to be.
#[derive(Clone, Debug, Default)]
pub struct Draft {
    pub url: Option<String>,
    pub description: Option<String>,
    pub filter: Option<FilterInput>,
    pub format: Option<String>,
    /// `Some(None)`: remove the digest.
    pub digest: Option<Option<StoredDigest>>,
    pub state: Option<String>,
}

fn invalid(field: &str, message: impl Into<String>) -> StoreError {
    StoreError::Domain(DomainError::invalid(field, message))
}

/// The URL, checked against the server's private-address policy now.
async fn checked_url(text: &str, options: &WebhookOptions) -> Result<TargetUrl, StoreError> {
    let url = TargetUrl::parse("url", text).map_err(|e| StoreError::Domain(target_error(e)))?;
    target::check(&url, &options.allowed_private).await.map_err(|e| StoreError::Domain(target_error(e)))?;
    Ok(url)
}

fn description(text: &str) -> Result<String, StoreError> {
    if text.chars().count() > MAX_DESCRIPTION {
        return Err(invalid("description", format!("is longer than {MAX_DESCRIPTION} characters")));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(invalid("description", "holds control characters"));
    }
    Ok(text.to_owned())
}

/// Initiatives named by key or id, as ids (each must exist).
async fn resolved(store: &Store, input: &FilterInput) -> Result<StoredFilter, StoreError> {
    if input.initiatives.len() > MAX_LIST {
        return Err(invalid(
            "filter.initiatives",
            format!("names {} entries; at most {MAX_LIST}", input.initiatives.len()),
        ));
    }
    let mut initiatives = Vec::with_capacity(input.initiatives.len());
    for name in &input.initiatives {
        let target = InitiativeRef::parse("filter.initiatives", name)?;
        let Some(initiative) = store.initiative(&target).await? else {
            return Err(StoreError::Domain(DomainError::not_found(format!(
                "filter.initiatives: no initiative {:?}",
                prefix(name)
            ))));
        };
        initiatives.push(initiative.id.0);
    }
    initiatives.sort();
    initiatives.dedup();
    let stored = StoredFilter { initiatives, types: input.types.clone(), functions: input.functions.clone() };
    // Parsed now, so that a bad type or function is refused before anything is stored.
    Filter::parse(&stored)?;
    Ok(stored)
}

fn digest(stored: &StoredDigest) -> Result<StoredDigest, StoreError> {
    let plan = DigestPlan::parse(stored)?;
    Ok(StoredDigest {
        people: plan.people.iter().map(|p| p.to_string()).collect(),
        hour: plan.hour,
        timezone: plan.timezone.name().to_owned(),
    })
}

fn format_name(format: Format) -> String {
    format.as_str().to_owned()
}

/// Creates a subscription; returns it with its secret (generated unless given).
pub async fn create(
    store: &Store,
    options: &WebhookOptions,
    draft: Draft,
    secret: Option<String>,
    from_start: bool,
    by: &Principal,
) -> Result<(Subscription, Secret), StoreError> {
    let secret = match secret.filter(|s| !s.is_empty()) {
        Some(text) => Secret::parse("secret", &text).map_err(|e| StoreError::Domain(secret_error(e)))?,
        None => Secret::generate(),
    };
    let format = parse_format(draft.format.as_deref().unwrap_or_default())?;
    let filter = resolved(store, &draft.filter.unwrap_or_default()).await?;
    let digest = draft.digest.flatten().map(|d| digest(&d)).transpose()?;
    let state = match draft.state.as_deref() {
        None | Some("" | "enabled") => State::Enabled,
        Some("paused") => State::Paused,
        Some(other) => return Err(invalid("state", format!("{:?} is not enabled or paused", prefix(other)))),
    };
    let description = description(draft.description.as_deref().unwrap_or_default())?;
    // Last: it asks the resolver, and every other mistake is found without the network.
    let url = checked_url(draft.url.as_deref().unwrap_or_default(), options).await?;
    let now = crate::store::now_micros();
    let settings = Settings {
        url: url.as_str().to_owned(),
        description,
        secrets: vec![StoredSecret { secret: secret.expose(), added_at: now, expires_at: None }],
        filter,
        format: format_name(format),
        digest,
    };
    let cursor = if from_start { GlobalCursor::default() } else { head_cursor(store).await? };
    let row = SubscriptionRow {
        id: Uuid::now_v7(),
        config: serde_json::to_value(&settings).map_err(|e| invalid("config", e.to_string()))?,
        state: state.as_str().to_owned(),
        disabled_reason: String::new(),
        cursor,
        dead_in_a_row: 0,
        last_digest_on: None,
        created_by: by.to_string(),
        created_at: now,
        updated_at: now,
        version: 1,
    };
    store.create_subscription(&row).await?;
    let created = store.subscription(row.id).await?.unwrap_or(row);
    Ok((Subscription::from_row(created)?, secret))
}

/// One subscription, or NOT_FOUND.
pub async fn get(store: &Store, id: Uuid) -> Result<Subscription, StoreError> {
    let row = store.subscription(id).await?.ok_or_else(|| not_found(id))?;
    Ok(Subscription::from_row(row)?)
}

fn not_found(id: Uuid) -> StoreError {
    StoreError::Domain(DomainError::not_found(format!("no webhook subscription {id}")))
}

fn settings_of(subscription: &Subscription) -> Result<Settings, StoreError> {
    serde_json::from_value(subscription.row.config.clone()).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Changes what the draft sets.
pub async fn update(
    store: &Store,
    options: &WebhookOptions,
    id: Uuid,
    expected_version: Option<i64>,
    draft: Draft,
) -> Result<Subscription, StoreError> {
    let current = get(store, id).await?;
    let mut settings = settings_of(&current)?;
    if let Some(text) = &draft.description {
        settings.description = description(text)?;
    }
    if let Some(filter) = &draft.filter {
        settings.filter = resolved(store, filter).await?;
    }
    if let Some(format) = &draft.format {
        settings.format = format_name(parse_format(format)?);
    }
    if let Some(change) = &draft.digest {
        settings.digest = change.as_ref().map(digest).transpose()?;
    }
    if let Some(url) = &draft.url {
        settings.url = checked_url(url, options).await?.as_str().to_owned();
    }
    let state = match draft.state.as_deref() {
        None => None,
        // Enabling resumes at the stored cursor, with the dead letters in a row forgiven.
        Some("enabled") => Some((State::Enabled.as_str().to_owned(), String::new())),
        Some("paused") => Some((State::Paused.as_str().to_owned(), String::new())),
        Some(other) => return Err(invalid("state", format!("{:?} is not enabled or paused", prefix(other)))),
    };
    let dead_in_a_row = state.as_ref().filter(|(state, _)| state == "enabled").map(|_| 0);
    let change = SubscriptionUpdate {
        config: Some(serde_json::to_value(&settings).map_err(|e| invalid("config", e.to_string()))?),
        state,
        cursor: None,
        dead_in_a_row,
    };
    let row = store.update_subscription(id, expected_version, &change).await?.ok_or_else(|| not_found(id))?;
    Ok(Subscription::from_row(row)?)
}

/// A new secret; the previous ones sign beside it until `previous_valid_for` has passed.
pub async fn rotate(
    store: &Store,
    id: Uuid,
    secret: Option<String>,
    previous_valid_for: chrono::Duration,
) -> Result<(Subscription, Secret), StoreError> {
    let current = get(store, id).await?;
    let mut settings = settings_of(&current)?;
    let secret = match secret.filter(|s| !s.is_empty()) {
        Some(text) => Secret::parse("secret", &text).map_err(|e| StoreError::Domain(secret_error(e)))?,
        None => Secret::generate(),
    };
    let now = crate::store::now_micros();
    let until = now + previous_valid_for;
    settings.secrets = rotated(
        settings.secrets,
        StoredSecret { secret: secret.expose(), added_at: now, expires_at: None },
        now,
        until,
    );
    let change = SubscriptionUpdate {
        config: Some(serde_json::to_value(&settings).map_err(|e| invalid("config", e.to_string()))?),
        state: None,
        cursor: None,
        dead_in_a_row: None,
    };
    let row = store.update_subscription(id, Some(current.version), &change).await?.ok_or_else(|| not_found(id))?;
    Ok((Subscription::from_row(row)?, secret))
}

/// The secrets after a rotation: the new one first, the previous ones expiring at
/// `until` (or earlier, if they already were), the expired ones and the oldest beyond
/// `MAX_SECRETS` dropped.
pub fn rotated(
    previous: Vec<StoredSecret>,
    new: StoredSecret,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<StoredSecret> {
    let mut secrets = vec![new];
    for mut old in previous {
        old.expires_at = Some(old.expires_at.map_or(until, |at| at.min(until)));
        if old.expires_at.is_some_and(|at| at > now) {
            secrets.push(old);
        }
    }
    secrets.truncate(MAX_SECRETS);
    secrets
}

/// Deletes a subscription and its delivery log.
pub async fn delete(store: &Store, id: Uuid) -> Result<(), StoreError> {
    if store.delete_subscription(id).await? { Ok(()) } else { Err(not_found(id)) }
}

/// Queues a delivered or dead-lettered message to be sent again.
pub async fn redeliver(store: &Store, id: Uuid, message_id: &str) -> Result<DeliveryRow, StoreError> {
    get(store, id).await?;
    let row = store.request_redelivery(id, message_id).await?.ok_or_else(|| {
        StoreError::Domain(DomainError::not_found(format!(
            "subscription {id} has no delivery {:?}",
            prefix(message_id)
        )))
    })?;
    if row.status == "failing" {
        return Err(StoreError::Domain(DomainError::precondition(format!(
            "{} is still being retried; it can be sent again once it is delivered or dead-lettered",
            row.message_id
        ))));
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, at: i64, expires: Option<i64>) -> StoredSecret {
        StoredSecret {
            secret: name.into(),
            added_at: DateTime::from_timestamp(at, 0).expect("time"),
            expires_at: expires.map(|at| DateTime::from_timestamp(at, 0).expect("time")),
        }
    }

    #[test]
    fn a_rotation_keeps_the_previous_secrets_until_their_grace_ends_then_drops_them() {
        let now = DateTime::from_timestamp(1000, 0).expect("time");
        let until = DateTime::from_timestamp(2000, 0).expect("time");
        let kept = rotated(
            vec![secret("old", 0, None), secret("older", 0, Some(1500)), secret("gone", 0, Some(900))],
            secret("new", 1000, None),
            now,
            until,
        );
        let names: Vec<_> = kept.iter().map(|s| s.secret.as_str()).collect();
        assert_eq!(names, ["new", "old", "older"]);
        assert_eq!(kept[1].expires_at, Some(until));
        assert_eq!(kept[2].expires_at.map(|t| t.timestamp()), Some(1500), "an earlier end is kept");
        let at_once = rotated(vec![secret("old", 0, None)], secret("new", 1000, None), now, now);
        assert_eq!(at_once.len(), 1, "a grace of zero drops the previous secret now");
        let many = (0..10).map(|n| secret(&format!("s{n}"), 0, None)).collect();
        assert_eq!(rotated(many, secret("new", 1000, None), now, until).len(), MAX_SECRETS);
    }
}
