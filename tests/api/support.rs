//! The test harness: a real Accord server on a loopback port over a fresh PostgreSQL
//! database (one per test, from `#[sqlx::test]`) or a fresh SQLite file, with typed
//! clients. The server authenticates exactly as in production: every client sends a JWT
//! signed by the harness's own identity provider (HS256, issuer `ISSUER`, audience
//! `AUDIENCE`), with the service roles the directory below gives each test principal.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use accord::proto::{
    self as pb, alignment_service_client::AlignmentServiceClient, audit_service_client::AuditServiceClient,
    command_service_client::CommandServiceClient,
};
pub use accord::security::Role;
use accord::security::{Authenticator, JwtVerifier, Limits, ServiceTokens, VerificationKey};
use accord::server::ServerOptions;
use accord::store::{PgStore, SqliteStore, Store};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use sqlx::PgPool;
use tokio::sync::oneshot;
use tonic::{
    Request, Status,
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

pub type Commands = CommandServiceClient<InterceptedService<Channel, Bearer>>;
pub type Queries = AlignmentServiceClient<InterceptedService<Channel, Bearer>>;
pub type Audit = AuditServiceClient<InterceptedService<Channel, Bearer>>;
pub type WebhookAdmin =
    accord::proto::webhook_service_client::WebhookServiceClient<InterceptedService<Channel, Bearer>>;

pub const ISSUER: &str = "https://id.test.example/";
pub const AUDIENCE: &str = "accord";
/// The harness identity provider's HS256 secret (test-only, 32+ bytes).
pub const SECRET: &[u8] = b"accord-test-identity-provider-secret-0123456789";

/// The principal the dashboards' reader tokens name.
pub const DASHBOARD: &str = "dashboard@example.com";
/// The principal of the auditor's tokens.
pub const AUDITOR: &str = "auditor@example.com";

/// The test directory: which service roles the identity provider puts in each test
/// principal's token. The owner of the test initiatives is the administrator who sets
/// them up; everyone else is a member acting under their stakeholder roles.
pub fn roles_of(principal: &str) -> &'static [Role] {
    match principal {
        OWNER => &[Role::Admin],
        AUDITOR => &[Role::Auditor],
        DASHBOARD => &[Role::Reader],
        _ => &[Role::Member],
    }
}

/// A token from the harness identity provider; `adjust` may change any claim.
pub fn token_with(principal: &str, roles: &[Role], adjust: impl FnOnce(&mut serde_json::Value)) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs();
    let mut claims = serde_json::json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": principal,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "roles": roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
    });
    adjust(&mut claims);
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET).expect("key"))
        .expect("sign")
}

pub fn token(principal: &str, roles: &[Role]) -> String {
    token_with(principal, roles, |_| {})
}

/// The authenticator of the harness: JWTs from its identity provider.
pub fn harness_authenticator() -> Authenticator {
    let key = VerificationKey {
        algorithm: Algorithm::HS256,
        kid: None,
        key: DecodingKey::from_secret(SECRET).expect("HMAC key"),
    };
    Authenticator::Tokens {
        jwt: Some(JwtVerifier::new(ISSUER, AUDIENCE, 30, "roles", vec![key])),
        service_tokens: ServiceTokens::new(),
    }
}

/// The one origin the harness lets browsers call from (CORS).
pub const ALLOWED_ORIGIN: &str = "https://board.test.example";

pub fn harness_options() -> ServerOptions {
    ServerOptions {
        authenticator: harness_authenticator(),
        tls: None,
        limits: Limits::default(),
        checkpoint_every: None,
        checkpoint_key: None,
        snapshot_every: None,
        cors_origins: vec![ALLOWED_ORIGIN.to_owned()],
        webhooks: None,
        sign_in: None,
    }
}

