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
    let mut tokens = ServiceTokens::new();
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

    for path in ["/api/initiatives/CHECKOUT-42", "/api/watch"] {
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
        browser.goto(&server.url("/")).await.expect("open the board");
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
        browser.goto(&server.url("/")).await.expect("open the board");
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
    };
    let result = std::panic::AssertUnwindSafe(outcome).catch_unwind().await;
    let _ = browser.close().await;
    drop(driver);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
