//! Board sign-in end to end: a real OpenID provider (the npm package `oidc-provider`,
//! pinned in tests/oidc/package.json, configured by tests/oidc/provider.mjs with one
//! client, PKCE required, a few accounts and its development login and consent forms)
//! runs on a loopback port this test chooses, behind a small proxy in the same script that
//! is the issuer Accord and the browser talk to and that can spoil the token endpoint's
//! ID token (tampered payload; valid signature for another audience). Accord runs
//! in-process (`serve_all`) with an `[oidc]` section read from a real configuration file,
//! and a real headless Chromium (chromedriver, through `fantoccini`) fills the provider's
//! forms.
//!
//! Needs node and npm, and `npm ci --prefix tests/oidc` (`tests/run` does both), and
//! Debian's Chromium and chromedriver. The signed-in board's screenshot goes to
//! `target/board-screenshots/signed-in.png`.

mod common;

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use accord::proto::{self as pb, command_service_client::CommandServiceClient};
use accord::security::{SecurityConfig, oidc::SignIn, service_tokens};
use accord::server::{ServeError, ServerOptions};
use accord::store::Store;
use fantoccini::{ClientBuilder, Locator};
use futures::FutureExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{Request, Status, service::Interceptor, transport::Channel};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const INSTALL: &str = "apt-get install -y chromium chromium-driver";
const CLIENT_ID: &str = "accord-board";
const CLIENT_SECRET: &str = "test-client-secret-0123456789abcdef";
const ADMIN_TOKEN: &str = "accord_st_oidc-test-admin-0123456789abcdef";
/// The session cookie's name on a loopback http address (no `__Host-`, no `Secure`).
const SESSION_COOKIE: &str = "accord_session";

fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    probe.local_addr().expect("address").port()
}

// ---- The OpenID provider -------------------------------------------------------------

struct Provider {
    child: Child,
    issuer: String,
}

