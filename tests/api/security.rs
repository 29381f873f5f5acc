//! Security through the real gRPC API: every RPC × every kind of bad credential, every
//! RPC × every service role, JWTs of every supported algorithm from PEM and JWKS files,
//! static service tokens, local development mode, TLS and mTLS with certificates made
//! here, the limits, and the security log. On both stores.

use std::time::Duration;

use accord::proto::{self as pb, alignment_service_client::AlignmentServiceClient};
use accord::security::{Limits, SecurityConfig, service_tokens};
use accord::server::ServerOptions;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tonic::{
    Code, Request, Status,
    transport::{Certificate, Channel, ClientTlsConfig, Identity},
};

use crate::support::*;

// ---- every RPC, callable with any token ------------------------------------------------

/// One call of each RPC, with a minimal request: the guard decides before the request is
/// parsed, so an allowed call ends in the service (success or a domain error) and a
/// refused one never gets there.
const RPCS: [&str; 30] = [
    "CreateInitiative",
    "UpdateInitiative",
    "ChangeStage",
    "ArchiveInitiative",
    "AssignStakeholder",
    "RemoveStakeholder",
    "ProposeDecision",
    "ReviseDecision",
    "AcceptDecision",
    "RejectDecision",
    "WithdrawDecision",
    "SupersedeDecision",
    "RecordFeedback",
    "ResolveFeedback",
    "ReopenFeedback",
    "RecordSignOff",
    "RevokeSignOff",
    "GetAlignment",
    "ListAlignments",
    "GetInbox",
    "GetDecision",
    "ListFeedback",
    "WatchAlignments",
    "ReadEvents",
    "GetAlignmentAsOf",
    "Explain",
    "Verify",
    "CreateCheckpoint",
    "ListCheckpoints",
    "ImportEvents",
];

