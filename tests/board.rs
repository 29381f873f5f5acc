//! The web board end to end: the server runs in-process (`serve_all`, gRPC and HTTP on
//! loopback ports, embedded SQLite in a temporary folder), is seeded through the real
//! gRPC API, and is read over plain HTTP (the JSON and event-stream API) and through a
//! real headless Chromium driven over WebDriver (chromedriver), which must see a
//! sign-off arrive live without reloading the page.
//!
//! Chromium and chromedriver come from Debian: `apt-get install -y chromium
//! chromium-driver` (`tests/run`, the README's test command, installs them). Screenshots go to
//! `target/board-screenshots/`.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use accord::domain::values::Principal;
use accord::proto::{self as pb, command_service_client::CommandServiceClient};
use accord::security::{Authenticator, Role, Roles, ServiceTokens, service_tokens};
use accord::server::{ServeError, ServerOptions};
use accord::store::Store;
use fantoccini::{ClientBuilder, Locator};
use futures::FutureExt;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{
    Request, Status,
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const INSTALL: &str = "apt-get install -y chromium chromium-driver";

const OWNER: &str = "pm@example.com";
const DRIVER: &str = "dana@example.com";
const ENGINEER: &str = "eve@example.com";
const DESIGNER: &str = "dee@example.com";
const BUSINESS: &str = "bo@example.com";

// ---- The server ----------------------------------------------------------------------

struct Server {
    grpc: SocketAddr,
    http: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<Result<(), ServeError>>>,
    _data: tempfile::TempDir,
}

impl Server {
    async fn start(options: ServerOptions) -> Server {
        let data = tempfile::tempdir().expect("temporary folder");
        let url = format!("sqlite://{}", data.path().join("accord.db").display());
        let store = Store::open(&url, 4).await.expect("open SQLite store");
        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind gRPC");
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind HTTP");
        let (grpc_address, http_address) = (grpc.local_addr().expect("address"), http.local_addr().expect("address"));
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(accord::server::serve_all(grpc, Some(http), store, options, async move {
            let _ = stopped.await;
        }));
        Server { grpc: grpc_address, http: http_address, stop: Some(stop), served: Some(served), _data: data }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// A command client acting as `actor` (local development mode).
    fn commands(&self, actor: &str) -> CommandServiceClient<InterceptedService<Channel, Actor>> {
        let channel = Channel::from_shared(format!("http://{}", self.grpc)).expect("uri").connect_lazy();
        CommandServiceClient::with_interceptor(channel, Actor(actor.to_owned()))
    }

    /// Asks the server to stop and waits for it (at most `within`).
    async fn shutdown(&mut self, within: Duration) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = self.served.take().expect("server still running");
        tokio::time::timeout(within, served).await.expect("server stops in time").expect("server task")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Names the caller in local development mode.
#[derive(Clone)]
struct Actor(String);

impl Interceptor for Actor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let value = self.0.parse().map_err(|_| Status::internal("bad actor"))?;
        request.metadata_mut().insert("x-accord-actor", value);
        Ok(request)
    }
}

/// Names the caller and their teams in local development mode.
#[derive(Clone)]
struct TeamMember(String, String);

impl Interceptor for TeamMember {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let actor = self.0.parse().map_err(|_| Status::internal("bad actor"))?;
        let teams = self.1.parse().map_err(|_| Status::internal("bad teams"))?;
        request.metadata_mut().insert("x-accord-actor", actor);
        request.metadata_mut().insert("x-accord-teams", teams);
        Ok(request)
    }
}

// ---- Seeding through gRPC ------------------------------------------------------------

fn content(title: &str, proposal: &str) -> Option<pb::DecisionContent> {
    Some(pb::DecisionContent {
        title: title.to_owned(),
        context: "Context for the decision.".to_owned(),
        options: vec!["Option A".to_owned(), "Option B".to_owned()],
        proposal: proposal.to_owned(),
        rationale: "Because it is the simplest.".to_owned(),
    })
}

/// Creates `key` owned by the PM with a driver and one approver per default function,
/// proposes one decision, and returns its id.
async fn initiative(server: &Server, key: &str, title: &str, stage: pb::Stage, decision: &str) -> String {
    let owner = server.commands(OWNER);
    owner
        .clone()
        .create_initiative(pb::CreateInitiativeRequest {
            options: None,
            key: key.into(),
            title: title.into(),
            summary: format!("{title}: what the teams have to agree on."),
            owner: String::new(),
            stage: stage.into(),
            required_functions: vec![],
        })
        .await
        .expect("create initiative");
    for (principal, function, role) in [
        (DRIVER, "product", pb::Role::Driver),
        (ENGINEER, "engineering", pb::Role::Approver),
        (DESIGNER, "design", pb::Role::Approver),
        (BUSINESS, "business", pb::Role::Approver),
    ] {
        owner
            .clone()
            .assign_stakeholder(pb::AssignStakeholderRequest {
                options: None,
                initiative: key.into(),
                principal: principal.into(),
                function: function.into(),
                role: role.into(),
            })
            .await
            .expect("assign stakeholder");
    }
    server
        .commands(DRIVER)
        .propose_decision(pb::ProposeDecisionRequest {
            options: None,
            initiative: key.into(),
            content: content(decision, &format!("{decision}, starting next sprint.")),
            required_functions: vec![],
            supersedes: String::new(),
        })
        .await
        .expect("propose decision")
        .into_inner()
        .created_id
}

async fn sign(server: &Server, who: &str, key: &str, decision_id: &str, function: &str) {
    server
        .commands(who)
        .record_sign_off(pb::RecordSignOffRequest {
            options: None,
            initiative: key.into(),
            decision_id: decision_id.into(),
            function: function.into(),
            verdict: pb::Verdict::Approve.into(),
            reason: String::new(),
            comment: "Looks right to me.".into(),
            revision: None,
        })
        .await
        .expect("record sign-off");
}

async fn feedback(server: &Server, who: &str, key: &str, decision_id: &str, function: &str, kind: pb::FeedbackKind) {
    server
        .commands(who)
        .record_feedback(pb::RecordFeedbackRequest {
            options: None,
            initiative: key.into(),
            decision_id: decision_id.into(),
            function: function.into(),
            kind: kind.into(),
            source: pb::FeedbackSource::UserResearch.into(),
            body: "Five of eight testers could not find the button.".into(),
        })
        .await
        .expect("record feedback");
}

/// CHECKOUT-42 pending on design and business (engineering approved), SEARCH-7 blocked
/// by a design objection, PRICING-3 aligned. Returns CHECKOUT-42's decision id.
async fn seed(server: &Server) -> String {
    let checkout =
        initiative(server, "CHECKOUT-42", "New checkout", pb::Stage::Definition, "Use Stripe for payments").await;
    sign(server, ENGINEER, "CHECKOUT-42", &checkout, "engineering").await;
    feedback(server, BUSINESS, "CHECKOUT-42", &checkout, "business", pb::FeedbackKind::Concern).await;
    let search = initiative(server, "SEARCH-7", "Faceted search", pb::Stage::Discovery, "Drop the legacy index").await;
    feedback(server, DESIGNER, "SEARCH-7", &search, "design", pb::FeedbackKind::Objection).await;
    let pricing = initiative(server, "PRICING-3", "Annual plans", pb::Stage::Delivery, "Offer 2 months free").await;
    for (who, function) in [(ENGINEER, "engineering"), (DESIGNER, "design"), (BUSINESS, "business")] {
        sign(server, who, "PRICING-3", &pricing, function).await;
    }
    checkout
}

// ---- Plain HTTP ----------------------------------------------------------------------

fn http_client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

fn request(url: &str, token: Option<&str>) -> hyper::Request<Empty<Bytes>> {
    let mut builder = hyper::Request::get(url);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(Empty::new()).expect("request")
}

/// Status, content type and body of a GET.
async fn get(url: &str, token: Option<&str>) -> (u16, String, String) {
    let response = http_client().request(request(url, token)).await.expect("HTTP response");
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().expect("text").to_owned()).unwrap_or_default();
    let body = response.into_body().collect().await.expect("body").to_bytes();
    (status, content_type, String::from_utf8(body.to_vec()).expect("UTF-8 body"))
}

async fn get_json(url: &str, token: Option<&str>) -> (u16, Value) {
    let (status, content_type, body) = get(url, token).await;
    assert!(content_type.starts_with("application/json"), "{url}: content type {content_type:?}, body {body}");
    (status, serde_json::from_str(&body).expect("JSON body"))
}

