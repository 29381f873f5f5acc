//! Webhooks end to end, on both stores: subscriptions made over the API, deliveries to
//! real receivers (`receiver`: an HTTP server that verifies each signature with the
//! published Standard Webhooks library), the delivery log, and what happens when a
//! receiver is down, slow, gone, failing or hanging; secret rotation, filters, the
//! digest, the Slack format, and two delivering replicas on one store.

use std::time::Duration;

use accord::proto as pb;
use accord::server::ServerOptions;
use accord::webhook::WebhookOptions;
use accord::webhook::target::PrivateAllowed;
use tonic::Code;

use crate::receiver::{Answer, Receiver};
use crate::support::*;

/// A secret the tests give subscriptions, so that receivers know it beforehand.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(20);

/// Delivery as the tests need it: loopback allowed, fast retries, a short lease.
fn delivering() -> WebhookOptions {
    WebhookOptions {
        allowed_private: PrivateAllowed::parse(&["127.0.0.0/8".to_owned()]).expect("allowance"),
        attempts: 4,
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        disable_after: 2,
        timeout: Duration::from_millis(1500),
        connect_timeout: Duration::from_millis(500),
        lease_ttl: Duration::from_millis(1500),
        refresh: Duration::from_millis(100),
        ..WebhookOptions::default()
    }
}

/// The same store served by a replica that delivers with `options`.
async fn replica(app: &TestApp, options: WebhookOptions) -> TestApp {
    app.reserve(ServerOptions { webhooks: Some(options), ..harness_options() }).await
}

fn subscribe(url: &str) -> pb::CreateSubscriptionRequest {
    pb::CreateSubscriptionRequest { url: url.to_owned(), secret: SECRET.to_owned(), ..Default::default() }
}

async fn create(app: &TestApp, request: pb::CreateSubscriptionRequest) -> pb::Subscription {
    app.webhooks()
        .create_subscription(request)
        .await
        .expect("create subscription")
        .into_inner()
        .subscription
        .expect("subscription")
}

async fn subscription(app: &TestApp, id: &str) -> pb::Subscription {
    app.webhooks().get_subscription(pb::GetSubscriptionRequest { id: id.to_owned() }).await.expect("get").into_inner()
}

async fn deliveries(app: &TestApp, id: &str, status: &str) -> Vec<pb::Delivery> {
    app.webhooks()
        .list_deliveries(pb::ListDeliveriesRequest {
            subscription_id: id.to_owned(),
            status: status.to_owned(),
            limit: 500,
            page_token: String::new(),
        })
        .await
        .expect("list deliveries")
        .into_inner()
        .deliveries
}

