//! Load benchmark: sign-off commands per second through the real gRPC API over
//! loopback, against PostgreSQL, at several client counts. Compare the figures with
//! `../shared/bench/pg-baseline` run in the same sitting (see README, "Performance").
//!
//!   cargo bench --bench signoff -- [--summary | --clients 1,16 [--shared]] [--seconds 10]
//!       [--database-url postgres://postgres@127.0.0.1:5432/accord_bench | sqlite:///tmp/accord-bench.db]
//!       [--auth none,hs256,es256,service-token]
//!       [--database-direct-url URL [--database-pooled]]   # behind PgBouncer, as `accord serve`
//!
//! Without `--clients` or `--shared` (or with `--summary`) it runs the figures issue 12's
//! targets name: 1 client, 16 clients, and 16 clients on one initiative. Whatever it ran,
//! its last line is one machine-readable summary (`na` for a figure not run; with several
//! `--auth` modes, the first mode's):
//!
//!   signoff-summary c1_cmds=… c16_cmds=… c1_ms=… shared_cmds=… c16_ms=… shared_ms=… failed=…
//!
//! (`cmds` commands per second, `ms` mean latency, `failed` the commands that failed in
//! the runs summarised). `benches/sitting` runs it beside the baselines.
//!
//! `--auth` runs each client count once per authentication mode: `none` is local
//! development mode (the caller named in metadata); the others configure the server as
//! production would and send a bearer token on every call (made once per client, so
//! the figure is the server's cost of verifying it).
//!
//! Each client signs as its own approver. By default each client works on its own
//! initiative (appends to different streams proceed in parallel); with `--shared` all
//! clients sign on one initiative, so their commands serialise on its stream head.
//! The database is dropped and created afresh for each client count.

/// The allocator the `accord` binary runs with, so that figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use accord::proto::{self as pb, command_service_client::CommandServiceClient};
use std::collections::HashMap;