/// One parsed server-sent event.
#[derive(Debug)]
struct SseEvent {
    event: String,
    id: String,
    data: Value,
}

/// Reads the event stream at `url` until `enough` says so (or 10 s pass).
async fn read_events(
    url: &str,
    enough: impl Fn(&[SseEvent]) -> bool,
) -> (hyper::Response<hyper::body::Incoming>, Vec<SseEvent>, String) {
    let response = http_client().request(request(url, None)).await.expect("HTTP response");
    assert_eq!(response.status(), 200, "event stream status");
    let (parts, mut body) = response.into_parts();
    let mut text = String::new();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !enough(&events) {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, body.frame()).await.unwrap_or_else(|_| {
            panic!("the event stream did not deliver what was expected within 10 s; got {events:?}")
        });
        let Some(frame) = frame else { panic!("the event stream ended early; got {events:?}") };
        if let Ok(data) = frame.expect("frame").into_data() {
            text.push_str(std::str::from_utf8(&data).expect("UTF-8"));
        }
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let mut event = SseEvent { event: String::new(), id: String::new(), data: Value::Null };
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    event.event = value.to_owned();
                } else if let Some(value) = line.strip_prefix("id: ") {
                    event.id = value.to_owned();
                } else if let Some(value) = line.strip_prefix("data: ") {
                    event.data = serde_json::from_str(value).expect("JSON data");
                }
            }
            if !event.event.is_empty() {
                events.push(event);
            }
        }
    }
    (hyper::Response::from_parts(parts, body), events, text)
}

#[tokio::test]
async fn the_api_serves_the_board_the_detail_and_the_event_stream() {
    let mut server = Server::start(ServerOptions::local_development()).await;
    let decision = seed(&server).await;

    let (status, _, body) = get(&server.url("/healthz"), None).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, content_type, _) = get(&server.url("/metrics"), None).await;
    assert_eq!((status, content_type.as_str()), (200, "text/plain; version=0.0.4"));
    let (status, content_type, page) = get(&server.url("/"), None).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(page.contains("/board.js") && page.contains("/board.css"), "the page loads its script and style");
    for (path, kind) in [("/board.js", "text/javascript"), ("/board.css", "text/css")] {
        let (status, content_type, body) = get(&server.url(path), None).await;
        assert_eq!(status, 200, "{path}");
        assert!(content_type.starts_with(kind) && !body.is_empty(), "{path}: {content_type}");
    }

    // One initiative in detail.
    let (status, detail) = get_json(&server.url("/api/initiatives/CHECKOUT-42"), None).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["alignment"]["key"], "CHECKOUT-42");
    assert_eq!(detail["alignment"]["status"], "pending");
    assert_eq!(detail["alignment"]["approved_pairs"], 1);
    let decisions = detail["decisions"].as_array().expect("decisions");
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0]["decision_id"], decision.as_str());
    let matrix = &decisions[0]["revisions"][0]["matrix"];
    let engineering = matrix
        .as_array()
        .expect("matrix")
        .iter()
        .find(|row| row["function"] == "engineering")
        .expect("engineering row");
    assert_eq!(engineering["sign_offs"][0]["signer"], ENGINEER);
    assert_eq!(engineering["sign_offs"][0]["verdict"], "approve");
    assert_eq!(engineering["sign_offs"][0]["counts"], true);
    assert_eq!(decisions[0]["feedback"][0]["kind"], "concern");
    let timeline = detail["timeline"].as_array().expect("timeline");
    assert_eq!(timeline.first().expect("newest")["type"], "FeedbackRecorded", "newest first");
    assert_eq!(timeline.last().expect("oldest")["type"], "InitiativeCreated");
    assert!(timeline.iter().any(|e| e["summary"].as_str().is_some_and(|s| s.contains("approved “Use Stripe"))));

    let (status, missing) = get_json(&server.url("/api/initiatives/NOPE-1"), None).await;
    assert_eq!(status, 404);
    assert!(missing["error"].as_str().expect("error").contains("NOPE-1"), "{missing}");
    let (status, bad) = get_json(&server.url("/api/initiatives/not%20a%20key"), None).await;
    assert_eq!((status, bad["field"].as_str()), (400, Some("initiative")), "{bad}");

    // Bad filters are refused with the field they came in.
    for (query, field) in [
        ("status=green", "status"),
        ("stage=done", "stage"),
        ("pending_function=Design!", "pending_function"),
        ("after_position=-3", "after_position"),
        ("include_archived=perhaps", "include_archived"),
    ] {
        let (status, error) = get_json(&server.url(&format!("/api/watch?{query}")), None).await;
        assert_eq!(status, 400, "{query}: {error}");
        assert_eq!(error["field"], field, "{query}: {error}");
        assert!(error["error"].as_str().expect("message").starts_with(&format!("{field}: ")), "{error}");
    }

    // The event stream: a snapshot of every matching initiative, then caught_up.
    let caught_up = |events: &[SseEvent]| events.iter().any(|e| e.event == "caught_up");
    let (_, events, _) = read_events(&server.url("/api/watch"), caught_up).await;
    let keys: Vec<&str> =
        events.iter().filter(|e| e.event == "alignment").filter_map(|e| e.data["key"].as_str()).collect();
    assert_eq!(keys.len(), 3, "one alignment per initiative before caught_up: {events:?}");
    for key in ["CHECKOUT-42", "SEARCH-7", "PRICING-3"] {
        assert!(keys.contains(&key), "{key} in the snapshot: {keys:?}");
    }
    let last = events.last().expect("events");
    assert_eq!(last.event, "caught_up");
    let position: u64 = last.id.parse().expect("caught_up carries the position as its id");
    assert!(events.iter().all(|e| e.id.parse::<u64>().is_ok_and(|p| p <= position)), "{events:?}");

    // A filtered stream only has what matches; resuming at the end sends only caught_up.
    let (_, blocked, _) = read_events(&server.url("/api/watch?status=blocked"), caught_up).await;
    let blocked_keys: Vec<&str> = blocked.iter().filter_map(|e| e.data["key"].as_str()).collect();
    assert_eq!(blocked_keys, ["SEARCH-7"], "{blocked:?}");
    let (mut stream, resumed, _) =
        read_events(&server.url(&format!("/api/watch?after_position={position}")), caught_up).await;
    assert!(resumed.iter().all(|e| e.event != "alignment"), "nothing new after {position}: {resumed:?}");

    // A change arrives live on the open stream.
    sign(&server, DESIGNER, "CHECKOUT-42", &decision, "design").await;
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text.contains("\"key\":\"CHECKOUT-42\"") {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, stream.body_mut().frame()).await.expect("a live update within 10 s");
        let frame = frame.expect("the stream stays open").expect("frame");
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).expect("UTF-8"));
        }
    }
    assert!(text.contains("event: alignment"), "{text}");

    // Shutdown ends the open event stream and the server returns.
    server.shutdown(Duration::from_secs(10)).await.expect("clean shutdown");
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(frame) = stream.body_mut().frame().await {
            if frame.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the event stream ends when the server stops");
}