/// Waits until the subscription's delivery log satisfies `done`.
async fn wait_for_log(app: &TestApp, id: &str, done: impl Fn(&[pb::Delivery]) -> bool) -> Vec<pb::Delivery> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let log = deliveries(app, id, "").await;
        if done(&log) {
            return log;
        }
        assert!(tokio::time::Instant::now() < deadline, "the delivery log did not get there: {log:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_state(app: &TestApp, id: &str, state: &str) -> pb::Subscription {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let found = subscription(app, id).await;
        if found.state == state {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscription stayed {} ({})",
            found.state,
            found.disabled_reason
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn types(received: &[crate::receiver::Received]) -> Vec<String> {
    received.iter().map(|r| r.message_type.clone()).collect()
}

fn position(received: &crate::receiver::Received) -> u64 {
    received.body["data"]["position"].as_u64().unwrap_or_default()
}

/// Messages in the order they were accepted never go back in the log (per subscription,
/// hence per initiative).
fn assert_in_log_order(received: &[crate::receiver::Received]) {
    let positions: Vec<u64> = received.iter().map(position).collect();
    assert!(positions.windows(2).all(|pair| pair[0] <= pair[1]), "out of log order: {positions:?}");
}

async fn a_subscription_receives_signed_events_and_notifications_that_name_who_must_act(app: TestApp) {
    let receiver = Receiver::start(SECRET).await;
    let hooks = replica(&app, delivering()).await;
    let created = create(&hooks, subscribe(&receiver.url())).await;
    assert_eq!(created.state, "enabled");
    let checkout = checkout(&app).await;
    let got =
        receiver.wait_until(WAIT, |got| got.iter().any(|r| r.message_type == "notification.sign_off_requested")).await;
    assert_eq!(receiver.bad_signatures(), 0, "every request verifies with the published library");
    assert!(got.iter().all(|r| r.verified_by == [0]));
    let kinds = types(&got);
    for expected in ["event.InitiativeCreated", "event.StakeholderAssigned", "event.DecisionProposed"] {
        assert!(kinds.iter().any(|k| k == expected), "{expected} in {kinds:?}");
    }
    assert_in_log_order(&got);
    let ask = got.iter().find(|r| r.message_type == "notification.sign_off_requested").expect("ask");
    let who: Vec<&str> =
        ask.body["data"]["who_must_act"].as_array().expect("who").iter().filter_map(|p| p.as_str()).collect();
    for approver in [ENGINEER, DESIGNER, BUSINESS] {
        assert!(who.contains(&approver), "{approver} must act: {who:?}");
    }
    assert_eq!(ask.body["data"]["decision_id"].as_str(), Some(checkout.decision_id.as_str()));
    // Each message came once, with an id that names it.
    let mut ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), got.len(), "no duplicates without failures");
    // The delivery log says the same.
    let log = wait_for_log(&app, &created.id, |log| log.len() >= got.len()).await;
    assert!(log.iter().all(|d| d.status == "delivered" && d.response_code == 204 && d.attempts == 1), "{log:?}");
    assert!(log.iter().any(|d| d.message_id == ask.id));
    drop(hooks);
}

async fn a_receiver_that_is_down_gets_everything_in_order_once_it_is_up(app: TestApp) {
    let receiver = Receiver::start(SECRET).await;
    let hooks = replica(&app, WebhookOptions { attempts: 50, ..delivering() }).await;
    let created = create(&hooks, subscribe(&receiver.url())).await;
    receiver.down().await;
    let checkout = checkout(&app).await;
    sign(&app, ENGINEER, &checkout.decision_id, "engineering", pb::Verdict::Approve, "").await.expect("sign");
    let failing = wait_for_log(&app, &created.id, |log| log.iter().any(|d| d.status == "failing")).await;
    assert!(failing.iter().all(|d| d.status != "delivered"), "nothing arrives while it is down");
    receiver.up().await;
    let got = receiver.wait_until(WAIT, |got| got.iter().any(|r| r.message_type == "event.SignOffRecorded")).await;
    assert_in_log_order(&got);
    let kinds = types(&got);
    assert_eq!(kinds.first().map(String::as_str), Some("event.InitiativeCreated"), "nothing lost: {kinds:?}");
    let log = wait_for_log(&app, &created.id, |log| log.iter().all(|d| d.status == "delivered")).await;
    assert!(log.iter().any(|d| d.attempts > 1), "the first message was retried: {log:?}");
}

async fn a_slow_receiver_does_not_hold_up_the_others(app: TestApp) {
    let slow = Receiver::start(SECRET).await;
    slow.answer(Answer::Slow(Duration::from_secs(3)));
    let fast = Receiver::start(SECRET).await;
    let hooks = replica(&app, WebhookOptions { timeout: Duration::from_secs(10), ..delivering() }).await;
    create(&hooks, subscribe(&slow.url())).await;
    create(&hooks, subscribe(&fast.url())).await;
    let started = std::time::Instant::now();
    checkout(&app).await;
    fast.wait_until(WAIT, |got| got.iter().any(|r| r.message_type == "event.DecisionProposed")).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the fast receiver had everything before the slow one's first answer"
    );
    assert!(slow.accepted().len() <= 1, "the slow one is still on its first messages");
}

