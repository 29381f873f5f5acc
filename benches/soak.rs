//! Soak: a bounded run of mixed load through two replicas while they crash and their
//! database restarts, to show memory, file descriptors, pool use and latency stay flat
//! and that no acknowledged command is lost. Not a CI test: run it by hand.
//!
//!   cargo bench --bench soak -- [--minutes 30] [--kill-every SECONDS] [--port 5499]
//!       [--writers 4] [--initiatives 24] [--markdown FILE]
//!
//! It never touches the shared PostgreSQL: it creates a throw-away cluster of its own
//! (`initdb` from /usr/lib/postgresql/15/bin into a temporary folder, port --port, trust
//! authentication, fsync on; as the `postgres` user when run as root) and removes it at
//! the end, also after Ctrl-C, SIGTERM or a failure. On it run two `accord serve`
//! replicas (the release binary) on fixed loopback ports, so that clients reconnect to a
//! restarted replica by themselves. The load, on both replicas at once:
//! - --writers tasks per replica sending commands of every kind (sign-offs and their
//!   revocation, feedback — one command in a hundred with a 16,000-character body — and its
//!   resolution, proposals, revisions, acceptances, stage changes, updates,
//!   assignments) on --initiatives initiatives;
//! - one query task per replica (GetAlignment, ListAlignments, GetDecision, GetInbox,
//!   one initiative's ReadEvents);
//! - per replica one watcher that reads every update (reconnecting with its last
//!   position) and one that never reads.
//!
//! Every --kill-every seconds (default: a quarter of the run, at most 180 s) one replica,
//! in turn, is killed with SIGKILL and started again; once, near the middle of the run,
//! the database is restarted (`pg_ctl restart -m fast`). Every minute each replica's
//! RSS (/proc/PID/status), open file descriptors (/proc/PID/fd) and pool connections
//! (its /metrics) are sampled with the minute's calls, p99 latency and errors by code.
//! At the end every acknowledged command must be in the log exactly once, ending at the
//! version and position it was acknowledged with, and `Verify` must pass. The per-minute
//! table and the summary are printed as markdown (and written to --markdown).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accord::proto as pb;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use pb::alignment_service_client::AlignmentServiceClient;
use pb::audit_service_client::AuditServiceClient;
use pb::command_service_client::CommandServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};

use common::{Actor, DRIVER, FUNCTIONS, OWNER, accord_command, approver, staffed_initiative};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const APPROVERS: usize = 3;
const DASHBOARD: &str = "dashboard@example.com";
const AUDITOR: &str = "auditor@example.com";
/// The body of every fifth feedback: large, below the 20,000-character limit.
const LARGE_BODY: usize = 16_000;

type Commands = CommandServiceClient<InterceptedService<Channel, Actor>>;

// ---- Arguments --------------------------------------------------------------------------

struct Args {
    minutes: u64,
    kill_every: Option<u64>,
    port: u16,
    writers: usize,
    initiatives: usize,
    markdown: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { minutes: 30, kill_every: None, port: 5499, writers: 4, initiatives: 24, markdown: None };
    let mut it = std::env::args().skip(1);
    fn number<T: std::str::FromStr>(flag: &str, value: Option<String>) -> Result<T, String> {
        let value = value.ok_or(format!("{flag} needs a value"))?;
        value.parse().map_err(|_| format!("bad {flag} {value}"))
    }
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--minutes" => args.minutes = number("--minutes", it.next())?,
            "--kill-every" => args.kill_every = Some(number("--kill-every", it.next())?),
            "--port" => args.port = number("--port", it.next())?,
            "--writers" => args.writers = number("--writers", it.next())?,
            "--initiatives" => args.initiatives = number("--initiatives", it.next())?,
            "--markdown" => args.markdown = Some(it.next().ok_or("--markdown needs a file")?.into()),
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.minutes == 0 || args.writers == 0 || args.initiatives == 0 {
        return Err("--minutes, --writers and --initiatives must be at least 1".into());
    }
    Ok(args)
}

// ---- The soak's own PostgreSQL cluster ----------------------------------------------