#[tokio::test]
async fn outside_local_development_the_api_needs_a_reader_token() {
    let reader_token = "board-reader-token-0123456789abcdef";
    let roleless_token = "board-roleless-token-0123456789abcdef";
    let auditor_token = "board-auditor-token-0123456789abcdef";
    let mut tokens = ServiceTokens::new();
    tokens.add(
        service_tokens::digest(auditor_token),
        Principal::parse("principal", "audit@svc").expect("principal"),
        Roles::of(&[Role::Auditor]),
    );
    tokens.add(
        service_tokens::digest(reader_token),
        Principal::parse("principal", "dashboard@svc").expect("principal"),
        Roles::of(&[Role::Reader]),
    );
    tokens.add(
        service_tokens::digest(roleless_token),
        Principal::parse("principal", "nobody@svc").expect("principal"),
        Roles::none(),
    );
    let options = ServerOptions {
        authenticator: Authenticator::Tokens { jwt: None, service_tokens: tokens },
        ..ServerOptions::local_development()
    };
    let server = Server::start(options).await;

    for path in [
        "/api/initiatives/CHECKOUT-42",
        "/api/watch",
        "/api/me",
        "/api/inbox",
        "/api/inbox?principal=dee@example.com",
        "/api/initiatives/CHECKOUT-42/as-of?version=1",
        "/api/initiatives/CHECKOUT-42/decisions/0198a1b2-0000-7000-8000-000000000000/diff",
    ] {
        let (status, error) = get_json(&server.url(path), None).await;
        assert_eq!(status, 401, "{path} without a token: {error}");
        assert!(error["error"].as_str().expect("reason").contains("missing bearer token"), "{error}");
        let (status, error) = get_json(&server.url(path), Some("not-a-known-token")).await;
        assert_eq!(status, 401, "{path} with an unknown token: {error}");
        assert!(error["error"].as_str().expect("reason").contains("not a known service token"), "{error}");
        let (status, error) = get_json(&server.url(path), Some(roleless_token)).await;
        assert_eq!(status, 403, "{path} without a role: {error}");
        assert!(error["error"].as_str().expect("reason").contains("nobody@svc"), "{error}");
    }
    let (status, missing) = get_json(&server.url("/api/initiatives/CHECKOUT-42"), Some(reader_token)).await;
    assert_eq!(status, 404, "a reader gets through to the handler: {missing}");
    // Who am I: the caller the token names; their inbox without naming them.
    let (status, me) = get_json(&server.url("/api/me"), Some(reader_token)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["principal"], "dashboard@svc", "{me}");
    assert_eq!(me["local_development"], false, "{me}");
    assert!(me["roles"].as_str().is_some_and(|r| r.contains("reader")), "{me}");
    let (status, inbox) = get_json(&server.url("/api/inbox"), Some(reader_token)).await;
    assert_eq!(status, 200, "{inbox}");
    assert_eq!(inbox["principal"], "dashboard@svc", "the caller's own inbox: {inbox}");
    assert_eq!(inbox["items"], json!([]), "{inbox}");
    let (status, theirs) = get_json(&server.url("/api/inbox?principal=dee@example.com"), Some(reader_token)).await;
    assert_eq!((status, &theirs["principal"]), (200, &json!("dee@example.com")), "{theirs}");
    let diff = "/api/initiatives/CHECKOUT-42/decisions/0198a1b2-0000-7000-8000-000000000000/diff";
    let (status, missing) = get_json(&server.url(diff), Some(reader_token)).await;
    assert_eq!(status, 404, "a reader gets through to the diff: {missing}");
    // The alignment as of a version is the audit API's: auditors and admins, as in gRPC.
    let as_of = "/api/initiatives/CHECKOUT-42/as-of?version=1";
    let (status, refused) = get_json(&server.url(as_of), Some(reader_token)).await;
    assert_eq!(status, 403, "a reader may not read the history: {refused}");
    let reason = refused["error"].as_str().expect("reason");
    assert!(reason.contains("the auditor or admin role") && reason.contains("dashboard@svc"), "{reason}");
    let (status, missing) = get_json(&server.url(as_of), Some(auditor_token)).await;
    assert_eq!(status, 404, "an auditor gets through to the handler: {missing}");
    let response =
        http_client().request(request(&server.url("/api/watch"), Some(reader_token))).await.expect("event stream");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    // The page, its assets and the health check stay open.
    for path in ["/", "/board.js", "/board.css", "/healthz"] {
        let (status, _, _) = get(&server.url(path), None).await;
        assert_eq!(status, 200, "{path} is open");
    }
}

#[tokio::test]
async fn the_daily_use_endpoints_answer_and_refuse_bad_input_naming_the_field() {
    let server = Server::start(ServerOptions::local_development()).await;
    let decision = seed(&server).await;
    revise(&server, "CHECKOUT-42", &decision, pb::RevisionKind::Material, "Use Adyen for payments.", "Fees.").await;

    // Who am I: nobody in local development mode, and the inbox needs a principal.
    let (status, me) = get_json(&server.url("/api/me"), None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me, json!({ "principal": null, "roles": null, "teams": [], "local_development": true }));
    let (status, error) = get_json(&server.url("/api/inbox"), None).await;
    assert_eq!((status, error["field"].as_str()), (400, Some("principal")), "{error}");
    let long = "x".repeat(5000);
    for (path, field, quoted) in [
        ("/api/inbox?principal=two%20words".to_owned(), "principal", "\"two words\""),
        (format!("/api/inbox?principal={long}"), "principal", "longer than 254 characters"),
        ("/api/initiatives/CHECKOUT-42/as-of?version=abc".to_owned(), "version", "\"abc\""),
        ("/api/initiatives/CHECKOUT-42/as-of?version=0".to_owned(), "version", "\"0\""),
        ("/api/initiatives/CHECKOUT-42/as-of?version=10".to_owned(), "version", "\"10\""),
        (format!("/api/initiatives/CHECKOUT-42/as-of?version={long}"), "version", "(5000 characters)"),
        ("/api/initiatives/not%20a%20key/as-of".to_owned(), "initiative", "\"not a key\""),
        ("/api/initiatives/CHECKOUT-42/decisions/nope/diff".to_owned(), "decision", "\"nope\""),
        (format!("/api/initiatives/CHECKOUT-42/decisions/{decision}/diff?from=3"), "from", "\"3\""),
        (format!("/api/initiatives/CHECKOUT-42/decisions/{decision}/diff?to=-1"), "to", "\"-1\""),
        (format!("/api/initiatives/CHECKOUT-42/decisions/{decision}/diff?from={long}"), "from", "(5000 characters)"),
    ] {
        let (status, error) = get_json(&server.url(&path), None).await;
        let shown = &path[..path.len().min(80)];
        assert_eq!(status, 400, "{shown}: {error}");
        assert_eq!(error["field"], field, "{shown}: {error}");
        let message = error["error"].as_str().expect("message");
        assert!(message.starts_with(&format!("{field}: ")) && message.contains(quoted), "{shown}: {message}");
        assert!(message.len() < 300, "{shown}: a short quote of the bad value: {message}");
    }
    for path in [
        "/api/initiatives/NOPE-1/as-of?version=1".to_owned(),
        "/api/initiatives/NOPE-1/decisions/0198a1b2-0000-7000-8000-000000000000/diff".to_owned(),
        "/api/initiatives/CHECKOUT-42/decisions/0198a1b2-0000-7000-8000-000000000000/diff".to_owned(),
    ] {
        let (status, error) = get_json(&server.url(&path), None).await;
        assert_eq!(status, 404, "{path}: {error}");
    }

    // The inbox as gRPC GetInbox answers it.
    let (status, inbox) = get_json(&server.url("/api/inbox?principal=bo@example.com"), None).await;
    assert_eq!(status, 200, "{inbox}");
    let keys: Vec<&str> =
        inbox["items"].as_array().expect("items").iter().filter_map(|i| i["initiative_key"].as_str()).collect();
    assert_eq!(keys, ["CHECKOUT-42", "SEARCH-7"], "{inbox}");
    assert_eq!(inbox["items"][0]["function"], "business");
    assert_eq!(inbox["items"][0]["state"], "pending");
    assert_eq!(inbox["items"][0]["decision_id"], decision.as_str());
    assert_eq!((inbox["total"].as_u64(), inbox["truncated"].as_bool()), (Some(2), Some(false)));
    let channel = Channel::from_shared(format!("http://{}", server.grpc)).expect("uri").connect_lazy();
    let grpc = pb::alignment_service_client::AlignmentServiceClient::with_interceptor(channel, Actor(OWNER.into()))
        .get_inbox(pb::GetInboxRequest { principal: BUSINESS.into() })
        .await
        .expect("GetInbox")
        .into_inner();
    let grpc_keys: Vec<&str> = grpc.items.iter().map(|i| i.initiative_key.as_str()).collect();
    assert_eq!(grpc_keys, keys, "the same inbox as GetInbox");

    // As of a version: the alignment, why, and the event, narrated. CHECKOUT-42: created
    // (v1), four stakeholders (v2-5), proposed (v6), engineering approved (v7), a concern
    // (v8), a material revision (v9).
    let (status, past) = get_json(&server.url("/api/initiatives/checkout-42/as-of?version=7"), None).await;
    assert_eq!(status, 200, "{past}");
    assert_eq!((past["version"].as_u64(), past["current_version"].as_u64()), (Some(7), Some(9)));
    assert_eq!(past["alignment"]["approved_pairs"], 1, "engineering's approval counted at v7");
    assert_eq!(past["event"]["type"], "SignOffRecorded");
    assert_eq!(past["event"]["actor"], ENGINEER);
    assert!(past["event"]["summary"].as_str().is_some_and(|s| s.contains("approved")), "{past}");
    let functions = past["explanation"]["decisions"][0]["functions"].as_array().expect("functions");
    let engineering = functions.iter().find(|f| f["function"] == "engineering").expect("engineering");
    assert_eq!(engineering["state"], "approved", "{engineering}");
    assert!(engineering["events"].as_array().is_some_and(|e| !e.is_empty()), "the approval is cited: {engineering}");
    let (_, now) = get_json(&server.url("/api/initiatives/CHECKOUT-42/as-of"), None).await;
    assert_eq!(now["version"], 9, "no version: now");
    assert_eq!(now["alignment"]["approved_pairs"], 0, "the material revision made the approval stale: {now}");
    let (_, first) = get_json(&server.url("/api/initiatives/CHECKOUT-42/as-of?version=1"), None).await;
    assert_eq!(first["alignment"]["status"], "no_decisions", "{first}");
    assert_eq!(first["event"]["type"], "InitiativeCreated");

    // The diff between revisions: by default the latest material one and the one before.
    let (status, diff) =
        get_json(&server.url(&format!("/api/initiatives/CHECKOUT-42/decisions/{decision}/diff")), None).await;
    assert_eq!(status, 200, "{diff}");
    assert_eq!(
        (diff["from"].as_u64(), diff["to"].as_u64(), diff["material"].as_bool()),
        (Some(1), Some(2), Some(true))
    );
    let proposal =
        diff["fields"].as_array().expect("fields").iter().find(|f| f["field"] == "proposal").expect("proposal");
    assert_eq!(proposal["changed"], true);
    let ops: Vec<(&str, &str)> = proposal["ops"]
        .as_array()
        .expect("ops")
        .iter()
        .map(|o| (o["op"].as_str().expect("op"), o["text"].as_str().expect("text")))
        .collect();
    assert!(ops.contains(&("insert", "Adyen")), "{ops:?}");
    assert!(ops.iter().any(|(op, text)| *op == "delete" && text.contains("Stripe")), "{ops:?}");
    let title = diff["fields"].as_array().expect("fields").iter().find(|f| f["field"] == "title").expect("title");
    assert_eq!(title["changed"], false, "{title}");
    let (_, same) =
        get_json(&server.url(&format!("/api/initiatives/CHECKOUT-42/decisions/{decision}/diff?from=2&to=2")), None)
            .await;
    assert_eq!(same["material"], false, "{same}");
    assert!(same["fields"].as_array().expect("fields").iter().all(|f| f["changed"] == false), "{same}");
}