/// Calls `rpc` with `token`; `Ok` when the service answered successfully.
async fn call(app: &TestApp, rpc: &str, token: Option<String>) -> Result<(), Status> {
    let mut c = app.commands_with(token.clone());
    let mut q = app.queries_with(token.clone());
    let mut a = app.audit_with(token);
    let key = || "CHECKOUT-42".to_owned();
    let unknown = || uuid::Uuid::now_v7().to_string();
    match rpc {
        "CreateInitiative" => c.create_initiative(new_initiative("MATRIX-1", "Matrix")).await.map(drop),
        "UpdateInitiative" => c
            .update_initiative(pb::UpdateInitiativeRequest {
                initiative: key(),
                title: Some("Renamed".into()),
                ..Default::default()
            })
            .await
            .map(drop),
        "ChangeStage" => c
            .change_stage(pb::ChangeStageRequest {
                initiative: key(),
                stage: pb::Stage::Delivery.into(),
                ..Default::default()
            })
            .await
            .map(drop),
        "ArchiveInitiative" => c
            .archive_initiative(pb::ArchiveInitiativeRequest { initiative: "NOPE-1".into(), ..Default::default() })
            .await
            .map(drop),
        "AssignStakeholder" => {
            c.assign_stakeholder(assignment(&key(), "zed@example.com", "legal", pb::Role::Informed)).await.map(drop)
        }
        "RemoveStakeholder" => c
            .remove_stakeholder(pb::RemoveStakeholderRequest {
                initiative: key(),
                principal: "nobody@example.com".into(),
                function: "legal".into(),
                role: pb::Role::Informed.into(),
                ..Default::default()
            })
            .await
            .map(drop),
        "ProposeDecision" => c
            .propose_decision(pb::ProposeDecisionRequest {
                initiative: key(),
                content: content("Matrix decision", "Do it"),
                ..Default::default()
            })
            .await
            .map(drop),
        "ReviseDecision" => c
            .revise_decision(pb::ReviseDecisionRequest {
                initiative: key(),
                decision_id: unknown(),
                ..Default::default()
            })
            .await
            .map(drop),
        "AcceptDecision" => c.accept_decision(acceptance(&key(), &unknown(), "")).await.map(drop),
        "RejectDecision" => c
            .reject_decision(pb::RejectDecisionRequest {
                initiative: key(),
                decision_id: unknown(),
                reason: "No".into(),
                ..Default::default()
            })
            .await
            .map(drop),
        "WithdrawDecision" => c
            .withdraw_decision(pb::WithdrawDecisionRequest {
                initiative: key(),
                decision_id: unknown(),
                ..Default::default()
            })
            .await
            .map(drop),
        "SupersedeDecision" => c
            .supersede_decision(pb::SupersedeDecisionRequest {
                initiative: key(),
                decision_id: unknown(),
                superseded_by: unknown(),
                ..Default::default()
            })
            .await
            .map(drop),
        "RecordFeedback" => c
            .record_feedback(pb::RecordFeedbackRequest {
                initiative: key(),
                function: "engineering".into(),
                kind: pb::FeedbackKind::Comment.into(),
                body: "Looks fine".into(),
                ..Default::default()
            })
            .await
            .map(drop),
        "ResolveFeedback" => c
            .resolve_feedback(pb::ResolveFeedbackRequest {
                initiative: key(),
                feedback_id: unknown(),
                resolution: "Done".into(),
                ..Default::default()
            })
            .await
            .map(drop),
        "ReopenFeedback" => c
            .reopen_feedback(pb::ReopenFeedbackRequest {
                initiative: key(),
                feedback_id: unknown(),
                ..Default::default()
            })
            .await
            .map(drop),
        "RecordSignOff" => {
            c.record_sign_off(sign_off_request(&key(), &unknown(), "engineering", pb::Verdict::Approve)).await.map(drop)
        }
        "RevokeSignOff" => c
            .revoke_sign_off(pb::RevokeSignOffRequest {
                initiative: key(),
                decision_id: unknown(),
                function: "engineering".into(),
                ..Default::default()
            })
            .await
            .map(drop),
        "GetAlignment" => q.get_alignment(pb::GetAlignmentRequest { initiative: key() }).await.map(drop),
        "ListAlignments" => q.list_alignments(pb::ListAlignmentsRequest::default()).await.map(drop),
        "GetInbox" => q.get_inbox(pb::GetInboxRequest { principal: ENGINEER.into() }).await.map(drop),
        "GetDecision" => {
            q.get_decision(pb::GetDecisionRequest { initiative: key(), decision_id: unknown() }).await.map(drop)
        }
        "ListFeedback" => {
            q.list_feedback(pb::ListFeedbackRequest { initiative: key(), ..Default::default() }).await.map(drop)
        }
        "WatchAlignments" => {
            let mut stream = q.watch_alignments(pb::WatchAlignmentsRequest::default()).await?.into_inner();
            stream.message().await.map(drop)
        }
        "ReadEvents" => {
            let mut stream =
                a.read_events(pb::ReadEventsRequest { initiative: key(), ..Default::default() }).await?.into_inner();
            stream.message().await.map(drop)
        }
        "GetAlignmentAsOf" => a
            .get_alignment_as_of(pb::GetAlignmentAsOfRequest { initiative: key(), ..Default::default() })
            .await
            .map(drop),
        "Explain" => a.explain(pb::ExplainRequest { initiative: key(), ..Default::default() }).await.map(drop),
        "Verify" => a.verify(pb::VerifyRequest::default()).await.map(drop),
        "CreateCheckpoint" => a.create_checkpoint(pb::CreateCheckpointRequest::default()).await.map(drop),
        "ListCheckpoints" => a.list_checkpoints(pb::ListCheckpointsRequest::default()).await.map(drop),
        "ImportEvents" => {
            let end = pb::ImportEventsRequest { line: String::new(), end: true };
            a.import_events(tokio_stream::iter(vec![end])).await.map(drop)
        }
        other => panic!("no call for {other}"),
    }
}

/// The service roles that may call `rpc`: the access policy, written out once more by
/// hand so that a change to the guard's table shows up here.
fn allowed(rpc: &str) -> &'static [Role] {
    match rpc {
        "CreateInitiative" | "ArchiveInitiative" | "AssignStakeholder" | "RemoveStakeholder" | "ImportEvents" => {
            &[Role::Admin]
        }
        "GetAlignment" | "ListAlignments" | "GetInbox" | "GetDecision" | "ListFeedback" | "WatchAlignments" => {
            &[Role::Admin, Role::Member, Role::Auditor, Role::Reader]
        }
        "ReadEvents" | "GetAlignmentAsOf" | "Explain" | "Verify" | "CreateCheckpoint" | "ListCheckpoints" => {
            &[Role::Admin, Role::Auditor]
        }
        _ => &[Role::Admin, Role::Member],
    }
}

/// A refusal by the guard (as opposed to a decision right of the domain).
fn refused_by_guard(status: &Status) -> bool {
    status.code() == Code::Unauthenticated
        || (status.code() == Code::PermissionDenied && status.message().contains(" needs the "))
}

fn unsigned_token(principal: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "sub": principal, "exp": 4_000_000_000u64,
        "roles": ["admin"]});
    format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims.to_string()))
}

