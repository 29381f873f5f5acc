//! High availability end to end: two real `accord serve` replicas on a real Patroni
//! cluster (tests/ha/cluster: three etcd members, three PostgreSQL 15 nodes with a
//! synchronous standby, HAProxy sending the replicas' one database URL to the leader),
//! under a steady load of commands from several clients while the leader dies or hands
//! over:
//!
//! - every acknowledged command is in the log exactly once, at the version and position
//!   it was acknowledged with (lost acknowledgements: 0);
//! - a caller never hangs and never gets a wrong answer: a command either is
//!   acknowledged or fails with UNAVAILABLE (or DEADLINE_EXCEEDED, within its
//!   deadline), and retrying it with the same command id appends it at most once (a
//!   retry of one that had committed after all is replayed);
//! - both replicas reconnect by themselves: they go on serving without a restart, and
//!   their live watchers, resumed from their last position when their stream ends,
//!   reach every initiative's final version, never seeing a version twice;
//! - the hash chain verifies afterwards (`AuditService.Verify`);
//! - the gap-free global read holds across a promotion: a commit held mid-transaction
//!   (its positions taken, its alignment row locked by another session) when the leader
//!   dies never appears behind a reader; a global `ReadEvents` follower, resumed after
//!   its last position, sees exactly a fresh read of the log, and the watchers are
//!   never sent an alignment behind a position they passed
//!   (`a_commit_in_flight_at_the_promotion_never_appears_behind_a_reader`).
//!
//! The unavailability window of each fault (first failed call to first acknowledged
//! one after it) is printed, with the median and maximum over the failovers.
//!
//! The cluster needs Debian's `patroni`, `etcd-server`, `haproxy` and PostgreSQL 15
//! (`tests/run` installs them). Each test builds its own cluster in a folder and on
//! ports of its own, and destroys it at the end, also when the test fails (its logs are
//! then kept, and the folder printed).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accord::proto as pb;
use pb::alignment_service_client::AlignmentServiceClient;
use pb::audit_service_client::AuditServiceClient;
use pb::command_service_client::CommandServiceClient;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Code, Status};

use common::{Actor, FUNCTIONS, OWNER, ServeProcess, StaffedInitiative, approver, staffed_initiative};

/// The cluster script.
const CLUSTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ha/cluster");
/// The deadline every load command is sent with.
const DEADLINE: Duration = Duration::from_secs(3);
/// How much later than its deadline a call may end before it counts as a hang.
const GRACE: Duration = Duration::from_millis(1500);
/// Load tasks (clients), spread over the two replicas.
const CLIENTS: usize = 4;
/// How long a client keeps retrying one command before the test gives up on it.
const RETRY_PATIENCE: Duration = Duration::from_secs(60);
/// Failovers (kill -9 of the leader) in one run.
const FAILOVERS: usize = 5;
/// How long the cluster and both replicas may take to be back after a fault.
const RECOVERY: Duration = Duration::from_secs(60);
/// One cluster at a time: the tests of this file run one after the other, so that two
/// clusters under load do not share the machine's cores.
static ONE_CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A Patroni cluster built by tests/ha/cluster in a folder of its own, destroyed when
/// dropped (only stopped, its logs kept, when the test is failing).
struct Cluster {
    dir: PathBuf,
    base: u16,
}

impl Cluster {
    /// The ports the script uses, as offsets from its base port.
    const OFFSETS: [u16; 15] = [0, 1, 2, 11, 12, 13, 21, 22, 23, 31, 32, 33, 41, 42, 43];

    /// Builds and starts a cluster; the leader takes writes and a synchronous standby
    /// follows it once this returns.
    fn start(name: &str) -> Cluster {
        let base = free_port_base();
        let dir = std::env::temp_dir().join(format!("accord-ha-test-{name}-{}", uuid::Uuid::now_v7().simple()));
        let cluster = Cluster { dir, base };
        let started = Instant::now();
        cluster.run(&["start"]);
        eprintln!("cluster {name} up in {:?} ({}, ports from {base})", started.elapsed(), cluster.dir.display());
        cluster
    }

    /// Runs the script with `args`; its standard output. Panics when it fails.
    fn run(&self, args: &[&str]) -> String {
        let output = Command::new(CLUSTER)
            .args(args)
            .env("ACCORD_HA_DIR", &self.dir)
            .env("ACCORD_HA_PORT_BASE", self.base.to_string())
            .env("ACCORD_HA_NODES", "3")
            .output()
            .unwrap_or_else(|e| panic!("{CLUSTER} does not run: {e}"));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "tests/ha/cluster {} failed ({}): {stderr}\n(it needs Debian's patroni, etcd-server, haproxy and \
             postgresql-15: tests/run installs them; logs in {}/log)",
            args.join(" "),
            output.status,
            self.dir.display()
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// `run` on a blocking thread, for async tests.
    async fn run_async(self: &Arc<Self>, args: &[&str]) -> String {
        let (cluster, args) = (self.clone(), args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        tokio::task::spawn_blocking(move || cluster.run(&args.iter().map(String::as_str).collect::<Vec<_>>()))
            .await
            .expect("the cluster script's thread")
    }

    /// A URL of `database` through HAProxy's primary port (the leader, wherever it is).
    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.base)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new(CLUSTER).arg("stop").env("ACCORD_HA_DIR", &self.dir).status();
            eprintln!("the cluster is stopped; its logs are in {}/log", self.dir.display());
        } else {
            let _ = Command::new(CLUSTER).arg("destroy").env("ACCORD_HA_DIR", &self.dir).status();
        }
    }
}