#[tokio::test]
async fn local_development_refuses_a_board_on_a_public_address() {
    let data = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", data.path().join("accord.db").display());
    let store = Store::open(&url, 2).await.expect("store");
    let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    // Any non-loopback address of this machine will do; 0.0.0.0 is one.
    let http = TcpListener::bind("0.0.0.0:0").await.expect("bind");
    let refused =
        accord::server::serve_all(grpc, Some(http), store, ServerOptions::local_development(), async {}).await;
    let error = refused.expect_err("a board on 0.0.0.0 without authentication is refused");
    assert!(error.to_string().contains("refusing to listen on 0.0.0.0"), "{error}");
}

// ---- The real browser ----------------------------------------------------------------

/// chromedriver on a free loopback port, ended when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(binary).exists(),
                "{binary} is missing: the board's browser test needs Debian's Chromium and chromedriver \
                 (`{INSTALL}`)"
            );
        }
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            probe.local_addr().expect("address").port()
        };
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER} ({e}); install it with `{INSTALL}`"));
        let deadline = Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen on port {port} within 15 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Driver { child, url: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("board-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

/// Runs `script` in the page until it returns `want` (polling, at most `within`).
async fn wait_for(browser: &fantoccini::Client, script: &str, want: Value, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let got = browser.execute(script, vec![]).await.expect("script runs");
        if got == want || Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test]
async fn the_board_shows_a_sign_off_live_in_a_real_browser() {
    let driver = Driver::start().await;
    let server = Server::start(ServerOptions::local_development()).await;
    let decision = seed(&server).await;

    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000"],
        }),
    );
    let browser = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session with headless Chromium");

    let outcome = async {
        browser.goto(&server.url("/?view=list")).await.expect("open the list of initiatives");
        let chip = r#"const c = document.querySelector('article[data-key="CHECKOUT-42"] .chips [data-function="design"]');
                      return c ? c.getAttribute('data-state') + ' | ' + c.textContent : null;"#;
        let seen = wait_for(&browser, chip, json!("pending | ◔designpending"), Duration::from_secs(15)).await;
        assert_eq!(seen, json!("pending | ◔designpending"), "CHECKOUT-42 shows design: pending");
        let live = wait_for(
            &browser,
            "return document.getElementById('connection').dataset.state;",
            json!("live"),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(live, json!("live"), "the connection indicator says live");
        let cards = browser.execute("return document.querySelectorAll('article.card').length;", vec![]).await;
        assert_eq!(cards.expect("count"), json!(3), "one card per initiative");
        let label = browser
            .find(Locator::Css(r#"article[data-key="CHECKOUT-42"] [data-function="design"]"#))
            .await
            .expect("design chip")
            .attr("aria-label")
            .await
            .expect("aria-label");
        assert_eq!(label.as_deref(), Some("design: pending"), "the chip is labelled in words");

        browser.execute("window.__noReload = 1;", vec![]).await.expect("mark the page");
        sign(&server, DESIGNER, "CHECKOUT-42", &decision, "design").await;
        let seen = wait_for(&browser, chip, json!("approved | ✓designapproved"), Duration::from_secs(15)).await;
        assert_eq!(seen, json!("approved | ✓designapproved"), "the sign-off arrives live");
        let marker = browser.execute("return window.__noReload === 1;", vec![]).await.expect("marker");
        assert_eq!(marker, json!(true), "the page was not reloaded");
        let numbers = browser
            .find(Locator::Css(r#"article[data-key="CHECKOUT-42"] .score .numbers"#))
            .await
            .expect("score")
            .text()
            .await
            .expect("score text");
        assert!(numbers.starts_with("2/3"), "the score moved to 2/3: {numbers:?}");

        let dir = screenshot_dir();
        let board = dir.join("board.png");
        std::fs::write(&board, browser.screenshot().await.expect("screenshot")).expect("write board.png");
        println!("board screenshot: {}", board.display());

        browser
            .find(Locator::Css(r#"article[data-key="CHECKOUT-42"] h2 button"#))
            .await
            .expect("card title")
            .click()
            .await
            .expect("open the detail panel");
        let signer = r#"const cell = document.querySelector('#detail:not([hidden]) table.matrix tr[data-function="design"] [data-signer]');
                        return cell ? cell.getAttribute('data-signer') + ' | ' + cell.textContent : null;"#;
        let deadline = Instant::now() + Duration::from_secs(10);
        let shown = loop {
            let got = browser.execute(signer, vec![]).await.expect("script runs");
            if got.as_str().is_some_and(|s| s.starts_with(DESIGNER)) || Instant::now() >= deadline {
                break got;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        };
        let shown = shown.as_str().unwrap_or_default().to_owned();
        assert!(
            shown.starts_with(DESIGNER) && shown.contains("approved by"),
            "the sign-off matrix shows the designer's approval: {shown:?}"
        );
        let timeline =
            browser.execute("return document.querySelectorAll('#detail .timeline li').length;", vec![]).await;
        assert!(timeline.expect("count").as_u64().is_some_and(|n| n >= 8), "the timeline lists the history");
        let detail = dir.join("detail.png");
        std::fs::write(&detail, browser.screenshot().await.expect("screenshot")).expect("write detail.png");
        println!("detail screenshot: {}", detail.display());
    };
    // Close the browser session whatever happened, then report.
    let result = std::panic::AssertUnwindSafe(outcome).catch_unwind().await;
    let _ = browser.close().await;
    drop(driver);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn a_link_with_an_initiative_opens_its_detail_on_load() {
    let driver = Driver::start().await;
    let server = Server::start(ServerOptions::local_development()).await;
    seed(&server).await;
    let (_, search) = get_json(&server.url("/api/initiatives/SEARCH-7"), None).await;
    let search_id = search["alignment"]["initiative_id"].as_str().expect("an initiative id").to_owned();

    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        }),
    );
    let browser = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session with headless Chromium");

    let outcome = async {
        let opened = r#"const d = document.getElementById('detail');
                        return d.hidden ? null : document.getElementById('detail-title').textContent;"#;
        // By key (in any case, as people type it), by id, and nothing for a malformed one.
        for (query, title) in [("checkout-42", "New checkout"), (search_id.as_str(), "Faceted search")] {
            browser.goto(&server.url(&format!("/?initiative={query}"))).await.expect("open the link");
            let seen = wait_for(&browser, opened, json!(title), Duration::from_secs(10)).await;
            assert_eq!(seen, json!(title), "?initiative={query} opens the detail");
        }
        browser.goto(&server.url("/?initiative=%3Cscript%3E")).await.expect("open the link");
        let cards = wait_for(
            &browser,
            "return document.querySelectorAll('article.card').length;",
            json!(3),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(cards, json!(3), "the board still loads");
        let hidden = browser.execute("return document.getElementById('detail').hidden;", vec![]).await;
        assert_eq!(hidden.expect("script runs"), json!(true), "a malformed key opens nothing");
    };
    let result = std::panic::AssertUnwindSafe(outcome).catch_unwind().await;
    let _ = browser.close().await;
    drop(driver);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn a_rejection_on_a_card_names_the_rejecter_and_the_reason() {
    let driver = Driver::start().await;
    let server = Server::start(ServerOptions::local_development()).await;
    let refund =
        initiative(&server, "REFUND-9", "Refunds in one click", pb::Stage::Definition, "Refund instantly").await;
    server
        .commands(BUSINESS)
        .record_sign_off(pb::RecordSignOffRequest {
            options: None,
            initiative: "REFUND-9".into(),
            decision_id: refund,
            function: "business".into(),
            verdict: pb::Verdict::Reject.into(),
            reason: "Fraud losses would double.".into(),
            comment: String::new(),
            revision: None,
        })
        .await
        .expect("reject");

    let browser = chromium(&driver, 1280, 900).await;
    finish(&browser, driver, async {
        browser.goto(&server.url("/?view=list")).await.expect("open the list of initiatives");
        let text = r#"const card = document.querySelector('article.card');
                      return card ? card.querySelector('ul.outstanding')?.textContent ?? '' : null;"#;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut seen = Value::Null;
        while std::time::Instant::now() < deadline {
            seen = browser.execute(text, vec![]).await.expect("script runs");
            if seen.as_str().is_some_and(|t| t.contains("Fraud")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let seen = seen.as_str().unwrap_or_default().to_owned();
        assert!(seen.contains(BUSINESS), "names who rejected it: {seen}");
        assert!(seen.contains("Fraud losses would double."), "and why: {seen}");
    })
    .await;
}

// ---- The board for daily use: home view, list, as-of slider, revision diff --------------

/// A headless Chromium session of `driver` with a window of `width` × `height`.
async fn chromium(driver: &Driver, width: u32, height: u32) -> fantoccini::Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     format!("--window-size={width},{height}")],
        }),
    );
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session with headless Chromium")
}

/// Runs `outcome`, then closes the browser session whatever happened, then reports.
async fn finish(browser: &fantoccini::Client, driver: Driver, outcome: impl std::future::Future<Output = ()>) {
    let result = std::panic::AssertUnwindSafe(outcome).catch_unwind().await;
    let _ = browser.clone().close().await;
    drop(driver);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn save_screenshot(name: &str, png: Vec<u8>) {
    let path = screenshot_dir().join(name);
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    println!("screenshot: {}", path.display());
}

/// axe-core as `tests/run` installs it (`npm ci --prefix tests/browser`, the exact version
/// of tests/browser/package-lock.json).
fn axe_source() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} cannot be read ({e}): the accessibility checks need axe-core; `npm ci --prefix tests/browser` \
             (tests/run does it) installs it",
            path.display()
        )
    })
}