fn foreign_token(principal: &str) -> String {
    let claims = serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "sub": principal, "exp": 4_000_000_000u64,
        "roles": ["admin"]});
    let key = EncodingKey::from_secret(b"somebody-else's-secret-that-is-long-enough").expect("key");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).expect("sign")
}

/// Every RPC × every bad credential: the right code, the reason, and nothing written.
async fn every_rpc_refuses_missing_expired_foreign_and_forged_credentials_and_writes_nothing(app: TestApp) {
    checkout(&app).await;
    let before = app.log().await;
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let admin = [Role::Admin];
    let cases: Vec<(&str, Option<String>, Code, &str)> = vec![
        ("no token", None, Code::Unauthenticated, "no credentials"),
        (
            "expired",
            Some(token_with(OWNER, &admin, |c| c["exp"] = (now() - 3600).into())),
            Code::Unauthenticated,
            "the token has expired",
        ),
        (
            "not yet valid",
            Some(token_with(OWNER, &admin, |c| c["nbf"] = (now() + 3600).into())),
            Code::Unauthenticated,
            "not valid yet",
        ),
        (
            "wrong issuer",
            Some(token_with(OWNER, &admin, |c| c["iss"] = "https://evil.example/".into())),
            Code::Unauthenticated,
            "issuer",
        ),
        (
            "wrong audience",
            Some(token_with(OWNER, &admin, |c| c["aud"] = "billing".into())),
            Code::Unauthenticated,
            "audience",
        ),
        ("no subject", Some(token_with(OWNER, &admin, |c| c["sub"] = "".into())), Code::Unauthenticated, "subject"),
        ("bad signature", Some(foreign_token(OWNER)), Code::Unauthenticated, "signature does not verify"),
        ("alg none", Some(unsigned_token(OWNER)), Code::Unauthenticated, "not a well-formed JWT"),
        ("garbage", Some("let-me-in".into()), Code::Unauthenticated, "not a known service token"),
        (
            "valid, no Accord role",
            Some(token_with(OWNER, &[], |c| c["roles"] = serde_json::json!(["superuser"]))),
            Code::PermissionDenied,
            "holds no Accord role",
        ),
    ];
    for rpc in RPCS {
        for (case, token, code, says) in &cases {
            let status = match call(&app, rpc, token.clone()).await {
                Ok(()) => panic!("{rpc} with {case}: accepted"),
                Err(status) => status,
            };
            assert_eq!(status.code(), *code, "{rpc} with {case}: {status:?}");
            assert!(status.message().contains(says), "{rpc} with {case}: {:?} lacks {says:?}", status.message());
        }
    }
    assert_eq!(app.log().await, before, "no refused call wrote anything");
}

/// Every RPC × every role: exactly the allowed roles get past the guard; the others get
/// PERMISSION_DENIED naming the role needed and write nothing.
async fn every_role_reaches_exactly_the_rpcs_of_its_role(app: TestApp) {
    checkout(&app).await;
    for rpc in RPCS {
        for role in Role::ALL {
            let before = app.log().await;
            let result = call(&app, rpc, Some(token("matrix@example.com", &[role]))).await;
            if allowed(rpc).contains(&role) {
                if let Err(status) = &result {
                    assert!(!refused_by_guard(status), "{role} should reach {rpc}: {status:?}");
                }
            } else {
                let status = result.expect_err(&format!("{role} must not reach {rpc}"));
                assert_eq!(status.code(), Code::PermissionDenied, "{role} on {rpc}: {status:?}");
                let message = format!("{rpc} needs ");
                assert!(status.message().starts_with(&message), "{:?}", status.message());
                assert!(status.message().ends_with(&format!("matrix@example.com holds {role}")), "{status:?}");
                assert_eq!(app.log().await, before, "{role} on {rpc} wrote something");
            }
        }
    }
}

