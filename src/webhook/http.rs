//! The HTTP client that sends one webhook attempt. It is built so that a subscriber's
//! URL cannot turn the service against its own network: every address a connection would
//! use passes `target::refusal` (through the resolver, so a DNS answer that changes
//! between the subscription check and the send cannot slip a private address in), it never
//! follows a redirect or an environment proxy, and it bounds how long it waits and how
//! much of an answer it reads. Connections to an endpoint are kept alive and reused.

use std::{
    error::Error as StdError,
    fmt,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use reqwest::{
    Client, Response, StatusCode,
    dns::{Addrs, Name, Resolve, Resolving},
    header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue},
    redirect,
};

use super::target::{PrivateAllowed, TargetUrl, refusal};
use crate::domain::values::clip;

/// Longest `Attempt::error`, in bytes.
pub const MAX_ERROR_BYTES: usize = 200;

/// How the sender behaves; see `HttpSender::post`.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// The whole attempt: connecting, sending and reading the answer.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Most bytes of an answer's body read; the rest is left unread.
    pub max_response_bytes: usize,
    pub allowed: PrivateAllowed,
    pub user_agent: String,
}

/// Sends webhook attempts; cheap to clone, and clones share one pool of connections.
#[derive(Clone)]
pub struct HttpSender {
    client: Client,
    allowed: Arc<PrivateAllowed>,
    timeout: Duration,
    max_response_bytes: usize,
}

/// The result of one attempt, for the delivery log and the retry decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub outcome: Outcome,
    pub latency: Duration,
    pub response_code: Option<u16>,
    /// Short, for the delivery log; "" on success.
    pub error: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Delivered,
    /// 410: the receiver asks to stop (Standard Webhooks).
    Gone,
    /// Anything else: other statuses, timeouts, connection errors — retried.
    Failed,
    /// The target resolves only to refused addresses: not retried usefully, reported.
    Refused,
}

/// A resolver error naming the refused address, found again in reqwest's error chain to
/// tell a refusal from a failure.
#[derive(Debug)]
struct RefusedAddress {
    host: String,
    address: IpAddr,
    reason: &'static str,
}

impl fmt::Display for RefusedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused: {} resolves to {}, which is {}", self.host, self.address, self.reason)
    }
}

impl StdError for RefusedAddress {}

/// The system resolver, minus every address `refusal` refuses: a connection can only be
/// made to what is left, whatever the DNS answers at that moment.
struct GuardedResolver {
    allowed: Arc<PrivateAllowed>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allowed = Arc::clone(&self.allowed);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            // The port is a placeholder: the connector puts the URL's port on each address.
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut first_refusal = None;
            let kept: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|address| match refusal(address.ip(), &allowed) {
                    None => true,
                    Some(reason) => {
                        first_refusal.get_or_insert((address.ip(), reason));
                        false
                    }
                })
                .collect();
            if kept.is_empty()
                && let Some((address, reason)) = first_refusal
            {
                return Err(Box::new(RefusedAddress { host, address, reason }) as Box<dyn StdError + Send + Sync>);
            }
            let addrs: Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

