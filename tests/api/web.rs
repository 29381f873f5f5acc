//! Browsers: gRPC-Web over HTTP/1.1, authenticated exactly like gRPC, and CORS — preflights
//! from an allowed origin are answered (without credentials) with the headers a gRPC-Web
//! client needs, other origins get nothing, and a server without `cors_origins` allows none.

use accord::proto as pb;
use accord::server::ServerOptions;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use prost::Message;

use crate::support::*;

const GET_ALIGNMENT: &str = "/accord.v1.AlignmentService/GetAlignment";

/// What came back from one gRPC-Web call.
struct WebReply {
    headers: http::HeaderMap,
    /// The data frames' messages, in order.
    messages: Vec<Bytes>,
    /// The trailer frame's entries (`grpc-status`, `grpc-message`), lower-cased names.
    trailers: Vec<(String, String)>,
}

impl WebReply {
    /// The gRPC status: from the trailer frame, or from the headers of a trailers-only reply.
    fn grpc_status(&self) -> Option<String> {
        self.trailers
            .iter()
            .find(|(name, _)| name == "grpc-status")
            .map(|(_, value)| value.clone())
            .or_else(|| self.headers.get("grpc-status").and_then(|v| v.to_str().ok()).map(str::to_owned))
    }
}

fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// One length-prefixed gRPC-Web frame: flag byte, big-endian length, payload.
fn frame(message: &impl Message) -> Bytes {
    let payload = message.encode_to_vec();
    let mut framed = Vec::with_capacity(5 + payload.len());
    framed.push(0);
    framed.extend_from_slice(&u32::try_from(payload.len()).expect("small message").to_be_bytes());
    framed.extend_from_slice(&payload);
    Bytes::from(framed)
}

/// Splits a gRPC-Web response body into its data messages and its trailer frame.
fn parse_frames(mut body: &[u8]) -> (Vec<Bytes>, Vec<(String, String)>) {
    let (mut messages, mut trailers) = (Vec::new(), Vec::new());
    while !body.is_empty() {
        assert!(body.len() >= 5, "a truncated frame header: {body:?}");
        let flag = body[0];
        let length = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        assert!(body.len() >= 5 + length, "a truncated frame");
        let payload = &body[5..5 + length];
        if flag & 0x80 != 0 {
            let text = std::str::from_utf8(payload).expect("trailers are text");
            for line in text.split("\r\n").filter(|line| !line.is_empty()) {
                let (name, value) = line.split_once(':').expect("name: value");
                trailers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        } else {
            messages.push(Bytes::copy_from_slice(payload));
        }
        body = &body[5 + length..];
    }
    (messages, trailers)
}

async fn grpc_web_call(app: &TestApp, path: &str, token: Option<&str>, message: &impl Message) -> WebReply {
    let mut request = http::Request::post(format!("http://{}{path}", app.address))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", ALLOWED_ORIGIN);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response =
        client().request(request.body(Full::new(frame(message))).expect("request")).await.expect("HTTP/1.1 call");
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_11);
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("response body").to_bytes();
    let (messages, trailers) = parse_frames(&body);
    WebReply { headers: parts.headers, messages, trailers }
}

async fn preflight(app: &TestApp, origin: &str) -> http::Response<hyper::body::Incoming> {
    let request = http::Request::builder()
        .method(http::Method::OPTIONS)
        .uri(format!("http://{}{GET_ALIGNMENT}", app.address))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization,content-type,x-grpc-web,x-user-agent")
        .body(Full::new(Bytes::new()))
        .expect("request");
    client().request(request).await.expect("preflight")
}

fn header<'a>(response: &'a http::Response<hyper::body::Incoming>, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|value| value.to_str().ok())
}

async fn a_grpc_web_call_over_http1_reads_the_alignment_with_a_bearer_token(app: TestApp) {
    let ids = checkout(&app).await;
    let reader = token(DASHBOARD, roles_of(DASHBOARD));
    let request = pb::GetAlignmentRequest { initiative: "CHECKOUT-42".into() };
    let reply = grpc_web_call(&app, GET_ALIGNMENT, Some(&reader), &request).await;

    assert_eq!(reply.grpc_status().as_deref(), Some("0"), "trailers {:?}", reply.trailers);
    assert!(reply.trailers.iter().any(|(name, _)| name == "grpc-status"), "the status comes in a trailer frame");
    assert_eq!(reply.messages.len(), 1);
    let alignment = pb::InitiativeAlignment::decode(reply.messages[0].clone()).expect("an InitiativeAlignment");
    assert_eq!(alignment, app.alignment("CHECKOUT-42").await, "the same view as over gRPC");
    assert_eq!(alignment.key, "CHECKOUT-42");
    assert_eq!(alignment.initiative_id, ids.initiative_id);
    // The browser may read the status of a call from the allowed origin.
    let allowed = reply.headers.get("access-control-allow-origin").and_then(|v| v.to_str().ok());
    assert_eq!(allowed, Some(ALLOWED_ORIGIN));
    let exposed = reply.headers.get("access-control-expose-headers").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(exposed.contains("grpc-status") && exposed.contains("grpc-message"), "{exposed}");
}