/// The jobs of each role, end to end: an administrator sets up, members act under their
/// decision rights, a dashboard reads, an auditor verifies.
async fn each_role_does_its_job_and_an_administrator_signs_for_nobody(app: TestApp) {
    let ids = checkout(&app).await;
    sign(&app, ENGINEER, &ids.decision_id, "engineering", pb::Verdict::Approve, "").await.expect("member signs");
    let view = app.alignment("CHECKOUT-42").await;
    assert_eq!(function_state(&view, "engineering"), pb::FunctionState::Approved);
    let report = app.audit().verify(pb::VerifyRequest::default()).await.expect("auditor verifies").into_inner();
    assert!(report.ok, "{report:?}");

    // An administrator staffs initiatives but has no decision right of its own: signing
    // for a function is the approvers' alone, and naming one in the request changes nothing.
    let before = app.log().await;
    let mut admin = app.commands_with(Some(token("setup-bot@example.com", &[Role::Admin])));
    let status = admin
        .record_sign_off(sign_off_request("CHECKOUT-42", &ids.decision_id, "design", pb::Verdict::Approve))
        .await
        .expect_err("admin signs for design");
    assert_status(&status, Code::PermissionDenied, &["setup-bot@example.com is not an approver for design"]);
    let status =
        admin.accept_decision(acceptance("CHECKOUT-42", &ids.decision_id, "ship it")).await.expect_err("admin accepts");
    assert_status(&status, Code::PermissionDenied, &["only a driver of CHECKOUT-42 may accept"]);
    assert_eq!(app.log().await, before);
    // …and it may manage any initiative, which a member who is neither owner nor driver may not.
    admin
        .change_stage(pb::ChangeStageRequest {
            initiative: "CHECKOUT-42".into(),
            stage: pb::Stage::Delivery.into(),
            ..Default::default()
        })
        .await
        .expect("an administrator restages any initiative");
    let status = app
        .as_(ENGINEER)
        .change_stage(pb::ChangeStageRequest {
            initiative: "CHECKOUT-42".into(),
            stage: pb::Stage::Launched.into(),
            ..Default::default()
        })
        .await
        .expect_err("an approver restages");
    assert_status(&status, Code::PermissionDenied, &["only the owner (pm@example.com) or a driver"]);
}

// ---- JWT algorithms and key files --------------------------------------------------------

struct KeyFiles {
    dir: tempfile::TempDir,
    es256: rcgen::KeyPair,
    eddsa: rcgen::KeyPair,
    jwks_ec: rcgen::KeyPair,
}

/// Writes a configuration with an HS256 secret file, an RS256 and an ES256 public key in
/// PEM, and a JWK set with an EdDSA and an ES256 key; returns it with the private keys.
fn key_files(extra: &str) -> KeyFiles {
    let dir = tempfile::tempdir().expect("temporary folder");
    let es256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
    let eddsa = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("Ed25519 key");
    let jwks_ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
    let write = |name: &str, text: &[u8]| std::fs::write(dir.path().join(name), text).expect("write");
    write("hs256.secret", SECRET);
    write("rs256.pem", include_bytes!("../fixtures/jwt-rs256-public.pem"));
    write("es256.pem", es256.public_key_pem().as_bytes());
    let point = jwks_ec.public_key_raw();
    let jwks = serde_json::json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": "ed-1", "x": URL_SAFE_NO_PAD.encode(eddsa.public_key_raw())},
        {"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "ec-2",
         "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])},
    ]});
    write("jwks.json", jwks.to_string().as_bytes());
    let config = format!(
        r#"
[jwt]
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
leeway_seconds = 5

[[jwt.keys]]
algorithm = "HS256"
secret_file = "hs256.secret"

[[jwt.keys]]
algorithm = "RS256"
public_key_file = "rs256.pem"

[[jwt.keys]]
algorithm = "ES256"
kid = "ec-1"
public_key_file = "es256.pem"

[[jwt.keys]]
jwks_file = "jwks.json"
{extra}"#
    );
    write("accord-auth.toml", config.as_bytes());
    KeyFiles { dir, es256, eddsa, jwks_ec }
}

fn signed(algorithm: Algorithm, kid: Option<&str>, key: &EncodingKey, principal: &str, roles: &[Role]) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims = serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "sub": principal, "exp": now + 300,
        "roles": roles.iter().map(|r| r.as_str()).collect::<Vec<_>>()});
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims, key).expect("sign")
}