impl Provider {
    /// Starts tests/oidc/provider.mjs for boards at `bases` (their origins).
    fn start(bases: &[String], id_token_ttl: u64) -> Provider {
        let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
        assert!(
            folder.join("node_modules/oidc-provider").exists(),
            "tests/oidc/node_modules is missing: run `npm ci --prefix tests/oidc` (tests/run does)"
        );
        let port = free_port();
        let redirects: Vec<String> = bases.iter().map(|b| format!("{b}/auth/callback")).collect();
        let after_logout: Vec<String> = bases.iter().map(|b| format!("{b}/")).collect();
        let mut child = Command::new("node")
            .arg(folder.join("provider.mjs"))
            .current_dir(&folder)
            .env("PORT", port.to_string())
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .env("REDIRECT_URIS", redirects.join(","))
            .env("POST_LOGOUT_REDIRECT_URIS", after_logout.join(","))
            .env("ID_TOKEN_TTL", id_token_ttl.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node ({e}): install nodejs and npm (tests/run does)"));
        let stdout = child.stdout.take().expect("stdout");
        let (ready, seen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(issuer) = line.strip_prefix("ready ") {
                    let _ = ready.send(issuer.to_owned());
                }
            }
        });
        let issuer = seen.recv_timeout(Duration::from_secs(30)).expect("the provider says it is ready within 30 s");
        Provider { child, issuer }
    }

    /// Changes an account's groups at the provider.
    async fn groups(&self, account: &str, groups: &[&str]) {
        let body = json!({"account": account, "groups": groups}).to_string();
        let (status, _, _) = send("POST", &format!("{}/__test/groups", self.issuer), &[], &body).await;
        assert_eq!(status, 204, "the provider takes the groups");
    }

    /// `pass`, `tamper`, `wrong-aud` or `refuse-refresh`: what the proxy does to the
    /// token endpoint's answers.
    async fn mode(&self, mode: &str) {
        let (status, _, _) = send("POST", &format!("{}/__test/mode", self.issuer), &[], mode).await;
        assert_eq!(status, 204, "the proxy takes mode {mode}");
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- Accord --------------------------------------------------------------------------

struct Accord {
    grpc: SocketAddr,
    http: SocketAddr,
    store: Store,
    stop: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<Result<(), ServeError>>>,
    _config: tempfile::TempDir,
}

/// A bound HTTP listener and the origin it will serve the board at.
struct Listeners {
    grpc: TcpListener,
    http: TcpListener,
}

impl Listeners {
    async fn bind() -> Listeners {
        Listeners {
            grpc: TcpListener::bind("127.0.0.1:0").await.expect("bind gRPC"),
            http: TcpListener::bind("127.0.0.1:0").await.expect("bind HTTP"),
        }
    }

    fn base(&self) -> String {
        format!("http://{}", self.http.local_addr().expect("address"))
    }
}

impl Accord {
    /// Accord on `store_url` with an `[oidc]` section for `issuer` (plus `extra` lines).
    async fn start(listeners: Listeners, store_url: &str, issuer: &str, extra: &str) -> Accord {
        let config = tempfile::tempdir().expect("temporary folder");
        std::fs::write(config.path().join("client-secret"), format!("{CLIENT_SECRET}\n")).expect("secret file");
        let base = listeners.base();
        let digest = hex::encode(service_tokens::digest(ADMIN_TOKEN));
        let text = format!(
            "[[service_tokens]]\nprincipal = \"seeder@svc\"\nroles = [\"admin\"]\nsha256 = \"{digest}\"\n\n\
             [oidc]\nissuer = \"{issuer}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = \"client-secret\"\n\
             base_url = \"{base}\"\n{extra}"
        );
        let path = config.path().join("accord-auth.toml");
        std::fs::write(&path, text).expect("config file");
        let security = SecurityConfig::load_all(&path).unwrap_or_else(|e| panic!("the configuration loads: {e}"));
        let sign_in = SignIn::new(security.sign_in.expect("an [oidc] section")).expect("sign-in");
        let options = ServerOptions {
            authenticator: security.authenticator,
            sign_in: Some(sign_in),
            ..ServerOptions::local_development()
        };
        let store = Store::open(store_url, 4).await.expect("open the store");
        let (grpc, http) =
            (listeners.grpc.local_addr().expect("address"), listeners.http.local_addr().expect("address"));
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(accord::server::serve_all(
            listeners.grpc,
            Some(listeners.http),
            store.clone(),
            options,
            async move {
                let _ = stopped.await;
            },
        ));
        Accord { grpc, http, store, stop: Some(stop), served: Some(served), _config: config }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    fn origin(&self) -> String {
        format!("http://{}", self.http)
    }

    /// One initiative, created through gRPC with the admin service token.
    async fn seed(&self, key: &str) {
        let channel = Channel::from_shared(format!("http://{}", self.grpc)).expect("uri").connect_lazy();
        let mut commands = CommandServiceClient::with_interceptor(channel, Bearer(ADMIN_TOKEN));
        commands
            .create_initiative(pb::CreateInitiativeRequest {
                options: None,
                key: key.into(),
                title: "New checkout".into(),
                summary: "What the teams have to agree on.".into(),
                owner: "ann@example.com".into(),
                stage: pb::Stage::Definition.into(),
                required_functions: vec![],
            })
            .await
            .expect("create initiative");
    }

    async fn sessions(&self) -> i64 {
        if let Some(sqlite) = self.store.sqlite() {
            let row: (i64,) =
                sqlx::query_as("SELECT count(*) FROM sessions").fetch_one(sqlite.pool()).await.expect("count");
            return row.0;
        }
        panic!("sessions() counts on SQLite only");
    }
}

impl Drop for Accord {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served.abort();
        }
    }
}

#[derive(Clone)]
struct Bearer(&'static str);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let value = format!("Bearer {}", self.0).parse().map_err(|_| Status::internal("bad token"))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }
}

// ---- Plain HTTP ----------------------------------------------------------------------

/// Status, headers and body of one request (no redirects followed).
async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, http::HeaderMap, String) {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut builder = hyper::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Full::new(Bytes::from(body.to_owned()))).expect("request");
    let response = client.request(request).await.expect("HTTP response");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, headers, String::from_utf8_lossy(&bytes).into_owned())
}

async fn get_with_cookie(url: &str, session: &str) -> (u16, String) {
    let cookie = format!("{SESSION_COOKIE}={session}");
    let (status, _, body) = send("GET", url, &[("cookie", &cookie)], "").await;
    (status, body)
}