/// Sends every request with one bearer token (or none).
#[derive(Clone)]
pub struct Bearer(pub Option<String>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            let value = format!("Bearer {token}").parse().map_err(|_| Status::internal("bad test token"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

/// The store underneath a `Store`, for the tests that speak its SQL dialect.
pub enum Dialect<'a> {
    Postgres(&'a PgStore),
    Sqlite(&'a SqliteStore),
}

pub fn dialect(store: &Store) -> Dialect<'_> {
    match (store.postgres(), store.sqlite()) {
        (Some(store), _) => Dialect::Postgres(store),
        (None, Some(store)) => Dialect::Sqlite(store),
        (None, None) => panic!("a {} store is neither PostgreSQL nor SQLite", store.kind()),
    }
}

pub struct TestApp {
    pub address: SocketAddr,
    /// The board's HTTP listener (`/livez`, `/readyz`, `/metrics`, `/api/…`).
    pub http: SocketAddr,
    pub store: Store,
    channel: Channel,
    stop: Option<oneshot::Sender<()>>,
    /// The SQLite store's folder, removed when the test ends.
    _data_dir: Option<tempfile::TempDir>,
}

/// Declares each listed `async fn(TestApp)` twice: as a test on PostgreSQL (a fresh
/// database from `#[sqlx::test]`) and as a test on SQLite (a fresh file in a temporary
/// folder). One suite, both stores.
#[macro_export]
macro_rules! on_both_stores {
    ($($test:ident),+ $(,)?) => {
        mod postgres {
            $(
                #[sqlx::test(migrator = "accord::store::postgres::MIGRATOR")]
                async fn $test(pool: sqlx::PgPool) {
                    super::$test($crate::support::TestApp::postgres(pool).await).await
                }
            )+
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test($crate::support::TestApp::sqlite().await).await
                }
            )+
        }
    };
}

impl TestApp {
    pub async fn postgres(pool: PgPool) -> TestApp {
        TestApp::serve(Store::from(PgStore::new(pool)), None, harness_options()).await
    }

    pub async fn sqlite() -> TestApp {
        let (store, dir) = TestApp::sqlite_store().await;
        TestApp::serve(store, Some(dir), harness_options()).await
    }

    /// A fresh SQLite store in its own temporary folder.
    pub async fn sqlite_store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temporary folder");
        let url = format!("sqlite://{}", dir.path().join("accord.db").display());
        (Store::open(&url, 8).await.expect("open SQLite store"), dir)
    }

    /// Kept for the PostgreSQL-only tests of the store's mechanics.
    pub async fn spawn(pool: PgPool) -> TestApp {
        TestApp::postgres(pool).await
    }

    /// The same store served again with other options (authentication, limits).
    pub async fn reserve(&self, options: ServerOptions) -> TestApp {
        TestApp::serve(self.store.clone(), None, options).await
    }

    /// A server on a store opened elsewhere (e.g. through `proxy::Proxy`).
    pub async fn with_store(store: Store) -> TestApp {
        TestApp::serve(store, None, harness_options()).await
    }

    async fn serve(store: Store, data_dir: Option<tempfile::TempDir>, options: ServerOptions) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let address = listener.local_addr().expect("local address");
        let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let http = http_listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let server_store = store.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            accord::server::serve_all(listener, Some(http_listener), server_store, options, shutdown)
                .await
                .expect("server runs");
        });
        let channel = Channel::from_shared(format!("http://{address}"))
            .expect("uri")
            .timeout(Duration::from_secs(60))
            .connect_lazy();
        TestApp { address, http, store, channel, stop: Some(stop), _data_dir: data_dir }
    }

    /// The PostgreSQL pool (for the tests of PostgreSQL's own mechanics).
    pub fn pg_pool(&self) -> &PgPool {
        match self.store.postgres() {
            Some(store) => store.pool(),
            None => panic!("this test needs the PostgreSQL store"),
        }
    }

    /// A command client acting as `actor`, with the roles the test directory gives them.
    pub fn as_(&self, actor: &str) -> Commands {
        self.commands_with(Some(token(actor, roles_of(actor))))
    }

    /// A command client sending `token` as is (`None`: no credentials at all).
    pub fn commands_with(&self, token: Option<String>) -> Commands {
        CommandServiceClient::with_interceptor(self.channel.clone(), Bearer(token))
    }

    /// A command client that sends no credentials.
    pub fn anonymous(&self) -> Commands {
        self.commands_with(None)
    }

    /// A query client for a dashboard (reader role).
    pub fn queries(&self) -> Queries {
        self.queries_with(Some(token(DASHBOARD, roles_of(DASHBOARD))))
    }

    pub fn queries_with(&self, token: Option<String>) -> Queries {
        AlignmentServiceClient::with_interceptor(self.channel.clone(), Bearer(token))
    }

    /// An audit client for an auditor.
    pub fn audit(&self) -> Audit {
        self.audit_with(Some(token(AUDITOR, roles_of(AUDITOR))))
    }

    pub fn audit_with(&self, token: Option<String>) -> Audit {
        AuditServiceClient::with_interceptor(self.channel.clone(), Bearer(token))
    }

    /// A webhook client for the administrator (the owner of the test initiatives).
    pub fn webhooks(&self) -> WebhookAdmin {
        self.webhooks_as(OWNER)
    }

    /// A webhook client acting as `actor`, with the roles the test directory gives them.
    pub fn webhooks_as(&self, actor: &str) -> WebhookAdmin {
        accord::proto::webhook_service_client::WebhookServiceClient::with_interceptor(
            self.channel.clone(),
            Bearer(Some(token(actor, roles_of(actor)))),
        )
    }

    /// The bare channel (health and reflection need no credentials).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Every stored event as (position, stream, version, type, hash): to show a failed
    /// command left the log unchanged.
    pub async fn log(&self) -> Vec<(i64, uuid::Uuid, i64, String, Vec<u8>)> {
        const LOG: &str = "SELECT position, stream_id, stream_version, event_type, hash FROM events ORDER BY position";
        match dialect(&self.store) {
            Dialect::Postgres(store) => sqlx::query_as(LOG).fetch_all(store.pool()).await.expect("read log"),
            Dialect::Sqlite(store) => {
                let rows: Vec<(i64, String, i64, String, Vec<u8>)> =
                    sqlx::query_as(LOG).fetch_all(store.pool()).await.expect("read log");
                rows.into_iter()
                    .map(|(p, s, v, t, h)| (p, s.parse().expect("stored stream id is a UUID"), v, t, h))
                    .collect()
            }
        }
    }

    pub async fn alignment(&self, initiative: &str) -> pb::InitiativeAlignment {
        self.queries()
            .get_alignment(pb::GetAlignmentRequest { initiative: initiative.to_owned() })
            .await
            .expect("get alignment")
            .into_inner()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn options(command_id: &str) -> Option<pb::CommandOptions> {
    Some(pb::CommandOptions { command_id: command_id.to_owned(), expected_version: None })
}

pub fn expecting(version: u64) -> Option<pb::CommandOptions> {
    Some(pb::CommandOptions { command_id: String::new(), expected_version: Some(version) })
}

pub fn content(title: &str, proposal: &str) -> Option<pb::DecisionContent> {
    Some(pb::DecisionContent {
        title: title.to_owned(),
        context: "Checkout needs a payment provider.".to_owned(),
        options: vec!["Stripe".to_owned(), "Adyen".to_owned(), "Build in-house".to_owned()],
        proposal: proposal.to_owned(),
        rationale: "Fastest to integrate; good API.".to_owned(),
    })
}

pub const OWNER: &str = "pm@example.com";
pub const DRIVER: &str = "dana@example.com";
pub const ENGINEER: &str = "eve@example.com";
pub const DESIGNER: &str = "dee@example.com";
pub const BUSINESS: &str = "bo@example.com";

/// The ids of the SPEC section 4 set-up.
pub struct Checkout {
    pub initiative_id: String,
    pub decision_id: String,
}

/// Creates CHECKOUT-42 with a driver and one approver per function, and proposes
/// "Use Stripe for payments" (scenario steps 2-3, without the concern).
pub async fn checkout(app: &TestApp) -> Checkout {
    let owner = app.as_(OWNER);
    let created = owner
        .clone()
        .create_initiative(pb::CreateInitiativeRequest {
            options: None,
            key: "CHECKOUT-42".into(),
            title: "New checkout".into(),
            summary: "Rebuild checkout around a payment provider.".into(),
            owner: String::new(),
            stage: pb::Stage::Definition.into(),
            required_functions: vec![],
        })
        .await
        .expect("create initiative")
        .into_inner();
    let people = [
        (DRIVER, "product", pb::Role::Driver),
        (ENGINEER, "engineering", pb::Role::Approver),
        (DESIGNER, "design", pb::Role::Approver),
        (BUSINESS, "business", pb::Role::Approver),
    ];
    for (principal, function, role) in people {
        owner
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
    let proposed = app
        .as_(DRIVER)
        .propose_decision(pb::ProposeDecisionRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            content: content("Use Stripe for payments", "Integrate Stripe Checkout."),
            required_functions: vec![],
            supersedes: String::new(),
        })
        .await
        .expect("propose decision")
        .into_inner();
    Checkout { initiative_id: created.initiative_id, decision_id: proposed.created_id }
}

pub async fn sign(
    app: &TestApp,
    who: &str,
    decision_id: &str,
    function: &str,
    verdict: pb::Verdict,
    reason: &str,
) -> Result<pb::CommandResponse, Status> {
    app.as_(who)
        .record_sign_off(pb::RecordSignOffRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            decision_id: decision_id.into(),
            function: function.into(),
            verdict: verdict.into(),
            reason: reason.into(),
            comment: String::new(),
            revision: None,
        })
        .await
        .map(|r| r.into_inner())
}