async fn a_receiver_that_answers_gone_disables_its_subscription_and_resuming_continues_where_it_stopped(app: TestApp) {
    let receiver = Receiver::start(SECRET).await;
    let hooks = replica(&app, delivering()).await;
    let created = create(&hooks, subscribe(&receiver.url())).await;
    receiver.answer(Answer::Status(410));
    create_initiative(&app, OWNER, "GONE-1", "Gone").await;
    let disabled = wait_for_state(&app, &created.id, "disabled").await;
    assert!(disabled.disabled_reason.contains("410"), "{}", disabled.disabled_reason);
    let refused = receiver.received();
    assert_eq!(refused.len(), 1, "no retry after 410 Gone");
    create_initiative(&app, OWNER, "GONE-2", "Gone again").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 1, "nothing is sent while disabled");
    receiver.answer(Answer::Ok);
    let resumed = app
        .webhooks()
        .update_subscription(pb::UpdateSubscriptionRequest {
            id: created.id.clone(),
            state: Some("enabled".into()),
            ..Default::default()
        })
        .await
        .expect("resume")
        .into_inner();
    assert_eq!((resumed.state.as_str(), resumed.disabled_reason.as_str()), ("enabled", ""));
    let got = receiver.wait_until(WAIT, |got| got.len() >= 2).await;
    assert_eq!(got[0].id, refused[0].id, "the refused message comes first, with the same webhook-id");
    assert_in_log_order(&got);
}

async fn failing_messages_use_their_budget_are_dead_lettered_and_can_be_sent_again(app: TestApp) {
    let receiver = Receiver::start(SECRET).await;
    let hooks = replica(&app, WebhookOptions { disable_after: 100, ..delivering() }).await;
    let created = create(
        &hooks,
        pb::CreateSubscriptionRequest {
            filter: Some(pb::SubscriptionFilter { types: vec!["InitiativeCreated".into()], ..Default::default() }),
            ..subscribe(&receiver.url())
        },
    )
    .await;
    receiver.answer(Answer::Status(500));
    create_initiative(&app, OWNER, "DEAD-1", "Dead").await;
    let log = wait_for_log(&app, &created.id, |log| log.iter().any(|d| d.status == "dead")).await;
    let dead = log.iter().find(|d| d.status == "dead").expect("dead letter");
    assert_eq!((dead.attempts, dead.response_code), (4, 500), "{dead:?}");
    assert_eq!(receiver.received().len(), 4, "exactly the budget");
    // A dead letter does not block what follows.
    receiver.answer(Answer::Ok);
    create_initiative(&app, OWNER, "DEAD-2", "Alive").await;
    receiver.wait_until(WAIT, |got| got.len() == 1).await;
    // Sent again on request, with the same webhook-id.
    let queued = app
        .webhooks()
        .redeliver(pb::RedeliverRequest { subscription_id: created.id.clone(), message_id: dead.message_id.clone() })
        .await
        .expect("redeliver")
        .into_inner();
    assert_eq!(queued.status, "queued");
    let got = receiver.wait_until(WAIT, |got| got.len() == 2).await;
    assert_eq!(got[1].id, dead.message_id);
    assert_eq!(got[1].body["data"]["payload"]["key"], "DEAD-1", "the same message, derived again from the log");
    wait_for_log(&app, &created.id, |log| log.iter().all(|d| d.status == "delivered")).await;
    // Unknown and in-flight messages are refused precisely.
    let unknown = app
        .webhooks()
        .redeliver(pb::RedeliverRequest { subscription_id: created.id.clone(), message_id: "msg_nope".into() })
        .await
        .expect_err("unknown message");
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
}

async fn a_receiver_that_hangs_is_timed_out_and_retried(app: TestApp) {
    let receiver = Receiver::start(SECRET).await;
    receiver.answer(Answer::Hang);
    let options = WebhookOptions { timeout: Duration::from_millis(300), attempts: 2, ..delivering() };
    let hooks = replica(&app, options).await;
    let created = create(&hooks, subscribe(&receiver.url())).await;
    create_initiative(&app, OWNER, "HANG-1", "Hangs").await;
    let log = wait_for_log(&app, &created.id, |log| log.iter().any(|d| d.status == "dead")).await;
    let dead = log.iter().find(|d| d.status == "dead").expect("dead");
    assert_eq!(dead.response_code, 0, "no answer: {dead:?}");
    assert!(!dead.error.is_empty(), "the timeout is said: {dead:?}");
    assert!(dead.latency_ms < 1500, "gave up near the timeout: {dead:?}");
}