impl HttpSender {
    pub fn new(options: HttpOptions) -> Result<HttpSender, String> {
        let allowed = Arc::new(options.allowed);
        let client = Client::builder()
            .redirect(redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { allowed: Arc::clone(&allowed) }))
            .connect_timeout(options.connect_timeout)
            .user_agent(options.user_agent)
            // Idle connections to ~100 endpoints are cheap to keep; a minute and a half
            // covers the gaps between bursts without holding sockets forever.
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_keepalive(Duration::from_secs(60))
            .build()
            .map_err(|error| format!("the webhook HTTP client cannot be built: {error}"))?;
        Ok(HttpSender { client, allowed, timeout: options.timeout, max_response_bytes: options.max_response_bytes })
    }

    /// POSTs `body` (content-type application/json) with `headers`; never follows redirects, never uses a
    /// proxy from the environment, resolves through a resolver that drops refused addresses (so DNS
    /// rebinding cannot reach them) and refuses literal-IP URLs the same way, reads at most
    /// max_response_bytes of the answer (then stops reading), and gives up after `timeout` in all.
    pub async fn post(&self, url: &TargetUrl, headers: &[(&str, String)], body: Bytes) -> Attempt {
        let started = Instant::now();
        let finish = |outcome, response_code, error: String| Attempt {
            outcome,
            latency: started.elapsed(),
            response_code,
            error: clip(&error, MAX_ERROR_BYTES).into_owned(),
        };

        // A literal address never reaches the resolver, so it is judged here.
        if let Some(address) = url.literal_ip()
            && let Some(reason) = refusal(address, &self.allowed)
        {
            return finish(Outcome::Refused, None, format!("refused: {address} is {reason}"));
        }
        let header_map = match header_map(headers) {
            Ok(map) => map,
            Err(error) => return finish(Outcome::Failed, None, error),
        };

        let deadline = tokio::time::Instant::from_std(started + self.timeout);
        let request = self.client.post(url.url().clone()).headers(header_map).body(body).send();
        let response = match tokio::time::timeout_at(deadline, request).await {
            Err(_) => return finish(Outcome::Failed, None, format!("no answer within {:?}", self.timeout)),
            Ok(Err(error)) => {
                return match find_source::<RefusedAddress>(&error) {
                    Some(refused) => finish(Outcome::Refused, None, refused.to_string()),
                    None => finish(Outcome::Failed, None, describe(&error)),
                };
            }
            Ok(Ok(response)) => response,
        };

        let status = response.status();
        // The status decides the outcome; the body is read (within bounds) only so the
        // connection can go back to the pool, and its content is not kept.
        let _ = tokio::time::timeout_at(deadline, drain(response, self.max_response_bytes)).await;
        let code = Some(status.as_u16());
        if status.is_success() {
            finish(Outcome::Delivered, code, String::new())
        } else if status == StatusCode::GONE {
            finish(Outcome::Gone, code, status_text(status))
        } else if status.is_redirection() {
            finish(Outcome::Failed, code, format!("{} (redirects are not followed)", status_text(status)))
        } else {
            finish(Outcome::Failed, code, status_text(status))
        }
    }
}

/// Reads and discards the body until it ends or at least `limit` bytes have come;
/// returns how many bytes were read. Stopping early drops the connection instead of
/// returning it to the pool, which is the price of not reading an endless answer.
async fn drain(mut response: Response, limit: usize) -> Result<usize, reqwest::Error> {
    let mut read = 0_usize;
    while read < limit {
        match response.chunk().await? {
            Some(chunk) => read = read.saturating_add(chunk.len()),
            None => break,
        }
    }
    Ok(read)
}

fn header_map(headers: &[(&str, String)]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::with_capacity(headers.len() + 1);
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("header name {} is not valid", crate::domain::values::quote(name)))?;
        let value = HeaderValue::from_str(value).map_err(|_| format!("header {name} has an invalid value"))?;
        map.insert(name, value);
    }
    Ok(map)
}

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

/// What went wrong, without the URL reqwest puts in its own message (it may carry a
/// token in its query): the kind of failure and the innermost cause.
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_connect() {
        "connection failed"
    } else if error.is_timeout() {
        "timed out"
    } else if error.is_body() {
        "sending the body failed"
    } else {
        "request failed"
    };
    let mut innermost: Option<&(dyn StdError + 'static)> = None;
    let mut cause = error.source();
    while let Some(next) = cause {
        innermost = Some(next);
        cause = next.source();
    }
    match innermost {
        Some(cause) => format!("{kind}: {cause}"),
        None => kind.to_owned(),
    }
}