/// Runs axe-core in the page as it is and fails on any serious or critical violation.
async fn assert_accessible(browser: &fantoccini::Client, what: &str) {
    let violations = serious_violations(browser).await;
    assert_eq!(violations, json!([]), "{what}: axe-core finds no serious or critical violation");
}

/// What axe-core finds serious or critical in the page as it is: id, impact, help and
/// the first few elements of each.
async fn serious_violations(browser: &fantoccini::Client) -> Value {
    let loaded = browser.execute("return typeof window.axe;", vec![]).await.expect("script runs");
    if loaded != json!("object") {
        let source = format!("{}\n;return typeof window.axe;", axe_source());
        let loaded = browser.execute(&source, vec![]).await.expect("axe-core loads");
        assert_eq!(loaded, json!("object"), "axe-core is defined in the page");
    }
    let run = r#"const done = arguments[arguments.length - 1];
        axe.run(document, { resultTypes: ["violations"] })
          .then((r) => done(r.violations
            .filter((v) => v.impact === "serious" || v.impact === "critical")
            .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                           nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + " — " + n.failureSummary) }))))
          .catch((e) => done({ error: String(e) }));"#;
    browser.execute_async(run, vec![]).await.expect("axe-core runs")
}

async fn revise(server: &Server, key: &str, decision_id: &str, kind: pb::RevisionKind, proposal: &str, note: &str) {
    server
        .commands(DRIVER)
        .revise_decision(pb::ReviseDecisionRequest {
            options: None,
            initiative: key.into(),
            decision_id: decision_id.into(),
            kind: kind.into(),
            content: content("Use Stripe for payments", proposal),
            required_functions: vec![],
            note: note.into(),
        })
        .await
        .expect("revise decision");
}