use accord::domain::values::Principal;
use accord::security::{
    Authenticator, JwtVerifier, Limits, Role, Roles, ServiceTokens, VerificationKey, service_tokens,
};
use accord::server::ServerOptions;
use accord::store::{DatabaseRoute, DatabaseTimeouts, Store};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use sqlx::{Postgres, migrate::MigrateDatabase};
use tonic::{
    Request,
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Auth {
    None,
    Hs256,
    Es256,
    ServiceToken,
}

impl Auth {
    fn parse(name: &str) -> Result<Auth, String> {
        match name {
            "none" => Ok(Auth::None),
            "hs256" => Ok(Auth::Hs256),
            "es256" => Ok(Auth::Es256),
            "service-token" => Ok(Auth::ServiceToken),
            other => Err(format!("unknown --auth mode {other} (none, hs256, es256, service-token)")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Hs256 => "hs256",
            Auth::Es256 => "es256",
            Auth::ServiceToken => "service-token",
        }
    }
}

/// The server's authenticator for a mode, and how a client proves it is `actor`.
struct Credentials {
    authenticator: Authenticator,
    es256_key: Option<EncodingKey>,
    service_tokens: HashMap<String, String>,
    auth: Auth,
}

const SECRET: &[u8] = b"benchmark-identity-provider-secret-0123456789";

impl Credentials {
    fn new(auth: Auth, actors: &[String]) -> Result<Credentials, String> {
        let jwt = |algorithm, key| {
            Some(JwtVerifier::new("bench", "accord", 30, "roles", vec![VerificationKey { algorithm, kid: None, key }]))
        };
        let mut service_tokens = HashMap::new();
        let (authenticator, es256_key) = match auth {
            Auth::None => (Authenticator::LocalDevelopment, None),
            Auth::Hs256 => {
                let key = DecodingKey::from_secret(SECRET).map_err(|e| e.to_string())?;
                (Authenticator::Tokens { jwt: jwt(Algorithm::HS256, key), service_tokens: ServiceTokens::new() }, None)
            }
            Auth::Es256 => {
                let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
                let public = DecodingKey::from_ec_pem(pair.public_key_pem().as_bytes()).map_err(|e| e.to_string())?;
                let private = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).map_err(|e| e.to_string())?;
                let tokens = ServiceTokens::new();
                (Authenticator::Tokens { jwt: jwt(Algorithm::ES256, public), service_tokens: tokens }, Some(private))
            }
            Auth::ServiceToken => {
                let mut tokens = ServiceTokens::new();
                for actor in actors {
                    let (token, _) = service_tokens::generate().map_err(|e| e.to_string())?;
                    let principal = Principal::parse("actor", actor).map_err(|e| e.to_string())?;
                    tokens.add(service_tokens::digest(&token), principal, Roles::of(&[Role::Admin]));
                    service_tokens.insert(actor.clone(), token);
                }
                (Authenticator::Tokens { jwt: None, service_tokens: tokens }, None)
            }
        };
        Ok(Credentials { authenticator, es256_key, service_tokens, auth })
    }

    /// A bearer token for `actor`; `n` tells JWTs apart (their `jti`).
    fn token(&self, actor: &str, n: usize) -> Result<String, String> {
        let claims = serde_json::json!({"iss": "bench", "aud": "accord", "sub": actor, "exp": 4_000_000_000u64,
            "roles": ["admin"], "jti": n.to_string()});
        match self.auth {
            Auth::None => Err("local development mode has no tokens".into()),
            Auth::Hs256 => {
                let key = EncodingKey::from_secret(SECRET).map_err(|e| e.to_string())?;
                jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).map_err(|e| e.to_string())
            }
            Auth::Es256 => {
                let key = self.es256_key.as_ref().ok_or("no ES256 key")?;
                jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, key).map_err(|e| e.to_string())
            }
            Auth::ServiceToken => self.service_tokens.get(actor).cloned().ok_or_else(|| "no token".into()),
        }
    }

    /// The metadata entry that makes a request `actor`'s.
    fn entry(&self, actor: &str) -> Result<(&'static str, MetadataValue<Ascii>), String> {
        if self.auth == Auth::None {
            return Ok(("x-accord-actor", MetadataValue::try_from(actor).map_err(|e| e.to_string())?));
        }
        let token = self.token(actor, 0)?;
        Ok(("authorization", MetadataValue::try_from(format!("Bearer {token}")).map_err(|e| e.to_string())?))
    }
}

struct Args {
    auth: Vec<Auth>,
    /// The runs: a client count, and whether all clients share one initiative.
    plan: Vec<(usize, bool)>,
    seconds: u64,
    database_url: String,
    /// Through a pooler: the direct URL (also where the database is dropped and created)
    /// and whether the pooler pools transactions.
    route: DatabaseRoute,
}

/// The runs the summary line reports: 1 client, 16, and 16 on one initiative.
const SUMMARY_PLAN: [(usize, bool); 3] = [(1, false), (16, false), (16, true)];

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        auth: vec![Auth::None],
        plan: Vec::new(),
        seconds: 10,
        database_url: "postgres://postgres@127.0.0.1:5432/accord_bench".into(),
        route: DatabaseRoute::default(),
    };
    let (mut clients, mut shared, mut summary) = (None::<Vec<usize>>, false, false);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--clients" => {
                let value = it.next().ok_or("--clients needs a value")?;
                clients = Some(
                    value
                        .split(',')
                        .map(|c| c.parse().ok().filter(|&c| c > 0).ok_or_else(|| format!("bad client count {c}")))
                        .collect::<Result<_, _>>()?,
                );
            }
            "--seconds" => {
                args.seconds = it.next().ok_or("--seconds needs a value")?.parse().map_err(|_| "bad --seconds")?
            }
            "--shared" => shared = true,
            "--summary" => summary = true,
            "--auth" => {
                let value = it.next().ok_or("--auth needs a value")?;
                args.auth = value.split(',').map(Auth::parse).collect::<Result<_, _>>()?;
            }
            "--database-url" => args.database_url = it.next().ok_or("--database-url needs a value")?,
            "--database-direct-url" => {
                args.route.direct_url = Some(it.next().ok_or("--database-direct-url needs a value")?)
            }
            "--database-pooled" => args.route.pooled = true,
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    args.plan = match (summary, clients, shared) {
        (true, None, false) | (false, None, false) => SUMMARY_PLAN.to_vec(),
        (true, _, _) => return Err("--summary runs 1, 16 and 16 shared: drop --clients and --shared".into()),
        (false, clients, shared) => clients.unwrap_or_else(|| vec![1, 16]).into_iter().map(|c| (c, shared)).collect(),
    };
    Ok(args)
}