async fn private_targets_are_refused_unless_allowed_and_only_administrators_manage_webhooks(app: TestApp) {
    // The harness server allows no private address.
    let refused =
        app.webhooks().create_subscription(subscribe("http://127.0.0.1:9/hook")).await.expect_err("loopback refused");
    assert_invalid(&refused, "url", "");
    let metadata = app
        .webhooks()
        .create_subscription(subscribe("http://169.254.169.254/latest/meta-data"))
        .await
        .expect_err("link-local refused");
    assert_invalid(&metadata, "url", "");
    for bad in ["ftp://example.com/x", "not a url", "http://user:pw@example.com/"] {
        let status = app.webhooks().create_subscription(subscribe(bad)).await.expect_err(bad);
        assert_invalid(&status, "url", "");
    }
    let long = format!("https://example.com/{}", "a".repeat(5000));
    let status = app.webhooks().create_subscription(subscribe(&long)).await.expect_err("long");
    assert!(status.message().len() < 400, "quotes a prefix only: {}", status.message().len());
    let denied =
        app.webhooks_as(ENGINEER).list_subscriptions(pb::ListSubscriptionsRequest {}).await.expect_err("member");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied =
        app.webhooks_as(AUDITOR).list_subscriptions(pb::ListSubscriptionsRequest {}).await.expect_err("auditor");
    assert_eq!(denied.code(), Code::PermissionDenied);
    // Bad filters and digests name their field and store nothing.
    let bad_type = pb::CreateSubscriptionRequest {
        filter: Some(pb::SubscriptionFilter { types: vec!["Exploded".into()], ..Default::default() }),
        ..subscribe("https://example.com/hook")
    };
    assert_invalid(&app.webhooks().create_subscription(bad_type).await.expect_err("type"), "filter.types", "");
    let bad_zone = pb::CreateSubscriptionRequest {
        digest: Some(pb::DigestSettings { people: vec![ENGINEER.into()], hour: 9, timezone: "Moon/Base".into() }),
        ..subscribe("https://example.com/hook")
    };
    assert_invalid(&app.webhooks().create_subscription(bad_zone).await.expect_err("zone"), "digest.timezone", "");
    let missing = pb::CreateSubscriptionRequest {
        filter: Some(pb::SubscriptionFilter { initiatives: vec!["NOPE-1".into()], ..Default::default() }),
        ..subscribe("https://example.com/hook")
    };
    assert_eq!(app.webhooks().create_subscription(missing).await.expect_err("missing").code(), Code::NotFound);
    let bad_secret =
        pb::CreateSubscriptionRequest { secret: "hunter2".into(), ..subscribe("https://example.com/hook") };
    assert_invalid(&app.webhooks().create_subscription(bad_secret).await.expect_err("secret"), "secret", "");
    let listed = app.webhooks().list_subscriptions(pb::ListSubscriptionsRequest {}).await.expect("list").into_inner();
    assert!(listed.subscriptions.is_empty(), "nothing stored: {listed:?}");
}

