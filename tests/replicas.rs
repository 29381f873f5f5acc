//! Replicas end to end: several real `accord serve` processes on ONE PostgreSQL
//! database, driven over gRPC in local development mode, checking what
//! `AlignmentService.WatchAlignments` promises across processes and crashes:
//!
//! - every acknowledged command is in the log, even when the replica that acknowledged
//!   it is killed (SIGKILL) moments later;
//! - a watcher sees, per initiative, strictly increasing versions at strictly increasing
//!   positions, each view being the initiative's alignment at that version, ending at
//!   its final version — whichever replica the writes went through;
//! - a watcher that reconnects (to another replica) with the last position it received
//!   gets exactly the initiatives changed after it, once each: nothing missed, nothing
//!   twice;
//! - a write on one replica reaches a watcher on another (LISTEN/NOTIFY);
//! - a write on one replica is read through another at once when the read names the
//!   write's position (`x-accord-min-position`), though reads come from each replica's
//!   own feed.
//!
//! Timings are printed for information only; the only time limits are generous
//! timeouts on delivery.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accord::proto as pb;
use futures::StreamExt;
use pb::alignment_service_client::AlignmentServiceClient;
use pb::audit_service_client::AuditServiceClient;
use pb::command_service_client::CommandServiceClient;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};

use common::{
    Actor, DRIVER, FUNCTIONS, ServeProcess, StaffedInitiative as Initiative, ThrowAwayDatabase, approver,
    staffed_initiative,
};

type Commands = CommandServiceClient<InterceptedService<Channel, Actor>>;
type Queries = AlignmentServiceClient<InterceptedService<Channel, Actor>>;
type Audit = AuditServiceClient<InterceptedService<Channel, Actor>>;

const DASHBOARD: &str = "dashboard@example.com";
const AUDITOR: &str = "auditor@example.com";
const APPROVERS_PER_FUNCTION: usize = 3;
/// How long an update may take to reach a watcher before the test gives up. Generous:
/// this is a liveness check, not a latency figure.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// One `accord serve` child process and a gRPC channel to it.
struct Replica {
    name: &'static str,
    process: Mutex<ServeProcess>,
    channel: Channel,
}