async fn session_info(accord: &Accord, session: &str) -> Value {
    let (status, body) = get_with_cookie(&accord.url("/auth/session"), session).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

// ---- The browser ---------------------------------------------------------------------

/// chromedriver on a free loopback port, ended when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: the sign-in browser tests need Debian's Chromium and chromedriver (`{INSTALL}`)"
            );
        }
        let port = free_port();
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

    async fn browser(&self) -> fantoccini::Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,900"],
            }),
        );
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a WebDriver session with headless Chromium")
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
        let got = browser.execute(script, vec![]).await.unwrap_or(Value::Null);
        if got == want || Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// What the page is: the provider's login form, its consent form, or a page elsewhere.
const WHERE: &str = "if (document.querySelector('input[name=login]')) return 'login';
    if (document.querySelector('input[name=prompt][value=consent]')) return 'consent';
    return location.origin;";

/// Opens the board at `path`, clicks its Sign in link, and goes through the provider's
/// forms as `login` until the browser is back on `accord`'s origin.
async fn sign_in(browser: &fantoccini::Client, accord: &Accord, path: &str, login: &str) {
    browser.goto(&accord.url(path)).await.expect("open the board");
    let link = wait_for(
        browser,
        "const a = document.getElementById('sign-in-link'); \
         return a && !document.getElementById('token-panel').hidden ? a.getAttribute('href') : null;",
        json!(format!("/auth/login?return_to={}", urlencode(path))),
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(link, json!(format!("/auth/login?return_to={}", urlencode(path))), "the board offers Sign in");
    browser.find(Locator::Id("sign-in-link")).await.expect("Sign in link").click().await.expect("click Sign in");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "the sign-in did not come back to the board within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let here = browser.execute(WHERE, vec![]).await.unwrap_or(Value::Null);
        match here.as_str() {
            Some("login") => {
                let form = browser.form(Locator::Css("form")).await.expect("the login form");
                form.set_by_name("login", login).await.expect("login");
                form.set_by_name("password", "any password").await.expect("password");
                form.submit().await.expect("submit the login form");
            }
            Some("consent") => {
                browser
                    .find(Locator::Css("button[type=submit]"))
                    .await
                    .expect("Continue")
                    .click()
                    .await
                    .expect("consent");
            }
            Some(origin) if origin == accord.origin() => return,
            _ => {}
        }
    }
}

fn urlencode(text: &str) -> String {
    let mut encoded = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

async fn session_cookie(browser: &fantoccini::Client) -> String {
    let cookie = browser.get_named_cookie(SESSION_COOKIE).await.expect("the session cookie is set");
    assert_eq!(cookie.http_only(), Some(true), "the session cookie is HttpOnly");
    assert_eq!(cookie.path(), Some("/"), "the session cookie is for the whole board");
    cookie.value().to_owned()
}

async fn signed_in_as(browser: &fantoccini::Client) -> Value {
    wait_for(
        browser,
        "const s = document.getElementById('signed-in-as'); return s ? s.textContent : null;",
        json!("signed in as ann@example.com"),
        Duration::from_secs(15),
    )
    .await
}

/// Runs `test` with a browser, closing it whatever happens.
async fn with_browser<F, Fut>(test: F)
where
    F: FnOnce(fantoccini::Client) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let result = std::panic::AssertUnwindSafe(test(browser.clone())).catch_unwind().await;
    let _ = browser.close().await;
    drop(driver);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("accord.db").display())
}

// ---- The tests -----------------------------------------------------------------------