#[tokio::test]
async fn the_home_view_lists_what_waits_on_me_and_follows_it_live() {
    let driver = Driver::start().await;
    let server = Server::start(ServerOptions::local_development()).await;
    let decision = seed(&server).await;
    let browser = chromium(&driver, 1400, 1000).await;
    let outcome = async {
        browser.goto(&server.url("/")).await.expect("open the board");
        // Local development mode: nobody is signed in, so the board asks who you are.
        let asks = wait_for(
            &browser,
            "return !document.getElementById('home').hidden && !document.getElementById('whoami').hidden;",
            json!(true),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(asks, json!(true), "the home view is the landing view and asks who you are");
        assert_accessible(&browser, "the home view asking who you are").await;
        let input = browser.find(Locator::Css("#whoami input[name=principal]")).await.expect("who-am-I field");
        input.send_keys(BUSINESS).await.expect("type who I am");
        browser.find(Locator::Css("#whoami button[type=submit]")).await.expect("submit").click().await.expect("submit");
        let keys = r#"return [...document.querySelectorAll('#inbox > li')].map((li) => li.dataset.key).join(',');"#;
        let seen = wait_for(&browser, keys, json!("CHECKOUT-42,SEARCH-7"), Duration::from_secs(10)).await;
        assert_eq!(seen, json!("CHECKOUT-42,SEARCH-7"), "business signs on both open decisions");
        let me = browser.execute("return document.getElementById('me-line').textContent;", vec![]).await;
        assert_eq!(me.expect("me line"), json!(format!("for {BUSINESS}")));

        // Kept across a reload, and another person's inbox is theirs alone.
        browser.refresh().await.expect("reload");
        let seen = wait_for(&browser, keys, json!("CHECKOUT-42,SEARCH-7"), Duration::from_secs(10)).await;
        assert_eq!(seen, json!("CHECKOUT-42,SEARCH-7"), "who I am survives a reload");
        browser.find(Locator::Id("me-change")).await.expect("not you?").click().await.expect("change who I am");
        let input = browser.find(Locator::Css("#whoami input[name=principal]")).await.expect("who-am-I field");
        input.send_keys(DESIGNER).await.expect("type who I am");
        browser.find(Locator::Css("#whoami button[type=submit]")).await.expect("submit").click().await.expect("submit");
        let seen = wait_for(&browser, keys, json!("CHECKOUT-42"), Duration::from_secs(10)).await;
        assert_eq!(seen, json!("CHECKOUT-42"), "design is blocked on SEARCH-7 by its own objection, not waiting");
        let item = r#"const li = document.querySelector('#inbox li[data-key="CHECKOUT-42"] li[data-function]');
                      return li ? li.dataset.function + ' | ' + li.textContent : null;"#;
        let text = browser.execute(item, vec![]).await.expect("inbox item");
        let text = text.as_str().unwrap_or_default().to_owned();
        assert!(text.starts_with("design | ") && text.contains("Use Stripe for payments"), "{text}");
        let count = browser.execute("return document.getElementById('inbox-count').textContent;", vec![]).await;
        assert_eq!(count.expect("count"), json!("1"), "the view's tab counts what waits");
        assert_accessible(&browser, "the home view").await;
        save_screenshot("home.png", browser.screenshot().await.expect("screenshot"));
        // The check can fail: a field without a label is found.
        browser
            .execute("document.getElementById('home').append(Object.assign(document.createElement('input'), { id: 'bare' }));", vec![])
            .await
            .expect("add a bare field");
        let found = serious_violations(&browser).await;
        let ids: Vec<&str> = found.as_array().expect("violations").iter().filter_map(|v| v["id"].as_str()).collect();
        assert!(ids.contains(&"label"), "axe-core reports the unlabelled field: {found}");
        browser.execute("document.getElementById('bare').remove();", vec![]).await.expect("remove it");

        // A sign-off elsewhere empties the inbox without a reload.
        browser.execute("window.__noReload = 1;", vec![]).await.expect("mark the page");
        sign(&server, DESIGNER, "CHECKOUT-42", &decision, "design").await;
        let empty = wait_for(
            &browser,
            "return document.querySelectorAll('#inbox > li').length === 0 && \
                    document.getElementById('inbox-status').textContent.startsWith('✓ Nothing waits on you');",
            json!(true),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(empty, json!(true), "the inbox follows the sign-off live");
        let marker = browser.execute("return window.__noReload === 1;", vec![]).await.expect("marker");
        assert_eq!(marker, json!(true), "the page was not reloaded");

        // The list of every initiative is one click away.
        browser.find(Locator::Id("nav-list")).await.expect("list tab").click().await.expect("open the list");
        let list = wait_for(
            &browser,
            "return document.getElementById('home').hidden && !document.getElementById('list-view').hidden \
                    && document.querySelectorAll('article.card').length === 3 && location.search;",
            json!("?view=list"),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(list, json!("?view=list"), "the list shows every initiative and says so in the URL");
    };
    finish(&browser, driver, outcome).await;
}

#[tokio::test]
async fn the_list_searches_sorts_and_groups_a_page_at_a_time_and_keeps_it_in_the_url() {
    let driver = Driver::start().await;
    let server = Server::start(ServerOptions::local_development()).await;
    seed(&server).await;
    // Enough more that the list draws only its first page.
    let owner = server.commands(OWNER);
    for n in 1..=70 {
        owner
            .clone()
            .create_initiative(pb::CreateInitiativeRequest {
                options: None,
                key: format!("BULK-{n}"),
                title: format!("Bulk initiative {n}"),
                summary: if n == 70 { "The seventieth, about zeppelins.".into() } else { String::new() },
                owner: String::new(),
                stage: pb::Stage::Scaling.into(),
                required_functions: vec![],
            })
            .await
            .expect("create initiative");
    }
    let browser = chromium(&driver, 1400, 1000).await;
    let outcome = async {
        let cards = "return [...document.querySelectorAll('#board article.card')].map((c) => c.dataset.key).join(',');";
        let count = "return document.querySelectorAll('#board article.card').length;";
        browser.goto(&server.url("/?view=list")).await.expect("open the list");
        let summary = wait_for(
            &browser,
            "return document.querySelector('#summary .count strong')?.textContent ?? null;",
            json!("73"),
            Duration::from_secs(15),
        )
        .await;
        assert_eq!(summary, json!("73"), "every initiative arrived");
        let drawn = browser.execute(count, vec![]).await.expect("count");
        assert_eq!(drawn, json!(60), "the list draws one page of cards, not all 73");
        let more = browser.execute("return document.getElementById('more').textContent;", vec![]).await;
        assert_eq!(more.expect("text"), json!("Show 13 more (13 not shown yet)"), "it says how many are not drawn");
        browser.execute("window.scrollTo(0, document.body.scrollHeight);", vec![]).await.expect("scroll down");
        let drawn = wait_for(&browser, count, json!(73), Duration::from_secs(5)).await;
        assert_eq!(drawn, json!(73), "the next page is drawn as the end of the list comes near");
        let hidden = browser.execute("return document.getElementById('more').hidden;", vec![]).await;
        assert_eq!(hidden.expect("hidden"), json!(true), "nothing is left to draw");
        assert_accessible(&browser, "the list").await;

        // Search as you type, in the summary too (and in any case), over every initiative.
        let search = browser.find(Locator::Css("#arrange input[name=q]")).await.expect("search field");
        search.send_keys("ZEPPELIN").await.expect("type");
        let seen = wait_for(&browser, cards, json!("BULK-70"), Duration::from_secs(5)).await;
        assert_eq!(seen, json!("BULK-70"), "the summary matches, case-insensitively");
        search.clear().await.expect("clear");
        search.send_keys("faceted").await.expect("type");
        let seen = wait_for(&browser, cards, json!("SEARCH-7"), Duration::from_secs(5)).await;
        assert_eq!(seen, json!("SEARCH-7"), "the title matches");
        let url = browser.execute("return location.search;", vec![]).await.expect("url");
        assert_eq!(url, json!("?view=list&q=faceted"), "the search is in the URL");
        search.clear().await.expect("clear");
        search.send_keys("pm@example CHECKOUT").await.expect("type");
        let seen = wait_for(&browser, cards, json!("CHECKOUT-42"), Duration::from_secs(5)).await;
        assert_eq!(seen, json!("CHECKOUT-42"), "every word must match: the owner and the key");

        // Sort and group, from a shared link, surviving a reload.
        browser.goto(&server.url("/?view=list&q=new%20faceted%20annual&sort=key")).await.expect("open a link");
        let nothing = "return document.querySelector('#summary .count strong')?.textContent === '73' \
                       && document.querySelectorAll('#board article.card').length === 0 \
                       && !document.getElementById('empty').hidden;";
        let seen = wait_for(&browser, nothing, json!(true), Duration::from_secs(10)).await;
        assert_eq!(seen, json!(true), "no initiative has all three words, and the list says so");
        browser.goto(&server.url("/?view=list&q=teams&sort=key")).await.expect("open a link");
        let seen = wait_for(&browser, cards, json!("CHECKOUT-42,PRICING-3,SEARCH-7"), Duration::from_secs(10)).await;
        assert_eq!(seen, json!("CHECKOUT-42,PRICING-3,SEARCH-7"), "sorted by key");
        let select = browser.find(Locator::Css("#arrange select[name=sort]")).await.expect("sort");
        select.select_by_value("stage").await.expect("sort by stage");
        let seen = wait_for(&browser, cards, json!("SEARCH-7,CHECKOUT-42,PRICING-3"), Duration::from_secs(5)).await;
        assert_eq!(seen, json!("SEARCH-7,CHECKOUT-42,PRICING-3"), "sorted by stage: discovery, definition, delivery");
        let group = browser.find(Locator::Css("#arrange select[name=group]")).await.expect("group");
        group.select_by_value("status").await.expect("group by status");
        let groups =
            "return [...document.querySelectorAll('#board .group-heading')].map((h) => h.dataset.group).join(',');";
        let seen = wait_for(&browser, groups, json!("blocked,pending,aligned"), Duration::from_secs(5)).await;
        assert_eq!(seen, json!("blocked,pending,aligned"), "grouped by status, worst first");
        browser.refresh().await.expect("reload");
        let seen = wait_for(&browser, groups, json!("blocked,pending,aligned"), Duration::from_secs(10)).await;
        assert_eq!(seen, json!("blocked,pending,aligned"), "the grouping survives a reload");
        let url = browser.execute("return location.search;", vec![]).await.expect("url");
        assert_eq!(url, json!("?view=list&q=teams&sort=stage&group=status"), "and is in the URL");
        let value = browser.execute("return document.querySelector('#arrange [name=q]').value;", vec![]).await;
        assert_eq!(value.expect("value"), json!("teams"), "the search field shows the search");
        assert_accessible(&browser, "the grouped list").await;
    };
    finish(&browser, driver, outcome).await;
}

#[tokio::test]
async fn the_as_of_slider_shows_the_alignment_and_why_at_each_version_by_keyboard() {
    let driver = Driver::start().await;
    let server = Server::start(ServerOptions::local_development()).await;
    seed(&server).await;
    let browser = chromium(&driver, 1400, 1100).await;
    let outcome = async {
        browser.goto(&server.url("/?view=list&initiative=CHECKOUT-42")).await.expect("open the detail");
        // CHECKOUT-42: created (v1), four stakeholders (v2-5), proposed (v6), engineering
        // approved (v7), a business concern (v8).
        let range = "const r = document.getElementById('asof-range'); \
                     return r && !document.getElementById('detail-history').hidden ? r.min + '..' + r.max + ' @' + r.value : null;";
        let seen = wait_for(&browser, range, json!("1..8 @8"), Duration::from_secs(10)).await;
        assert_eq!(seen, json!("1..8 @8"), "the slider runs over every version, at the newest");
        let state = r#"const body = document.getElementById('asof-body');
                       const li = body.querySelector('.asof-explain li[data-function="engineering"]');
                       return li ? `version ${body.dataset.version} of 8 | ${li.dataset.state}` : null;"#;
        let seen = wait_for(&browser, state, json!("version 8 of 8 | approved"), Duration::from_secs(10)).await;
        assert_eq!(seen, json!("version 8 of 8 | approved"));

        let slider = browser.find(Locator::Id("asof-range")).await.expect("the slider");
        slider.send_keys("\u{E012}").await.expect("arrow left");
        let seen = wait_for(&browser, state, json!("version 7 of 8 | approved"), Duration::from_secs(10)).await;
        assert_eq!(seen, json!("version 7 of 8 | approved"), "one version back by keyboard");
        let event = browser.execute("return document.getElementById('asof-event').textContent;", vec![]).await;
        let event = event.expect("event").as_str().unwrap_or_default().to_owned();
        assert!(event.contains("v7") && event.contains(ENGINEER) && event.contains("approved"), "narrated: {event}");
        slider.send_keys("\u{E012}").await.expect("arrow left");
        let seen = wait_for(&browser, state, json!("version 6 of 8 | pending"), Duration::from_secs(10)).await;
        assert_eq!(seen, json!("version 6 of 8 | pending"), "before the approval, engineering was pending");
        let why = browser
            .execute(
                r#"return document.querySelector('#asof-body .asof-explain li[data-function="engineering"] .why').textContent;"#,
                vec![],
            )
            .await
            .expect("reason");
        assert!(why.as_str().is_some_and(|w| !w.trim().is_empty()), "the explanation says why: {why}");
        let status = browser
            .execute("return document.querySelector('#asof-body .asof-alignment .status').textContent;", vec![])
            .await
            .expect("status");
        assert_eq!(status, json!("◔pending"), "the alignment as of version 6");
        let valuetext = browser
            .execute("return document.getElementById('asof-range').getAttribute('aria-valuetext');", vec![])
            .await;
        let valuetext = valuetext.expect("valuetext").as_str().unwrap_or_default().to_owned();
        assert!(valuetext.starts_with("version 6 of 8: ") && valuetext.contains(DRIVER), "{valuetext}");
        // The buttons step too, down to the first version.
        slider.send_keys("\u{E011}").await.expect("home");
        let seen = wait_for(
            &browser,
            "return document.getElementById('asof-range').getAttribute('aria-valuetext')?.split(':')[0] ?? null;",
            json!("version 1 of 8"),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(seen, json!("version 1 of 8"), "Home goes to the first version");
        let earlier = browser.execute("return document.getElementById('asof-earlier').disabled;", vec![]).await;
        assert_eq!(earlier.expect("disabled"), json!(true), "nothing before version 1");
        browser.find(Locator::Id("asof-later")).await.expect("later").click().await.expect("step");
        let seen = wait_for(
            &browser,
            "return document.getElementById('asof-range').getAttribute('aria-valuetext')?.split(':')[0] ?? null;",
            json!("version 2 of 8"),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(seen, json!("version 2 of 8"), "the later button steps one version");
        for _ in 0..4 {
            slider.send_keys("\u{E014}").await.expect("arrow right");
        }
        let seen = wait_for(&browser, state, json!("version 6 of 8 | pending"), Duration::from_secs(10)).await;
        assert_eq!(seen, json!("version 6 of 8 | pending"));
        assert_accessible(&browser, "the detail with the as-of slider").await;
        browser
            .execute("document.getElementById('detail-history').scrollIntoView();", vec![])
            .await
            .expect("scroll to the slider");
        save_screenshot("as-of.png", browser.screenshot().await.expect("screenshot"));
    };
    finish(&browser, driver, outcome).await;
}

#[tokio::test]
async fn a_decision_page_shows_the_diff_between_two_revisions() {
    let driver = Driver::start().await;
    let server = Server::start(ServerOptions::local_development()).await;
    let decision = seed(&server).await;
    revise(
        &server,
        "CHECKOUT-42",
        &decision,
        pb::RevisionKind::Material,
        "Use Stripe for card payments, and PayPal later.",
        "Scope changed after the fees review.",
    )
    .await;
    revise(
        &server,
        "CHECKOUT-42",
        &decision,
        pb::RevisionKind::Editorial,
        "Use Stripe for card payments, and PayPal next quarter.",
        "Wording.",
    )
    .await;
    let browser = chromium(&driver, 1400, 1200).await;
    let outcome = async {
        browser.goto(&server.url("/?view=list&initiative=CHECKOUT-42")).await.expect("open the detail");
        let button = r#"return document.querySelector('#detail-main .decision .compare')?.textContent ?? null;"#;
        let seen = wait_for(&browser, button, json!("Revisions and changes (3)"), Duration::from_secs(10)).await;
        assert_eq!(seen, json!("Revisions and changes (3)"));
        browser
            .find(Locator::Css("#detail-main .decision .compare"))
            .await
            .expect("button")
            .click()
            .await
            .expect("open");
        let pair = r#"const f = document.getElementById('diff-fields');
                      const v = document.getElementById('diff-verdict');
                      return f && v ? f.dataset.from + '→' + f.dataset.to + ' ' + v.className : null;"#;
        let seen = wait_for(&browser, pair, json!("1→2 diff-verdict material"), Duration::from_secs(10)).await;
        assert_eq!(
            seen,
            json!("1→2 diff-verdict material"),
            "by default the latest material revision vs the one before"
        );
        let proposal = r#"const p = document.querySelector('.field-diff[data-field="proposal"]');
                          return p.dataset.changed + ' | -' + [...p.querySelectorAll('del')].map((d) => d.textContent).join('')
                                 + ' | +' + [...p.querySelectorAll('ins')].map((d) => d.textContent).join('');"#;
        let seen = browser.execute(proposal, vec![]).await.expect("proposal diff");
        let seen = seen.as_str().unwrap_or_default().to_owned();
        assert!(seen.starts_with("true | -"), "{seen}");
        assert!(seen.contains("card") && seen.contains("PayPal") && seen.contains("later"), "inserted words: {seen}");
        assert!(seen.contains("starting") && seen.contains("sprint"), "deleted words: {seen}");
        let title = browser
            .execute(r#"return document.querySelector('.field-diff[data-field="title"]').dataset.changed;"#, vec![])
            .await
            .expect("title");
        assert_eq!(title, json!("false"), "the title did not change");
        let kinds = browser
            .execute(
                "return [...document.querySelectorAll('.revisions li')].map((li) => li.dataset.kind).join(',');",
                vec![],
            )
            .await
            .expect("kinds");
        assert_eq!(kinds, json!("material,material,editorial"), "each revision's kind is listed");
        assert_accessible(&browser, "the revision diff").await;
        save_screenshot("revision-diff.png", browser.screenshot().await.expect("screenshot"));

        // Two other revisions: the editorial one alone.
        let from = browser.find(Locator::Css("#diff-pick select[name=from]")).await.expect("from");
        from.select_by_value("2").await.expect("from 2");
        let seen = wait_for(&browser, pair, json!("2→2 diff-verdict same"), Duration::from_secs(10)).await;
        assert_eq!(seen, json!("2→2 diff-verdict same"), "the same revision on both sides: nothing changed");
        let to = browser.find(Locator::Css("#diff-pick select[name=to]")).await.expect("to");
        to.select_by_value("3").await.expect("to 3");
        let seen = wait_for(&browser, pair, json!("2→3 diff-verdict editorial"), Duration::from_secs(10)).await;
        assert_eq!(seen, json!("2→3 diff-verdict editorial"), "an editorial revision is marked as such");
        let seen = browser.execute(proposal, vec![]).await.expect("proposal diff");
        let seen = seen.as_str().unwrap_or_default().to_owned();
        assert_eq!(seen, "true | -later. | +next quarter.", "the editorial revision's words");
        // Back to the initiative with Escape, the detail still open.
        browser.find(Locator::Css("#diff-pick select[name=to]")).await.expect("to").send_keys("\u{E00C}").await.ok();
        let back = wait_for(
            &browser,
            "return document.getElementById('detail-decision').hidden && !document.getElementById('detail').hidden;",
            json!(true),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(back, json!(true), "Escape goes back to the initiative");
    };
    finish(&browser, driver, outcome).await;
}

/// Sends a bearer token (outside local development mode).
#[derive(Clone)]
struct Bearer(String);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let value = format!("Bearer {}", self.0).parse().map_err(|_| Status::internal("bad token"))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }
}

#[tokio::test]
async fn with_a_token_the_home_view_is_the_callers_own_without_asking() {
    let (admin, driver_token, business) = (
        "board-admin-token-0123456789abcdef",
        "board-driver-token-0123456789abcdef",
        "board-business-token-0123456789ab",
    );
    let mut tokens = ServiceTokens::new();
    for (token, principal, role) in
        [(admin, OWNER, Role::Admin), (driver_token, DRIVER, Role::Member), (business, BUSINESS, Role::Member)]
    {
        tokens.add(
            service_tokens::digest(token),
            Principal::parse("principal", principal).expect("principal"),
            Roles::of(&[role]),
        );
    }
    let options = ServerOptions {
        authenticator: Authenticator::Tokens { jwt: None, service_tokens: tokens },
        ..ServerOptions::local_development()
    };
    let server = Server::start(options).await;
    let channel = Channel::from_shared(format!("http://{}", server.grpc)).expect("uri").connect_lazy();
    let as_owner = CommandServiceClient::with_interceptor(channel.clone(), Bearer(admin.into()));
    as_owner
        .clone()
        .create_initiative(pb::CreateInitiativeRequest {
            options: None,
            key: "CHECKOUT-42".into(),
            title: "New checkout".into(),
            summary: String::new(),
            owner: String::new(),
            stage: pb::Stage::Definition.into(),
            required_functions: vec!["business".into()],
        })
        .await
        .expect("create initiative");
    for (principal, function, role) in
        [(DRIVER, "product", pb::Role::Driver), (BUSINESS, "business", pb::Role::Approver)]
    {
        as_owner
            .clone()
            .assign_stakeholder(pb::AssignStakeholderRequest {
                options: None,
                initiative: "CHECKOUT-42".into(),
                principal: principal.into(),
                function: function.into(),
                role: role.into(),
            })
            .await
            .expect("assign stakeholder");
    }
    CommandServiceClient::with_interceptor(channel, Bearer(driver_token.into()))
        .propose_decision(pb::ProposeDecisionRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            content: content("Use Stripe for payments", "Use Stripe."),
            required_functions: vec![],
            supersedes: String::new(),
        })
        .await
        .expect("propose decision");

    let driver = Driver::start().await;
    let browser = chromium(&driver, 1400, 1000).await;
    let outcome = async {
        browser.goto(&server.url("/")).await.expect("open the board");
        let asks = wait_for(
            &browser,
            "return !document.getElementById('token-panel').hidden;",
            json!(true),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(asks, json!(true), "without a token the board asks for one");
        let field = browser.find(Locator::Css("#token-form input[name=token]")).await.expect("token field");
        field.send_keys(business).await.expect("type the token");
        browser
            .find(Locator::Css("#token-form button[type=submit]"))
            .await
            .expect("submit")
            .click()
            .await
            .expect("use it");
        let keys = r#"return [...document.querySelectorAll('#inbox > li')].map((li) => li.dataset.key).join(',');"#;
        let seen = wait_for(&browser, keys, json!("CHECKOUT-42"), Duration::from_secs(10)).await;
        assert_eq!(seen, json!("CHECKOUT-42"), "the caller's own inbox");
        let me = browser.execute("return document.getElementById('me-line').textContent;", vec![]).await;
        assert_eq!(me.expect("me line"), json!(format!("for {BUSINESS} (signed in)")), "named by the server");
        let asked = browser
            .execute(
                "return [document.getElementById('whoami').hidden, document.getElementById('me-change').hidden];",
                vec![],
            )
            .await
            .expect("script runs");
        assert_eq!(asked, json!([true, true]), "nobody is asked who they are, nor offered to change it");
        assert_accessible(&browser, "the home view with a token").await;
    };
    finish(&browser, driver, outcome).await;
}

/// An initiative whose only decision was accepted shows what was agreed and by whom, not
/// every function as "not needed" (issue 16).
#[tokio::test]
async fn an_accepted_decision_shows_its_functions_as_agreed_and_who_agreed() {
    let driver = Driver::start().await;
    let server = Server::start(ServerOptions::local_development()).await;
    let decision =
        initiative(&server, "REFUND-9", "Refunds in one click", pb::Stage::Definition, "Refund instantly").await;
    for (who, function) in [(ENGINEER, "engineering"), (DESIGNER, "design"), (BUSINESS, "business")] {
        sign(&server, who, "REFUND-9", &decision, function).await;
    }
    server
        .commands(DRIVER)
        .accept_decision(pb::AcceptDecisionRequest {
            options: None,
            initiative: "REFUND-9".into(),
            decision_id: decision,
            override_reason: String::new(),
        })
        .await
        .expect("accept");

    let browser = chromium(&driver, 1280, 900).await;
    finish(&browser, driver, async {
        browser.goto(&server.url("/?view=list")).await.expect("open the list of initiatives");
        let read = r#"const card = document.querySelector('article.card[data-key="REFUND-9"]');
            if (!card) return null;
            return { states: [...card.querySelectorAll('ul.chips li')].map((c) => c.dataset.state),
                     titles: [...card.querySelectorAll('ul.chips li')].map((c) => c.title),
                     agreed: card.querySelector('ul.agreed')?.textContent ?? '' };"#;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut seen = Value::Null;
        while std::time::Instant::now() < deadline {
            seen = browser.execute(read, vec![]).await.expect("script runs");
            if seen["agreed"].as_str().is_some_and(|t| !t.is_empty()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(seen["states"], json!(["agreed", "agreed", "agreed"]), "{seen}");
        let design = seen["titles"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t.as_str().is_some_and(|t| t.starts_with("design"))));
        assert!(design.and_then(Value::as_str).is_some_and(|t| t.contains(DESIGNER)), "{seen}");
        let agreed = seen["agreed"].as_str().unwrap_or_default();
        for who in [ENGINEER, DESIGNER, BUSINESS, DRIVER] {
            assert!(agreed.contains(who), "the agreed list names {who}: {agreed}");
        }
        assert!(agreed.contains("Refund instantly") && agreed.contains("revision 1"), "{agreed}");
    })
    .await;
}

/// A sign-off given through a team says so in the detail's sign-off matrix (issue 16).
#[tokio::test]
async fn the_detail_names_the_team_a_sign_off_was_given_for() {
    let server = Server::start(ServerOptions::local_development()).await;
    let decision =
        initiative(&server, "REFUND-9", "Refunds in one click", pb::Stage::Definition, "Refund instantly").await;
    server
        .commands(OWNER)
        .assign_stakeholder(pb::AssignStakeholderRequest {
            options: None,
            initiative: "REFUND-9".into(),
            principal: "team:design-leads".into(),
            function: "design".into(),
            role: pb::Role::Approver.into(),
        })
        .await
        .expect("give design's approval to a team too");
    let channel = Channel::from_shared(format!("http://{}", server.grpc)).expect("uri").connect_lazy();
    CommandServiceClient::with_interceptor(channel, TeamMember("lea@example.com".into(), "design-leads".into()))
        .record_sign_off(pb::RecordSignOffRequest {
            options: None,
            initiative: "REFUND-9".into(),
            decision_id: decision,
            function: "design".into(),
            verdict: pb::Verdict::Approve.into(),
            reason: String::new(),
            comment: String::new(),
            revision: None,
        })
        .await
        .expect("a lead signs for the team");
    let (status, detail) = get_json(&server.url("/api/initiatives/REFUND-9"), None).await;
    assert_eq!(status, 200, "{detail}");
    let cells: Vec<&Value> = detail["decisions"][0]["revisions"][0]["matrix"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|row| row["function"] == "design")
        .flat_map(|row| row["sign_offs"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(cells.len(), 1, "{detail}");
    assert_eq!((&cells[0]["signer"], &cells[0]["via_team"]), (&json!("lea@example.com"), &json!("team:design-leads")));
    assert_eq!(cells[0]["counts"], true);
}