async fn a_grpc_web_call_is_authenticated_and_authorised_like_grpc(app: TestApp) {
    checkout(&app).await;
    let request = pb::GetAlignmentRequest { initiative: "CHECKOUT-42".into() };
    let anonymous = grpc_web_call(&app, GET_ALIGNMENT, None, &request).await;
    assert_eq!(anonymous.grpc_status().as_deref(), Some("16"), "UNAUTHENTICATED");
    assert!(anonymous.messages.is_empty());

    let forged = grpc_web_call(&app, GET_ALIGNMENT, Some("not-a-token"), &request).await;
    assert_eq!(forged.grpc_status().as_deref(), Some("16"));

    // A reader may not create initiatives, over gRPC-Web as over gRPC; nothing is written.
    let before = app.log().await;
    let reader = token(DASHBOARD, roles_of(DASHBOARD));
    let create = new_initiative("WEB-1", "From a browser");
    let denied = grpc_web_call(&app, "/accord.v1.CommandService/CreateInitiative", Some(&reader), &create).await;
    assert_eq!(denied.grpc_status().as_deref(), Some("7"), "PERMISSION_DENIED");
    assert_eq!(app.log().await, before);

    let missing = pb::GetAlignmentRequest { initiative: "NOPE-1".into() };
    let not_found = grpc_web_call(&app, GET_ALIGNMENT, Some(&reader), &missing).await;
    assert_eq!(not_found.grpc_status().as_deref(), Some("5"), "NOT_FOUND");
}

async fn preflights_from_the_allowed_origin_get_the_grpc_web_headers_and_other_origins_none(app: TestApp) {
    let allowed = preflight(&app, ALLOWED_ORIGIN).await;
    assert!(allowed.status().is_success(), "answered without credentials: {:?}", allowed.status());
    assert_eq!(header(&allowed, "access-control-allow-origin"), Some(ALLOWED_ORIGIN));
    assert_eq!(header(&allowed, "access-control-allow-credentials"), Some("true"));
    let headers = header(&allowed, "access-control-allow-headers").unwrap_or("").to_ascii_lowercase();
    for needed in [
        "authorization",
        "content-type",
        "x-grpc-web",
        "x-user-agent",
        "grpc-timeout",
        "x-accord-actor",
        "x-accord-roles",
        "x-correlation-id",
    ] {
        assert!(headers.split(',').any(|h| h.trim() == needed), "{needed} in {headers}");
    }
    assert!(header(&allowed, "access-control-allow-methods").unwrap_or("").contains("POST"));

    let other = preflight(&app, "https://evil.example").await;
    for name in ["access-control-allow-origin", "access-control-allow-credentials"] {
        assert_eq!(header(&other, name), None, "{name} for another origin");
    }

    // Without configured origins no cross-origin access at all.
    let closed = app.reserve(ServerOptions { cors_origins: vec![], ..harness_options() }).await;
    let refused = preflight(&closed, ALLOWED_ORIGIN).await;
    assert_eq!(header(&refused, "access-control-allow-origin"), None);
    // `*` allows any origin, never with credentials.
    let open = app.reserve(ServerOptions { cors_origins: vec!["*".into()], ..harness_options() }).await;
    let any = preflight(&open, "https://anyone.example").await;
    assert_eq!(header(&any, "access-control-allow-origin"), Some("*"));
    assert_eq!(header(&any, "access-control-allow-credentials"), None);
}

crate::on_both_stores!(
    a_grpc_web_call_over_http1_reads_the_alignment_with_a_bearer_token,
    a_grpc_web_call_is_authenticated_and_authorised_like_grpc,
    preflights_from_the_allowed_origin_get_the_grpc_web_headers_and_other_origins_none,
);