async fn a_rotated_secret_signs_beside_the_previous_one_until_its_grace_ends(app: TestApp) {
    let receiver = Receiver::start(SECRET).await;
    let hooks = replica(&app, delivering()).await;
    let created = create(&hooks, subscribe(&receiver.url())).await;
    let rotated = app
        .webhooks()
        .rotate_secret(pb::RotateSecretRequest {
            id: created.id.clone(),
            secret: String::new(),
            previous_valid_seconds: None,
        })
        .await
        .expect("rotate")
        .into_inner();
    assert!(rotated.secret.starts_with("whsec_") && rotated.secret != SECRET);
    assert_eq!(rotated.subscription.as_ref().map(|s| s.active_secrets), Some(2));
    receiver.trust(&rotated.secret);
    // A change reaches the delivering replica at its next look (100 ms here).
    tokio::time::sleep(Duration::from_millis(400)).await;
    create_initiative(&app, OWNER, "ROT-1", "Rotated").await;
    let got = receiver.wait_until(WAIT, |got| !got.is_empty()).await;
    assert_eq!(got[0].verified_by, [0, 1], "both the old and the new secret verify it");
    // A grace of zero: only the new secret signs from now on.
    let again = app
        .webhooks()
        .rotate_secret(pb::RotateSecretRequest {
            id: created.id.clone(),
            secret: String::new(),
            previous_valid_seconds: Some(0),
        })
        .await
        .expect("rotate now")
        .into_inner();
    receiver.trust(&again.secret);
    tokio::time::sleep(Duration::from_millis(400)).await;
    create_initiative(&app, OWNER, "ROT-2", "Rotated twice").await;
    let got = receiver.wait_until(WAIT, |got| got.len() >= 2).await;
    assert_eq!(got[1].verified_by, [2], "only the newest secret signs");
}

