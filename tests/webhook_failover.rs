//! Webhooks across real `accord serve` processes on one PostgreSQL database: the
//! replica that holds the delivery lease is killed (SIGKILL) while a receiver is still
//! answering one of its messages; the other replica takes the lease over once it
//! expires and sends that message again with the same `webhook-id`, then goes on with
//! what follows. Receivers de-duplicate by that id; nothing is lost.

mod common;
#[path = "common/receiver.rs"]
mod receiver;

use std::time::Duration;

use accord::proto as pb;
use pb::command_service_client::CommandServiceClient;
use pb::webhook_service_client::WebhookServiceClient;
use tonic::transport::Channel;

use common::{Actor, ServeProcess, ThrowAwayDatabase};
use receiver::{Answer, Receiver};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OWNER: &str = "pm@example.com";

async fn replica(url: &str, workdir: &std::path::Path) -> (ServeProcess, Channel) {
    let args = [
        "--database-url",
        url,
        "--log",
        "info",
        "--webhook-allow-private",
        "127.0.0.0/8",
        "--webhook-lease-ms",
        "1500",
        "--webhook-backoff-ms",
        "50",
        "--webhook-backoff-max-ms",
        "200",
        "--webhook-timeout-ms",
        "10000",
    ];
    let process = tokio::task::block_in_place(|| ServeProcess::spawn(workdir, &args))
        .unwrap_or_else(|log| panic!("replica did not start; its log:\n{log}"));
    let channel = Channel::from_shared(process.address.clone()).expect("uri").connect().await.expect("connect");
    (process, channel)
}

async fn create_initiative(channel: &Channel, key: &str) {
    CommandServiceClient::with_interceptor(channel.clone(), Actor::new(OWNER))
        .create_initiative(pb::CreateInitiativeRequest {
            options: None,
            key: key.into(),
            title: format!("Initiative {key}"),
            summary: String::new(),
            owner: String::new(),
            stage: pb::Stage::Definition.into(),
            required_functions: vec![],
        })
        .await
        .expect("create initiative");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_delivery_leaves_the_message_to_the_other_with_the_same_id() {
    let database = ThrowAwayDatabase::new("accord_webhook_failover");
    let workdir = tempfile::tempdir().expect("workdir");
    let (first, first_channel) = replica(&database.url, workdir.path()).await;
    let (second, second_channel) = replica(&database.url, workdir.path()).await;
    let mut processes = [Some(first), Some(second)];
    let channels = [first_channel, second_channel];

    let receiver = Receiver::start(SECRET).await;
    receiver.answer(Answer::Slow(Duration::from_secs(4)));
    WebhookServiceClient::with_interceptor(channels[0].clone(), Actor::new(OWNER))
        .create_subscription(pb::CreateSubscriptionRequest {
            url: receiver.url(),
            secret: SECRET.into(),
            filter: Some(pb::SubscriptionFilter { types: vec!["InitiativeCreated".into()], ..Default::default() }),
            ..Default::default()
        })
        .await
        .expect("create subscription");
    create_initiative(&channels[0], "FAIL-1").await;

    // The first attempt is in flight: the receiver is still answering it.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while receiver.in_flight() == 0 {
        assert!(std::time::Instant::now() < deadline, "no delivery started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
    let (in_flight,): (String,) = sqlx::query_as("SELECT holder FROM webhook_leases WHERE name = 'webhooks'")
        .fetch_one(&pool)
        .await
        .expect("the lease's holder");
    pool.close().await;
    // Kill the holder (its pid leads the holder's name).
    let pid: u32 = in_flight.split('-').next().and_then(|pid| pid.parse().ok()).expect("holder names its pid");
    let holder_index = processes
        .iter()
        .position(|p| p.as_ref().is_some_and(|p| p.child.id() == pid))
        .expect("the holder is one of the two replicas");
    if let Some(mut killed) = processes[holder_index].take() {
        killed.kill();
    }
    receiver.answer(Answer::Ok);
    let survivor = &channels[1 - holder_index];

    // The survivor takes over once the lease expires and sends the message again.
    let killed_at = std::time::Instant::now();
    let first_id = receiver.arrivals().first().cloned().expect("the first request's id");
    let again = receiver
        .wait_until(Duration::from_secs(30), |got| got.iter().any(|r| r.at > killed_at && r.id == first_id))
        .await;
    let again = again.iter().find(|r| r.at > killed_at && r.id == first_id).expect("sent again");
    assert_eq!(again.body["data"]["payload"]["key"], "FAIL-1");
    let arrivals = receiver.arrivals();
    assert!(arrivals.len() >= 2 && arrivals.iter().all(|id| *id == first_id), "the same webhook-id: {arrivals:?}");
    assert_eq!(receiver.bad_signatures(), 0);

    // And goes on with what follows.
    create_initiative(survivor, "FAIL-2").await;
    receiver
        .wait_until(Duration::from_secs(30), |got| got.iter().any(|r| r.body["data"]["payload"]["key"] == "FAIL-2"))
        .await;
    drop(processes);
}