impl Replica {
    async fn start(name: &'static str, url: &str, workdir: &Path) -> Replica {
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

    fn commands(&self, actor: &str) -> Commands {
        CommandServiceClient::with_interceptor(self.channel.clone(), Actor::new(actor))
    }

    fn queries(&self) -> Queries {
        AlignmentServiceClient::with_interceptor(self.channel.clone(), Actor::new(DASHBOARD))
    }

    fn audit(&self) -> Audit {
        AuditServiceClient::with_interceptor(self.channel.clone(), Actor::new(AUDITOR))
    }

    /// SIGKILL: no graceful shutdown, no goodbye to the watchers.
    fn kill(&self) {
        tokio::task::block_in_place(|| self.process.lock().unwrap().kill());
    }

    async fn alignment(&self, initiative: &str) -> pb::InitiativeAlignment {
        self.queries()
            .get_alignment(pb::GetAlignmentRequest { initiative: initiative.to_owned() })
            .await
            .unwrap_or_else(|e| panic!("GetAlignment {initiative} on replica {}: {e}", self.name))
            .into_inner()
    }

    /// GetAlignment at least as new as global position `position`.
    async fn alignment_after(&self, initiative: &str, position: u64) -> pb::InitiativeAlignment {
        let mut request = tonic::Request::new(pb::GetAlignmentRequest { initiative: initiative.to_owned() });
        let value = position.to_string().parse().expect("ASCII digits");
        request.metadata_mut().insert(accord::grpc::queries::MIN_POSITION_HEADER, value);
        self.queries()
            .get_alignment(request)
            .await
            .unwrap_or_else(|e| panic!("GetAlignment {initiative} after {position} on replica {}: {e}", self.name))
            .into_inner()
    }

    async fn alignment_at(&self, initiative: &str, version: u64) -> pb::InitiativeAlignment {
        self.audit()
            .get_alignment_as_of(pb::GetAlignmentAsOfRequest {
                initiative: initiative.to_owned(),
                at: Some(pb::get_alignment_as_of_request::At::Version(version)),
            })
            .await
            .unwrap_or_else(|e| panic!("GetAlignmentAsOf {initiative} version {version}: {e}"))
            .into_inner()
    }

    /// The whole global log, in position order.
    async fn log(&self) -> Vec<pb::StoredEvent> {
        let mut stream = self
            .audit()
            .read_events(pb::ReadEventsRequest::default())
            .await
            .unwrap_or_else(|e| panic!("ReadEvents on replica {}: {e}", self.name))
            .into_inner();
        let mut events = Vec::new();
        while let Some(response) = stream.message().await.expect("read the log") {
            match response.item {
                Some(pb::read_events_response::Item::Event(event)) => events.push(event),
                Some(pb::read_events_response::Item::CaughtUp(_)) => break,
                None => {}
            }
        }
        events
    }
}

/// The `i`-th command of the load on `initiative`: mostly sign-offs (approvals and
/// rejections by different approvers), some feedback, now and then a new decision.
async fn load_command(
    replica: &Replica,
    initiative: &Initiative,
    i: usize,
    command_id: &str,
) -> Result<pb::CommandResponse, Status> {
    let options = Some(pb::CommandOptions { command_id: command_id.to_owned(), expected_version: None });
    let function = FUNCTIONS[i % FUNCTIONS.len()];
    let who = approver(function, (i / FUNCTIONS.len()) % APPROVERS_PER_FUNCTION);
    let response = match i % 6 {
        0..=3 => {
            let reject = i % 6 == 3;
            replica
                .commands(&who)
                .record_sign_off(pb::RecordSignOffRequest {
                    options,
                    initiative: initiative.id.clone(),
                    decision_id: initiative.decision.clone(),
                    function: function.to_owned(),
                    verdict: if reject { pb::Verdict::Reject } else { pb::Verdict::Approve }.into(),
                    reason: if reject { "Not yet: numbers missing.".to_owned() } else { String::new() },
                    comment: format!("load {i}"),
                    revision: None,
                })
                .await
        }
        4 => {
            replica
                .commands(&who)
                .record_feedback(pb::RecordFeedbackRequest {
                    options,
                    initiative: initiative.id.clone(),
                    decision_id: initiative.decision.clone(),
                    function: function.to_owned(),
                    kind: pb::FeedbackKind::Comment.into(),
                    source: pb::FeedbackSource::Internal.into(),
                    body: format!("Comment {i} from {who}."),
                })
                .await
        }
        _ => {
            replica
                .commands(DRIVER)
                .propose_decision(pb::ProposeDecisionRequest {
                    options,
                    initiative: initiative.id.clone(),
                    content: Some(pb::DecisionContent {
                        title: format!("Follow-up {i}"),
                        proposal: "Integrate Stripe Checkout.".to_owned(),
                        ..Default::default()
                    }),
                    required_functions: vec![],
                    supersedes: String::new(),
                })
                .await
        }
    };
    response.map(|r| r.into_inner())
}

/// A command the server acknowledged.
#[derive(Clone, Debug)]
struct Ack {
    replica: &'static str,
    command_id: String,
    initiative: String,
    version: u64,
    position: u64,
}

/// A command that failed: it may or may not have been written.
#[derive(Clone, Debug)]
struct Unknown {
    replica: &'static str,
    command_id: String,
    code: Code,
    message: String,
}

#[derive(Default)]
struct Outcomes {
    acks: Vec<Ack>,
    unknown: Vec<Unknown>,
}

/// Sends load commands to `replica` until `stop`, a few milliseconds apart.
async fn drive(
    replica: Arc<Replica>,
    initiatives: Arc<Vec<Initiative>>,
    task: usize,
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Outcomes>>,
) {
    let mut i = task;
    while !stop.load(Ordering::Relaxed) {
        let initiative = &initiatives[(task + i) % initiatives.len()];
        let command_id = uuid::Uuid::now_v7().to_string();
        match load_command(&replica, initiative, i, &command_id).await {
            Ok(response) => {
                assert_eq!(response.initiative_id, initiative.id, "the command's initiative");
                assert!(!response.replayed, "a fresh command id is never a replay");
                outcomes.lock().unwrap().acks.push(Ack {
                    replica: replica.name,
                    command_id,
                    initiative: response.initiative_id,
                    version: response.stream_version,
                    position: response.global_position,
                });
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            Err(status) => {
                outcomes.lock().unwrap().unknown.push(Unknown {
                    replica: replica.name,
                    command_id,
                    code: status.code(),
                    message: status.message().to_owned(),
                });
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        i += 1;
    }
}

/// What a watcher received, in order.
#[derive(Clone, Debug)]
enum Got {
    Alignment(Box<pb::InitiativeAlignment>),
    Removed(String),
    CaughtUp,
    Resync(String),
}

#[derive(Clone, Debug)]
struct Item {
    got: Got,
    position: u64,
}

/// A `WatchAlignments` stream read by a task of its own into a list.
struct Watcher {
    name: String,
    items: Arc<Mutex<Vec<Item>>>,
    end: Arc<Mutex<Option<String>>>,
    task: JoinHandle<()>,
}

impl Watcher {
    /// Watches every initiative on `replica`, after `after_position` (0: snapshot first).
    async fn open(name: &str, replica: &Replica, after_position: u64) -> Watcher {
        let mut stream = replica
            .queries()
            .watch_alignments(pb::WatchAlignmentsRequest { after_position, ..Default::default() })
            .await
            .unwrap_or_else(|e| panic!("WatchAlignments on replica {}: {e}", replica.name))
            .into_inner();
        let items = Arc::new(Mutex::new(Vec::new()));
        let end = Arc::new(Mutex::new(None));
        let (sink, ended) = (items.clone(), end.clone());
        let task = tokio::spawn(async move {
            let why = loop {
                match stream.message().await {
                    Ok(Some(update)) => {
                        let got = match update.update {
                            Some(pb::alignment_update::Update::Alignment(view)) => Got::Alignment(Box::new(view)),
                            Some(pb::alignment_update::Update::Removed(removed)) => Got::Removed(removed.initiative_id),
                            Some(pb::alignment_update::Update::CaughtUp(_)) => Got::CaughtUp,
                            Some(pb::alignment_update::Update::Resync(resync)) => Got::Resync(resync.reason),
                            None => panic!("an update with nothing in it at position {}", update.position),
                        };
                        sink.lock().unwrap().push(Item { got, position: update.position });
                    }
                    Ok(None) => break "the stream ended".to_owned(),
                    Err(status) => break format!("{:?}: {}", status.code(), status.message()),
                }
            };
            *ended.lock().unwrap() = Some(why);
        });
        Watcher { name: name.to_owned(), items, end, task }
    }

    fn items(&self) -> Vec<Item> {
        self.items.lock().unwrap().clone()
    }

    fn ended(&self) -> Option<String> {
        self.end.lock().unwrap().clone()
    }

    /// Waits (up to DELIVERY_TIMEOUT) until `done` holds of what was received.
    async fn wait_for(&self, what: &str, done: impl Fn(&[Item]) -> bool) -> Vec<Item> {
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        loop {
            let items = self.items();
            if done(&items) {
                return items;
            }
            assert!(
                Instant::now() < deadline,
                "watcher {} still without {what} after {DELIVERY_TIMEOUT:?} (ended: {:?}); last items: {:?}",
                self.name,
                self.ended(),
                summary(&items[items.len().saturating_sub(10)..])
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Items in short: kind, initiative key, version, position.
fn summary(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .map(|item| match &item.got {
            Got::Alignment(view) => format!("{}@v{} p{}", view.key, view.version, item.position),
            Got::Removed(id) => format!("removed {id} p{}", item.position),
            Got::CaughtUp => format!("caught-up p{}", item.position),
            Got::Resync(reason) => format!("resync ({reason}) p{}", item.position),
        })
        .collect()
}

fn has_caught_up(items: &[Item]) -> bool {
    items.iter().any(|i| matches!(i.got, Got::CaughtUp))
}

/// The last version received per initiative id.
fn last_versions(items: &[Item]) -> HashMap<String, u64> {
    let mut last = HashMap::new();
    for item in items {
        if let Got::Alignment(view) = &item.got {
            last.insert(view.initiative_id.clone(), view.version);
        }
    }
    last
}

/// Where each initiative's events sit in the global log. The log is read in commit
/// order, which is not the order of positions (positions are handed out before commit);
/// "after position P" means after the event at P in that order.
struct LogIndex {
    /// initiative id → position of each version (index version - 1).
    positions: HashMap<String, Vec<u64>>,
    /// position → rank in the log's (commit) order.
    ranks: HashMap<u64, usize>,
    by_command: HashMap<String, Vec<pb::StoredEvent>>,
    events: usize,
}

impl LogIndex {
    fn of(events: &[pb::StoredEvent]) -> LogIndex {
        let mut positions: HashMap<String, Vec<u64>> = HashMap::new();
        let mut ranks = HashMap::new();
        let mut by_command: HashMap<String, Vec<pb::StoredEvent>> = HashMap::new();
        for (rank, event) in events.iter().enumerate() {
            assert!(ranks.insert(event.position, rank).is_none(), "position {} twice in the log", event.position);
            let versions = positions.entry(event.stream_id.clone()).or_default();
            assert_eq!(event.stream_version, versions.len() as u64 + 1, "stream versions are gap-free, in order");
            assert!(
                versions.last().is_none_or(|&p| p < event.position),
                "a stream's positions increase with its versions"
            );
            versions.push(event.position);
            by_command.entry(event.command_id.clone()).or_default().push(event.clone());
        }
        LogIndex { positions, ranks, by_command, events: events.len() }
    }

    fn position_of(&self, initiative: &str, version: u64) -> Option<u64> {
        let versions = self.positions.get(initiative)?;
        versions.get(usize::try_from(version).ok()?.checked_sub(1)?).copied()
    }

    /// The rank in commit order of the event at `position` (which must be in the log).
    fn rank(&self, who: &str, position: u64) -> usize {
        *self.ranks.get(&position).unwrap_or_else(|| panic!("{who}: position {position} is no event of the log"))
    }

    fn final_version(&self, initiative: &str) -> u64 {
        self.positions.get(initiative).map_or(0, |v| v.len() as u64)
    }

    /// Whether the initiative has an event after the one at `position` (commit order).
    fn changed_after(&self, initiative: &str, position: u64) -> bool {
        let last = self.positions.get(initiative).and_then(|v| v.last()).expect("the initiative is in the log");
        position == 0 || self.rank("resume", *last) > self.rank("resume", position)
    }
}

/// Checks a watcher's updates against the log and returns, per initiative id, the
/// (version, position) pairs it received:
/// - per initiative, versions and positions strictly increase;
/// - each view is "as of" its position: its version's event is at or before the
///   position in commit order, the next version's after it;
/// - once caught up, updates come in the log's commit order (so resuming after the last
///   position received misses nothing);
/// - nothing is removed (no filters, nothing archived).
fn check_watcher(name: &str, items: &[Item], log: &LogIndex) -> BTreeMap<String, Vec<(u64, u64)>> {
    let mut seen: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    // The rank of the last position received, once caught up.
    let mut live_since: Option<usize> = None;
    for item in items {
        if let Some(floor) = live_since
            && item.position > 0
        {
            let rank = log.rank(name, item.position);
            assert!(rank >= floor, "{name}: went back in commit order to position {} ({:?})", item.position, item.got);
            live_since = Some(rank);
        }
        match &item.got {
            Got::Alignment(view) => {
                let at = log
                    .position_of(&view.initiative_id, view.version)
                    .unwrap_or_else(|| panic!("{name}: {} version {} is not in the log", view.key, view.version));
                let sent_at = log.rank(name, item.position);
                assert!(
                    log.rank(name, at) <= sent_at,
                    "{name}: {} v{} (p{at}) sent at p{}",
                    view.key,
                    view.version,
                    item.position
                );
                if let Some(next) = log.position_of(&view.initiative_id, view.version + 1) {
                    assert!(
                        log.rank(name, next) > sent_at,
                        "{name}: {} v{} sent at p{}, but v{} (p{next}) was already committed",
                        view.key,
                        view.version,
                        item.position,
                        view.version + 1
                    );
                }
                let history = seen.entry(view.initiative_id.clone()).or_default();
                if let Some(&(version, position)) = history.last() {
                    assert!(
                        view.version > version && item.position > position,
                        "{name}: {} went from v{version} p{position} to v{} p{}",
                        view.key,
                        view.version,
                        item.position
                    );
                }
                history.push((view.version, item.position));
            }
            Got::Removed(id) => panic!("{name}: initiative {id} removed, but no watcher has a filter"),
            Got::CaughtUp => {
                if live_since.is_none() {
                    live_since = Some(if item.position == 0 { 0 } else { log.rank(name, item.position) });
                }
            }
            Got::Resync(reason) => {
                // A catch-up follows, one update per changed initiative, until the next
                // caught-up.
                eprintln!("{name}: resync ({reason}) at position {}", item.position);
                live_since = None;
            }
        }
    }
    seen
}

/// Every alignment view a watcher received equals the replayed alignment at its version
/// (`AuditService.GetAlignmentAsOf`), each distinct (initiative, version) checked once.
async fn check_views(replica: &Replica, watchers: &[(&str, &[Item])]) -> usize {
    let mut views: BTreeMap<(String, u64), (String, pb::InitiativeAlignment)> = BTreeMap::new();
    for (name, items) in watchers {
        for item in *items {
            if let Got::Alignment(view) = &item.got {
                let key = (view.initiative_id.clone(), view.version);
                if let Some((first, earlier)) = views.get(&key) {
                    assert_eq!(earlier, view.as_ref(), "{name} and {first} got different views of {key:?}");
                } else {
                    views.insert(key, ((*name).to_owned(), view.as_ref().clone()));
                }
            }
        }
    }
    let checked = views.len();
    futures::stream::iter(views)
        .for_each_concurrent(4, |((initiative, version), (name, view))| async move {
            let replayed = replica.alignment_at(&initiative, version).await;
            assert_eq!(view, replayed, "{name}: the view of {} at version {version} is not its replay", view.key);
        })
        .await;
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_the_log_and_watchers_resume_across_a_crash() {
    const INITIATIVES: usize = 6;
    const TASKS_PER_REPLICA: usize = 3;
    // Declared first, dropped last: after every replica is killed.
    let database = ThrowAwayDatabase::new("accord_replicas");
    let workdir = tempfile::tempdir().expect("temporary folder");
    // A first: it creates and migrates the database; B then opens it as it is.
    let a = Arc::new(Replica::start("A", &database.url, workdir.path()).await);
    let b = Arc::new(Replica::start("B", &database.url, workdir.path()).await);

    let mut initiatives = Vec::new();
    for n in 0..INITIATIVES {
        let writer = if n % 2 == 0 { &a } else { &b };
        initiatives.push(staffed_initiative(&writer.channel, &format!("REPL-{n}"), APPROVERS_PER_FUNCTION).await);
    }
    let initiatives = Arc::new(initiatives);

    let watch_a = Watcher::open("watcher on A", &a, 0).await;
    let watch_b = Watcher::open("watcher on B", &b, 0).await;
    for watcher in [&watch_a, &watch_b] {
        let items = watcher.wait_for("its snapshot", has_caught_up).await;
        let snapshot: BTreeSet<_> = last_versions(&items).into_keys().collect();
        let all: BTreeSet<_> = initiatives.iter().map(|i| i.id.clone()).collect();
        assert_eq!(snapshot, all, "{}: the snapshot has every initiative", watcher.name);
    }

    // The load: tasks on both replicas, until B is killed and for a while after.
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let mut tasks = Vec::new();
    for task in 0..TASKS_PER_REPLICA {
        for replica in [a.clone(), b.clone()] {
            tasks.push(tokio::spawn(drive(replica, initiatives.clone(), task, stop.clone(), outcomes.clone())));
        }
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    b.kill();
    let acked_before_kill = outcomes.lock().unwrap().acks.len();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("a load task");
    }
    let Outcomes { acks, unknown } = std::mem::take(&mut *outcomes.lock().unwrap());
    let acked = |replica| acks.iter().filter(|a| a.replica == replica).count();
    eprintln!(
        "load: {} acknowledged ({} on A, {} on B; {acked_before_kill} before the kill), {} failed",
        acks.len(),
        acked("A"),
        acked("B"),
        unknown.len()
    );
    assert!(acked("A") > 0 && acked("B") > 0, "both replicas acknowledged commands");
    assert!(
        unknown.iter().all(|u| u.replica == "B"),
        "only the killed replica fails commands: {:?}",
        unknown.iter().filter(|u| u.replica != "B").collect::<Vec<_>>()
    );
    assert!(!unknown.is_empty(), "the clients of B saw it die");

    // (a) Every acknowledged command is in the log, once, where it was acknowledged.
    // The global log shows a transaction's events once every transaction that started
    // before it has ended (anywhere on the PostgreSQL server): read it until it holds
    // every acknowledged command, or give up after DELIVERY_TIMEOUT.
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    let events = loop {
        let events = a.log().await;
        let commands: BTreeSet<&str> = events.iter().map(|e| e.command_id.as_str()).collect();
        if acks.iter().all(|a| commands.contains(a.command_id.as_str())) || Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let log = LogIndex::of(&events);
    for ack in &acks {
        let written = log.by_command.get(&ack.command_id).unwrap_or_else(|| {
            panic!("acknowledged command {} (replica {}) is not in the log", ack.command_id, ack.replica)
        });
        assert_eq!(written.len(), 1, "command {} wrote one event", ack.command_id);
        let event = &written[0];
        assert_eq!(
            (&event.stream_id, event.stream_version, event.position),
            (&ack.initiative, ack.version, ack.position),
            "command {} is in the log where it was acknowledged",
            ack.command_id
        );
    }
    let landed = unknown.iter().filter(|u| log.by_command.contains_key(&u.command_id)).count();
    eprintln!(
        "unknown outcomes: {} ({landed} of them are in the log); e.g. {:?}",
        unknown.len(),
        unknown.first().map(|u| (u.code, &u.message))
    );
    for u in &unknown {
        assert!(log.by_command.get(&u.command_id).is_none_or(|e| e.len() == 1), "command {} twice", u.command_id);
    }
    let mut finals = HashMap::new();
    // Reads come from A's feed: at least as new as the log just read.
    let head = events.iter().map(|e| e.position).max().unwrap_or_default();
    for initiative in initiatives.iter() {
        let view = a.alignment_after(&initiative.id, head).await;
        assert_eq!(view.version, log.final_version(&initiative.id), "{}: GetAlignment is at the log's head", view.key);
        let newest = acks.iter().filter(|a| a.initiative == initiative.id).map(|a| a.version).max().unwrap_or(0);
        assert!(view.version >= newest, "{}: v{} but v{newest} was acknowledged", view.key, view.version);
        finals.insert(initiative.id.clone(), view);
    }

    // (b) The watcher on A ends at every initiative's final version, having seen
    // strictly increasing versions, each view the alignment at its version.
    let items_a = watch_a
        .wait_for("every initiative's final version", |items| {
            let last = last_versions(items);
            finals.iter().all(|(id, view)| last.get(id) == Some(&view.version))
        })
        .await;
    let seen_a = check_watcher("watcher on A", &items_a, &log);
    for (id, view) in &finals {
        let last = items_a.iter().rev().find_map(|item| match &item.got {
            Got::Alignment(v) if &v.initiative_id == id => Some(v.as_ref()),
            _ => None,
        });
        assert_eq!(last, Some(view), "watcher on A: the last view of {} is GetAlignment's", view.key);
    }
    let live_a = seen_a.values().map(Vec::len).sum::<usize>() - INITIATIVES;
    assert!(live_a > 0, "watcher on A saw live updates");

    // (c) The watcher on B saw increasing versions until B died, then its stream ended.
    let items_b = watch_b.wait_for("the end of its stream", |_| watch_b.ended().is_some()).await;
    eprintln!("watcher on B: {}", watch_b.ended().unwrap_or_default());
    let seen_b = check_watcher("watcher on B", &items_b, &log);
    let live_b = seen_b.values().map(Vec::len).sum::<usize>() - INITIATIVES;
    assert!(live_b > 0, "watcher on B saw live updates before B died");
    let checked = check_views(&a, &[("watcher on A", &items_a), ("watcher on B", &items_b)]).await;
    eprintln!(
        "watcher on A: {} updates, watcher on B: {}; {checked} views checked against their replay",
        items_a.len(),
        items_b.len()
    );

    // (d) A watcher on a new replica C, resuming after the last position B's watcher
    // received, gets exactly the initiatives changed since, once each, at their final
    // version.
    let resume_at = items_b.last().expect("B's watcher received something").position;
    let c = Replica::start("C", &database.url, workdir.path()).await;
    let watch_c = Watcher::open("watcher on C", &c, resume_at).await;
    let items_c = watch_c.wait_for("its catch-up", has_caught_up).await;
    let catch_up: Vec<&pb::InitiativeAlignment> = items_c
        .iter()
        .take_while(|i| !matches!(i.got, Got::CaughtUp))
        .filter_map(|i| match &i.got {
            Got::Alignment(view) => Some(view.as_ref()),
            _ => None,
        })
        .collect();
    let changed: BTreeSet<String> =
        initiatives.iter().filter(|i| log.changed_after(&i.id, resume_at)).map(|i| i.id.clone()).collect();
    assert!(!changed.is_empty(), "A wrote after B's watcher's last position {resume_at}");
    let sent: Vec<String> = catch_up.iter().map(|v| v.initiative_id.clone()).collect();
    let sent_once: BTreeSet<String> = sent.iter().cloned().collect();
    assert_eq!(sent.len(), sent_once.len(), "the catch-up sends each initiative once: {sent:?}");
    assert_eq!(sent_once, changed, "the catch-up after {resume_at} is exactly the initiatives changed after it");
    let last_b = last_versions(&items_b);
    for view in &catch_up {
        assert_eq!(Some(*view), finals.get(&view.initiative_id), "C's view of {} is GetAlignment's", view.key);
        assert_ne!(last_b.get(&view.initiative_id), Some(&view.version), "{} at v{} twice", view.key, view.version);
    }
    check_watcher("watcher on C", &items_c, &log);
    let last_c = last_versions(&items_c);
    for (id, view) in &finals {
        let resumed = last_c.get(id).or(last_b.get(id)).copied();
        assert_eq!(resumed, Some(view.version), "{}: B's watcher then C's end at the final version", view.key);
    }
    eprintln!(
        "watcher on C resumed after position {resume_at} ({} events in the log): {} of {INITIATIVES} initiatives caught up",
        log.events,
        catch_up.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_replica_reaches_a_watcher_on_another() {
    // Declared first, dropped last: after every replica is killed.
    let database = ThrowAwayDatabase::new("accord_replicas");
    let workdir = tempfile::tempdir().expect("temporary folder");
    let a = Replica::start("A", &database.url, workdir.path()).await;
    let b = Replica::start("B", &database.url, workdir.path()).await;
    let initiative = staffed_initiative(&a.channel, "CROSS-1", APPROVERS_PER_FUNCTION).await;
    let watcher = Watcher::open("watcher on B", &b, 0).await;
    watcher.wait_for("its snapshot", has_caught_up).await;
    for (n, function) in FUNCTIONS.into_iter().enumerate() {
        let written = Instant::now();
        let ack = a
            .commands(&approver(function, 0))
            .record_sign_off(pb::RecordSignOffRequest {
                options: None,
                initiative: initiative.id.clone(),
                decision_id: initiative.decision.clone(),
                function: function.to_owned(),
                verdict: pb::Verdict::Approve.into(),
                reason: String::new(),
                comment: String::new(),
                revision: None,
            })
            .await
            .expect("sign on A")
            .into_inner();
        let items = watcher
            .wait_for(&format!("version {}", ack.stream_version), |items| {
                last_versions(items).get(&initiative.id).is_some_and(|&v| v >= ack.stream_version)
            })
            .await;
        eprintln!("sign-off {n} on A reached the watcher on B in {:?}", written.elapsed());
        let update = items
            .iter()
            .find(|i| matches!(&i.got, Got::Alignment(v) if v.version == ack.stream_version))
            .expect("the update of the sign-off's version");
        assert_eq!(update.position, ack.global_position, "the update is at the sign-off's position");
        let Got::Alignment(view) = &update.got else { unreachable!() };
        assert_eq!(
            view.functions.iter().find(|f| f.function == function).map(|f| f.state()),
            Some(pb::FunctionState::Approved),
            "the watcher on B sees {function} approved"
        );
    }
    let final_view = a.alignment(&initiative.id).await;
    assert_eq!(final_view.status(), pb::InitiativeStatus::Aligned);
    let items = watcher.items();
    let last = items.iter().rev().find_map(|i| match &i.got {
        Got::Alignment(v) => Some(v.as_ref()),
        _ => None,
    });
    assert_eq!(last, Some(&final_view), "B's watcher ends with A's view");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_replica_is_read_on_another_at_once_with_its_position() {
    // Declared first, dropped last: after every replica is killed.
    let database = ThrowAwayDatabase::new("accord_replicas");
    let workdir = tempfile::tempdir().expect("temporary folder");
    let a = Replica::start("A", &database.url, workdir.path()).await;
    let b = Replica::start("B", &database.url, workdir.path()).await;
    let initiative = staffed_initiative(&a.channel, "READ-1", APPROVERS_PER_FUNCTION).await;
    let (mut on_b_already, mut writes) = (0, 0);
    for round in 0..5 {
        for (n, function) in FUNCTIONS.into_iter().enumerate() {
            let verdict = if round % 2 == 0 { pb::Verdict::Approve } else { pb::Verdict::Reject };
            let ack = a
                .commands(&approver(function, n % APPROVERS_PER_FUNCTION))
                .record_sign_off(pb::RecordSignOffRequest {
                    options: None,
                    initiative: initiative.id.clone(),
                    decision_id: initiative.decision.clone(),
                    function: function.to_owned(),
                    verdict: verdict.into(),
                    reason: if verdict == pb::Verdict::Reject { "Not yet.".into() } else { String::new() },
                    comment: String::new(),
                    revision: None,
                })
                .await
                .expect("sign on A")
                .into_inner();
            writes += 1;
            // Without the position B may not have heard of it yet; with it, it has.
            if b.alignment(&initiative.id).await.version >= ack.stream_version {
                on_b_already += 1;
            }
            let view = b.alignment_after(&initiative.id, ack.global_position).await;
            assert_eq!(view.version, ack.stream_version, "B reads A's write at position {}", ack.global_position);
            assert_eq!(view, a.alignment(&initiative.id).await, "B's view is A's");
        }
    }
    eprintln!("{on_b_already} of {writes} writes on A were on B already without the position");
    // A position no replica has written yet: refused at once, not waited for.
    let mut request = tonic::Request::new(pb::GetAlignmentRequest { initiative: initiative.id.clone() });
    request.metadata_mut().insert(accord::grpc::queries::MIN_POSITION_HEADER, "999999999".parse().expect("ASCII"));
    let status = b.queries().get_alignment(request).await.expect_err("past the head");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
}