async fn tokens_of_every_supported_algorithm_verify_against_keys_from_pem_and_jwks_files(app: TestApp) {
    let files = key_files("");
    let authenticator = SecurityConfig::load(&files.dir.path().join("accord-auth.toml")).expect("configuration");
    let served = app.reserve(ServerOptions { authenticator, ..harness_options() }).await;
    let rsa = EncodingKey::from_rsa_pem(include_bytes!("../fixtures/jwt-rs256-private.pem")).expect("RSA key");
    let es = EncodingKey::from_ec_pem(files.es256.serialize_pem().as_bytes()).expect("EC key");
    let ed = EncodingKey::from_ed_pem(files.eddsa.serialize_pem().as_bytes()).expect("Ed key");
    let jwks_es = EncodingKey::from_ec_pem(files.jwks_ec.serialize_pem().as_bytes()).expect("EC key");
    let hs = EncodingKey::from_secret(SECRET).expect("HMAC key");
    let good = [
        ("HS256", signed(Algorithm::HS256, None, &hs, "hs@example.com", &[Role::Reader])),
        ("RS256", signed(Algorithm::RS256, None, &rsa, "rs@example.com", &[Role::Reader])),
        ("ES256 PEM", signed(Algorithm::ES256, Some("ec-1"), &es, "es@example.com", &[Role::Reader])),
        ("EdDSA JWKS", signed(Algorithm::EdDSA, Some("ed-1"), &ed, "ed@example.com", &[Role::Reader])),
        ("ES256 JWKS", signed(Algorithm::ES256, Some("ec-2"), &jwks_es, "ec@example.com", &[Role::Reader])),
    ];
    for (case, token) in good {
        served.queries_with(Some(token)).list_alignments(pb::ListAlignmentsRequest::default()).await.expect(case);
    }
    let bad = [
        // The ES256 key of the PEM file, presented under the JWKS key's id.
        ("key id of another key", signed(Algorithm::ES256, Some("ec-2"), &es, "x@example.com", &[Role::Reader])),
        // An RS256 token claiming to be HS256 signed with the public key as secret.
        (
            "algorithm confusion",
            signed(
                Algorithm::HS256,
                None,
                &EncodingKey::from_secret(include_bytes!("../fixtures/jwt-rs256-public.pem")).expect("key"),
                "x@example.com",
                &[Role::Admin],
            ),
        ),
        ("no such key id", signed(Algorithm::EdDSA, Some("ed-9"), &ed, "x@example.com", &[Role::Reader])),
        ("unconfigured algorithm", signed(Algorithm::HS512, None, &hs, "x@example.com", &[Role::Reader])),
    ];
    for (case, token) in bad {
        let status = served
            .queries_with(Some(token))
            .list_alignments(pb::ListAlignmentsRequest::default())
            .await
            .expect_err(case);
        assert_eq!(status.code(), Code::Unauthenticated, "{case}: {status:?}");
    }
}

async fn service_tokens_from_the_configuration_authenticate_by_their_hash_only(app: TestApp) {
    checkout(&app).await;
    let (ci_token, ci_hash) = service_tokens::generate().expect("random");
    let (export_token, export_hash) = service_tokens::generate().expect("random");
    let extra = format!(
        "\n[[service_tokens]]\nprincipal = \"release-bot@svc\"\nroles = [\"member\"]\nsha256 = \"{ci_hash}\"\n\
         \n[[service_tokens]]\nprincipal = \"exporter@svc\"\nroles = [\"auditor\"]\nsha256 = \"{export_hash}\"\n"
    );
    let files = key_files(&extra);
    let config = std::fs::read_to_string(files.dir.path().join("accord-auth.toml")).expect("read");
    assert!(!config.contains(&ci_token) && config.contains(&ci_hash), "only the digest is configured");
    let authenticator = SecurityConfig::load(&files.dir.path().join("accord-auth.toml")).expect("configuration");
    let served = app.reserve(ServerOptions { authenticator, ..harness_options() }).await;

    let report = served.audit_with(Some(export_token.clone())).verify(pb::VerifyRequest::default()).await;
    assert!(report.expect("the exporter verifies").into_inner().ok);
    let before = app.log().await;
    let status = served
        .commands_with(Some(export_token))
        .create_initiative(new_initiative("BOT-1", "Bot"))
        .await
        .expect_err("an auditor token creates");
    assert_status(
        &status,
        Code::PermissionDenied,
        &["CreateInitiative needs the admin role; exporter@svc holds auditor"],
    );
    // The member bot acts under its own name, which holds no stakeholder role here.
    let status = served
        .commands_with(Some(ci_token.clone()))
        .record_feedback(feedback_request("CHECKOUT-42", "", "engineering", pb::FeedbackKind::Comment, "hi"))
        .await
        .expect_err("the bot is no stakeholder");
    assert_status(&status, Code::PermissionDenied, &["release-bot@svc"]);
    for wrong in [format!("{ci_token}x"), ci_token[..ci_token.len() - 1].to_owned(), ci_hash.clone()] {
        let status = served
            .queries_with(Some(wrong))
            .list_alignments(pb::ListAlignmentsRequest::default())
            .await
            .expect_err("a near miss");
        assert_status(&status, Code::Unauthenticated, &["not a known service token"]);
    }
    assert_eq!(app.log().await, before);
}

// ---- local development mode -------------------------------------------------------------