#[tokio::test]
async fn a_full_sign_in_then_csrf_and_open_redirect_refusals_then_logout() {
    let data = tempfile::tempdir().expect("temporary folder");
    let listeners = Listeners::bind().await;
    let provider = Provider::start(&[listeners.base()], 3600);
    let accord = Accord::start(listeners, &sqlite_url(&data), &provider.issuer, "roles_claim = \"groups\"\n").await;
    accord.seed("CHECKOUT-42").await;

    // Before signing in: the API refuses, the session endpoint says sign-in is possible.
    let (status, _, body) = send("GET", &accord.url("/api/initiatives/CHECKOUT-42"), &[], "").await;
    assert_eq!(status, 401, "{body}");
    let (status, _, body) = send("GET", &accord.url("/auth/session"), &[], "").await;
    assert_eq!(status, 200);
    let info: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!((info["sign_in"].clone(), info["signed_in"].clone()), (json!(true), json!(false)), "{info}");

    // An absolute (or scheme-relative) return_to is refused: no open redirect.
    for evil in ["https%3A%2F%2Fevil.example%2F", "%2F%2Fevil.example%2F", "%2F%5Cevil.example"] {
        let (status, headers, body) = send("GET", &accord.url(&format!("/auth/login?return_to={evil}")), &[], "").await;
        assert_eq!(status, 400, "return_to={evil}: {body}");
        assert!(headers.get("location").is_none(), "no redirect for return_to={evil}");
        assert!(body.contains("is not a path on this board"), "{body}");
    }

    with_browser(|browser| async move {
        sign_in(&browser, &accord, "/?stage=definition", "ann@example.com").await;
        assert_eq!(signed_in_as(&browser).await, json!("signed in as ann@example.com"));
        let url = browser.current_url().await.expect("url");
        assert!(
            url.as_str().starts_with(&accord.url("/")) && url.as_str().contains("stage=definition"),
            "back where the sign-in started: {url}"
        );
        let card = wait_for(
            &browser,
            "return document.querySelectorAll('article[data-key=\"CHECKOUT-42\"]').length;",
            json!(1),
            Duration::from_secs(15),
        )
        .await;
        assert_eq!(card, json!(1), "the board reads the API with the session cookie");
        let shot = screenshot_dir().join("signed-in.png");
        std::fs::write(&shot, browser.screenshot().await.expect("screenshot")).expect("write signed-in.png");
        println!("signed-in board screenshot: {}", shot.display());

        // The cookie authenticates /api/*, as ann@example.com with the mapped role only.
        let session = session_cookie(&browser).await;
        let (status, body) = get_with_cookie(&accord.url("/api/initiatives/CHECKOUT-42"), &session).await;
        assert_eq!(status, 200, "{body}");
        let info = session_info(&accord, &session).await;
        assert_eq!(info["principal"], "ann@example.com", "{info}");
        assert_eq!(info["roles"], json!(["member"]), "groups member and accord-staff map to member: {info}");
        // The same groups are the person's teams, for decision rights given to a team.
        let (status, me) = get_with_cookie(&accord.url("/api/me"), &session).await;
        assert_eq!(status, 200, "{me}");
        let me: serde_json::Value = serde_json::from_str(&me).expect("JSON");
        assert_eq!(me["teams"], json!(["team:accord-staff", "team:member"]), "{me}");
        // Pasted bearer tokens still work for scripts.
        let bearer = format!("Bearer {ADMIN_TOKEN}");
        let (status, _, body) =
            send("GET", &accord.url("/api/initiatives/CHECKOUT-42"), &[("authorization", &bearer)], "").await;
        assert_eq!(status, 200, "{body}");
        let csrf = info["csrf_token"].as_str().expect("a CSRF token").to_owned();
        assert_eq!(accord.sessions().await, 1, "one session row");

        // A logout without the CSRF token, or from another origin, is refused.
        let cookie = format!("{SESSION_COOKIE}={session}");
        let (status, _, body) = send("POST", &accord.url("/auth/logout"), &[("cookie", &cookie)], "").await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("missing CSRF token"), "{body}");
        let foreign = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str()), ("origin", "http://evil.example")];
        let (status, _, body) = send("POST", &accord.url("/auth/logout"), &foreign, "").await;
        assert_eq!(status, 403, "{body}");
        let wrong = [("cookie", cookie.as_str()), ("x-csrf-token", "not-the-token")];
        let (status, _, body) = send("POST", &accord.url("/auth/logout"), &wrong, "").await;
        assert_eq!(status, 403, "{body}");
        let (status, body) = get_with_cookie(&accord.url("/api/initiatives/CHECKOUT-42"), &session).await;
        assert_eq!(status, 200, "the session survives refused logouts: {body}");
        // Any state-changing /api/* request of the session needs the token too.
        let (status, _, body) = send("POST", &accord.url("/api/watch"), &[("cookie", &cookie)], "").await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("missing CSRF token"), "{body}");

        // Sign out from the board: the session is gone and the browser is at the provider's end-session.
        browser.find(Locator::Id("sign-out")).await.expect("Sign out").click().await.expect("click Sign out");
        let at = wait_for(
            &browser,
            &format!("return location.href.startsWith({:?});", format!("{}/session/end", provider.issuer)),
            json!(true),
            Duration::from_secs(15),
        )
        .await;
        assert_eq!(at, json!(true), "redirected to the provider's end_session_endpoint");
        let (status, body) = get_with_cookie(&accord.url("/api/initiatives/CHECKOUT-42"), &session).await;
        assert_eq!(status, 401, "the cookie no longer works: {body}");
        assert_eq!(accord.sessions().await, 0, "the session row is deleted");
        // The provider's end-session page signs out there too and comes back to the board.
        let back = wait_for(
            &browser,
            "const b = document.querySelector('button[autofocus], form button'); if (b) { b.click(); return 'clicked'; } \
             return null;",
            json!("clicked"),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(back, json!("clicked"), "the provider asks to confirm the sign-out");
        let home = wait_for(&browser, "return location.href;", json!(accord.url("/")), Duration::from_secs(15)).await;
        assert_eq!(home, json!(accord.url("/")), "back on the board after the provider's sign-out");
    })
    .await;
}