/// A PostgreSQL cluster in a temporary folder, stopped and removed when dropped.
struct Cluster {
    folder: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    fn data(&self) -> PathBuf {
        self.folder.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/soak", self.port)
    }

    /// Runs a PostgreSQL program, as the `postgres` user when we are root (initdb and
    /// the server refuse to run as root).
    fn run(program: &str, args: &[&str]) -> Result<(), String> {
        let path = format!("{PG_BIN}/{program}");
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--", &path]);
            command
        } else {
            Command::new(&path)
        };
        let output =
            command.args(args).stdin(Stdio::null()).output().map_err(|e| format!("cannot run {program}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    fn create(port: u16) -> Result<Cluster, String> {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            return Err(format!("port {port} is taken: choose another with --port"));
        }
        let folder = tempfile::Builder::new()
            .prefix("accord-soak-pg-")
            .tempdir()
            .map_err(|e| format!("no temporary folder: {e}"))?;
        let cluster = Cluster { folder, port };
        if is_root() {
            let owned = Command::new("chown").args(["postgres:postgres"]).arg(cluster.folder.path()).status();
            if !owned.is_ok_and(|s| s.success()) {
                return Err("cannot give the cluster's folder to the postgres user".into());
            }
        }
        let data = cluster.data();
        let data = data.to_str().ok_or("the temporary folder is not UTF-8")?;
        Cluster::run("initdb", &["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"])?;
        let socket_dir = cluster.folder.path().to_str().ok_or("not UTF-8")?.to_owned();
        let settings = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{socket_dir}'\n\
             fsync = on\nmax_connections = 200\nlogging_collector = off\n"
        );
        let conf = cluster.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).map_err(|e| format!("postgresql.conf: {e}"))?;
        text.push_str(&settings);
        std::fs::write(&conf, text).map_err(|e| format!("postgresql.conf: {e}"))?;
        cluster.pg_ctl(&["start"])?;
        Ok(cluster)
    }

    fn pg_ctl(&self, action: &[&str]) -> Result<(), String> {
        let data = self.data();
        let log = self.folder.path().join("postgres.log");
        let (data, log) = (data.to_str().unwrap_or_default(), log.to_str().unwrap_or_default());
        let mut args = vec!["-D", data, "-l", log, "-w", "-t", "60"];
        args.extend_from_slice(action);
        Cluster::run("pg_ctl", &args)
    }

    /// The one database restart of the run: every connection breaks.
    fn restart(&self) -> Result<(), String> {
        self.pg_ctl(&["-m", "fast", "restart"])
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "stop"]);
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

// ---- Replicas ------------------------------------------------------------------------------