async fn local_development_mode_takes_the_named_caller_on_loopback_and_refuses_other_addresses(app: TestApp) {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.expect("bind all interfaces");
    let refused = accord::server::serve_with(listener, app.store.clone(), ServerOptions::local_development(), async {})
        .await
        .expect_err("local development mode on 0.0.0.0");
    let message = refused.to_string();
    assert!(message.contains("refusing to listen on 0.0.0.0:") && message.contains("--auth-config"), "{message}");

    let dev = app.reserve(ServerOptions::local_development()).await;
    let named = |actor: &str, roles: Option<&str>| {
        let mut request = Request::new(new_initiative("DEV-1", "Local"));
        request.metadata_mut().insert("x-accord-actor", actor.parse().expect("metadata"));
        if let Some(roles) = roles {
            request.metadata_mut().insert("x-accord-roles", roles.parse().expect("metadata"));
        }
        request
    };
    let status = dev.anonymous().create_initiative(new_initiative("DEV-1", "Local")).await.expect_err("no name");
    assert_status(&status, Code::Unauthenticated, &["send the x-accord-actor metadata entry (local development mode)"]);
    let status = dev.anonymous().create_initiative(named("me@localhost", Some("reader"))).await.expect_err("reader");
    assert_status(&status, Code::PermissionDenied, &["me@localhost holds reader"]);
    let status = dev.anonymous().create_initiative(named("me@localhost", Some("root"))).await.expect_err("bad role");
    assert_status(&status, Code::Unauthenticated, &["x-accord-roles", "\"root\" is not a role"]);
    let created = dev.anonymous().create_initiative(named("me@localhost", None)).await.expect("named caller");
    assert_eq!(created.into_inner().stream_version, 1);
    let view = app.alignment("DEV-1").await;
    assert_eq!(view.owner, "me@localhost", "the named caller is the actor");
}

// ---- TLS and mTLS --------------------------------------------------------------------

struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
    stranger: (String, String),
}

/// A CA, a server certificate for localhost/127.0.0.1, a client certificate from the CA,
/// and a client certificate from another CA.
fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let authority = |name: &str| {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("CA certificate");
        (cert.pem(), Issuer::new(params, key))
    };
    let leaf = |names: Vec<String>, issuer: &Issuer<'_, KeyPair>| {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(names).expect("params").signed_by(&key, issuer).expect("certificate");
        (cert.pem(), key.serialize_pem())
    };
    let (ca_pem, ca) = authority("Accord test CA");
    let (_, other) = authority("Someone else's CA");
    Pki {
        ca_pem,
        server: leaf(vec!["localhost".into(), "127.0.0.1".into()], &ca),
        client: leaf(vec!["release-bot.svc".into()], &ca),
        stranger: leaf(vec!["mallory.svc".into()], &other),
    }
}

async fn tls_server(app: &TestApp, pki: &Pki, client_auth: Option<accord::security::tls::ClientAuth>) -> TestApp {
    let tls = accord::security::tls::TlsMaterial {
        certificate: pki.server.0.clone().into_bytes(),
        key: pki.server.1.clone().into_bytes(),
        client_ca: client_auth.map(|_| pki.ca_pem.clone().into_bytes()),
        client_auth: client_auth.unwrap_or(accord::security::tls::ClientAuth::Required),
    };
    app.reserve(ServerOptions { tls: Some(tls), ..harness_options() }).await
}

/// Lists alignments over TLS trusting `ca`, presenting `identity`; the status on failure.
async fn list_over_tls(app: &TestApp, ca: &str, identity: Option<&(String, String)>) -> Result<(), Status> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let channel = Channel::from_shared(format!("https://localhost:{}", app.address.port()))
        .expect("uri")
        .tls_config(tls)
        .expect("TLS settings")
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| Status::unavailable(format!("{e:?}")))?;
    let mut client = AlignmentServiceClient::with_interceptor(channel, Bearer(Some(token(DASHBOARD, &[Role::Reader]))));
    client.list_alignments(pb::ListAlignmentsRequest::default()).await.map(drop)
}

async fn tls_serves_clients_that_trust_its_ca_and_refuses_plaintext_and_other_cas(app: TestApp) {
    let pki = pki();
    let served = tls_server(&app, &pki, None).await;
    list_over_tls(&served, &pki.ca_pem, None).await.expect("TLS with the right CA");
    let other_ca = pki::other_ca();
    list_over_tls(&served, &other_ca, None).await.expect_err("a CA that did not sign the server");
    let plaintext = served.queries().list_alignments(pb::ListAlignmentsRequest::default()).await;
    assert!(plaintext.is_err(), "plaintext gRPC to a TLS listener must fail");
}