#[tokio::test]
async fn tampered_or_misaddressed_id_tokens_and_unverified_e_mails_are_refused_without_a_session() {
    let data = tempfile::tempdir().expect("temporary folder");
    let listeners = Listeners::bind().await;
    let provider = Provider::start(&[listeners.base()], 3600);
    let accord = Accord::start(listeners, &sqlite_url(&data), &provider.issuer, "").await;

    with_browser(|browser| async move {
        let refused = |expected: &'static str| {
            let browser = browser.clone();
            async move {
                let deadline = Instant::now() + Duration::from_secs(10);
                let script = "const p = document.getElementById('auth-error'); return p ? p.textContent : null;";
                let text = loop {
                    let got = browser.execute(script, vec![]).await.unwrap_or(Value::Null);
                    if got.is_string() || Instant::now() >= deadline {
                        break got.as_str().unwrap_or_default().to_owned();
                    }
                    tokio::time::sleep(Duration::from_millis(150)).await;
                };
                assert!(text.contains(expected), "the error page says {expected:?}: {text:?}");
            }
        };
        // The ID token's payload altered (groups: admin) without signing it again.
        provider.mode("tamper").await;
        sign_in(&browser, &accord, "/", "ann@example.com").await;
        refused("Signature verification failed").await;
        assert_eq!(accord.sessions().await, 0, "no session for a tampered ID token");

        // Validly signed by a key in the provider's JWKS, but for another audience.
        provider.mode("wrong-aud").await;
        sign_in(&browser, &accord, "/", "ann@example.com").await;
        refused("Invalid audiences").await;
        assert_eq!(accord.sessions().await, 0, "no session for an ID token addressed to someone else");

        // The same sign-in untouched works (it was the spoiling that failed).
        provider.mode("pass").await;
        sign_in(&browser, &accord, "/", "ann@example.com").await;
        assert_eq!(signed_in_as(&browser).await, json!("signed in as ann@example.com"));
        assert_eq!(accord.sessions().await, 1);

        // An e-mail the provider has not verified, and an account with no Accord role.
        for (login, expected) in [
            ("unverified@example.com", "has not verified the e-mail address"),
            ("norole@example.com", "holds no Accord role"),
        ] {
            browser.delete_all_cookies().await.expect("forget the provider's session and ours");
            sign_in(&browser, &accord, "/", login).await;
            refused(expected).await;
        }
    })
    .await;
}

#[tokio::test]
async fn an_expired_session_answers_401_and_the_board_offers_sign_in_again() {
    let data = tempfile::tempdir().expect("temporary folder");
    let listeners = Listeners::bind().await;
    let provider = Provider::start(&[listeners.base()], 3600);
    let lifetimes = "session_idle = \"10s\"\nsession_absolute = \"10s\"\n";
    let accord = Accord::start(listeners, &sqlite_url(&data), &provider.issuer, lifetimes).await;

    with_browser(|browser| async move {
        sign_in(&browser, &accord, "/", "ann@example.com").await;
        let signed_in_at = Instant::now();
        assert_eq!(signed_in_as(&browser).await, json!("signed in as ann@example.com"));
        let session = session_cookie(&browser).await;
        let (status, body) = get_with_cookie(&accord.url("/api/initiatives/CHECKOUT-42"), &session).await;
        assert_eq!(status, 404, "signed in, the API lets the request through: {body}");
        tokio::time::sleep(Duration::from_secs(11).saturating_sub(signed_in_at.elapsed())).await;
        let (status, body) = get_with_cookie(&accord.url("/api/initiatives/CHECKOUT-42"), &session).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("expired"), "{body}");
        assert_eq!(accord.sessions().await, 0, "the expired session is deleted");
        browser.refresh().await.expect("reload the board");
        let offered = wait_for(
            &browser,
            "const a = document.getElementById('sign-in-link'); \
             return Boolean(a && !document.getElementById('token-panel').hidden);",
            json!(true),
            Duration::from_secs(15),
        )
        .await;
        assert_eq!(offered, json!(true), "the board shows Sign in again");
    })
    .await;
}