/// An `accord serve` child process on fixed ports, which can be killed and started again.
struct Replica {
    name: &'static str,
    grpc: u16,
    http: u16,
    database_url: String,
    workdir: PathBuf,
    child: Mutex<Option<Child>>,
    started: Mutex<Instant>,
    restarts: AtomicU32,
    channel: Channel,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

impl Replica {
    async fn start(name: &'static str, database_url: &str, workdir: &Path) -> Result<Arc<Replica>, String> {
        let grpc = free_port();
        let channel = Channel::from_shared(format!("http://127.0.0.1:{grpc}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30))
            .connect_lazy();
        let replica = Arc::new(Replica {
            name,
            grpc,
            http: free_port(),
            database_url: database_url.to_owned(),
            workdir: workdir.to_owned(),
            child: Mutex::new(None),
            started: Mutex::new(Instant::now()),
            restarts: AtomicU32::new(0),
            channel,
        });
        replica.spawn().await?;
        Ok(replica)
    }

    async fn spawn(&self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.workdir.join(format!("replica-{}.log", self.name)))
            .map_err(|e| e.to_string())?;
        let child = accord_command()
            .current_dir(&self.workdir)
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.grpc)])
            .args(["--http-listen", &format!("127.0.0.1:{}", self.http)])
            .args(["--database-url", &self.database_url, "--log", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("replica {} does not start: {e}", self.name))?;
        *self.child.lock().unwrap() = Some(child);
        *self.started.lock().unwrap() = Instant::now();
        // Ready once its HTTP listener answers /metrics (it opens after the store).
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.metrics().await.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("replica {} did not answer within 60 s (see its log in {})", self.name, self.workdir.display()))
    }

    /// SIGKILL and reap.
    fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn restart(&self) -> Result<(), String> {
        self.kill();
        self.restarts.fetch_add(1, Ordering::Relaxed);
        self.spawn().await
    }

    fn pid(&self) -> Option<u32> {
        self.child.lock().unwrap().as_ref().map(Child::id)
    }

    fn commands(&self, actor: &str) -> Commands {
        CommandServiceClient::with_interceptor(self.channel.clone(), Actor::new(actor))
    }

    fn queries(&self) -> AlignmentServiceClient<InterceptedService<Channel, Actor>> {
        AlignmentServiceClient::with_interceptor(self.channel.clone(), Actor::new(DASHBOARD))
    }

    fn audit(&self) -> AuditServiceClient<InterceptedService<Channel, Actor>> {
        AuditServiceClient::with_interceptor(self.channel.clone(), Actor::new(AUDITOR))
    }

    /// The replica's /metrics text, if it answers.
    async fn metrics(&self) -> Option<String> {
        let client: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let uri = format!("http://127.0.0.1:{}/metrics", self.http).parse().ok()?;
        let response = tokio::time::timeout(Duration::from_secs(5), client.get(uri)).await.ok()?.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = response.into_body().collect().await.ok()?.to_bytes();
        String::from_utf8(body.to_vec()).ok()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---- What the load records ---------------------------------------------------------------

/// A command the server acknowledged.
struct Ack {
    command_id: String,
    initiative: String,
    version: u64,
    position: u64,
}

/// The calls of one minute.
#[derive(Default)]
struct Minute {
    latencies_ms: Vec<f64>,
    errors: BTreeMap<String, u64>,
}

/// The first message seen for each error code, for the report.
static FIRST_MESSAGES: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

struct Record {
    started: Instant,
    minutes: Mutex<Vec<Minute>>,
    acks: Mutex<Vec<Ack>>,
    /// Command ids whose outcome is unknown (the call failed): written once or not at all.
    unknown: Mutex<Vec<String>>,
    /// What happened in each minute: kills, restarts.
    happenings: Mutex<BTreeMap<usize, Vec<String>>>,
}

impl Record {
    fn minute(&self) -> usize {
        (self.started.elapsed().as_secs() / 60) as usize
    }

    fn call<T>(&self, since: Instant, result: &Result<T, Status>) {
        let minute = self.minute();
        let mut minutes = self.minutes.lock().unwrap();
        while minutes.len() <= minute {
            minutes.push(Minute::default());
        }
        minutes[minute].latencies_ms.push(since.elapsed().as_secs_f64() * 1e3);
        if let Err(status) = result {
            let code = format!("{:?}", status.code());
            FIRST_MESSAGES
                .lock()
                .unwrap()
                .entry(code.clone())
                .or_insert_with(|| status.message().chars().take(100).collect());
            *minutes[minute].errors.entry(code).or_default() += 1;
        }
    }

    fn happened(&self, what: String) {
        eprintln!("soak: {:>5.0} s: {what}", self.started.elapsed().as_secs_f64());
        self.happenings.lock().unwrap().entry(self.minute()).or_default().push(what);
    }
}

// ---- The load ----------------------------------------------------------------------------

/// What the writers know of an initiative: its open decision and its latest feedback.
struct Target {
    id: String,
    decision: Mutex<String>,
    feedback: Mutex<Option<(String, String)>>,
}

fn content(title: String, proposal: &str) -> Option<pb::DecisionContent> {
    Some(pb::DecisionContent {
        title,
        context: "The soak's decisions.".to_owned(),
        options: vec!["Stripe".to_owned(), "Adyen".to_owned()],
        proposal: proposal.to_owned(),
        rationale: "It is the simplest.".to_owned(),
    })
}

/// Sends the `i`-th command of a writer; returns the outcome and the command id.
async fn write(replica: &Replica, target: &Target, i: usize) -> (String, Result<pb::CommandResponse, Status>) {
    let command_id = uuid::Uuid::now_v7().to_string();
    let options = Some(pb::CommandOptions { command_id: command_id.clone(), expected_version: None });
    let function = FUNCTIONS[i % FUNCTIONS.len()];
    let who = approver(function, (i / FUNCTIONS.len()) % APPROVERS);
    let initiative = target.id.clone();
    let decision = target.decision.lock().unwrap().clone();
    let result = match i % 20 {
        0..=5 => {
            let reject = i % 20 == 5;
            replica
                .commands(&who)
                .record_sign_off(pb::RecordSignOffRequest {
                    options,
                    initiative,
                    decision_id: decision,
                    function: function.to_owned(),
                    verdict: if reject { pb::Verdict::Reject } else { pb::Verdict::Approve }.into(),
                    reason: if reject { "Numbers missing.".to_owned() } else { String::new() },
                    comment: format!("soak {i}"),
                    revision: None,
                })
                .await
        }
        6..=9 => {
            // One command in a hundred carries a large body.
            let large = i % 100 == 6;
            let body =
                if large { "Long feedback. ".repeat(LARGE_BODY / 15) } else { format!("Feedback {i} from {who}.") };
            let kind = [pb::FeedbackKind::Comment, pb::FeedbackKind::Concern, pb::FeedbackKind::Objection][i % 3];
            let result = replica
                .commands(&who)
                .record_feedback(pb::RecordFeedbackRequest {
                    options,
                    initiative,
                    decision_id: decision,
                    function: function.to_owned(),
                    kind: kind.into(),
                    source: pb::FeedbackSource::Customer.into(),
                    body,
                })
                .await;
            if let Ok(response) = &result {
                *target.feedback.lock().unwrap() = Some((response.get_ref().created_id.clone(), who.clone()));
            }
            result
        }
        10 | 11 => {
            let Some((feedback_id, author)) = target.feedback.lock().unwrap().clone() else {
                return (command_id, Err(Status::failed_precondition("no feedback yet")));
            };
            replica
                .commands(&author)
                .resolve_feedback(pb::ResolveFeedbackRequest {
                    options,
                    initiative,
                    feedback_id,
                    resolution: "Addressed.".to_owned(),
                })
                .await
        }
        12 | 13 => {
            let material = i.is_multiple_of(2);
            replica
                .commands(DRIVER)
                .revise_decision(pb::ReviseDecisionRequest {
                    options,
                    initiative,
                    decision_id: decision,
                    kind: if material { pb::RevisionKind::Material } else { pb::RevisionKind::Editorial }.into(),
                    content: content(format!("Revised {i}"), "Integrate Stripe Checkout, revised."),
                    required_functions: vec![],
                    note: "Soak revision.".to_owned(),
                })
                .await
        }
        14 => {
            let result = replica
                .commands(DRIVER)
                .propose_decision(pb::ProposeDecisionRequest {
                    options,
                    initiative,
                    content: content(format!("Decision {i}"), "Do it."),
                    required_functions: vec![],
                    supersedes: String::new(),
                })
                .await;
            if let Ok(response) = &result {
                *target.decision.lock().unwrap() = response.get_ref().created_id.clone();
            }
            result
        }
        15 => {
            replica
                .commands(&who)
                .revoke_sign_off(pb::RevokeSignOffRequest {
                    options,
                    initiative,
                    decision_id: decision,
                    function: function.to_owned(),
                })
                .await
        }
        16 => {
            replica
                .commands(DRIVER)
                .accept_decision(pb::AcceptDecisionRequest {
                    options,
                    initiative,
                    decision_id: decision,
                    override_reason: "The soak accepts it.".to_owned(),
                })
                .await
        }
        17 => {
            let stage = [pb::Stage::Definition, pb::Stage::Delivery][i / 20 % 2];
            replica
                .commands(OWNER)
                .change_stage(pb::ChangeStageRequest { options, initiative, stage: stage.into() })
                .await
        }
        18 => {
            replica
                .commands(OWNER)
                .update_initiative(pb::UpdateInitiativeRequest {
                    options,
                    initiative,
                    title: Some(format!("Soak initiative, update {i}")),
                    summary: None,
                    owner: None,
                    required_functions: vec![],
                })
                .await
        }
        _ => {
            replica
                .commands(OWNER)
                .assign_stakeholder(pb::AssignStakeholderRequest {
                    options,
                    initiative,
                    principal: format!("contributor-{}@example.com", i % 7),
                    function: "legal".to_owned(),
                    role: pb::Role::Contributor.into(),
                })
                .await
        }
    };
    (command_id, result.map(tonic::Response::into_inner))
}

async fn writer(
    replica: Arc<Replica>,
    targets: Arc<Vec<Target>>,
    task: usize,
    stop: Arc<AtomicBool>,
    record: Arc<Record>,
) {
    let mut i = task * 7;
    while !stop.load(Ordering::Relaxed) {
        let target = &targets[(task * 5 + i) % targets.len()];
        let since = Instant::now();
        let (command_id, result) = write(&replica, target, i).await;
        record.call(since, &result);
        match result {
            Ok(response) => record.acks.lock().unwrap().push(Ack {
                command_id,
                initiative: response.initiative_id,
                version: response.stream_version,
                position: response.global_position,
            }),
            // A refusal (bad input, a rule, a conflict) writes nothing; a failure of the
            // call (the replica died, the database restarted) may have written it.
            Err(status)
                if matches!(
                    status.code(),
                    Code::InvalidArgument
                        | Code::NotFound
                        | Code::AlreadyExists
                        | Code::FailedPrecondition
                        | Code::PermissionDenied
                        | Code::Aborted
                ) => {}
            Err(_) => {
                record.unknown.lock().unwrap().push(command_id);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        i += 1;
    }
}

async fn querier(replica: Arc<Replica>, targets: Arc<Vec<Target>>, stop: Arc<AtomicBool>, record: Arc<Record>) {
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let target = &targets[i % targets.len()];
        let since = Instant::now();
        let result = match i % 5 {
            0 => replica
                .queries()
                .get_alignment(pb::GetAlignmentRequest { initiative: target.id.clone() })
                .await
                .map(drop),
            1 => replica
                .queries()
                .list_alignments(pb::ListAlignmentsRequest { page_size: 20, ..Default::default() })
                .await
                .map(drop),
            2 => {
                let decision_id = target.decision.lock().unwrap().clone();
                let request = pb::GetDecisionRequest { initiative: target.id.clone(), decision_id };
                replica.queries().get_decision(request).await.map(drop)
            }
            3 => {
                let principal = approver(FUNCTIONS[i % 3], i % APPROVERS);
                replica.queries().get_inbox(pb::GetInboxRequest { principal }).await.map(drop)
            }
            _ => read_history(&replica, &target.id).await,
        };
        record.call(since, &result);
        if result.is_err() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        i += 1;
    }
}

/// One initiative's whole history, until caught up.
async fn read_history(replica: &Replica, initiative: &str) -> Result<(), Status> {
    let request = pb::ReadEventsRequest { initiative: initiative.to_owned(), ..Default::default() };
    let mut stream = replica.audit().read_events(request).await?.into_inner();
    while let Some(response) = stream.message().await? {
        if matches!(response.item, Some(pb::read_events_response::Item::CaughtUp(_))) {
            break;
        }
    }
    Ok(())
}

/// A watcher that reads every update, reconnecting with its last position.
async fn watcher(replica: Arc<Replica>, stop: Arc<AtomicBool>, updates: Arc<std::sync::atomic::AtomicU64>) {
    let mut after_position = 0;
    while !stop.load(Ordering::Relaxed) {
        let request = pb::WatchAlignmentsRequest { after_position, ..Default::default() };
        if let Ok(response) = replica.queries().watch_alignments(request).await {
            let mut stream = response.into_inner();
            while let Ok(Some(update)) = stream.message().await {
                if update.position > 0 {
                    after_position = update.position;
                }
                updates.fetch_add(1, Ordering::Relaxed);
                if stop.load(Ordering::Relaxed) {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A watcher that never reads: its stream is opened and held.
async fn stalled_watcher(replica: &Replica) -> Option<tonic::Streaming<pb::AlignmentUpdate>> {
    let request = pb::WatchAlignmentsRequest::default();
    replica.queries().watch_alignments(request).await.ok().map(tonic::Response::into_inner)
}

// ---- Samples -------------------------------------------------------------------------

struct Sample {
    rss_mib: f64,
    fds: usize,
    pool_in_use: f64,
    pool_idle: f64,
    uptime_s: u64,
}

fn proc_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn proc_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
}

async fn sample(replica: &Replica) -> Option<Sample> {
    let pid = replica.pid()?;
    let metrics = replica.metrics().await.unwrap_or_default();
    Some(Sample {
        rss_mib: proc_rss_mib(pid)?,
        fds: proc_fds(pid)?,
        pool_in_use: metric(&metrics, "accord_db_pool_connections{state=\"in_use\"}").unwrap_or(f64::NAN),
        pool_idle: metric(&metrics, "accord_db_pool_connections{state=\"idle\"}").unwrap_or(f64::NAN),
        uptime_s: replica.started.lock().unwrap().elapsed().as_secs(),
    })
}

fn p99(latencies: &mut [f64]) -> f64 {
    if latencies.is_empty() {
        return 0.0;
    }
    latencies.sort_by(f64::total_cmp);
    latencies[((latencies.len() as f64 * 0.99).ceil() as usize).saturating_sub(1).min(latencies.len() - 1)]
}

// ---- The run -------------------------------------------------------------------------------

struct Report {
    markdown: String,
    failures: Vec<String>,
}

async fn run(args: &Args) -> Result<Report, String> {
    let total = Duration::from_secs(args.minutes * 60);
    let kill_every = Duration::from_secs(args.kill_every.unwrap_or((args.minutes * 60 / 4).clamp(20, 180)));
    let workdir = tempfile::Builder::new().prefix("accord-soak-").tempdir().map_err(|e| e.to_string())?;
    eprintln!("soak: PostgreSQL cluster of its own on 127.0.0.1:{}", args.port);
    let cluster = Cluster::create(args.port)?;
    let a = Replica::start("A", &cluster.url(), workdir.path()).await?;
    let b = Replica::start("B", &cluster.url(), workdir.path()).await?;
    let replicas = [a.clone(), b.clone()];
    eprintln!("soak: replicas A (gRPC {}, HTTP {}) and B (gRPC {}, HTTP {})", a.grpc, a.http, b.grpc, b.http);

    let mut targets = Vec::new();
    for n in 0..args.initiatives {
        let writer = &replicas[n % 2];
        let staffed = staffed_initiative(&writer.channel, &format!("SOAK-{n}"), APPROVERS).await;
        targets.push(Target { id: staffed.id, decision: Mutex::new(staffed.decision), feedback: Mutex::new(None) });
    }
    let targets = Arc::new(targets);

    let record = Arc::new(Record {
        started: Instant::now(),
        minutes: Mutex::new(Vec::new()),
        acks: Mutex::new(Vec::new()),
        unknown: Mutex::new(Vec::new()),
        happenings: Mutex::new(BTreeMap::new()),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let updates = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    let mut stalled = Vec::new();
    for replica in &replicas {
        for task in 0..args.writers {
            tasks.push(tokio::spawn(writer(replica.clone(), targets.clone(), task, stop.clone(), record.clone())));
        }
        tasks.push(tokio::spawn(querier(replica.clone(), targets.clone(), stop.clone(), record.clone())));
        tasks.push(tokio::spawn(watcher(replica.clone(), stop.clone(), updates.clone())));
        stalled.push(stalled_watcher(replica).await);
    }

    // Kills, the database restart and the samples, until the end.
    let db_restart_at = total / 2 + kill_every / 3;
    let mut db_restarted = false;
    let mut next_kill = kill_every;
    let mut next_sample = Duration::from_secs(60);
    let mut kills = 0usize;
    let mut samples: Vec<(usize, Vec<Option<Sample>>)> = Vec::new();
    loop {
        let now = record.started.elapsed();
        if now >= total {
            break;
        }
        if now >= next_kill {
            let victim = &replicas[kills % 2];
            record.happened(format!("kill -9 replica {}", victim.name));
            victim.restart().await?;
            stalled[kills % 2] = stalled_watcher(victim).await;
            record.happened(format!("replica {} restarted", victim.name));
            kills += 1;
            next_kill += kill_every;
        }
        if !db_restarted && now >= db_restart_at {
            record.happened("database restart (pg_ctl restart -m fast)".to_owned());
            cluster.restart()?;
            record.happened("database back".to_owned());
            db_restarted = true;
        }
        if now >= next_sample {
            let mut row = Vec::new();
            for replica in &replicas {
                row.push(sample(replica).await);
            }
            samples.push(((next_sample.as_secs() / 60) as usize - 1, row));
            next_sample += Duration::from_secs(60);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut row = Vec::new();
    for replica in &replicas {
        row.push(sample(replica).await);
    }
    if samples.last().is_none_or(|(minute, _)| *minute + 1 < args.minutes as usize) {
        samples.push((args.minutes as usize - 1, row));
    }
    stop.store(true, Ordering::Relaxed);
    drop(stalled);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(60), task).await;
    }

    // The end: every acknowledged command in the log once, where acknowledged; Verify.
    let acks = std::mem::take(&mut *record.acks.lock().unwrap());
    let unknown = std::mem::take(&mut *record.unknown.lock().unwrap());
    let mut failures = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let events = loop {
        let events = read_log(&a).await?;
        let ids: std::collections::HashSet<&str> = events.iter().map(|e| e.command_id.as_str()).collect();
        if acks.iter().all(|ack| ids.contains(ack.command_id.as_str())) || Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut by_command: HashMap<&str, Vec<&pb::StoredEvent>> = HashMap::new();
    for event in &events {
        by_command.entry(event.command_id.as_str()).or_default().push(event);
    }
    let (mut lost, mut misplaced) = (0, 0);
    for ack in &acks {
        match by_command.get(ack.command_id.as_str()) {
            None => lost += 1,
            Some(written) => {
                let last = written.last().expect("non-empty");
                let contiguous = written
                    .windows(2)
                    .all(|w| w[0].stream_id == w[1].stream_id && w[1].stream_version == w[0].stream_version + 1);
                if !contiguous
                    || (&last.stream_id, last.stream_version, last.position)
                        != (&ack.initiative, ack.version, ack.position)
                {
                    misplaced += 1;
                }
            }
        }
    }
    let landed = unknown.iter().filter(|id| by_command.contains_key(id.as_str())).count();
    let duplicated = unknown
        .iter()
        .filter_map(|id| by_command.get(id.as_str()))
        .filter(|w| w.windows(2).any(|w| w[1].stream_version != w[0].stream_version + 1))
        .count();
    if lost > 0 {
        failures.push(format!("{lost} acknowledged commands are not in the log"));
    }
    if misplaced > 0 {
        failures.push(format!("{misplaced} acknowledged commands are not where they were acknowledged, or twice"));
    }
    if duplicated > 0 {
        failures.push(format!("{duplicated} commands of unknown outcome are in the log twice"));
    }
    let verify = a.audit().verify(pb::VerifyRequest::default()).await.map_err(|e| format!("Verify: {e}"))?.into_inner();
    if !verify.ok {
        failures.push(format!("Verify found a break: {:?}", verify.first_break));
    }

    // The report.
    let happenings = record.happenings.lock().unwrap().clone();
    let mut minutes = std::mem::take(&mut *record.minutes.lock().unwrap());
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| min | A RSS MiB | A fds | A pool in use/idle | B RSS MiB | B fds | B pool in use/idle | calls | p99 ms | errors | events |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|");
    let cell = |s: &Option<Sample>| match s {
        Some(s) => (
            format!("{:.1} (up {} s)", s.rss_mib, s.uptime_s),
            s.fds.to_string(),
            format!("{}/{}", s.pool_in_use, s.pool_idle),
        ),
        None => ("–".into(), "–".into(), "–".into()),
    };
    let (mut rss, mut fds) = (Vec::new(), Vec::new());
    let mut p99s = Vec::new();
    for (minute, row) in &samples {
        let (a_rss, a_fds, a_pool) = cell(&row[0]);
        let (b_rss, b_fds, b_pool) = cell(&row[1]);
        for s in row.iter().flatten() {
            rss.push(s.rss_mib);
            fds.push(s.fds);
        }
        let calls = minutes.get(*minute).map_or(0, |m| m.latencies_ms.len());
        let p = minutes.get_mut(*minute).map_or(0.0, |m| p99(&mut m.latencies_ms));
        p99s.push(p);
        let errors = minutes.get(*minute).map_or(String::new(), |m| {
            m.errors.iter().map(|(code, n)| format!("{code} {n}")).collect::<Vec<_>>().join(", ")
        });
        let events = happenings.get(minute).map(|h| h.join("; ")).unwrap_or_default();
        let _ = writeln!(
            md,
            "| {} | {a_rss} | {a_fds} | {a_pool} | {b_rss} | {b_fds} | {b_pool} | {calls} | {p:.1} | {} | {events} |",
            minute + 1,
            if errors.is_empty() { "–" } else { &errors }
        );
    }
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let calls: usize = minutes.iter().map(|m| m.latencies_ms.len()).sum();
    let _ = writeln!(
        md,
        "\n{} minutes, two replicas, {} writers + 1 querier + 2 watchers each: {} calls, {} commands acknowledged \
         ({:.0}/s), {} of unknown outcome ({landed} of them in the log); {kills} kills, database restarted {}; \
         {} watcher updates. Lost acknowledgements: {lost}; misplaced or repeated: {misplaced}; Verify: {} ({} events, \
         {} initiatives). RSS {:.1}–{:.1} MiB, fds at most {}, p99 per minute {:.1}–{:.1} ms.",
        args.minutes,
        args.writers,
        calls,
        acks.len(),
        acks.len() as f64 / total.as_secs_f64(),
        unknown.len(),
        if db_restarted { "once" } else { "never" },
        updates.load(Ordering::Relaxed),
        if verify.ok { "OK" } else { "FAILED" },
        verify.events_checked,
        verify.streams_checked,
        min(&rss),
        max(&rss),
        fds.iter().max().unwrap_or(&0),
        min(&p99s),
        max(&p99s),
    );
    let _ = writeln!(md, "\nFirst error of each code:");
    for (code, message) in FIRST_MESSAGES.lock().unwrap().iter() {
        let _ = writeln!(md, "- {code}: {message}");
    }
    drop(replicas);
    drop(a);
    drop(b);
    drop(cluster);
    Ok(Report { markdown: md, failures })
}

/// The global log, in position order.
async fn read_log(replica: &Replica) -> Result<Vec<pb::StoredEvent>, String> {
    let mut stream = replica
        .audit()
        .read_events(pb::ReadEventsRequest::default())
        .await
        .map_err(|e| format!("ReadEvents: {e}"))?
        .into_inner();
    let mut events = Vec::new();
    while let Some(response) = stream.message().await.map_err(|e| format!("ReadEvents: {e}"))? {
        match response.item {
            Some(pb::read_events_response::Item::Event(event)) => events.push(event),
            Some(pb::read_events_response::Item::CaughtUp(_)) => break,
            None => {}
        }
    }
    Ok(events)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn interrupted() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminate = async {
        match term.as_mut() {
            Some(term) => {
                term.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("soak: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    // Dropping the run (on a signal) drops the cluster and the replicas, which stop them.
    let outcome = tokio::select! {
        outcome = run(&args) => outcome,
        _ = interrupted() => Err("interrupted; the replicas and the cluster are stopped and removed".to_owned()),
    };
    match outcome {
        Ok(report) => {
            println!("{}", report.markdown);
            if let Some(path) = &args.markdown
                && let Err(error) = std::fs::write(path, &report.markdown)
            {
                eprintln!("soak: cannot write {}: {error}", path.display());
            }
            if report.failures.is_empty() {
                std::process::ExitCode::SUCCESS
            } else {
                for failure in &report.failures {
                    eprintln!("soak: FAILED: {failure}");
                }
                std::process::ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("soak: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