async fn mtls_requires_a_client_certificate_from_the_client_ca_unless_optional(app: TestApp) {
    use accord::security::tls::ClientAuth;
    let pki = pki();
    let required = tls_server(&app, &pki, Some(ClientAuth::Required)).await;
    list_over_tls(&required, &pki.ca_pem, Some(&pki.client)).await.expect("client certificate from the CA");
    list_over_tls(&required, &pki.ca_pem, None).await.expect_err("no client certificate");
    list_over_tls(&required, &pki.ca_pem, Some(&pki.stranger)).await.expect_err("a certificate from another CA");

    let optional = tls_server(&app, &pki, Some(ClientAuth::Optional)).await;
    list_over_tls(&optional, &pki.ca_pem, None).await.expect("no certificate is fine when optional");
    list_over_tls(&optional, &pki.ca_pem, Some(&pki.client)).await.expect("a good certificate");
    list_over_tls(&optional, &pki.ca_pem, Some(&pki.stranger)).await.expect_err("a bad one is still refused");
}

mod pki {
    /// A CA certificate unrelated to anything the server uses.
    pub fn other_ca() -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).expect("certificate").pem()
    }
}

// ---- limits --------------------------------------------------------------------------

/// An import stream held open keeps its call in flight.
fn held_import()
-> (tokio::sync::mpsc::Sender<pb::ImportEventsRequest>, tokio_stream::wrappers::ReceiverStream<pb::ImportEventsRequest>)
{
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    (tx, tokio_stream::wrappers::ReceiverStream::new(rx))
}

async fn calls_past_the_concurrency_bound_are_resource_exhausted_and_health_still_answers(app: TestApp) {
    let limits = Limits { max_concurrent_calls: 1, ..Limits::default() };
    let served = app.reserve(ServerOptions { limits, ..harness_options() }).await;
    let admin = || served.audit_with(Some(token(OWNER, &[Role::Admin])));
    let (hold, lines) = held_import();
    let mut importer = admin();
    let in_flight = tokio::spawn(async move { importer.import_events(lines).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        match served.queries().list_alignments(pb::ListAlignmentsRequest::default()).await {
            Err(status) if status.code() == Code::ResourceExhausted => break status,
            _ if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
            other => panic!("the second call was not refused: {other:?}"),
        }
    };
    assert!(status.message().contains("limit of 1 concurrent calls"), "{status:?}");
    let mut health = tonic_health::pb::health_client::HealthClient::new(served.channel());
    health.check(tonic_health::pb::HealthCheckRequest::default()).await.expect("health is never limited");
    drop(hold);
    let _ = in_flight.await;
    served.queries().list_alignments(pb::ListAlignmentsRequest::default()).await.expect("capacity is back");
}

async fn streams_past_their_bound_are_resource_exhausted_until_one_ends(app: TestApp) {
    let limits = Limits { max_streams: 1, ..Limits::default() };
    let served = app.reserve(ServerOptions { limits, ..harness_options() }).await;
    let follow = pb::ReadEventsRequest { follow: true, ..Default::default() };
    let first = served.audit().read_events(follow.clone()).await.expect("first stream").into_inner();
    let status = served.audit().read_events(follow.clone()).await.expect_err("second stream");
    assert_status(&status, Code::ResourceExhausted, &["limit of open streams"]);
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match served.audit().read_events(follow.clone()).await {
            Ok(_) => break,
            Err(status) if status.code() == Code::ResourceExhausted && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(status) => panic!("the stream bound was not released: {status:?}"),
        }
    }
}

async fn a_call_past_the_server_deadline_is_deadline_exceeded(app: TestApp) {
    let limits = Limits { deadline: Duration::from_millis(300), ..Limits::default() };
    let served = app.reserve(ServerOptions { limits, ..harness_options() }).await;
    let (_hold, lines) = held_import();
    let status = served
        .audit_with(Some(token(OWNER, &[Role::Admin])))
        .import_events(lines)
        .await
        .expect_err("an import that never ends");
    assert_status(&status, Code::DeadlineExceeded, &["ImportEvents did not finish within the server's deadline"]);
    assert!(app.log().await.is_empty());
}

/// A caller's own deadline (`grpc-timeout`) shorter than the server's ends the call with
/// DEADLINE_EXCEEDED, as gRPC says, not tonic's CANCELLED "Timeout expired", which a
/// caller cannot tell from a call it cancelled itself.
async fn a_call_past_the_callers_deadline_is_deadline_exceeded_not_cancelled(app: TestApp) {
    let served = app.reserve(harness_options()).await;
    let (_hold, lines) = held_import();
    let mut request = tonic::Request::new(lines);
    request.set_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let status = served
        .audit_with(Some(token(OWNER, &[Role::Admin])))
        .import_events(request)
        .await
        .expect_err("an import that never ends");
    let took = started.elapsed();
    assert_status(
        &status,
        Code::DeadlineExceeded,
        &["ImportEvents did not finish within the caller's deadline of 300 ms"],
    );
    assert!(took < Duration::from_secs(5), "answered only after {took:?}");
    assert!(app.log().await.is_empty());
}