#[tokio::test]
async fn two_replicas_on_one_postgresql_database_accept_each_others_session() {
    let database = common::ThrowAwayDatabase::new("accord_oidc_replicas");
    let (first, second) = (Listeners::bind().await, Listeners::bind().await);
    let provider = Provider::start(&[first.base(), second.base()], 3600);
    let a = Accord::start(first, &database.url, &provider.issuer, "").await;
    let b = Accord::start(second, &database.url, &provider.issuer, "").await;

    with_browser(|browser| async move {
        sign_in(&browser, &a, "/", "ann@example.com").await;
        assert_eq!(signed_in_as(&browser).await, json!("signed in as ann@example.com"));
        let session = session_cookie(&browser).await;
        // The other replica knows the session: it is in the shared database.
        let info = session_info(&b, &session).await;
        assert_eq!(info["principal"], "ann@example.com", "{info}");
        let (status, body) = get_with_cookie(&b.url("/api/initiatives/NOPE-1"), &session).await;
        assert_eq!(status, 404, "replica B lets the session through to the handler: {body}");
        // Signing out on B ends it on A too.
        let cookie = format!("{SESSION_COOKIE}={session}");
        let csrf = info["csrf_token"].as_str().expect("CSRF token").to_owned();
        let origin = b.origin();
        let headers = [
            ("cookie", cookie.as_str()),
            ("x-csrf-token", csrf.as_str()),
            ("origin", origin.as_str()),
            ("accept", "application/json"),
        ];
        let (status, _, body) = send("POST", &b.url("/auth/logout"), &headers, "").await;
        assert_eq!(status, 200, "{body}");
        let redirect: Value = serde_json::from_str(&body).expect("JSON");
        let to = redirect["redirect"].as_str().unwrap_or_default();
        assert!(to.starts_with(&format!("{}/session/end", provider.issuer)), "{to}");
        let (status, body) = get_with_cookie(&a.url("/api/initiatives/NOPE-1"), &session).await;
        assert_eq!(status, 401, "replica A no longer accepts it: {body}");
    })
    .await;
}

#[tokio::test]
async fn a_refresh_re_reads_the_roles_and_a_refused_refresh_ends_the_session() {
    let data = tempfile::tempdir().expect("temporary folder");
    let listeners = Listeners::bind().await;
    // ID tokens that expire within the refresh margin: every use of the session refreshes.
    let provider = Provider::start(&[listeners.base()], 30);
    let accord = Accord::start(listeners, &sqlite_url(&data), &provider.issuer, "").await;

    with_browser(|browser| async move {
        sign_in(&browser, &accord, "/", "ann@example.com").await;
        assert_eq!(signed_in_as(&browser).await, json!("signed in as ann@example.com"));
        let session = session_cookie(&browser).await;
        let info = session_info(&accord, &session).await;
        assert_eq!(info["roles"], json!(["member"]), "{info}");

        // The provider's administrator makes ann an Accord admin: the next refresh says so.
        provider.groups("ann@example.com", &["admin", "member"]).await;
        let info = session_info(&accord, &session).await;
        assert_eq!(info["roles"], json!(["admin", "member"]), "the refreshed claims apply: {info}");
        assert_eq!(accord.sessions().await, 1, "a refresh keeps the one session");

        // The provider refuses the next refresh: the session ends.
        provider.mode("refuse-refresh").await;
        let (status, body) = get_with_cookie(&accord.url("/api/initiatives/CHECKOUT-42"), &session).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("ended the session"), "{body}");
        assert_eq!(accord.sessions().await, 0, "the refused session is deleted");
    })
    .await;
}
