//! The server's memory stays bounded whatever its watchers do: a real `accord serve`
//! process (on each store) with clients that open a live stream and never read — a gRPC
//! client with a 4 KiB HTTP/2 receive window and raw TCP clients of the board's event
//! stream with a 4 KiB receive buffer — while writers append to an initiative whose
//! alignment view is as large as a view gets (50 open decisions with long titles, ten
//! approvers named per function, 60 open concerns of 5,000 characters). The server's
//! resident memory, read from /proc, stays under 256 MiB throughout; the feed's buffer of
//! recent changes stays within its byte bound; and a watcher that reads gets every change
//! in order and ends at the initiative's last version.

mod common;

use std::time::{Duration, Instant};

use accord::proto as pb;
use pb::alignment_service_client::AlignmentServiceClient;
use pb::alignment_update::Update;
use pb::command_service_client::CommandServiceClient;
use tokio::io::AsyncWriteExt;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use common::{Actor, DRIVER, FUNCTIONS, OWNER, ServeProcess, ThrowAwayDatabase, approver};

type Commands = CommandServiceClient<InterceptedService<Channel, Actor>>;

/// Writes after the set-up: each publishes a new view of the large initiative.
const WRITES: usize = 300;
/// Concurrent writers.
const WRITERS: usize = 4;
/// Clients of each kind that open a stream and never read.
const STALLED: usize = 8;
const RSS_LIMIT_BYTES: u64 = 256 * 1024 * 1024;
/// The feed's default bound on the bytes of recent changes it keeps (FeedBuffers).
const FEED_BUFFER_BYTES: f64 = 32.0 * 1024.0 * 1024.0;
/// How long the reading watcher may take to see the last write (a liveness bound only).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);

fn commands(channel: &Channel, actor: &str) -> Commands {
    CommandServiceClient::with_interceptor(channel.clone(), Actor::new(actor))
}

/// The server's resident set size, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server's /proc status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc status");
    kib * 1024
}

/// Creates the initiative with the largest view a client can make: a driver, ten
/// approvers per function, 50 open decisions with 200-character titles, 60 open
/// concerns of 5,000 characters. Returns its id.
async fn large_initiative(channel: &Channel) -> String {
    let created = commands(channel, OWNER)
        .create_initiative(pb::CreateInitiativeRequest {
            key: "LARGE-1".to_owned(),
            title: "An initiative with a view as large as views get".to_owned(),
            summary: "s".repeat(20_000),
            stage: pb::Stage::Definition.into(),
            ..Default::default()
        })
        .await
        .expect("create initiative")
        .into_inner();
    let id = created.initiative_id;
    let mut people = vec![(DRIVER.to_owned(), "product", pb::Role::Driver)];
    for function in FUNCTIONS {
        for n in 0..12 {
            people.push((approver(function, n), function, pb::Role::Approver));
        }
    }
    for (principal, function, role) in people {
        commands(channel, OWNER)
            .assign_stakeholder(pb::AssignStakeholderRequest {
                options: None,
                initiative: id.clone(),
                principal,
                function: function.to_owned(),
                role: role.into(),
            })
            .await
            .expect("assign stakeholder");
    }
    for n in 0..50 {
        commands(channel, DRIVER)
            .propose_decision(pb::ProposeDecisionRequest {
                options: None,
                initiative: id.clone(),
                content: Some(pb::DecisionContent {
                    title: format!("{n:03} {}", "t".repeat(190)),
                    context: "Context.".to_owned(),
                    options: vec!["A".to_owned(), "B".to_owned()],
                    proposal: "A".to_owned(),
                    rationale: "Because.".to_owned(),
                }),
                required_functions: vec![],
                supersedes: String::new(),
            })
            .await
            .expect("propose decision");
    }
    for n in 0..60 {
        commands(channel, &approver("engineering", 0))
            .record_feedback(pb::RecordFeedbackRequest {
                options: None,
                initiative: id.clone(),
                decision_id: String::new(),
                function: "engineering".to_owned(),
                kind: pb::FeedbackKind::Concern.into(),
                source: pb::FeedbackSource::Customer.into(),
                body: format!("{n:03} {}", "c".repeat(4_996)),
            })
            .await
            .expect("record concern");
    }
    id
}

/// A gRPC client with a 4 KiB HTTP/2 window (stream and connection) that opens
/// `WatchAlignments` and never reads the stream: held until dropped.
async fn stalled_grpc_watcher(address: &str) -> impl Sized {
    let channel = Endpoint::from_shared(address.to_owned())
        .expect("address")
        .initial_stream_window_size(Some(4096))
        .initial_connection_window_size(Some(4096))
        .connect()
        .await
        .expect("connect");
    let mut queries = AlignmentServiceClient::with_interceptor(channel, Actor::new("stalled@example.com"));
    let stream = queries.watch_alignments(pb::WatchAlignmentsRequest::default()).await.expect("watch").into_inner();
    (queries, stream)
}

/// A raw TCP client of the board's event stream with a 4 KiB receive buffer that sends
/// its request and never reads.
async fn stalled_sse_watcher(http_address: &str) -> tokio::net::TcpStream {
    let authority = http_address.trim_start_matches("http://");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("receive buffer");
    let mut stream = socket.connect(authority.parse().expect("socket address")).await.expect("connect");
    let request = format!("GET /api/watch HTTP/1.1\r\nHost: {authority}\r\nAccept: text/event-stream\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send the request");
    stream
}