async fn a_message_past_the_size_limit_is_refused_before_it_is_parsed(app: TestApp) {
    let limits = Limits { max_message_bytes: 64 * 1024, ..Limits::default() };
    let served = app.reserve(ServerOptions { limits, ..harness_options() }).await;
    let mut request = new_initiative("BIG-1", "Big");
    request.summary = "x".repeat(100 * 1024);
    let status = served.as_(OWNER).create_initiative(request).await.expect_err("100 KiB over a 64 KiB limit");
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "tonic refuses an over-size message: {status:?}"
    );
    assert!(status.message().contains("message length too large"), "{status:?}");
    assert!(app.log().await.is_empty());
}

// ---- the security log ------------------------------------------------------------------

async fn refusals_are_logged_as_security_events_without_the_token(app: TestApp) {
    let ids = checkout(&app).await;
    let log = JsonLog::capture("accord::security=info");

    let expired = token_with(ENGINEER, &[Role::Member], |c| c["exp"] = 1_000_000.into());
    let _ = app.commands_with(Some(expired.clone())).create_initiative(new_initiative("X-1", "X")).await;
    let reader = token(DASHBOARD, &[Role::Reader]);
    let _ = app.commands_with(Some(reader.clone())).create_initiative(new_initiative("X-1", "X")).await;
    let _ = sign(&app, ENGINEER, &ids.decision_id, "design", pb::Verdict::Approve, "").await;

    let log = log.text();
    let events: Vec<serde_json::Value> =
        log.lines().map(|line| serde_json::from_str(line).expect("one JSON object per line")).collect();
    let find = |kind: &str| {
        events
            .iter()
            .find(|e| e["fields"]["event"] == kind)
            .unwrap_or_else(|| panic!("no {kind} security event in {log}"))
    };
    let unauthenticated = find("unauthenticated");
    assert_eq!(unauthenticated["target"], "accord::security");
    assert_eq!(unauthenticated["fields"]["rpc"], "CreateInitiative");
    assert_eq!(unauthenticated["fields"]["reason"], "the token has expired");
    let role = find("permission_denied");
    assert_eq!(
        (role["fields"]["principal"].as_str(), role["fields"]["rpc"].as_str()),
        (Some(DASHBOARD), Some("CreateInitiative"))
    );
    let right = find("decision_right_denied");
    assert_eq!(right["fields"]["principal"], ENGINEER);
    assert_eq!(right["fields"]["rpc"], "RecordSignOff");
    assert_eq!(right["fields"]["initiative"], "CHECKOUT-42");
    assert!(right["fields"]["reason"].as_str().unwrap_or_default().contains("not an approver for design"), "{right}");
    // The event sits in the call's span, which names the RPC and the principal.
    let spans = right["spans"].as_array().cloned().unwrap_or_default();
    assert!(
        spans.iter().any(|s| s["name"] == "call" && s["rpc"] == "RecordSignOff" && s["principal"] == ENGINEER),
        "{right}"
    );
    for secret in [&expired, &reader] {
        assert!(!log.contains(secret.as_str()), "a token was logged");
        let signature = secret.rsplit('.').next().unwrap_or_default();
        assert!(!log.contains(signature), "a token's signature was logged");
    }
}

crate::on_both_stores!(
    every_rpc_refuses_missing_expired_foreign_and_forged_credentials_and_writes_nothing,
    every_role_reaches_exactly_the_rpcs_of_its_role,
    each_role_does_its_job_and_an_administrator_signs_for_nobody,
    tokens_of_every_supported_algorithm_verify_against_keys_from_pem_and_jwks_files,
    service_tokens_from_the_configuration_authenticate_by_their_hash_only,
    local_development_mode_takes_the_named_caller_on_loopback_and_refuses_other_addresses,
    tls_serves_clients_that_trust_its_ca_and_refuses_plaintext_and_other_cas,
    mtls_requires_a_client_certificate_from_the_client_ca_unless_optional,
    calls_past_the_concurrency_bound_are_resource_exhausted_and_health_still_answers,
    streams_past_their_bound_are_resource_exhausted_until_one_ends,
    a_call_past_the_server_deadline_is_deadline_exceeded,
    a_call_past_the_callers_deadline_is_deadline_exceeded_not_cancelled,
    a_message_past_the_size_limit_is_refused_before_it_is_parsed,
    refusals_are_logged_as_security_events_without_the_token,
);