/// A base port whose whole block (`Cluster::OFFSETS`) is free now, below the kernel's
/// ephemeral range (where the tests' other servers take their ports) and away from
/// 5432. Tried from a place that depends on the process, so parallel runs differ.
fn free_port_base() -> u16 {
    let start = (std::process::id() % 200) as u16;
    for n in 0..200u16 {
        let base = 20_000 + ((start + n) % 200) * 50;
        if Cluster::OFFSETS.iter().all(|offset| TcpListener::bind(("127.0.0.1", base + offset)).is_ok()) {
            return base;
        }
    }
    panic!("no free block of ports for the cluster between 20000 and 30000");
}

/// One `accord serve` child process on the cluster, and a gRPC channel to it.
struct Replica {
    name: &'static str,
    process: Mutex<ServeProcess>,
    channel: Channel,
}

impl Replica {
    async fn start(name: &'static str, url: &str, workdir: &std::path::Path) -> Replica {
        let args = ["--database-url", url, "--log", "info"];
        let process = tokio::task::block_in_place(|| ServeProcess::spawn(workdir, &args))
            .unwrap_or_else(|log| panic!("replica {name} did not start; its log:\n{log}"));
        let channel = Channel::from_shared(process.address.clone())
            .expect("a URI")
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connect to replica {name}: {e}"));
        Replica { name, process: Mutex::new(process), channel }
    }

    fn commands(
        &self,
        actor: &str,
    ) -> CommandServiceClient<tonic::service::interceptor::InterceptedService<Channel, Actor>> {
        CommandServiceClient::with_interceptor(self.channel.clone(), Actor::new(actor))
    }

    fn audit(&self) -> AuditServiceClient<tonic::service::interceptor::InterceptedService<Channel, Actor>> {
        AuditServiceClient::with_interceptor(self.channel.clone(), Actor::new("auditor@example.com"))
    }

    /// Whether the process still runs (it was never restarted: it is the one spawned).
    fn running(&self) -> bool {
        self.process.lock().unwrap().child.try_wait().map(|status| status.is_none()).unwrap_or(false)
    }

    fn log(&self) -> String {
        self.process.lock().unwrap().log()
    }

    /// The whole global log, in order.
    async fn events(&self) -> Result<Vec<pb::StoredEvent>, Status> {
        let mut stream = self.audit().read_events(pb::ReadEventsRequest::default()).await?.into_inner();
        let mut events = Vec::new();
        while let Some(response) = stream.message().await? {
            match response.item {
                Some(pb::read_events_response::Item::Event(event)) => events.push(event),
                Some(pb::read_events_response::Item::CaughtUp(_)) => break,
                None => {}
            }
        }
        Ok(events)
    }
}

/// One command of the load, kept to be sent again (same command id) until acknowledged.
#[derive(Clone, Debug)]
enum Load {
    Feedback { command_id: String, initiative: StaffedInitiative, n: usize },
    Create { command_id: String, key: String },
}

impl Load {
    fn command_id(&self) -> &str {
        match self {
            Load::Feedback { command_id, .. } | Load::Create { command_id, .. } => command_id,
        }
    }

    /// Sends it once through `replica` with the load's deadline.
    async fn send(&self, replica: &Replica) -> Result<pb::CommandResponse, Status> {
        let options = Some(pb::CommandOptions { command_id: self.command_id().to_owned(), expected_version: None });
        let response = match self {
            Load::Feedback { initiative, n, .. } => {
                let function = FUNCTIONS[n % FUNCTIONS.len()];
                let mut request = tonic::Request::new(pb::RecordFeedbackRequest {
                    options,
                    initiative: initiative.id.clone(),
                    decision_id: initiative.decision.clone(),
                    function: function.to_owned(),
                    kind: pb::FeedbackKind::Comment.into(),
                    source: pb::FeedbackSource::Internal.into(),
                    body: format!("Comment {n} through the failovers."),
                });
                request.set_timeout(DEADLINE);
                replica.commands(&approver(function, 0)).record_feedback(request).await
            }
            Load::Create { key, .. } => {
                let mut request = tonic::Request::new(pb::CreateInitiativeRequest {
                    options,
                    key: key.clone(),
                    title: format!("Initiative {key}"),
                    summary: "Created through the failovers.".to_owned(),
                    owner: String::new(),
                    stage: pb::Stage::Discovery.into(),
                    required_functions: vec![],
                });
                request.set_timeout(DEADLINE);
                replica.commands(OWNER).create_initiative(request).await
            }
        };
        response.map(tonic::Response::into_inner)
    }
}

/// What one attempt at a command got.
#[derive(Clone, Debug)]
enum Answer {
    Ack(pb::CommandResponse),
    Failed(Code, String),
    /// No answer by the deadline and its grace: the call was abandoned.
    Hung,
}

#[derive(Clone, Debug)]
struct Attempt {
    client: usize,
    replica: &'static str,
    command_id: String,
    /// The attempt's number for this command id (0: the first).
    retry: usize,
    sent: Instant,
    done: Instant,
    answer: Answer,
}

