//! What load balancers, orchestrators and operators see when the database goes away:
//! gRPC health and HTTP readiness follow the store (a `proxy::Proxy` between Accord and
//! PostgreSQL stages the outage: cut, or frozen like a hung server), liveness does not;
//! calls fail with UNAVAILABLE in bounded time and the log says the server reconnects;
//! a database that refuses connections or has turned read-only is UNAVAILABLE, not
//! INTERNAL; a following `ReadEvents` outlives an outage without a gap or a duplicate;
//! and reflection answers in both protocols. Nothing here stops or reconfigures the
//! shared PostgreSQL server: only the proxy, or the test's own database, is touched.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use accord::proto as pb;
use accord::store::{DatabaseTimeouts, PgStore, Store};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use pb::read_events_response::Item;
use sqlx::{Connection, PgConnection, PgPool};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::proxy::Proxy;
use crate::support::*;

/// The services gRPC health reports on: the server as a whole and each Accord service.
const SERVICES: [&str; 4] = ["", "accord.v1.CommandService", "accord.v1.AlignmentService", "accord.v1.AuditService"];

/// How long a condition the server reaches by itself may take before the test gives up:
/// generous, so that a loaded machine never fails a test that would pass.
const PATIENCE: Duration = Duration::from_secs(90);

/// Polls `probe` until `done` holds of what it returns; panics after `PATIENCE`.
async fn eventually<T: std::fmt::Debug>(what: &str, mut probe: impl AsyncFnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let started = Instant::now();
    loop {
        let seen = probe().await;
        if done(&seen) {
            return seen;
        }
        assert!(started.elapsed() < PATIENCE, "{what}: still {seen:?} after {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What gRPC health says of every service.
async fn health(app: &TestApp) -> Vec<ServingStatus> {
    let mut client = HealthClient::new(app.channel());
    let mut statuses = Vec::new();
    for service in SERVICES {
        let response = client.check(HealthCheckRequest { service: service.into() }).await.expect("health answers");
        statuses.push(response.into_inner().status());
    }
    statuses
}

/// The status and body of `GET path` on the server's HTTP listener.
async fn http_get(app: &TestApp, path: &str) -> (u16, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let uri: http::Uri = format!("http://{}{path}", app.http).parse().expect("uri");
    let response = client.get(uri).await.expect("the HTTP listener answers");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.expect("a body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The HTTP status of the three health endpoints: (/livez, /readyz, /healthz).
async fn http_health(app: &TestApp) -> (u16, u16, u16) {
    (http_get(app, "/livez").await.0, http_get(app, "/readyz").await.0, http_get(app, "/healthz").await.0)
}

fn all(status: ServingStatus) -> Vec<ServingStatus> {
    vec![status; SERVICES.len()]
}

/// Waits until gRPC health reports `status` for every service and HTTP readiness agrees.
async fn wait_for_health(app: &TestApp, status: ServingStatus) {
    eventually("gRPC health", async || health(app).await, |seen| *seen == all(status)).await;
    let ready = if status == ServingStatus::Serving { 200 } else { 503 };
    let seen = eventually("HTTP readiness", async || http_health(app).await, |seen| seen.1 == ready).await;
    assert_eq!(seen, (200, ready, ready), "/livez stays 200; /healthz is readiness");
}

/// How long the stores reached through a proxy wait for the database: short enough for
/// the tests, long enough for a loaded machine's healthy database.
const THROUGH_A_PROXY: DatabaseTimeouts =
    DatabaseTimeouts { connect: Duration::from_secs(3), query: Duration::from_secs(6) };

/// A proxy to the test's PostgreSQL server, and a store on the test's database reached
/// through it.
async fn store_through_proxy(pool: &PgPool) -> (Proxy, Store) {
    let options = pool.connect_options();
    let upstream: SocketAddr = tokio::net::lookup_host((options.get_host(), options.get_port()))
        .await
        .expect("the database's address")
        .next()
        .expect("an address");
    let proxy = Proxy::start(upstream).await;
    let database = options.get_database().expect("the test's database");
    let url = format!("postgres://{}@127.0.0.1:{}/{database}", options.get_username(), proxy.port());
    let store = PgStore::connect_with(&url, 8, THROUGH_A_PROXY).await.expect("the store through the proxy");
    (proxy, Store::from(store))
}

fn feedback(key: &str, decision_id: &str, command_id: &str) -> pb::RecordFeedbackRequest {
    pb::RecordFeedbackRequest {
        options: options(command_id),
        ..feedback_request(key, decision_id, "engineering", pb::FeedbackKind::Question, "Which region?")
    }
}

// ---- health on a healthy server --------------------------------------------------------

async fn a_healthy_server_is_serving_and_live_and_ready_over_http(app: TestApp) {
    assert_eq!(health(&app).await, all(ServingStatus::Serving));
    for path in ["/livez", "/readyz", "/healthz"] {
        assert_eq!(http_get(&app, path).await, (200, "ok".to_owned()), "{path}");
    }
}

// ---- reflection --------------------------------------------------------------------------

async fn reflection_v1alpha_lists_the_accord_services(app: TestApp) {
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(app.channel());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("v1alpha reflection is served")
        .into_inner();
    let response = responses.message().await.expect("a response").expect("one message");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a list of services, got {response:?}");
    };
    let services: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in
        ["accord.v1.CommandService", "accord.v1.AlignmentService", "accord.v1.AuditService", "grpc.health.v1.Health"]
    {
        assert!(services.iter().any(|s| s == expected), "{expected} missing from {services:?}");
    }
}

crate::on_both_stores!(
    a_healthy_server_is_serving_and_live_and_ready_over_http,
    reflection_v1alpha_lists_the_accord_services
);

// ---- an outage: the database goes away ----------------------------------------------------

#[sqlx::test(migrator = "accord::store::postgres::MIGRATOR")]
async fn health_is_not_serving_and_readyz_503_while_the_database_is_cut_off_and_serving_again_after(pool: PgPool) {
    let (proxy, store) = store_through_proxy(&pool).await;
    let app = TestApp::with_store(store).await;
    create_initiative(&app, OWNER, "CHECKOUT-42", "New checkout").await;
    wait_for_health(&app, ServingStatus::Serving).await;

    proxy.cut();
    wait_for_health(&app, ServingStatus::NotServing).await;
    let status = app
        .as_(OWNER)
        .create_initiative(new_initiative("PAYMENTS-1", "Payments"))
        .await
        .expect_err("no database behind the proxy");
    assert_status(&status, Code::Unavailable, &["the database is unavailable"]);

    proxy.restore();
    wait_for_health(&app, ServingStatus::Serving).await;
    create_initiative(&app, OWNER, "PAYMENTS-1", "Payments").await;
    assert_eq!(app.alignment("PAYMENTS-1").await.key, "PAYMENTS-1");
}

// ---- a database that hangs -------------------------------------------------------------

#[sqlx::test(migrator = "accord::store::postgres::MIGRATOR")]
async fn a_database_that_hangs_fails_calls_with_unavailable_logs_reconnecting_and_recovers(pool: PgPool) {
    let log = JsonLog::capture("accord=info");
    let (proxy, store) = store_through_proxy(&pool).await;
    let app = TestApp::with_store(store).await;
    let ids = checkout(&app).await;
    let database = pool.connect_options().get_database().expect("the test's database").to_owned();

    // A command in flight when the database hangs: it waits for the commit-order lock
    // (every append takes it), which another session holds, and the database hangs
    // before it answers.
    let mut blocker = pool.begin().await.expect("a transaction on the database itself");
    sqlx::query("SELECT pg_advisory_xact_lock(7017561974685068399)")
        .execute(&mut *blocker)
        .await
        .expect("take the commit-order lock");
    let commands = app.as_(ENGINEER);
    let request = feedback("CHECKOUT-42", &ids.decision_id, "asked-as-it-hung");
    let in_flight = tokio::spawn({
        let (mut commands, request) = (commands.clone(), request.clone());
        async move { commands.record_feedback(request).await }
    });
    eventually(
        "the command waits for the lock",
        async || {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
            )
            .bind(&database)
            .fetch_one(&pool)
            .await
            .expect("activity")
        },
        |waiting| *waiting >= 1,
    )
    .await;
    proxy.freeze();
    blocker.commit().await.expect("release the lock");

    let status = in_flight.await.expect("the call task").expect_err("the database hangs");
    assert_status(&status, Code::Unavailable, &["the database is unavailable"]);
    wait_for_health(&app, ServingStatus::NotServing).await;
    let status = app
        .queries()
        .get_alignment(pb::GetAlignmentRequest { initiative: "CHECKOUT-42".into() })
        .await
        .expect_err("a read needs a connection that answers");
    assert_status(&status, Code::Unavailable, &["the database is unavailable"]);
    let text = log.text();
    assert!(
        text.lines().any(|line| line.contains("the database does not answer") && line.contains("reconnecting")),
        "the log says the server reconnects:\n{text}"
    );

    proxy.restore();
    wait_for_health(&app, ServingStatus::Serving).await;
    // The retry with the same command id records the feedback exactly once, whether or
    // not the cut-off attempt had reached the database.
    commands.clone().record_feedback(request).await.expect("the retry after the database is back");
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE command_id = 'asked-as-it-hung'")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(recorded, 1);
    assert!(log.text().contains("the database answers again"), "the log says it is back");
}

// ---- ReadEvents following the log through an outage -----------------------------------------

#[sqlx::test(migrator = "accord::store::postgres::MIGRATOR")]
async fn a_following_read_waits_out_an_outage_and_continues_without_a_gap_or_a_duplicate(pool: PgPool) {
    let (proxy, store) = store_through_proxy(&pool).await;
    let app = TestApp::with_store(store).await;
    let ids = checkout(&app).await;
    let mut stream = app
        .audit()
        .read_events(pb::ReadEventsRequest { follow: true, ..Default::default() })
        .await
        .expect("follow the log")
        .into_inner();
    let mut positions = Vec::new();
    loop {
        match stream.message().await.expect("no error").expect("the stream stays open").item {
            Some(Item::Event(event)) => positions.push(event.position),
            Some(Item::CaughtUp(_)) => break,
            None => panic!("an empty item"),
        }
    }

    proxy.cut();
    wait_for_health(&app, ServingStatus::NotServing).await;
    // Long enough for the reader's own poll (every second) to meet the outage.
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.restore();
    wait_for_health(&app, ServingStatus::Serving).await;

    for (who, function) in [(ENGINEER, "engineering"), (DESIGNER, "design"), (BUSINESS, "business")] {
        sign(&app, who, &ids.decision_id, function, pb::Verdict::Approve, "").await.expect("sign after the outage");
    }
    let log: Vec<u64> =
        app.log().await.iter().map(|(position, ..)| u64::try_from(*position).expect("position")).collect();
    while positions.len() < log.len() {
        match stream.message().await.expect("no error after the outage").expect("the stream stays open").item {
            Some(Item::Event(event)) => positions.push(event.position),
            other => panic!("expected an event, got {other:?}"),
        }
    }
    assert_eq!(positions, log, "every event once, in order, across the outage");
}

// ---- database refusals are UNAVAILABLE ------------------------------------------------------

/// A session on the server's maintenance database, to act on the test's own database.
async fn admin(pool: &PgPool) -> PgConnection {
    let options = pool.connect_options().as_ref().clone().database("postgres");
    PgConnection::connect_with(&options).await.expect("an administrative session")
}

/// Ends every session of `database` (the server's pools included) and waits until they
/// are gone, so that the next call needs a new connection (which sees the database as
/// it is now).
async fn end_sessions(admin: &mut PgConnection, database: &str) {
    let ended: Vec<i32> = sqlx::query_scalar(
        // Materialised, so that only the sessions chosen are ended, whatever order the
        // planner would evaluate the conditions in.
        "WITH chosen AS MATERIALIZED
           (SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid())
         SELECT pid FROM chosen WHERE pg_terminate_backend(pid)",
    )
    .bind(database)
    .fetch_all(&mut *admin)
    .await
    .expect("terminate the sessions");
    let started = Instant::now();
    loop {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)")
            .bind(&ended)
            .fetch_one(&mut *admin)
            .await
            .expect("count the sessions");
        if left == 0 {
            return;
        }
        assert!(started.elapsed() < PATIENCE, "{left} sessions of {database} still there");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test(migrator = "accord::store::postgres::MIGRATOR")]
async fn a_database_that_does_not_accept_connections_is_unavailable_not_internal(pool: PgPool) {
    let app = TestApp::postgres(pool.clone()).await;
    create_initiative(&app, OWNER, "CHECKOUT-42", "New checkout").await;
    let database = pool.connect_options().get_database().expect("the test's database").to_owned();
    let mut admin = admin(&pool).await;
    sqlx::query(&format!(r#"ALTER DATABASE "{database}" ALLOW_CONNECTIONS false"#))
        .execute(&mut admin)
        .await
        .expect("refuse connections");
    end_sessions(&mut admin, &database).await;

    let command = app.as_(OWNER).create_initiative(new_initiative("PAYMENTS-1", "Payments")).await;
    // The live feed answers from memory until it finds its listening session gone (on a
    // busy machine that can take a moment); from then on the query goes to the database.
    let mut query = Ok(());
    for _ in 0..50 {
        query =
            app.queries().get_alignment(pb::GetAlignmentRequest { initiative: "CHECKOUT-42".into() }).await.map(drop);
        if query.is_err() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    sqlx::query(&format!(r#"ALTER DATABASE "{database}" ALLOW_CONNECTIONS true"#))
        .execute(&mut admin)
        .await
        .expect("accept connections again");

    assert_status(&command.expect_err("no connection"), Code::Unavailable, &["the database is unavailable"]);
    assert_status(&query.expect_err("no connection"), Code::Unavailable, &["the database is unavailable"]);
    create_initiative(&app, OWNER, "PAYMENTS-1", "Payments").await;
}

#[sqlx::test(migrator = "accord::store::postgres::MIGRATOR")]
async fn writes_to_a_read_only_database_are_unavailable_and_reads_still_answer(pool: PgPool) {
    let app = TestApp::postgres(pool.clone()).await;
    create_initiative(&app, OWNER, "CHECKOUT-42", "New checkout").await;
    let database = pool.connect_options().get_database().expect("the test's database").to_owned();
    let before = app.log().await;
    // What a primary demoted by a failover answers: every transaction is read-only.
    let mut admin = admin(&pool).await;
    sqlx::query(&format!(r#"ALTER DATABASE "{database}" SET default_transaction_read_only = on"#))
        .execute(&mut admin)
        .await
        .expect("make the database read-only");
    end_sessions(&mut admin, &database).await;

    let command = app.as_(OWNER).create_initiative(new_initiative("PAYMENTS-1", "Payments")).await;
    let update = app
        .as_(OWNER)
        .change_stage(pb::ChangeStageRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            stage: pb::Stage::Delivery.into(),
        })
        .await;
    let read = app.queries().get_alignment(pb::GetAlignmentRequest { initiative: "CHECKOUT-42".into() }).await;
    sqlx::query(&format!(r#"ALTER DATABASE "{database}" RESET default_transaction_read_only"#))
        .execute(&mut admin)
        .await
        .expect("make the database writable again");
    end_sessions(&mut admin, &database).await;

    assert_status(&command.expect_err("read-only"), Code::Unavailable, &["the database is unavailable"]);
    assert_status(&update.expect_err("read-only"), Code::Unavailable, &["the database is unavailable"]);
    assert_eq!(read.expect("reads are served").into_inner().key, "CHECKOUT-42");
    assert_eq!(app.log().await, before, "nothing was written");
    create_initiative(&app, OWNER, "PAYMENTS-1", "Payments").await;
}