fn find_source<'a, T: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        current = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::{
        convert::Infallible,
        sync::{
            Mutex,
            atomic::{AtomicUsize, Ordering},
        },
    };

    use axum::{
        Router,
        body::Body,
        extract::{ConnectInfo, State},
        http::HeaderMap as AxumHeaders,
        response::{IntoResponse, Redirect},
        routing::{get, post},
    };
    use standardwebhooks::Webhook;

    use crate::webhook::sign::{self, Secret};

    #[derive(Clone, Default)]
    struct Seen {
        requests: Arc<AtomicUsize>,
        redirected: Arc<AtomicUsize>,
        peers: Arc<Mutex<Vec<SocketAddr>>>,
        last: Arc<Mutex<Option<(AxumHeaders, Bytes)>>>,
    }

    async fn receiver() -> (SocketAddr, Seen) {
        let seen = Seen::default();
        let app = Router::new()
            .route(
                "/ok",
                post(
                    |State(seen): State<Seen>,
                     ConnectInfo(peer): ConnectInfo<SocketAddr>,
                     headers: AxumHeaders,
                     body: Bytes| async move {
                        seen.requests.fetch_add(1, Ordering::SeqCst);
                        seen.peers.lock().expect("lock").push(peer);
                        *seen.last.lock().expect("lock") = Some((headers, body));
                        "thanks"
                    },
                ),
            )
            .route("/gone", post(|| async { StatusCode::GONE }))
            .route("/broken", post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "oops") }))
            .route("/silent", post(std::future::pending::<&'static str>))
            .route(
                "/endless",
                post(|| async {
                    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
                    let stream = futures_util::stream::repeat_with(move || Ok::<_, Infallible>(chunk.clone()));
                    Body::from_stream(stream).into_response()
                }),
            )
            .route("/moved", post(|| async { Redirect::temporary("/elsewhere") }))
            .route(
                "/elsewhere",
                get(|State(seen): State<Seen>| async move {
                    seen.redirected.fetch_add(1, Ordering::SeqCst);
                    "followed"
                })
                .post(|State(seen): State<Seen>| async move {
                    seen.redirected.fetch_add(1, Ordering::SeqCst);
                    "followed"
                }),
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.expect("serve");
        });
        (address, seen)
    }

    fn options(allowed: PrivateAllowed) -> HttpOptions {
        HttpOptions {
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            max_response_bytes: 64 * 1024,
            allowed,
            user_agent: "accord-webhooks-test".to_owned(),
        }
    }

    fn loopback_allowed() -> PrivateAllowed {
        PrivateAllowed::parse(&["127.0.0.0/8".to_owned()]).expect("range")
    }

    fn sender(allowed: PrivateAllowed) -> HttpSender {
        HttpSender::new(options(allowed)).expect("sender")
    }

    fn url(address: SocketAddr, path: &str) -> TargetUrl {
        TargetUrl::parse("url", &format!("http://{address}{path}")).expect("url")
    }

    fn body() -> Bytes {
        Bytes::from_static(br#"{"type":"decision.signed_off"}"#)
    }

    #[tokio::test]
    async fn a_2xx_answer_is_delivered_with_the_signed_headers_and_the_json_body() {
        let (address, seen) = receiver().await;
        let secret = Secret::generate();
        let timestamp = chrono::Utc::now().timestamp();
        let headers = sign::headers(&[&secret], "msg_1", timestamp, &body());
        let attempt = sender(loopback_allowed()).post(&url(address, "/ok"), &headers, body()).await;
        assert_eq!(attempt.outcome, Outcome::Delivered, "{attempt:?}");
        assert_eq!(attempt.response_code, Some(200));
        assert_eq!(attempt.error, "");

        let (received_headers, received_body) = seen.last.lock().expect("lock").clone().expect("a request");
        assert_eq!(received_body, body());
        assert_eq!(received_headers["content-type"], "application/json");
        assert_eq!(received_headers["user-agent"], "accord-webhooks-test");
        Webhook::new(&secret.expose())
            .expect("verifier")
            .verify(&received_body, &received_headers)
            .expect("the receiver verifies the signature");
    }

    #[tokio::test]
    async fn connections_to_an_endpoint_are_reused() {
        let (address, seen) = receiver().await;
        let sender = sender(loopback_allowed());
        for _ in 0..3 {
            let attempt = sender.post(&url(address, "/ok"), &[], body()).await;
            assert_eq!(attempt.outcome, Outcome::Delivered, "{attempt:?}");
        }
        let peers = seen.peers.lock().expect("lock").clone();
        assert_eq!(peers.len(), 3);
        assert!(peers.iter().all(|peer| *peer == peers[0]), "one connection for all: {peers:?}");
    }

    #[tokio::test]
    async fn a_410_answer_is_gone() {
        let (address, _) = receiver().await;
        let attempt = sender(loopback_allowed()).post(&url(address, "/gone"), &[], body()).await;
        assert_eq!(attempt.outcome, Outcome::Gone, "{attempt:?}");
        assert_eq!(attempt.response_code, Some(410));
    }

    #[tokio::test]
    async fn a_500_answer_fails_with_its_code() {
        let (address, _) = receiver().await;
        let attempt = sender(loopback_allowed()).post(&url(address, "/broken"), &[], body()).await;
        assert_eq!(attempt.outcome, Outcome::Failed, "{attempt:?}");
        assert_eq!(attempt.response_code, Some(500));
        assert_eq!(attempt.error, "HTTP 500 Internal Server Error");
    }

    #[tokio::test]
    async fn a_receiver_that_never_answers_fails_within_the_timeout() {
        let (address, _) = receiver().await;
        let sender =
            HttpSender::new(HttpOptions { timeout: Duration::from_millis(500), ..options(loopback_allowed()) })
                .expect("sender");
        let attempt = sender.post(&url(address, "/silent"), &[], body()).await;
        assert_eq!(attempt.outcome, Outcome::Failed, "{attempt:?}");
        assert_eq!(attempt.response_code, None);
        assert!(attempt.error.contains("no answer within"), "{attempt:?}");
        assert!(attempt.latency >= Duration::from_millis(500), "{attempt:?}");
        assert!(attempt.latency < Duration::from_secs(3), "{attempt:?}");
    }

    #[tokio::test]
    async fn an_endless_answer_is_read_only_up_to_the_bound() {
        let (address, _) = receiver().await;
        let limit = 256 * 1024;
        let sender = HttpSender::new(HttpOptions {
            timeout: Duration::from_secs(30),
            max_response_bytes: limit,
            ..options(loopback_allowed())
        })
        .expect("sender");
        let attempt = sender.post(&url(address, "/endless"), &[], body()).await;
        assert_eq!(attempt.outcome, Outcome::Delivered, "{attempt:?}");
        assert!(attempt.latency < Duration::from_secs(10), "ended by the bound, not the timeout: {attempt:?}");

        // The drain itself: it stops after the chunk that crosses the bound.
        let response = sender.client.post(url(address, "/endless").url().clone()).send().await.expect("answer");
        let read = drain(response, limit).await.expect("drain");
        assert!(read >= limit, "{read}");
        assert!(read <= limit + 1024 * 1024, "read {read} bytes, far past the bound");
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed() {
        let (address, seen) = receiver().await;
        let attempt = sender(loopback_allowed()).post(&url(address, "/moved"), &[], body()).await;
        assert_eq!(attempt.outcome, Outcome::Failed, "{attempt:?}");
        assert_eq!(attempt.response_code, Some(307));
        assert!(attempt.error.contains("not followed"), "{attempt:?}");
        assert_eq!(seen.redirected.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_allowed() {
        let (address, seen) = receiver().await;
        let refused = sender(PrivateAllowed::default()).post(&url(address, "/ok"), &[], body()).await;
        assert_eq!(refused.outcome, Outcome::Refused, "{refused:?}");
        assert_eq!(refused.response_code, None);
        assert!(refused.error.contains("loopback"), "{refused:?}");

        // By name too: the resolver drops the loopback addresses `localhost` resolves to.
        let by_name = TargetUrl::parse("url", &format!("http://localhost:{}/ok", address.port())).expect("url");
        let refused = sender(PrivateAllowed::default()).post(&by_name, &[], body()).await;
        assert_eq!(refused.outcome, Outcome::Refused, "{refused:?}");
        assert!(refused.error.contains("localhost resolves to"), "{refused:?}");
        assert_eq!(seen.requests.load(Ordering::SeqCst), 0, "nothing reached the receiver");

        let delivered = sender(loopback_allowed()).post(&by_name, &[], body()).await;
        assert_eq!(delivered.outcome, Outcome::Delivered, "{delivered:?}");
        let delivered = sender(PrivateAllowed::any()).post(&url(address, "/ok"), &[], body()).await;
        assert_eq!(delivered.outcome, Outcome::Delivered, "{delivered:?}");
        assert_eq!(seen.requests.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_closed_port_fails_without_quoting_the_url() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        drop(listener);
        let target = url(address, "/ok?token=secret-token");
        let attempt = sender(loopback_allowed()).post(&target, &[], body()).await;
        assert_eq!(attempt.outcome, Outcome::Failed, "{attempt:?}");
        assert!(attempt.error.starts_with("connection failed"), "{attempt:?}");
        assert!(!attempt.error.contains("secret-token"), "{attempt:?}");
        assert!(attempt.error.len() <= MAX_ERROR_BYTES);
    }

    #[tokio::test]
    async fn an_invalid_header_fails_the_attempt_without_sending() {
        let (address, seen) = receiver().await;
        let headers = [("webhook-id", "line\nbreak".to_owned())];
        let attempt = sender(loopback_allowed()).post(&url(address, "/ok"), &headers, body()).await;
        assert_eq!(attempt.outcome, Outcome::Failed, "{attempt:?}");
        assert_eq!(seen.requests.load(Ordering::SeqCst), 0);
    }
}