async fn filters_choose_initiatives_types_and_functions(app: TestApp) {
    let design = Receiver::start(SECRET).await;
    let hooks = replica(&app, delivering()).await;
    let checkout = checkout(&app).await;
    create(
        &hooks,
        pb::CreateSubscriptionRequest {
            filter: Some(pb::SubscriptionFilter {
                initiatives: vec!["CHECKOUT-42".into()],
                types: vec!["SignOffRecorded".into(), "aligned".into()],
                functions: vec!["design".into()],
            }),
            ..subscribe(&design.url())
        },
    )
    .await;
    create_initiative(&app, OWNER, "OTHER-1", "Another initiative").await;
    sign(&app, ENGINEER, &checkout.decision_id, "engineering", pb::Verdict::Approve, "").await.expect("sign");
    sign(&app, DESIGNER, &checkout.decision_id, "design", pb::Verdict::Approve, "").await.expect("sign");
    sign(&app, BUSINESS, &checkout.decision_id, "business", pb::Verdict::Approve, "").await.expect("sign");
    let got = design.wait_until(WAIT, |got| got.iter().any(|r| r.message_type == "event.SignOffRecorded")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = if got.len() < design.accepted().len() { design.accepted() } else { got };
    assert!(
        got.iter().all(|r| r.message_type == "event.SignOffRecorded" || r.message_type == "notification.aligned"),
        "{:?}",
        types(&got)
    );
    let sign_offs: Vec<_> = got.iter().filter(|r| r.message_type == "event.SignOffRecorded").collect();
    assert_eq!(sign_offs.len(), 1, "only design's sign-off: {:?}", types(&got));
    assert_eq!(sign_offs[0].body["data"]["payload"]["function"], "design");
}

async fn a_daily_digest_lists_what_waits_on_a_person_at_their_hour(app: TestApp) {
    let receiver = Receiver::start(SECRET).await;
    let hooks = replica(&app, delivering()).await;
    checkout(&app).await;
    use chrono::Timelike;
    let hour_now = chrono::Utc::now().hour();
    create(
        &hooks,
        pb::CreateSubscriptionRequest {
            filter: Some(pb::SubscriptionFilter { types: vec!["aligned".into()], ..Default::default() }),
            digest: Some(pb::DigestSettings { people: vec![DESIGNER.into()], hour: hour_now, timezone: "UTC".into() }),
            ..subscribe(&receiver.url())
        },
    )
    .await;
    let got = receiver.wait_until(WAIT, |got| got.iter().any(|r| r.message_type == "digest")).await;
    let digest = got.iter().find(|r| r.message_type == "digest").expect("digest");
    assert_eq!(digest.body["data"]["person"], DESIGNER);
    let items = digest.body["data"]["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["initiative_key"], "CHECKOUT-42");
    assert_eq!(items[0]["function"], "design");
    // Once a day: nothing more within the same day.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.accepted().iter().filter(|r| r.message_type == "digest").count(), 1);
}

async fn a_digest_later_in_the_day_waits_for_its_hour(app: TestApp) {
    let receiver = Receiver::start(SECRET).await;
    let hooks = replica(&app, delivering()).await;
    checkout(&app).await;
    use chrono::Timelike;
    // Two hours ahead in Kolkata's half-hour zone (unless that wraps past midnight, when
    // the day's digest would already be due).
    let later = (chrono::Utc::now().with_timezone(&chrono_tz::Asia::Kolkata).hour() + 2) % 24;
    if later < 2 {
        return;
    }
    create(
        &hooks,
        pb::CreateSubscriptionRequest {
            digest: Some(pb::DigestSettings {
                people: vec![DESIGNER.into()],
                hour: later,
                timezone: "Asia/Kolkata".into(),
            }),
            filter: Some(pb::SubscriptionFilter { types: vec!["aligned".into()], ..Default::default() }),
            ..subscribe(&receiver.url())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(receiver.received().is_empty(), "not before its hour");
}

async fn the_slack_format_sends_blocks_for_notifications_only(app: TestApp) {
    let receiver = Receiver::start(SECRET).await;
    let hooks = replica(&app, delivering()).await;
    create(&hooks, pb::CreateSubscriptionRequest { format: "slack".into(), ..subscribe(&receiver.url()) }).await;
    checkout(&app).await;
    let got = receiver.wait_until(WAIT, |got| !got.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = if receiver.accepted().len() > got.len() { receiver.accepted() } else { got };
    for message in &got {
        assert!(message.body["blocks"].is_array(), "Slack blocks: {}", message.body);
        assert!(message.body["text"].as_str().is_some_and(|t| !t.is_empty()));
    }
    let text = String::from_utf8_lossy(&got[0].raw).to_string();
    assert!(text.contains(ENGINEER) || text.contains(DESIGNER), "names who must act: {text}");
}

async fn two_delivering_replicas_send_each_message_once_and_never_at_the_same_time(app: TestApp) {
    let receiver = Receiver::start(SECRET).await;
    receiver.answer(Answer::Slow(Duration::from_millis(20)));
    let first = replica(&app, delivering()).await;
    let second = replica(&app, delivering()).await;
    create(&first, subscribe(&receiver.url())).await;
    for n in 0..5 {
        create_initiative(&first, OWNER, &format!("TWO-{n}"), "Replicated").await;
        create_initiative(&second, OWNER, &format!("TWO-{}", n + 5), "Replicated").await;
    }
    let got = receiver
        .wait_until(WAIT, |got| got.iter().filter(|r| r.message_type == "event.InitiativeCreated").count() == 10)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = receiver.received();
    assert!(receiver.overlapping().is_empty(), "never two at once: {:?}", receiver.overlapping());
    let mut ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, ids.len(), "each message once");
    assert_in_log_order(&got);
}

crate::on_both_stores!(
    a_subscription_receives_signed_events_and_notifications_that_name_who_must_act,
    a_receiver_that_is_down_gets_everything_in_order_once_it_is_up,
    a_slow_receiver_does_not_hold_up_the_others,
    a_receiver_that_answers_gone_disables_its_subscription_and_resuming_continues_where_it_stopped,
    failing_messages_use_their_budget_are_dead_lettered_and_can_be_sent_again,
    a_receiver_that_hangs_is_timed_out_and_retried,
    private_targets_are_refused_unless_allowed_and_only_administrators_manage_webhooks,
    a_rotated_secret_signs_beside_the_previous_one_until_its_grace_ends,
    filters_choose_initiatives_types_and_functions,
    a_daily_digest_lists_what_waits_on_a_person_at_their_hour,
    a_digest_later_in_the_day_waits_for_its_hour,
    the_slack_format_sends_blocks_for_notifications_only,
    two_delivering_replicas_send_each_message_once_and_never_at_the_same_time,
);