/// The load: `CLIENTS` tasks, each on its own initiative and replica, sending commands
/// one after another and retrying each (same command id, a pause between) until it is
/// acknowledged, recording every attempt.
struct Clients {
    stop: Arc<AtomicBool>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Clients {
    fn start(replicas: &[Arc<Replica>], initiatives: &[StaffedInitiative]) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..CLIENTS)
            .map(|client| {
                let replica = replicas[client % replicas.len()].clone();
                let initiative = initiatives[client % initiatives.len()].clone();
                tokio::spawn(client_loop(client, replica, initiative, stop.clone(), attempts.clone()))
            })
            .collect();
        Clients { stop, attempts, tasks }
    }

    fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().unwrap().clone()
    }

    /// Waits until every client has had an acknowledgement sent after `since`.
    async fn wait_all_acked_since(&self, since: Instant, what: &str) {
        let deadline = Instant::now() + RECOVERY;
        loop {
            let attempts = self.attempts();
            let acked = (0..CLIENTS)
                .filter(|&c| {
                    attempts.iter().any(|a| a.client == c && a.sent >= since && matches!(a.answer, Answer::Ack(_)))
                })
                .count();
            if acked == CLIENTS {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: only {acked} of {CLIENTS} clients acknowledged after {RECOVERY:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the clients once each has its current command acknowledged.
    async fn stop(self) -> Vec<Attempt> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("a client task");
        }
        std::mem::take(&mut *self.attempts.lock().unwrap())
    }
}

async fn client_loop(
    client: usize,
    replica: Arc<Replica>,
    initiative: StaffedInitiative,
    stop: Arc<AtomicBool>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let command_id = uuid::Uuid::now_v7().to_string();
        let load = if n % 8 == 7 {
            Load::Create { command_id, key: format!("HA-C{client}-{n}") }
        } else {
            Load::Feedback { command_id, initiative: initiative.clone(), n }
        };
        let first = Instant::now();
        for retry in 0.. {
            let sent = Instant::now();
            let answer = match tokio::time::timeout(DEADLINE + GRACE, load.send(&replica)).await {
                Ok(Ok(response)) => Answer::Ack(response),
                Ok(Err(status)) => Answer::Failed(status.code(), status.message().to_owned()),
                Err(_) => Answer::Hung,
            };
            let acked = matches!(answer, Answer::Ack(_));
            attempts.lock().unwrap().push(Attempt {
                client,
                replica: replica.name,
                command_id: load.command_id().to_owned(),
                retry,
                sent,
                done: Instant::now(),
                answer,
            });
            if acked {
                break;
            }
            assert!(
                first.elapsed() < RETRY_PATIENCE,
                "client {client}: command {} not acknowledged after {RETRY_PATIENCE:?} of retries",
                load.command_id()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A `WatchAlignments` stream on one replica that resumes after its last position
/// whenever it ends (as it may when the replica loses the database), recording every
/// alignment it receives as (initiative, version, position).
struct Watcher {
    seen: Arc<Mutex<Vec<(String, u64, u64)>>>,
    ends: Arc<Mutex<Vec<String>>>,
    /// Alignments received at or below a position the watcher had already passed (the
    /// position it resumed after, or an earlier update's), outside a fresh snapshot.
    backwards: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Watcher {
    fn open(replica: Arc<Replica>) -> Watcher {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let ends = Arc::new(Mutex::new(Vec::new()));
        let backwards = Arc::new(Mutex::new(Vec::new()));
        let (sink, ended, behind) = (seen.clone(), ends.clone(), backwards.clone());
        let task = tokio::spawn(async move {
            let mut after_position = 0;
            // The highest position passed; a fresh snapshot (before its first
            // `caught_up`) is not checked against it.
            let mut passed = 0;
            let mut fresh = true;
            loop {
                let mut queries = AlignmentServiceClient::with_interceptor(
                    replica.channel.clone(),
                    Actor::new("dashboard@example.com"),
                );
                let request = pb::WatchAlignmentsRequest { after_position, ..Default::default() };
                let why = match queries.watch_alignments(request).await {
                    Err(status) => format!("refused: {:?} {}", status.code(), status.message()),
                    Ok(response) => {
                        let mut stream = response.into_inner();
                        loop {
                            match stream.message().await {
                                Ok(Some(update)) => {
                                    match update.update {
                                        Some(pb::alignment_update::Update::Alignment(view)) => {
                                            if !fresh && update.position <= passed {
                                                behind.lock().unwrap().push(format!(
                                                    "v{} of {} at p{} after p{passed}",
                                                    view.version, view.initiative_id, update.position
                                                ));
                                            }
                                            passed = passed.max(update.position);
                                            sink.lock().unwrap().push((
                                                view.initiative_id,
                                                view.version,
                                                update.position,
                                            ));
                                        }
                                        Some(pb::alignment_update::Update::CaughtUp(_)) => fresh = false,
                                        _ => {}
                                    }
                                    passed = passed.max(update.position);
                                    if update.position > 0 {
                                        after_position = update.position;
                                    }
                                }
                                Ok(None) => break "ended".to_owned(),
                                Err(status) => break format!("{:?}: {}", status.code(), status.message()),
                            }
                        }
                    }
                };
                ended.lock().unwrap().push(why);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Watcher { seen, ends, backwards, task }
    }

    /// The last version received per initiative.
    fn last_versions(&self) -> HashMap<String, u64> {
        let mut last = HashMap::new();
        for (initiative, version, _) in self.seen.lock().unwrap().iter() {
            last.insert(initiative.clone(), *version);
        }
        last
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One fault and its timing.
struct Fault {
    what: String,
    at: Instant,
}

/// What the callers saw of one fault.
struct Window {
    /// From the first failed attempt that ended after the fault to the first
    /// acknowledgement of an attempt sent after that failure (zero when none failed).
    unavailable: Duration,
    /// From the fault to that acknowledgement.
    since_fault: Duration,
    /// The slowest failed attempt.
    slowest_failure: Duration,
    /// The failures by code and message.
    codes: BTreeMap<String, usize>,
}

fn window(attempts: &[Attempt], fault: &Fault, next: Option<&Fault>) -> Window {
    let during = |a: &&Attempt| a.done >= fault.at && next.is_none_or(|n| a.done < n.at);
    let failed: Vec<&Attempt> =
        attempts.iter().filter(during).filter(|a| !matches!(a.answer, Answer::Ack(_))).collect();
    let mut codes = BTreeMap::new();
    for attempt in &failed {
        let code = match &attempt.answer {
            Answer::Failed(code, message) => format!("{code:?}: {}", message.chars().take(60).collect::<String>()),
            Answer::Hung => "no answer (hung)".to_owned(),
            Answer::Ack(_) => unreachable!(),
        };
        *codes.entry(code).or_default() += 1;
    }
    let slowest_failure = failed.iter().map(|a| a.done - a.sent).max().unwrap_or_default();
    let Some(first_failure) = failed.iter().map(|a| a.done).min() else {
        return Window { unavailable: Duration::ZERO, since_fault: Duration::ZERO, slowest_failure, codes };
    };
    let first_ack = attempts
        .iter()
        .filter(|a| a.sent >= first_failure && matches!(a.answer, Answer::Ack(_)))
        .map(|a| a.done)
        .min()
        .expect("an acknowledgement after the failures");
    Window { unavailable: first_ack - first_failure, since_fault: first_ack - fault.at, slowest_failure, codes }
}

/// The checks after the faults: answers, the log, the watchers, Verify, the replicas.
async fn check_outcome(replicas: &[Arc<Replica>], watchers: &[Watcher], attempts: &[Attempt], faults: &[Fault]) {
    // (a) Every failure is UNAVAILABLE or DEADLINE_EXCEEDED, in time; nothing hung.
    for attempt in attempts {
        let took = attempt.done - attempt.sent;
        match &attempt.answer {
            Answer::Ack(_) => {}
            Answer::Failed(Code::Unavailable | Code::DeadlineExceeded, _) => {
                assert!(took <= DEADLINE + GRACE, "a failure after {took:?}, past the deadline: {attempt:?}")
            }
            Answer::Failed(code, message) => panic!(
                "client {} on replica {}: {code:?} ({message}) for command {}: neither UNAVAILABLE nor DEADLINE_EXCEEDED",
                attempt.client, attempt.replica, attempt.command_id
            ),
            Answer::Hung => panic!(
                "client {} on replica {}: command {} had no answer within its deadline of {DEADLINE:?} (+{GRACE:?})",
                attempt.client, attempt.replica, attempt.command_id
            ),
        }
    }

    // (b) The log: every acknowledged command once, where it was acknowledged.
    let events = replicas[0].events().await.expect("read the log after the faults");
    let mut by_command: HashMap<&str, Vec<&pb::StoredEvent>> = HashMap::new();
    for event in &events {
        by_command.entry(event.command_id.as_str()).or_default().push(event);
    }
    let acks: Vec<(&Attempt, &pb::CommandResponse)> = attempts
        .iter()
        .filter_map(|a| match &a.answer {
            Answer::Ack(response) => Some((a, response)),
            _ => None,
        })
        .collect();
    let mut lost = Vec::new();
    for (attempt, ack) in &acks {
        let written = by_command.get(attempt.command_id.as_str()).map(Vec::as_slice).unwrap_or_default();
        let at_ack = written.iter().any(|e| {
            (e.stream_id.as_str(), e.stream_version, e.position)
                == (ack.initiative_id.as_str(), ack.stream_version, ack.global_position)
        });
        if !at_ack {
            lost.push(format!(
                "{} acknowledged at v{} p{}, in the log: {written:?}",
                attempt.command_id, ack.stream_version, ack.global_position
            ));
        }
    }
    // A command writes one event here (feedback, or a creation): twice is a duplicate.
    let duplicates: Vec<&&str> = by_command.iter().filter(|(_, e)| e.len() > 1).map(|(id, _)| id).collect();
    let retried: Vec<&(&Attempt, &pb::CommandResponse)> = acks.iter().filter(|(a, _)| a.retry > 0).collect();
    let replayed = retried.iter().filter(|(_, ack)| ack.replayed).count();
    eprintln!(
        "log: {} events; {} commands acknowledged ({} after retries, {replayed} of them replays of an attempt that \
         had failed but committed); lost acknowledgements: {}",
        events.len(),
        acks.len(),
        retried.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged commands not in the log where acknowledged: {lost:#?}");
    assert!(duplicates.is_empty(), "commands written more than once: {duplicates:?}");
    for (attempt, ack) in &acks {
        assert!(!ack.replayed || attempt.retry > 0, "a first attempt replayed: {attempt:?}");
    }

    // (c) The windows.
    let mut windows = Vec::new();
    for (i, fault) in faults.iter().enumerate() {
        let seen = window(attempts, fault, faults.get(i + 1));
        eprintln!(
            "{}: unavailable for {:.2?} (first failure to first acknowledgement after it), acknowledging again \
             {:.2?} after the fault; failures (the slowest after {:.2?}): {:?}",
            fault.what, seen.unavailable, seen.since_fault, seen.slowest_failure, seen.codes
        );
        windows.push(seen.unavailable);
    }
    windows.sort();
    if let (Some(median), Some(max)) = (windows.get(windows.len() / 2), windows.last()) {
        eprintln!("windows over {} faults: median {median:.2?}, max {max:.2?}", windows.len());
    }

    // (d) The watchers reach every initiative's final version, each version once.
    let mut finals: HashMap<&str, u64> = HashMap::new();
    for event in &events {
        finals.insert(event.stream_id.as_str(), event.stream_version);
    }
    let deadline = Instant::now() + RECOVERY;
    eprintln!("waiting for the watchers");
    for (replica, watcher) in replicas.iter().zip(watchers) {
        loop {
            let last = watcher.last_versions();
            if finals.iter().all(|(id, version)| last.get(*id) >= Some(version)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the watcher on replica {} did not reach every final version (its stream ended: {:?})",
                replica.name,
                watcher.ends.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let seen = watcher.seen.lock().unwrap().clone();
        let mut versions: HashMap<&str, u64> = HashMap::new();
        for (initiative, version, position) in &seen {
            let previous = versions.insert(initiative, *version);
            assert!(
                previous.is_none_or(|p| p < *version),
                "the watcher on replica {} went from v{previous:?} to v{version} of {initiative} at p{position}",
                replica.name
            );
        }
        let backwards = watcher.backwards.lock().unwrap().clone();
        assert!(
            backwards.is_empty(),
            "the watcher on replica {} was sent alignments behind a position it had passed: {backwards:?}",
            replica.name
        );
        let ends = watcher.ends.lock().unwrap().clone();
        eprintln!(
            "watcher on replica {}: {} updates, its stream ended {} times ({:?})",
            replica.name,
            seen.len(),
            ends.len(),
            ends.first()
        );
    }

    // (e) The hash chain verifies; both replicas serve, never restarted.
    let mut request = tonic::Request::new(pb::VerifyRequest { initiative: String::new() });
    request.set_timeout(Duration::from_secs(30));
    let verified = replicas[1].audit().verify(request).await.expect("Verify after the faults").into_inner();
    assert!(verified.ok, "Verify: {verified:?}");
    assert_eq!(verified.events_checked, events.len() as u64, "Verify checked the whole log");
    for replica in replicas {
        assert!(
            replica.running(),
            "replica {} is still the process started; its log:\n{}",
            replica.name,
            replica.log()
        );
    }
}

/// Two replicas on a fresh database of `cluster`, a staffed initiative per client, the
/// clients and a watcher per replica going.
async fn set_up(cluster: &Cluster, workdir: &std::path::Path) -> (Vec<Arc<Replica>>, Clients, Vec<Watcher>) {
    let url = cluster.url("accord_ha");
    // A first: it creates and migrates the database; B then opens it as it is.
    let a = Arc::new(Replica::start("A", &url, workdir).await);
    let b = Arc::new(Replica::start("B", &url, workdir).await);
    let replicas = vec![a, b];
    let mut initiatives = Vec::new();
    for client in 0..CLIENTS {
        initiatives.push(staffed_initiative(&replicas[client % 2].channel, &format!("HA-{client}"), 1).await);
    }
    let watchers = replicas.iter().map(|r| Watcher::open(r.clone())).collect();
    let clients = Clients::start(&replicas, &initiatives);
    clients.wait_all_acked_since(Instant::now(), "the load's start").await;
    (replicas, clients, watchers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failovers_under_load_lose_no_acknowledged_command() {
    let _one = ONE_CLUSTER.lock().await;
    let cluster = Arc::new(tokio::task::block_in_place(|| Cluster::start("failover")));
    let workdir = tempfile::tempdir().expect("temporary folder");
    let (replicas, clients, watchers) = set_up(&cluster, workdir.path()).await;

    let mut faults = Vec::new();
    for n in 0..FAILOVERS {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let at = Instant::now();
        let killed = cluster.run_async(&["kill-leader"]).await;
        faults.push(Fault { what: format!("failover {} (leader {killed} killed)", n + 1), at });
        // Patroni promotes the synchronous standby once the dead leader's key expires;
        // the clients, through both replicas, are acknowledged again.
        cluster.run_async(&["wait", "60"]).await;
        clients.wait_all_acked_since(Instant::now(), &format!("after failover {}", n + 1)).await;
        let leader = cluster.run_async(&["leader"]).await;
        eprintln!("failover {}: {killed} killed, {leader} leads after {:.2?}", n + 1, at.elapsed());
        // The old leader rejoins as a standby (pg_rewind), under the load.
        cluster.run_async(&["rejoin", &killed]).await;
        cluster.run_async(&["wait", "60"]).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let attempts = clients.stop().await;
    check_outcome(&replicas, &watchers, &attempts, &faults).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_switchover_under_load_loses_nothing_and_the_old_primary_follows() {
    let _one = ONE_CLUSTER.lock().await;
    let cluster = Arc::new(tokio::task::block_in_place(|| Cluster::start("switchover")));
    let workdir = tempfile::tempdir().expect("temporary folder");
    let (replicas, clients, watchers) = set_up(&cluster, workdir.path()).await;

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let old = cluster.run_async(&["leader"]).await;
    let at = Instant::now();
    let new = cluster.run_async(&["switchover"]).await;
    assert_ne!(new, old, "the switchover moved the leader");
    let faults = vec![Fault { what: format!("switchover {old} -> {new}"), at }];
    cluster.run_async(&["wait", "60"]).await;
    clients.wait_all_acked_since(Instant::now(), "after the switchover").await;
    // The old primary is a streaming standby of the new one, without a restart by hand.
    cluster.run_async(&["rejoin", &old]).await;
    eprintln!("switchover {old} -> {new}: the old primary streams from the new leader {:.2?} after", at.elapsed());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let attempts = clients.stop().await;
    check_outcome(&replicas, &watchers, &attempts, &faults).await;
}

/// A global `ReadEvents` follower (`follow: true`) on one replica that resumes after its
/// last position whenever its stream ends, recording every event as (position, event
/// id), and any event at or below a position it had already passed.
struct Follower {
    seen: Arc<Mutex<Vec<(u64, String)>>>,
    ends: Arc<Mutex<Vec<String>>>,
    backwards: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Follower {
    fn open(replica: Arc<Replica>) -> Follower {
        let seen: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
        let ends: Arc<Mutex<Vec<String>>> = Arc::default();
        let backwards: Arc<Mutex<Vec<String>>> = Arc::default();
        let (sink, ended, behind) = (seen.clone(), ends.clone(), backwards.clone());
        let task = tokio::spawn(async move {
            let mut after_position = 0;
            loop {
                let request = pb::ReadEventsRequest { after_position, follow: true, ..Default::default() };
                let why = match replica.audit().read_events(request).await {
                    Err(status) => format!("refused: {:?} {}", status.code(), status.message()),
                    Ok(response) => {
                        let mut stream = response.into_inner();
                        loop {
                            match stream.message().await {
                                Ok(Some(pb::ReadEventsResponse {
                                    item: Some(pb::read_events_response::Item::Event(event)),
                                })) => {
                                    if event.position <= after_position {
                                        behind.lock().unwrap().push(format!(
                                            "p{} ({} v{}) after p{after_position}",
                                            event.position, event.stream_id, event.stream_version
                                        ));
                                    } else {
                                        after_position = event.position;
                                    }
                                    sink.lock().unwrap().push((event.position, event.event_id));
                                }
                                Ok(Some(_)) => {}
                                Ok(None) => break "ended".to_owned(),
                                Err(status) => break format!("{:?}: {}", status.code(), status.message()),
                            }
                        }
                    }
                };
                ended.lock().unwrap().push(why);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Follower { seen, ends, backwards, task }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A command whose transaction straddles the promotion: a superuser session on the
/// leader locks the alignment row of an initiative (`FOR UPDATE`, its transaction left
/// open), so an append of that initiative, sent through replica A, takes the
/// commit-order lock and its positions and then waits, mid-transaction, while the load
/// goes on through both replicas (stalled behind the commit-order lock), a global
/// `ReadEvents` follower runs on replica B and a watcher on each. Then the leader is
/// killed. The stuck command's caller gets UNAVAILABLE (or its deadline), its retry with
/// the same command id appends it once; no reader ever sees an event or an alignment
/// appear behind a position it had passed, and the follower's sequence is exactly a
/// fresh read of the whole log; `check_outcome` holds as for the other faults.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_in_flight_at_the_promotion_never_appears_behind_a_reader() {
    use sqlx::Connection;
    let _one = ONE_CLUSTER.lock().await;
    let started = Instant::now();
    let cluster = Arc::new(tokio::task::block_in_place(|| Cluster::start("straddle")));
    let workdir = tempfile::tempdir().expect("temporary folder");
    let (replicas, clients, watchers) = set_up(&cluster, workdir.path()).await;
    let straddling = staffed_initiative(&replicas[0].channel, "STRADDLE", 1).await;
    let follower = Follower::open(replicas[1].clone());
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let url = cluster.url("accord_ha");
    let mut holder = sqlx::PgConnection::connect(&url).await.expect("a superuser session on the leader");
    let mut admin = sqlx::PgConnection::connect(&url).await.expect("a second session on the leader");
    let holder_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut holder).await.expect("pid");
    sqlx::query("BEGIN").execute(&mut holder).await.expect("BEGIN");
    let locked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM alignment WHERE initiative_id = $1::uuid FOR UPDATE) AS row",
    )
    .bind(&straddling.id)
    .fetch_one(&mut holder)
    .await
    .expect("lock the alignment row");
    assert_eq!(locked, 1, "the straddling initiative's alignment row is locked");

    let stuck = Load::Feedback { command_id: uuid::Uuid::now_v7().to_string(), initiative: straddling.clone(), n: 0 };
    let stuck_task = {
        let (stuck, replica) = (stuck.clone(), replicas[0].clone());
        tokio::spawn(async move {
            let Load::Feedback { command_id, initiative, .. } = &stuck else { unreachable!() };
            let mut request = tonic::Request::new(pb::RecordFeedbackRequest {
                options: Some(pb::CommandOptions { command_id: command_id.clone(), expected_version: None }),
                initiative: initiative.id.clone(),
                decision_id: initiative.decision.clone(),
                function: FUNCTIONS[0].to_owned(),
                kind: pb::FeedbackKind::Comment.into(),
                source: pb::FeedbackSource::Internal.into(),
                body: "Comment 0 through the failovers.".to_owned(),
            });
            request.set_timeout(Duration::from_secs(40));
            let sent = Instant::now();
            let answer = replica.commands(&approver(FUNCTIONS[0], 0)).record_feedback(request).await;
            (answer.map(tonic::Response::into_inner), sent.elapsed())
        })
    };
    // The append waits on the row, after its positions: no other append can take any
    // while it holds the commit-order lock, so they are the ones the sequence handed
    // out past the last committed event.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)) AND query LIKE 'WITH ev AS%'",
        )
        .bind(holder_pid)
        .fetch_one(&mut admin)
        .await
        .expect("pg_stat_activity");
        if waiting > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the straddling append never waited on the locked row");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (committed, handed_out): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT coalesce(max(position), 0) FROM events), (SELECT last_value FROM events_position_seq)",
    )
    .fetch_one(&mut admin)
    .await
    .expect("the positions taken");
    assert!(handed_out > committed, "the waiting append has taken positions ({committed} committed, {handed_out})");
    let followed_before = follower.seen.lock().unwrap().last().map(|(p, _)| *p).unwrap_or_default();
    eprintln!(
        "the straddling append waits mid-transaction holding positions {}..={handed_out} (the follower is at p{followed_before})",
        committed + 1
    );
    // The load stalls behind the commit-order lock for a moment, then the leader dies.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let at = Instant::now();
    let killed = cluster.run_async(&["kill-leader"]).await;
    let faults = vec![Fault { what: format!("failover with a commit in flight (leader {killed} killed)"), at }];
    drop((holder, admin));

    let (answer, took) = tokio::time::timeout(Duration::from_secs(50), stuck_task)
        .await
        .expect("the straddling command is answered")
        .expect("its task");
    let first = match &answer {
        Ok(ack) => {
            panic!("the straddling command was acknowledged although its row was locked until the leader died: {ack:?}")
        }
        Err(status) => {
            assert!(
                matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
                "the straddling command failed with {:?} ({}): neither UNAVAILABLE nor DEADLINE_EXCEEDED",
                status.code(),
                status.message()
            );
            format!("{:?} ({}) after {took:.2?}, {:.2?} after the kill", status.code(), status.message(), at.elapsed())
        }
    };
    eprintln!("the straddling command: {first}");
    cluster.run_async(&["wait", "60"]).await;
    clients.wait_all_acked_since(Instant::now(), "after the failover").await;
    let leader = cluster.run_async(&["leader"]).await;
    eprintln!("{killed} killed, {leader} leads after {:.2?}", at.elapsed());

    // Its retry, same command id, through the other replica: appended once.
    let retried = Instant::now();
    let ack = loop {
        match stuck.send(&replicas[1]).await {
            Ok(ack) => break ack,
            Err(status) => assert!(
                matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded)
                    && retried.elapsed() < RETRY_PATIENCE,
                "the straddling command's retry: {:?} ({})",
                status.code(),
                status.message()
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "its retry: acknowledged at v{} p{} (replayed: {}) {:.2?} after the kill",
        ack.stream_version,
        ack.global_position,
        ack.replayed,
        at.elapsed()
    );

    tokio::time::sleep(Duration::from_millis(1000)).await;
    let attempts = clients.stop().await;
    check_outcome(&replicas, &watchers, &attempts, &faults).await;

    let events = replicas[0].events().await.expect("the whole log");
    let written: Vec<&pb::StoredEvent> = events.iter().filter(|e| e.command_id == stuck.command_id()).collect();
    assert_eq!(written.len(), 1, "the straddling command is in the log once: {written:?}");
    assert_eq!(
        (written[0].stream_version, written[0].position),
        (ack.stream_version, ack.global_position),
        "where its retry was acknowledged"
    );
    let reused = events.iter().filter(|e| (committed + 1..=handed_out).contains(&(e.position as i64))).count();
    eprintln!(
        "positions {}..={handed_out} of the append that died: {reused} used by events after the promotion",
        committed + 1
    );

    // The follower reaches the end of the log and saw exactly the log, in order.
    let full: Vec<(u64, String)> = events.iter().map(|e| (e.position, e.event_id.clone())).collect();
    let last = full.last().map(|(p, _)| *p).unwrap_or_default();
    let deadline = Instant::now() + RECOVERY;
    while follower.seen.lock().unwrap().last().map(|(p, _)| *p) < Some(last) {
        assert!(
            Instant::now() < deadline,
            "the follower did not reach p{last} (its stream ended: {:?})",
            follower.ends.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let backwards = follower.backwards.lock().unwrap().clone();
    assert!(backwards.is_empty(), "the follower was sent events behind a position it had passed: {backwards:?}");
    let seen = follower.seen.lock().unwrap().clone();
    if seen != full {
        let at = seen.iter().zip(&full).position(|(a, b)| a != b).unwrap_or(seen.len().min(full.len()));
        panic!(
            "the follower's sequence differs from a fresh read of the log at entry {at}: followed {:?}, read {:?} \
             ({} followed, {} read)",
            seen.get(at),
            full.get(at),
            seen.len(),
            full.len()
        );
    }
    let ends = follower.ends.lock().unwrap().clone();
    eprintln!(
        "follower on replica B: {} events, exactly the log; its stream ended {} times ({:?}); whole test {:.1} s",
        seen.len(),
        ends.len(),
        ends.first(),
        started.elapsed().as_secs_f64()
    );
}

/// Backups and point-in-time recovery with pgBackRest (the cluster script's `backup` and
/// `restore-pitr`): commands written through Accord, a full backup, more commands, a
/// signed checkpoint exported, a time T, then a superuser's bad `DELETE` of one
/// initiative's events (its triggers disabled) that HA copies to every standby at once.
/// T restored into a new standalone server: the deleted events are back and
/// `accord audit verify --checkpoints` passes there against the exported checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_point_in_time_before_a_bad_delete_is_restored_and_verifies() {
    let _one = ONE_CLUSTER.lock().await;
    let started = Instant::now();
    let cluster = Arc::new(tokio::task::block_in_place(|| Cluster::start("pitr")));
    let url = cluster.url("accord");
    let keys = tempfile::tempdir().expect("a folder");
    let key = keys.path().join("checkpoint.key");
    let made = common::accord_command()
        .args(["audit", "keygen", "--name", "accord.example/pitr", "-o"])
        .arg(&key)
        .output()
        .expect("accord audit keygen");
    assert!(made.status.success(), "keygen: {}", String::from_utf8_lossy(&made.stderr));
    let verifier = String::from_utf8_lossy(&made.stdout).trim().to_owned();
    let key_arg = key.to_str().expect("a UTF-8 path").to_owned();
    let workdir = tempfile::tempdir().expect("a folder");
    let serve = |url: &str| {
        let args = ["--database-url", url, "--checkpoint-key", key_arg.as_str(), "--log", "info"];
        tokio::task::block_in_place(|| ServeProcess::spawn(workdir.path(), &args))
            .unwrap_or_else(|log| panic!("accord serve did not start; its log:\n{log}"))
    };
    let cli = |address: &str, args: &[&str]| {
        let output = common::accord_command()
            .args(["--server", address, "--as", OWNER])
            .args(args)
            .output()
            .expect("the accord CLI runs");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr),
        )
    };

    let server = serve(&url);
    let channel = Channel::from_shared(server.address.clone()).expect("a URI").connect().await.expect("connect");
    let sign_off = |initiative: StaffedInitiative, function: &'static str| {
        let channel = channel.clone();
        async move {
            CommandServiceClient::with_interceptor(channel, Actor::new(&approver(function, 0)))
                .record_sign_off(pb::RecordSignOffRequest {
                    options: None,
                    initiative: initiative.id.clone(),
                    decision_id: initiative.decision.clone(),
                    function: function.to_owned(),
                    verdict: pb::Verdict::Approve.into(),
                    reason: String::new(),
                    comment: "Before the backup.".to_owned(),
                    revision: None,
                })
                .await
                .expect("sign-off")
        }
    };
    let first = staffed_initiative(&channel, "PITR-1", 1).await;
    sign_off(first.clone(), FUNCTIONS[0]).await;
    let backup = Instant::now();
    cluster.run_async(&["backup", "full"]).await;
    let backup = backup.elapsed();
    let second = staffed_initiative(&channel, "PITR-2", 1).await;
    sign_off(second.clone(), FUNCTIONS[1]).await;
    let (code, out) = cli(&server.address, &["audit", "checkpoint", "create"]);
    assert_eq!(code, Some(0), "checkpoint create: {out}");
    let kept = keys.path().join("kept.jsonl");
    let (code, out) = cli(&server.address, &["audit", "checkpoint", "export", "-o", kept.to_str().expect("path")]);
    assert_eq!(code, Some(0), "checkpoint export: {out}");

    let mut admin = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&url).await.expect("a superuser session on the leader")
    };
    let before = count_events(&mut admin).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let target: String =
        sqlx::query_scalar("SELECT now()::text").fetch_one(&mut admin).await.expect("the time T on the leader");
    tokio::time::sleep(Duration::from_secs(1)).await;
    for statement in [
        "ALTER TABLE events DISABLE TRIGGER USER".to_owned(),
        format!("DELETE FROM events WHERE stream_id = '{}'", first.id),
        "ALTER TABLE events ENABLE TRIGGER USER".to_owned(),
    ] {
        sqlx::query(&statement).execute(&mut admin).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    let after = count_events(&mut admin).await;
    assert!(after < before, "the bad DELETE removed events ({before} → {after})");
    let (code, out) = cli(&server.address, &["audit", "verify"]);
    assert_ne!(code, Some(0), "the damaged log does not verify: {out}");
    // Recovery to T needs a commit after T in the archive.
    let segment: String = sqlx::query_scalar("SELECT pg_walfile_name(pg_switch_wal())")
        .fetch_one(&mut admin)
        .await
        .expect("pg_switch_wal");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let archived: Option<String> = sqlx::query_scalar("SELECT last_archived_wal FROM pg_stat_archiver")
            .fetch_one(&mut admin)
            .await
            .expect("pg_stat_archiver");
        if archived.is_some_and(|a| a >= segment) {
            break;
        }
        assert!(Instant::now() < deadline, "WAL segment {segment} was not archived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(admin);
    drop(server);

    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let restored_dir = cluster.dir.join("restored");
    let restore = Instant::now();
    cluster.run_async(&["restore-pitr", &target, restored_dir.to_str().expect("path"), &port.to_string()]).await;
    let restore = restore.elapsed();
    let stop_restored = StopRestored(cluster.clone(), restored_dir.clone());
    let restored_url = format!("postgres://postgres@127.0.0.1:{port}/accord");
    let mut restored = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&restored_url).await.expect("a session on the restored server")
    };
    assert_eq!(count_events(&mut restored).await, before, "every event written before T is back");
    drop(restored);
    let server = serve(&restored_url);
    let (code, out) =
        cli(&server.address, &["audit", "verify", "--checkpoints", kept.to_str().expect("path"), "--key", &verifier]);
    assert_eq!(code, Some(0), "verify against the kept checkpoint on the restored server: {out}");
    let (code, out) = cli(&server.address, &["audit", "verify"]);
    assert_eq!(code, Some(0), "verify on the restored server: {out}");
    drop(server);
    drop(stop_restored);
    eprintln!(
        "pitr: backup {:.1} s, restore {:.1} s, whole test {:.1} s",
        backup.as_secs_f64(),
        restore.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

async fn count_events(session: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(session).await.expect("count events")
}

/// Stops the server `restore-pitr` started (also when the test fails).
struct StopRestored(Arc<Cluster>, PathBuf);

impl Drop for StopRestored {
    fn drop(&mut self) {
        let _ = Command::new(CLUSTER).arg("stop-restored").arg(&self.1).env("ACCORD_HA_DIR", &self.0.dir).status();
    }
}