/// The value of an unlabelled gauge in the server's Prometheus text.
async fn gauge(http_address: &str, name: &str) -> Option<f64> {
    let authority = http_address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(authority).await.ok()?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut body = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut body).await.ok()?;
    body.lines().find_map(|line| line.strip_prefix(&format!("{name} "))).and_then(|value| value.trim().parse().ok())
}

async fn memory_stays_bounded(server: ServeProcess) {
    let pid = server.child.id();
    let http = server.http_address().expect("the board's address in the log");
    let channel = Endpoint::from_shared(server.address.clone()).expect("address").connect().await.expect("connect");
    let id = large_initiative(&channel).await;

    // The reading watcher: every change, in order, to the last version.
    let mut reader = AlignmentServiceClient::with_interceptor(channel.clone(), Actor::new("reader@example.com"))
        .watch_alignments(pb::WatchAlignmentsRequest { initiatives: vec![id.clone()], ..Default::default() })
        .await
        .expect("watch")
        .into_inner();
    let mut stalled_grpc = Vec::new();
    let mut stalled_sse = Vec::new();
    for _ in 0..STALLED {
        stalled_grpc.push(stalled_grpc_watcher(&server.address).await);
        stalled_sse.push(stalled_sse_watcher(&http).await);
    }
    let baseline = rss_bytes(pid);

    let next_write = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (channel, id, next_write) = (channel.clone(), id.clone(), next_write.clone());
        writers.push(tokio::spawn(async move {
            let mut last = 0u64;
            let author = approver("design", writer);
            while next_write.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < WRITES {
                let write = pb::RecordFeedbackRequest {
                    options: None,
                    initiative: id.clone(),
                    decision_id: String::new(),
                    function: "design".to_owned(),
                    kind: pb::FeedbackKind::Comment.into(),
                    source: pb::FeedbackSource::Internal.into(),
                    body: "Noted.".to_owned(),
                };
                let written = commands(&channel, &author).record_feedback(write).await;
                last = last.max(written?.into_inner().stream_version);
            }
            Ok::<u64, tonic::Status>(last)
        }));
    }

    // Read while the writes go on, sampling the server's memory.
    let mut peak = baseline;
    let mut versions = Vec::new();
    let mut resyncs = 0usize;
    let mut writes_done = false;
    let mut last_version = u64::MAX;
    let started = Instant::now();
    loop {
        peak = peak.max(rss_bytes(pid));
        assert!(peak < RSS_LIMIT_BYTES, "the server's memory reached {} MiB", peak / (1024 * 1024));
        if !writes_done && writers.iter().any(|writer| writer.is_finished()) {
            writes_done = true;
            let mut highest = 0;
            for writer in writers.drain(..) {
                match writer.await.expect("writer") {
                    Ok(last) => highest = highest.max(last),
                    Err(status) => panic!("a write failed: {status:?}; the server's log:\n{}", server.log()),
                }
            }
            last_version = highest;
        }
        if versions.last().is_some_and(|version| *version == last_version) {
            break;
        }
        assert!(started.elapsed() < DELIVERY_TIMEOUT, "the reading watcher is stuck at {:?}", versions.last());
        let update = tokio::time::timeout(Duration::from_secs(1), reader.message()).await;
        let Ok(update) = update else { continue };
        match update.expect("the reading watcher's stream is healthy").and_then(|u| u.update) {
            Some(Update::Alignment(view)) => {
                assert!(view.open_concerns.len() <= 20 && view.counts.as_ref().map(|c| c.open_concerns) == Some(60));
                versions.push(view.version);
            }
            Some(Update::Resync(_)) => resyncs += 1,
            _ => {}
        }
    }
    peak = peak.max(rss_bytes(pid));
    let kept = gauge(&http, "accord_watch_buffer_bytes").await.expect("the feed's buffer gauge");
    println!(
        "rss: {} MiB before the writes, peak {} MiB; feed buffer {:.1} MiB; reader: {} views, {resyncs} resyncs",
        baseline / (1024 * 1024),
        peak / (1024 * 1024),
        kept / (1024.0 * 1024.0),
        versions.len()
    );
    assert!(peak < RSS_LIMIT_BYTES, "the server's memory peaked at {} MiB", peak / (1024 * 1024));
    assert!(kept <= FEED_BUFFER_BYTES, "the feed keeps {kept} bytes of changes");
    assert!(versions.windows(2).all(|pair| pair[0] < pair[1]), "versions in order, none twice");
    assert_eq!(versions.last(), Some(&last_version), "the reading watcher ends at the last write");
    // The stalled clients are still connected: they were not served by buffering.
    drop((stalled_grpc, stalled_sse));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_stays_bounded_with_watchers_that_never_read_on_sqlite() {
    let workdir = tempfile::tempdir().expect("workdir");
    let server = ServeProcess::spawn(workdir.path(), &[]).expect("accord serve");
    memory_stays_bounded(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_stays_bounded_with_watchers_that_never_read_on_postgres() {
    let workdir = tempfile::tempdir().expect("workdir");
    let database = ThrowAwayDatabase::new("accord_memory");
    let server = ServeProcess::spawn(workdir.path(), &["--database-url", &database.url]).expect("accord serve");
    memory_stays_bounded(server).await;
    drop(database);
}
