//! Load benchmark: sign-off commands per second through the real gRPC API over
//! loopback, against PostgreSQL, at several client counts. Compare the figures with
//! `../shared/bench/pg-baseline` run in the same sitting (see README, "Performance").
//!
//!   cargo bench --bench signoff -- [--clients 1,16] [--seconds 10] [--shared]
//!       [--database-url postgres://postgres@127.0.0.1:5432/accord_bench | sqlite:///tmp/accord-bench.db]
//!
//! Each client signs as its own approver. By default each client works on its own
//! initiative (appends to different streams proceed in parallel); with `--shared` all
//! clients sign on one initiative, so their commands serialise on its stream head.
//! The database is dropped and created afresh for each client count.

use std::time::{Duration, Instant};

use accord::proto::{self as pb, command_service_client::CommandServiceClient};
use accord::store::Store;
use sqlx::{Postgres, migrate::MigrateDatabase};
use tonic::{Request, metadata::MetadataValue, transport::Channel};

struct Args {
    clients: Vec<usize>,
    seconds: u64,
    shared: bool,
    database_url: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        clients: vec![1, 16],
        seconds: 10,
        shared: false,
        database_url: "postgres://postgres@127.0.0.1:5432/accord_bench".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--clients" => {
                let value = it.next().ok_or("--clients needs a value")?;
                args.clients = value
                    .split(',')
                    .map(|c| c.parse().map_err(|_| format!("bad client count {c}")))
                    .collect::<Result<_, _>>()?;
            }
            "--seconds" => {
                args.seconds = it.next().ok_or("--seconds needs a value")?.parse().map_err(|_| "bad --seconds")?
            }
            "--shared" => args.shared = true,
            "--database-url" => args.database_url = it.next().ok_or("--database-url needs a value")?,
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn with_actor<T>(message: T, actor: &str) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(value) = MetadataValue::try_from(actor) {
        request.metadata_mut().insert("x-accord-actor", value);
    }
    request
}

/// Creates an initiative with one approver per client (function `f{n}`) and a decision
/// needing all of them; returns the decision id.
async fn setup(
    client: &mut CommandServiceClient<Channel>,
    key: &str,
    approvers: &[usize],
) -> Result<String, tonic::Status> {
    let owner = "owner@bench.io";
    let functions: Vec<String> = approvers.iter().map(|n| format!("f{n}")).collect();
    client
        .create_initiative(with_actor(
            pb::CreateInitiativeRequest {
                key: key.into(),
                title: format!("Benchmark {key}"),
                required_functions: functions.clone(),
                ..Default::default()
            },
            owner,
        ))
        .await?;
    for (n, function) in approvers.iter().zip(&functions) {
        client
            .assign_stakeholder(with_actor(
                pb::AssignStakeholderRequest {
                    initiative: key.into(),
                    principal: format!("approver{n}@bench.io"),
                    function: function.clone(),
                    role: pb::Role::Approver.into(),
                    ..Default::default()
                },
                owner,
            ))
            .await?;
    }
    client
        .assign_stakeholder(with_actor(
            pb::AssignStakeholderRequest {
                initiative: key.into(),
                principal: "driver@bench.io".into(),
                function: "product".into(),
                role: pb::Role::Driver.into(),
                ..Default::default()
            },
            owner,
        ))
        .await?;
    let decision = client
        .propose_decision(with_actor(
            pb::ProposeDecisionRequest {
                initiative: key.into(),
                content: Some(pb::DecisionContent {
                    title: "Use Stripe for payments".into(),
                    proposal: "Integrate Stripe Checkout.".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "driver@bench.io",
        ))
        .await?
        .into_inner();
    Ok(decision.created_id)
}

async fn run(url: &str, clients: usize, seconds: u64, shared: bool) -> Result<(f64, f64, u64), String> {
    // A fresh store for every run.
    if let Some(path) = url.strip_prefix("sqlite://") {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    } else if Postgres::database_exists(url).await.map_err(|e| e.to_string())? {
        Postgres::drop_database(url).await.map_err(|e| e.to_string())?;
    }
    let store = Store::open(url, 64).await.map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(accord::server::serve(listener, store, async move {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(format!("http://{address}")).map_err(|e| e.to_string())?.connect_lazy();
    let mut admin = CommandServiceClient::new(channel.clone());

    let mut targets = Vec::new();
    if shared {
        let all: Vec<usize> = (0..clients).collect();
        let decision = setup(&mut admin, "BENCH-0", &all).await.map_err(|e| e.to_string())?;
        targets.extend((0..clients).map(|n| ("BENCH-0".to_owned(), decision.clone(), n)));
    } else {
        for n in 0..clients {
            let key = format!("BENCH-{n}");
            let decision = setup(&mut admin, &key, &[n]).await.map_err(|e| e.to_string())?;
            targets.push((key, decision, n));
        }
    }

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = targets
        .into_iter()
        .map(|(key, decision, n)| {
            // One HTTP/2 connection per client, as separate callers would have.
            let channel = Channel::from_shared(format!("http://{address}")).map(|c| c.connect_lazy());
            tokio::spawn(async move {
                let Ok(channel) = channel else { return (0u64, Duration::ZERO, 1u64) };
                let mut client = CommandServiceClient::new(channel);
                let (mut done, mut busy, mut failed) = (0u64, Duration::ZERO, 0u64);
                let actor = format!("approver{n}@bench.io");
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
                    match client.record_sign_off(with_actor(request, &actor)).await {
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
    Ok((total as f64 / elapsed, latency_ms, failed))
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
    for &clients in &args.clients {
        match run(&args.database_url, clients, args.seconds, args.shared).await {
            Ok((rate, latency, failed)) => println!(
                "accord-signoff{}  clients={clients:<3} cmds/s={rate:<10.1} latency_ms={latency:.3} failed={failed}",
                if args.shared { "-shared" } else { "" }
            ),
            Err(message) => {
                eprintln!("signoff bench: {message}");
                std::process::exit(1);
            }
        }
    }
}