fn with_entry<T>(message: T, (name, value): &(&'static str, MetadataValue<Ascii>)) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(*name, value.clone());
    request
}

/// Creates an initiative with one approver per client (function `f{n}`) and a decision
/// needing all of them; returns the decision id.
async fn setup(
    client: &mut CommandServiceClient<Channel>,
    credentials: &Credentials,
    key: &str,
    approvers: &[usize],
) -> Result<String, String> {
    let owner = &credentials.entry("owner@bench.io")?;
    let driver = &credentials.entry("driver@bench.io")?;
    let functions: Vec<String> = approvers.iter().map(|n| format!("f{n}")).collect();
    client
        .create_initiative(with_entry(
            pb::CreateInitiativeRequest {
                key: key.into(),
                title: format!("Benchmark {key}"),
                required_functions: functions.clone(),
                ..Default::default()
            },
            owner,
        ))
        .await
        .map_err(|e| e.to_string())?;
    for (n, function) in approvers.iter().zip(&functions) {
        client
            .assign_stakeholder(with_entry(
                pb::AssignStakeholderRequest {
                    initiative: key.into(),
                    principal: format!("approver{n}@bench.io"),
                    function: function.clone(),
                    role: pb::Role::Approver.into(),
                    ..Default::default()
                },
                owner,
            ))
            .await
            .map_err(|e| e.to_string())?;
    }
    client
        .assign_stakeholder(with_entry(
            pb::AssignStakeholderRequest {
                initiative: key.into(),
                principal: "driver@bench.io".into(),
                function: "product".into(),
                role: pb::Role::Driver.into(),
                ..Default::default()
            },
            owner,
        ))
        .await
        .map_err(|e| e.to_string())?;
    let decision = client
        .propose_decision(with_entry(
            pb::ProposeDecisionRequest {
                initiative: key.into(),
                content: Some(pb::DecisionContent {
                    title: "Use Stripe for payments".into(),
                    proposal: "Integrate Stripe Checkout.".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            driver,
        ))
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    Ok(decision.created_id)
}

async fn run(
    url: &str,
    route: &DatabaseRoute,
    auth: Auth,
    clients: usize,
    seconds: u64,
    shared: bool,
) -> Result<(f64, f64, u64), String> {
    // A fresh store for every run; dropped on the direct connection, which a pooler
    // holds no server connection of.
    let direct = route.direct_url.as_deref().unwrap_or(url);
    if let Some(path) = url.strip_prefix("sqlite://") {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    } else if Postgres::database_exists(direct).await.map_err(|e| e.to_string())? {
        if route.direct_url.is_some() {
            // The pooler keeps server connections to the database open: close them.
            Postgres::force_drop_database(direct).await.map_err(|e| e.to_string())?;
        } else {
            Postgres::drop_database(direct).await.map_err(|e| e.to_string())?;
        }
    }
    let store = Store::open_routed(url, route, 64, DatabaseTimeouts::default()).await.map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut actors: Vec<String> = (0..clients).map(|n| format!("approver{n}@bench.io")).collect();
    actors.extend(["owner@bench.io".to_owned(), "driver@bench.io".to_owned()]);
    let credentials = Credentials::new(auth, &actors)?;
    let options = ServerOptions {
        authenticator: credentials.authenticator.clone(),
        limits: Limits { max_concurrent_calls: 4096, ..Limits::default() },
        ..ServerOptions::local_development()
    };
    let feed_before = feed_batches(&store);
    let metrics_store = store.clone();
    let server = tokio::spawn(accord::server::serve_with(listener, store, options, async move {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(format!("http://{address}")).map_err(|e| e.to_string())?.connect_lazy();
    let mut admin = CommandServiceClient::new(channel.clone());

    let mut targets = Vec::new();
    if shared {
        let all: Vec<usize> = (0..clients).collect();
        let decision = setup(&mut admin, &credentials, "BENCH-0", &all).await?;
        targets.extend((0..clients).map(|n| ("BENCH-0".to_owned(), decision.clone(), n)));
    } else {
        for n in 0..clients {
            let key = format!("BENCH-{n}");
            let decision = setup(&mut admin, &credentials, &key, &[n]).await?;
            targets.push((key, decision, n));
        }
    }

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = targets
        .into_iter()
        .map(|(key, decision, n)| {
            let entry = credentials.entry(&format!("approver{n}@bench.io"));
            // One HTTP/2 connection per client, as separate callers would have.
            let channel = Channel::from_shared(format!("http://{address}")).map(|c| c.connect_lazy());
            tokio::spawn(async move {
                let (Ok(channel), Ok(entry)) = (channel, entry) else { return (0u64, Duration::ZERO, 1u64) };
                let mut client = CommandServiceClient::new(channel);
                let (mut done, mut busy, mut failed) = (0u64, Duration::ZERO, 0u64);
                while Instant::now() < deadline {
                    let request = pb::RecordSignOffRequest {
                        initiative: key.clone(),
                        decision_id: decision.clone(),
                        function: format!("f{n}"),
                        verdict: pb::Verdict::Approve.into(),
                        comment: "Looks good to me, the API boundary is clear and the rollout plan covers the risks."
                            .into(),
                        ..Default::default()
                    };
                    let started = Instant::now();
                    match client.record_sign_off(with_entry(request, &entry)).await {
                        Ok(_) => done += 1,
                        Err(_) => failed += 1,
                    }
                    busy += started.elapsed();
                }
                (done, busy, failed)
            })
        })
        .collect();
    let started = Instant::now();
    let mut total = 0u64;
    let mut busy = Duration::ZERO;
    let mut failed = 0u64;
    for worker in workers {
        let (done, time, errors) = worker.await.map_err(|e| e.to_string())?;
        total += done;
        busy += time;
        failed += errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    let _ = server.await;
    let latency_ms = if total > 0 { busy.as_secs_f64() * 1000.0 / total as f64 } else { 0.0 };
    let feed_after = feed_batches(&metrics_store);
    // How the live feed learnt of the writes: handed over by the committer, or read
    // back from the log (a read per batch would mean the hand-off is not working).
    println!(
        "accord-feed  clients={clients:<3} handoff_batches={} log_pages={}",
        feed_after.0.saturating_sub(feed_before.0),
        feed_after.1.saturating_sub(feed_before.1)
    );
    Ok((total as f64 / elapsed, latency_ms, failed))
}

/// The live feed's batches so far (this process's metrics): (handed over, read from the log).
fn feed_batches(store: &Store) -> (u64, u64) {
    let text = accord::metrics::render(store);
    let count = |source: &str| {
        text.lines()
            .filter(|line| line.starts_with("accord_feed_batches_applied_total") && line.contains(source))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    (count("\"handoff\""), count("\"log\""))
}

/// Microseconds the authenticator spends on one bearer token: the first time it sees it
/// (signature and claims) and again (a JWT is then served from the verified-token cache).
fn verification_cost(auth: Auth) -> Result<(f64, f64), String> {
    let actor = "approver0@bench.io".to_owned();
    let credentials = Credentials::new(auth, std::slice::from_ref(&actor))?;
    const CALLS: usize = 2_000;
    // Distinct tokens (a different jti each) so that none is a cache hit.
    let fresh: Vec<String> = (0..CALLS).map(|n| credentials.token(&actor, n)).collect::<Result<_, _>>()?;
    let started = Instant::now();
    for token in &fresh {
        std::hint::black_box(credentials.authenticator.authenticate_token(token).map_err(|e| e.to_string())?);
    }
    let first = started.elapsed().as_secs_f64() * 1e6 / CALLS as f64;
    let again = &fresh[0];
    let started = Instant::now();
    for _ in 0..CALLS * 10 {
        std::hint::black_box(credentials.authenticator.authenticate_token(again).map_err(|e| e.to_string())?);
    }
    Ok((first, started.elapsed().as_secs_f64() * 1e6 / (CALLS * 10) as f64))
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("signoff bench: {message}");
            std::process::exit(2);
        }
    };
    // The server's CPU cost of establishing a caller, without the network or the database.
    for &auth in args.auth.iter().filter(|a| **a != Auth::None) {
        match verification_cost(auth) {
            Ok((first, again)) => {
                println!("auth-verify      auth={:<13} us_first_call={first:.2} us_again={again:.2}", auth.name())
            }
            Err(message) => eprintln!("signoff bench: {message}"),
        }
    }
    let mut summary = Summary::default();
    for (&(clients, shared), &auth) in args.plan.iter().flat_map(|p| args.auth.iter().map(move |a| (p, a))) {
        match run(&args.database_url, &args.route, auth, clients, args.seconds, shared).await {
            Ok((rate, latency, failed)) => {
                println!(
                    "accord-signoff{}  auth={:<13} clients={clients:<3} cmds/s={rate:<10.1} latency_ms={latency:.3} failed={failed}",
                    if shared { "-shared" } else { "" },
                    auth.name()
                );
                if auth == args.auth[0] {
                    summary.record(clients, shared, Figure { rate, latency, failed });
                }
            }
            Err(message) => {
                eprintln!("signoff bench: {message}");
                std::process::exit(1);
            }
        }
    }
    println!("{}", summary.line());
}

/// One run's result: commands per second, mean latency in ms, failed commands.
#[derive(Clone, Copy)]
struct Figure {
    rate: f64,
    latency: f64,
    failed: u64,
}

/// The figures the summary line reports, as far as they were run.
#[derive(Default)]
struct Summary {
    c1: Option<Figure>,
    c16: Option<Figure>,
    shared: Option<Figure>,
}

impl Summary {
    fn record(&mut self, clients: usize, shared: bool, figure: Figure) {
        match (clients, shared) {
            (1, false) => self.c1 = Some(figure),
            (16, false) => self.c16 = Some(figure),
            (16, true) => self.shared = Some(figure),
            // Other client counts are printed above but not part of the summary.
            _ => {}
        }
    }

    fn line(&self) -> String {
        let rate = |figure: Option<Figure>| figure.map_or_else(|| "na".to_owned(), |f| format!("{:.1}", f.rate));
        let latency = |figure: Option<Figure>| figure.map_or_else(|| "na".to_owned(), |f| format!("{:.3}", f.latency));
        let failed: u64 = [self.c1, self.c16, self.shared].iter().flatten().map(|f| f.failed).sum();
        format!(
            "signoff-summary c1_cmds={} c16_cmds={} c1_ms={} shared_cmds={} c16_ms={} shared_ms={} failed={failed}",
            rate(self.c1),
            rate(self.c16),
            latency(self.c1),
            rate(self.shared),
            latency(self.c16),
            latency(self.shared),
        )
    }
}