pub fn function_state(view: &pb::InitiativeAlignment, function: &str) -> pb::FunctionState {
    view.functions.iter().find(|f| f.function == function).map(|f| f.state()).unwrap_or(pb::FunctionState::Unspecified)
}

// ---- Helpers of the errors, concurrency, idempotency and queries tests -------------

impl TestApp {
    /// A real server whose store points at a PostgreSQL that cannot be reached (port 1):
    /// every call that needs the database fails once the 500 ms acquire timeout passes.
    /// `log()` cannot be used on it.
    pub async fn spawn_unreachable() -> TestApp {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(std::time::Duration::from_millis(500))
            .connect_lazy("postgres://postgres@127.0.0.1:1/none")
            .expect("a lazy pool");
        TestApp::postgres(pool).await
    }
}

/// The fields named by the `BadRequest` details of a status (empty when it has none).
pub fn bad_fields(status: &Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// Asserts INVALID_ARGUMENT whose details name exactly `field` and whose message is
/// "`field`: …" and contains `says`.
#[track_caller]
pub fn assert_invalid(status: &Status, field: &str, says: &str) {
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(bad_fields(status), vec![field.to_owned()], "field violations of {status:?}");
    assert!(status.message().starts_with(&format!("{field}: ")), "message names {field}: {:?}", status.message());
    assert!(status.message().contains(says), "message {:?} should say {says:?}", status.message());
}

/// Asserts the status code and that the message contains every one of `says`.
#[track_caller]
pub fn assert_status(status: &Status, code: tonic::Code, says: &[&str]) {
    assert_eq!(status.code(), code, "{status:?}");
    for part in says {
        assert!(status.message().contains(part), "message {:?} should contain {part:?}", status.message());
    }
}

/// A CreateInitiativeRequest with the defaults (caller as owner, discovery, default functions).
pub fn new_initiative(key: &str, title: &str) -> pb::CreateInitiativeRequest {
    pb::CreateInitiativeRequest {
        options: None,
        key: key.to_owned(),
        title: title.to_owned(),
        summary: String::new(),
        owner: String::new(),
        stage: pb::Stage::Unspecified.into(),
        required_functions: vec![],
    }
}

pub async fn create_initiative(app: &TestApp, actor: &str, key: &str, title: &str) -> pb::CommandResponse {
    app.as_(actor).create_initiative(new_initiative(key, title)).await.expect("create initiative").into_inner()
}

pub fn assignment(initiative: &str, principal: &str, function: &str, role: pb::Role) -> pb::AssignStakeholderRequest {
    pb::AssignStakeholderRequest {
        options: None,
        initiative: initiative.to_owned(),
        principal: principal.to_owned(),
        function: function.to_owned(),
        role: role.into(),
    }
}

pub async fn assign_role(
    app: &TestApp,
    actor: &str,
    initiative: &str,
    principal: &str,
    function: &str,
    role: pb::Role,
) {
    app.as_(actor).assign_stakeholder(assignment(initiative, principal, function, role)).await.expect("assign");
}

pub fn proposal(initiative: &str, title: &str) -> pb::ProposeDecisionRequest {
    pb::ProposeDecisionRequest {
        options: None,
        initiative: initiative.to_owned(),
        content: content(title, "Do it."),
        required_functions: vec![],
        supersedes: String::new(),
    }
}

pub async fn propose_decision(app: &TestApp, actor: &str, initiative: &str, title: &str) -> pb::CommandResponse {
    app.as_(actor).propose_decision(proposal(initiative, title)).await.expect("propose").into_inner()
}

pub fn sign_off_request(
    initiative: &str,
    decision_id: &str,
    function: &str,
    verdict: pb::Verdict,
) -> pb::RecordSignOffRequest {
    pb::RecordSignOffRequest {
        options: None,
        initiative: initiative.to_owned(),
        decision_id: decision_id.to_owned(),
        function: function.to_owned(),
        verdict: verdict.into(),
        reason: if verdict == pb::Verdict::Reject { "Not convinced.".to_owned() } else { String::new() },
        comment: String::new(),
        revision: None,
    }
}

pub fn feedback_request(
    initiative: &str,
    decision_id: &str,
    function: &str,
    kind: pb::FeedbackKind,
    body: &str,
) -> pb::RecordFeedbackRequest {
    pb::RecordFeedbackRequest {
        options: None,
        initiative: initiative.to_owned(),
        decision_id: decision_id.to_owned(),
        function: function.to_owned(),
        kind: kind.into(),
        source: pb::FeedbackSource::Internal.into(),
        body: body.to_owned(),
    }
}

pub fn acceptance(initiative: &str, decision_id: &str, override_reason: &str) -> pb::AcceptDecisionRequest {
    pb::AcceptDecisionRequest {
        options: None,
        initiative: initiative.to_owned(),
        decision_id: decision_id.to_owned(),
        override_reason: override_reason.to_owned(),
    }
}

/// The versions of one stream in the log, in log order.
pub fn stream_versions(log: &[(i64, uuid::Uuid, i64, String, Vec<u8>)], stream: &str) -> Vec<i64> {
    log.iter().filter(|(_, s, _, _, _)| s.to_string() == stream).map(|(_, _, v, _, _)| *v).collect()
}

/// The JSON log of this thread's tracing events while it lives (`filter` as in `--log`),
/// for the tests that read what the server logs.
pub struct JsonLog {
    buffer: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    _default: tracing::subscriber::DefaultGuard,
    _second: tracing::Dispatch,
}

#[derive(Clone)]
struct LogWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl JsonLog {
    pub fn capture(filter: &str) -> JsonLog {
        let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = LogWriter(buffer.clone());
        let subscriber =
            tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(move || writer.clone()).finish();
        let default = tracing::subscriber::set_default(subscriber);
        // While only one subscriber exists in the process, tracing-core decides whether a
        // callsite is enabled from the subscriber of the thread that reaches it first, and
        // caches that: another test's thread (no subscriber) would switch the server's log
        // lines off for this test too. A second live subscriber makes it ask every one.
        let second = tracing::Dispatch::new(tracing_subscriber::registry());
        JsonLog { buffer, _default: default, _second: second }
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.buffer.lock().expect("log buffer").clone()).expect("UTF-8 log")
    }
}
