//! The committer: one task per process that takes the commands waiting, plans them as one
//! batch against the cached stream heads (`head`) and appends the batch.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tracing::warn;
use uuid::Uuid;

use super::committed::{CommitSink, Committed, SinkSlot};
use super::head::{EVENT_OVERHEAD, Head, HeadCache, SNAPSHOT_EVERY, append, head_move, payload_bytes};
use crate::domain::{
    DomainError, Member, decide_for,
    values::{InitiativeId, InitiativeRef, quote},
};
use crate::store::batch::StoredCommand;
use crate::store::batch::{AppendRefused, Appended, Batch, NewCommand};
use crate::store::{Store, StoreError, StoredEvent, now_micros};

use super::command::{CommandEnvelope, CommandOutcome};

/// How much the committer takes on at once and keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppLimits {
    /// Commands waiting for the committer (callers beyond wait to enqueue).
    pub queue: usize,
    /// Bytes of commands waiting or being committed (their requests' encoded size):
    /// callers beyond wait, so a flood of large commands cannot pin memory.
    pub queue_bytes: usize,
    /// Most commands in one batch.
    pub batch_commands: usize,
    /// Most bytes of commands (their requests' encoded size) in one batch; one command
    /// may exceed it alone.
    pub batch_bytes: usize,
    /// Most bytes of folded state the head cache keeps.
    pub cache_bytes: usize,
    /// A stream's folded state is stored beside its head (its snapshot) at most this
    /// many events apart: loading a head folds at most this many events onto its
    /// snapshot, and a command writes the whole state only every this many events.
    pub snapshot_every: u64,
}

impl Default for AppLimits {
    fn default() -> Self {
        AppLimits {
            queue: 1024,
            queue_bytes: 64 * 1024 * 1024,
            batch_commands: 256,
            batch_bytes: 4 * 1024 * 1024,
            cache_bytes: 64 * 1024 * 1024,
            snapshot_every: SNAPSHOT_EVERY,
        }
    }
}

/// How many times a batch is planned again after a stale head or a taken command id.
const ATTEMPTS: usize = 8;
/// How long a command on a head someone else holds locked waits before trying again.
const LOCKED_PAUSE: Duration = Duration::from_millis(20);
/// How long it may keep trying.
const LOCKED_PATIENCE: Duration = Duration::from_secs(15);

/// The command side of the service: `execute` runs one command through the committer.
#[derive(Clone, Debug)]
pub struct App {
    store: Store,
    queue: mpsc::Sender<Job>,
    /// Permits for `AppLimits::queue_bytes`.
    bytes: Arc<Semaphore>,
    queue_bytes: usize,
    sink: SinkSlot,
}

#[derive(Debug)]
struct Job {
    envelope: CommandEnvelope,
    reply: oneshot::Sender<Result<CommandOutcome, StoreError>>,
    /// Since when its initiative's head has been found locked by someone else.
    locked_since: Option<Instant>,
    /// Its share of `queue_bytes`, returned when the job is answered (dropped).
    bytes: OwnedSemaphorePermit,
}

impl App {
    /// Starts the committer on `store`.
    pub fn start(store: Store, limits: AppLimits) -> App {
        let (queue, jobs) = mpsc::channel(limits.queue.max(1));
        let requeue = queue.downgrade();
        let cache = HeadCache::new(limits.cache_bytes);
        let sink = SinkSlot::default();
        tokio::spawn(Committer { store: store.clone(), cache, limits, requeue, sink: sink.clone() }.run(jobs));
        let queue_bytes = limits.queue_bytes.clamp(1, Semaphore::MAX_PERMITS);
        App { store, queue, bytes: Arc::new(Semaphore::new(queue_bytes)), queue_bytes, sink }
    }

    /// Hands every batch appended from now on to `sink` (see `Committed`): how the live
    /// feed learns of this process's writes without reading them back. Only one
    /// follower can be set (`false` for a second).
    pub fn on_commit(&self, sink: CommitSink) -> bool {
        self.sink.set(sink)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs one command: its outcome once its batch has committed (or its refusal).
    pub async fn execute(&self, envelope: CommandEnvelope) -> Result<CommandOutcome, StoreError> {
        // Without the request's size at hand, the command's own text stands for it.
        let bytes = format!("{:?}", envelope.command).len();
        self.execute_sized(envelope, bytes).await
    }

    /// `execute` for a command whose request took `bytes` encoded.
    pub async fn execute_sized(&self, envelope: CommandEnvelope, bytes: usize) -> Result<CommandOutcome, StoreError> {
        let shutting_down = || StoreError::Unavailable("the service is shutting down".into());
        // A command larger than the whole allowance waits for an empty queue.
        let permits = u32::try_from(bytes.clamp(1, self.queue_bytes)).unwrap_or(u32::MAX);
        let permit = Arc::clone(&self.bytes).acquire_many_owned(permits).await.map_err(|_| shutting_down())?;
        let (reply, outcome) = oneshot::channel();
        self.queue
            .send(Job { envelope, reply, locked_since: None, bytes: permit })
            .await
            .map_err(|_| shutting_down())?;
        outcome.await.unwrap_or_else(|_| Err(shutting_down()))
    }
}

struct Committer {
    store: Store,
    cache: HeadCache,
    limits: AppLimits,
    /// Where commands on a locked head go back to, a little later.
    requeue: mpsc::WeakSender<Job>,
    sink: SinkSlot,
}

impl Committer {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        while let Some(first) = jobs.recv().await {
            let mut bytes = first.bytes.num_permits();
            let mut batch = vec![first];
            while batch.len() < self.limits.batch_commands && bytes < self.limits.batch_bytes {
                match jobs.try_recv() {
                    Ok(job) => {
                        bytes += job.bytes.num_permits();
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            self.commit(batch).await;
        }
    }

    /// Plans and appends `jobs` until each has its answer.
    async fn commit(&mut self, jobs: Vec<Job>) {
        let mut pending = jobs;
        while !pending.is_empty() {
            let mut deferred = Vec::new();
            self.commit_once(pending, &mut deferred).await;
            pending = deferred;
        }
    }

    /// One batch of `jobs`; jobs that must wait for it go to `deferred`.
    async fn commit_once(&mut self, mut jobs: Vec<Job>, deferred: &mut Vec<Job>) {
        let mut last_error = None;
        for _ in 0..ATTEMPTS {
            if jobs.is_empty() {
                return;
            }
            if let Err(error) = self.load_missing(&jobs).await {
                return answer_all(jobs, error);
            }
            let mut plan = self.plan(&jobs);
            // A fold that failed (a state the code cannot evolve: corruption) answers its
            // job; the others are planned again from reloaded heads.
            if plan.verdicts.iter().any(|verdict| matches!(verdict, Verdict::Poisoned(_))) {
                self.give_back(&mut plan);
                let mut rest = Vec::new();
                for (job, verdict) in jobs.into_iter().zip(std::mem::take(&mut plan.verdicts)) {
                    match verdict {
                        Verdict::Poisoned(error) => {
                            let _ = job.reply.send(Err(error));
                        }
                        _ => rest.push(job),
                    }
                }
                jobs = rest;
                continue;
            }
            // A refusal is final only for a command id never used: a retry of a command
            // that committed replays its outcome whatever the state says now.
            let refused: Vec<String> = jobs
                .iter()
                .zip(&plan.verdicts)
                .filter(|(_, verdict)| matches!(verdict, Verdict::Refused(_)))
                .map(|(job, _)| job.envelope.command_id.as_str().to_owned())
                .collect();
            if !refused.is_empty() {
                match self.store.find_commands(&refused).await {
                    Ok(found) if found.is_empty() => {}
                    Ok(_) => {
                        self.give_back(&mut plan);
                        jobs = match self.replay_taken(jobs).await {
                            Ok(rest) => rest,
                            Err(()) => return,
                        };
                        continue;
                    }
                    Err(error) => {
                        self.give_back(&mut plan);
                        return answer_all(jobs, error);
                    }
                }
            }
            // Creations of a key another job of this batch creates wait for the next one.
            let (now, later): (Vec<_>, Vec<_>) = jobs
                .into_iter()
                .zip(std::mem::take(&mut plan.verdicts))
                .partition(|(_, verdict)| !matches!(verdict, Verdict::Later));
            if !later.is_empty() {
                deferred.extend(later.into_iter().map(|(job, _)| job));
            }
            let (kept, verdicts): (Vec<_>, Vec<_>) = now.into_iter().unzip();
            jobs = kept;
            plan.verdicts = verdicts;
            if plan.batch.heads.is_empty() && plan.batch.unchanged.is_empty() {
                // Nothing to write and nothing decided against a cached head.
                self.give_back(&mut plan);
                return plan.answer(jobs, &[]);
            }
            let sent = Instant::now();
            let appended = self.store.append_batch(&plan.batch).await;
            tracing::debug!(
                jobs = jobs.len(),
                events = plan.batch.events.len(),
                micros = sent.elapsed().as_micros() as u64,
                "committer: batch sent"
            );
            match appended {
                Ok(appended) => {
                    for (stream_id, head) in std::mem::take(&mut plan.heads) {
                        self.cache.put(stream_id, head);
                    }
                    self.hand_on(&appended, std::mem::take(&mut plan.batch.events), sent);
                    return plan.answer(jobs, &appended.commands);
                }
                Err(AppendRefused::StaleHead) => {
                    // Every head the plan took is dropped: the moved ones are ahead of
                    // the database, the others may be behind another replica's write.
                    for stream_id in plan.touched() {
                        self.cache.forget(stream_id);
                    }
                    // A head that did not move as seen may be a retried creation (its
                    // stream exists) or a taken key: answer those, replan the rest.
                    jobs = match self.refuse_taken_keys(jobs).await {
                        Ok(rest) => rest,
                        Err(()) => return,
                    };
                    last_error = Some(StoreError::Unavailable("stream heads kept moving: too many attempts".into()));
                }
                Err(AppendRefused::CommandIdTaken) => {
                    self.give_back(&mut plan);
                    match self.replay_taken(jobs).await {
                        Ok(rest) => jobs = rest,
                        Err(()) => return,
                    }
                }
                Err(AppendRefused::KeyTaken) => {
                    for stream_id in plan.touched() {
                        self.cache.forget(stream_id);
                    }
                    jobs = match self.refuse_taken_keys(jobs).await {
                        Ok(rest) => rest,
                        Err(()) => return,
                    };
                }
                Err(AppendRefused::Locked(locked)) => {
                    self.give_back(&mut plan);
                    let (waiting, rest): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|job| {
                        plan.stream_of(&job.envelope, &self.cache).is_some_and(|id| locked.contains(&id))
                    });
                    self.retry_later(waiting);
                    jobs = rest;
                }
                Err(AppendRefused::Failed(error)) => {
                    self.give_back(&mut plan);
                    return answer_all(jobs, error);
                }
            }
        }
        answer_all(jobs, last_error.unwrap_or_else(|| StoreError::Unavailable("too many attempts".into())));
    }

    /// Hands an appended batch's events, with their places in the log, to the follower.
    fn hand_on(&self, appended: &Appended, events: Vec<StoredEvent>, sent: Instant) {
        let (Some(sink), Some(after)) = (self.sink.get(), appended.after) else { return };
        // A store that did not place every event (it cannot happen) leaves the follower
        // to read the log.
        if appended.cursors.len() != events.len() {
            return;
        }
        let bytes = events.iter().map(|event| EVENT_OVERHEAD + payload_bytes(&event.payload)).sum();
        let events = appended
            .cursors
            .iter()
            .zip(events)
            .map(|(cursor, mut event)| {
                event.position = cursor.position;
                (*cursor, event)
            })
            .collect();
        sink(Committed { after, events, sent, bytes });
    }

    /// Sends jobs whose head someone else holds locked back to the queue after a pause,
    /// until the lock has been held for longer than a command may wait.
    fn retry_later(&self, jobs: Vec<Job>) {
        let now = Instant::now();
        let mut again = Vec::new();
        for mut job in jobs {
            let since = *job.locked_since.get_or_insert(now);
            if now.duration_since(since) > LOCKED_PATIENCE {
                let target = job.envelope.target.as_ref().map(ToString::to_string).unwrap_or_default();
                let _ = job.reply.send(Err(StoreError::Unavailable(format!(
                    "initiative {target} is locked by another writer (a rebuild?); try again later"
                ))));
            } else {
                again.push(job);
            }
        }
        if again.is_empty() {
            return;
        }
        let queue = self.requeue.clone();
        tokio::spawn(async move {
            tokio::time::sleep(LOCKED_PAUSE).await;
            let Some(queue) = queue.upgrade() else { return };
            for job in again {
                if let Err(mpsc::error::SendError(job)) = queue.send(job).await {
                    let _ = job.reply.send(Err(StoreError::Unavailable("the service is shutting down".into())));
                }
            }
        });
    }

    /// Loads the heads the jobs name that the cache does not hold.
    async fn load_missing(&mut self, jobs: &[Job]) -> Result<(), StoreError> {
        let mut ids = Vec::new();
        let mut keys = Vec::new();
        for job in jobs {
            match &job.envelope.target {
                Some(InitiativeRef::Id(id)) if !self.cache.has_id(id.0) => ids.push(id.0),
                Some(InitiativeRef::Key(key)) if !self.cache.has_key(key.as_str()) => keys.push(key.to_string()),
                _ => {}
            }
        }
        if ids.is_empty() && keys.is_empty() {
            return Ok(());
        }
        for head in self.store.load_heads(&ids, &keys).await? {
            self.cache.put(head.stream_id, Head::from(head));
        }
        Ok(())
    }

    /// After a batch that was not appended: the heads the plan only decided refusals
    /// against go back to the cache as they were; the heads it moved are ahead of the
    /// database and are dropped (reloaded when next needed).
    fn give_back(&mut self, plan: &mut Plan) {
        for (stream_id, head) in std::mem::take(&mut plan.heads) {
            if plan.from.contains_key(&stream_id) {
                self.cache.forget(stream_id);
            } else {
                self.cache.put(stream_id, head);
            }
        }
    }

    /// Decides every job in order against the heads as the jobs before it left them.
    /// The heads it needs move from the cache into the plan, so that each command's
    /// events fold onto the state in place (no copy of the state per command).
    fn plan(&mut self, jobs: &[Job]) -> Plan {
        let mut plan = Plan::default();
        let mut seen_ids: HashMap<&str, &CommandEnvelope> = HashMap::new();
        for job in jobs {
            let envelope = &job.envelope;
            if let Some(earlier) = seen_ids.get(envelope.command_id.as_str()) {
                let same = earlier.fingerprint == envelope.fingerprint && earlier.target == envelope.target;
                plan.verdicts.push(if same {
                    Verdict::SameAs
                } else {
                    Verdict::Refused(
                        DomainError::invalid(
                            "options.command_id",
                            format!("{} was already used for a different command", quote(envelope.command_id.as_str())),
                        )
                        .into(),
                    )
                });
                continue;
            }
            seen_ids.insert(envelope.command_id.as_str(), envelope);
            let verdict = self.plan_one(&mut plan, envelope);
            plan.verdicts.push(verdict);
        }
        plan.finish(self.limits.snapshot_every.max(1))
    }

    /// The stream `target` names, its head moved into the plan if the plan does not
    /// hold it yet (`None`: no such stream as far as the plan and the cache know).
    fn take_head(&mut self, plan: &mut Plan, target: &InitiativeRef) -> Option<Uuid> {
        let id = match target {
            InitiativeRef::Id(id) => id.0,
            InitiativeRef::Key(key) => plan.keys.get(key.as_str()).copied().or_else(|| self.cache.id_of(key))?,
        };
        if plan.heads.contains_key(&id) {
            return Some(id);
        }
        let head = self.cache.take(id)?;
        plan.keys.insert(head.state.key.to_string(), id);
        plan.heads.insert(id, head);
        Some(id)
    }

    fn plan_one(&mut self, plan: &mut Plan, envelope: &CommandEnvelope) -> Verdict {
        if let crate::domain::Command::CreateInitiative { key, .. } = &envelope.command
            && plan.keys.contains_key(key.as_str())
        {
            return Verdict::Later;
        }
        let current = match &envelope.target {
            None => None,
            Some(target) => match self.take_head(plan, target) {
                Some(id) => Some(id),
                None => {
                    return Verdict::Refused(DomainError::not_found(format!("initiative {target} not found")).into());
                }
            },
        };
        let head = current.and_then(|id| plan.heads.get(&id));
        let version = head.map_or(0, |head| head.version);
        let refuse = |plan: &mut Plan, error: StoreError| {
            if let Some(stream_id) = current
                && !plan.from.contains_key(&stream_id)
            {
                plan.checked.insert(stream_id, version);
            }
            Verdict::Refused(error)
        };
        if let Some(expected) = envelope.expected_version
            && expected != version
        {
            return refuse(plan, DomainError::VersionConflict { expected, actual: version }.into());
        }
        let state = head.map(|head| &head.state);
        let events = match decide_for(
            state,
            &envelope.command,
            Member { person: &envelope.actor, teams: &envelope.teams },
            envelope.authority,
        ) {
            Ok(events) => events,
            Err(error) => return refuse(plan, error.into()),
        };
        let taken = current.and_then(|id| plan.heads.remove(&id));
        let from = taken.as_ref().map(|head| head.version as i64);
        match append(taken, envelope, events) {
            Ok((head, new_events)) => {
                let stream_id = head.stream_id;
                // The version the database has: the first move's starting point.
                plan.from.entry(stream_id).or_insert(from);
                plan.checked.remove(&stream_id);
                plan.keys.insert(head.state.key.to_string(), stream_id);
                let outcome = CommandOutcome {
                    initiative_id: InitiativeId(stream_id),
                    stream_version: head.version,
                    global_position: 0,
                    created_id: envelope.command.created_id(),
                    replayed: false,
                    events_appended: new_events.len() as u64,
                };
                plan.commands.push(NewCommand {
                    command_id: envelope.command_id.as_str().to_owned(),
                    stream_id,
                    fingerprint: envelope.fingerprint.to_vec(),
                    stream_version: head.version as i64,
                    created_id: envelope.command.created_id(),
                    recorded_at: new_events.last().map(|e| e.recorded_at).unwrap_or_else(now_micros),
                });
                plan.events.extend(new_events);
                plan.heads.insert(stream_id, head);
                Verdict::Appends(outcome)
            }
            Err(error) => {
                // The head was consumed by the failed fold: nothing of the batch may be
                // written (`commit_once` plans again without this job).
                if let Some(stream_id) = current {
                    plan.from.entry(stream_id).or_insert(from);
                }
                Verdict::Poisoned(error)
            }
        }
    }

    /// After a taken command id: answers the jobs whose ids were used before with the
    /// stored outcome (or the refusal of a reuse) and returns the others.
    async fn replay_taken(&mut self, jobs: Vec<Job>) -> Result<Vec<Job>, ()> {
        let ids: Vec<String> = jobs.iter().map(|j| j.envelope.command_id.as_str().to_owned()).collect();
        let mut found = match self.store.find_commands(&ids).await {
            Ok(found) => found.into_iter().collect::<HashMap<String, StoredCommand>>(),
            Err(error) => {
                answer_all(jobs, error);
                return Err(());
            }
        };
        let mut rest = Vec::new();
        for job in jobs {
            match found.remove(job.envelope.command_id.as_str()) {
                Some(stored) => {
                    let stream = match &job.envelope.target {
                        Some(InitiativeRef::Id(id)) => Some(id.0),
                        Some(InitiativeRef::Key(key)) => self.cache.id_of(key),
                        None => None,
                    };
                    let _ = job.reply.send(job.envelope.replay(stored, stream));
                }
                None => rest.push(job),
            }
        }
        Ok(rest)
    }

    /// After a taken key: refuses the creations whose key exists (replaying those whose
    /// command id is the one that created it) and returns the others.
    async fn refuse_taken_keys(&mut self, jobs: Vec<Job>) -> Result<Vec<Job>, ()> {
        let keys: Vec<String> = jobs
            .iter()
            .filter_map(|j| match &j.envelope.command {
                crate::domain::Command::CreateInitiative { key, .. } => Some(key.to_string()),
                _ => None,
            })
            .collect();
        let existing = match self.store.load_heads(&[], &keys).await {
            Ok(heads) => heads.into_iter().map(|h| h.key).collect::<std::collections::HashSet<_>>(),
            Err(error) => {
                answer_all(jobs, error);
                return Err(());
            }
        };
        let jobs = self.replay_taken(jobs).await?;
        let mut rest = Vec::new();
        for job in jobs {
            match &job.envelope.command {
                crate::domain::Command::CreateInitiative { key, .. } if existing.contains(key.as_str()) => {
                    let error = DomainError::AlreadyExists(format!("an initiative with key {key} exists already"));
                    let _ = job.reply.send(Err(error.into()));
                }
                _ => rest.push(job),
            }
        }
        Ok(rest)
    }
}

fn answer_all(jobs: Vec<Job>, error: StoreError) {
    let message = error.to_string();
    let mut first = Some(error);
    for job in jobs {
        let error = first.take().unwrap_or_else(|| StoreError::Unavailable(message.clone()));
        let _ = job.reply.send(Err(error));
    }
}

/// What one command comes to in a batch.
enum Verdict {
    Appends(CommandOutcome),
    Refused(StoreError),
    /// The same command id as an earlier job of the batch: its answer, if the request is
    /// the same.
    SameAs,
    /// Creates a key an earlier job of the batch creates: planned after the batch.
    Later,
    /// Its events could not be folded onto the state (corruption): the batch is
    /// planned again without it.
    Poisoned(StoreError),
}

/// A batch as planned: what to write, and each job's verdict.
#[derive(Default)]
struct Plan {
    verdicts: Vec<Verdict>,
    events: Vec<StoredEvent>,
    commands: Vec<NewCommand>,
    /// The heads the plan took from the cache, as the batch leaves them.
    heads: HashMap<Uuid, Head>,
    /// The version each moved head had before the batch (`None`: new); the heads
    /// not named here were only read.
    from: HashMap<Uuid, Option<i64>>,
    /// Heads refusals were decided against that the batch does not move.
    checked: HashMap<Uuid, u64>,
    keys: HashMap<String, Uuid>,
    batch: Batch,
}

impl Plan {
    /// The stream a job's command targets, as far as the plan or the cache know it.
    fn stream_of(&self, envelope: &CommandEnvelope, cache: &HeadCache) -> Option<Uuid> {
        match &envelope.target {
            Some(InitiativeRef::Id(id)) => Some(id.0),
            Some(InitiativeRef::Key(key)) => self.keys.get(key.as_str()).copied().or_else(|| cache.id_of(key)),
            None => None,
        }
    }

    /// Turns the planned heads into the batch to append.
    fn finish(mut self, snapshot_every: u64) -> Plan {
        let mut heads = Vec::with_capacity(self.heads.len());
        let mut unencodable = HashMap::new();
        for head in self.heads.values_mut() {
            let Some(&from) = self.from.get(&head.stream_id) else { continue };
            match head_move(head, from, snapshot_every) {
                Ok(moved) => heads.push(moved),
                Err(error) => {
                    warn!(%error, stream = %head.stream_id, "cannot encode a head; its commands fail");
                    unencodable.insert(head.stream_id, error.to_string());
                }
            }
        }
        // Its events must not be written without it: its commands are answered with the
        // error and the batch is planned again without them (see `commit_once`).
        for verdict in &mut self.verdicts {
            if let Verdict::Appends(outcome) = verdict
                && let Some(message) = unencodable.get(&outcome.initiative_id.0)
            {
                *verdict = Verdict::Poisoned(StoreError::Corrupt(message.clone()));
            }
        }
        self.batch = Batch {
            events: std::mem::take(&mut self.events),
            commands: std::mem::take(&mut self.commands),
            heads,
            unchanged: self.checked.iter().map(|(id, v)| (*id, *v as i64)).collect(),
        };
        self
    }

    fn touched(&self) -> Vec<Uuid> {
        self.heads.keys().chain(self.checked.keys()).copied().collect()
    }

    /// Sends each job its answer, with the positions the append gave.
    fn answer(self, jobs: Vec<Job>, appended: &[(String, i64)]) {
        let positions: HashMap<&str, i64> = appended.iter().map(|(id, p)| (id.as_str(), *p)).collect();
        let mut answers: HashMap<String, Result<CommandOutcome, String>> = HashMap::new();
        for (job, verdict) in jobs.into_iter().zip(self.verdicts) {
            let answer = match verdict {
                Verdict::Appends(mut outcome) => {
                    outcome.global_position =
                        positions.get(job.envelope.command_id.as_str()).map_or(0, |p| u64::try_from(*p).unwrap_or(0));
                    Ok(outcome)
                }
                Verdict::Refused(error) => Err(error),
                Verdict::Later => Err(StoreError::Unavailable("the command was not planned".into())),
                Verdict::Poisoned(error) => Err(error),
                Verdict::SameAs => match answers.get(job.envelope.command_id.as_str()) {
                    Some(Ok(outcome)) => Ok(CommandOutcome { replayed: true, events_appended: 0, ..outcome.clone() }),
                    Some(Err(message)) => Err(StoreError::Unavailable(message.clone())),
                    None => Err(StoreError::Unavailable("the command was not planned".into())),
                },
            };
            answers
                .entry(job.envelope.command_id.as_str().to_owned())
                .or_insert_with(|| answer.as_ref().map(Clone::clone).map_err(ToString::to_string));
            let _ = job.reply.send(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Connection};

    use super::*;
    use crate::app::CommandId;
    use crate::domain::values::{InitiativeKey, Principal};
    use crate::domain::{Authority, Command};
    use crate::store::SqliteStore;

    fn create(key: &str) -> CommandEnvelope {
        let command_id = CommandId::generate();
        CommandEnvelope {
            target: None,
            command: Command::CreateInitiative {
                id: InitiativeId::new_v7(),
                key: InitiativeKey::parse("key", key).expect("valid key"),
                title: format!("Initiative {key}"),
                summary: String::new(),
                owner: None,
                stage: None,
                required_functions: None,
            },
            actor: Principal::parse("actor", "olivia@example.com").expect("principal"),
            authority: Authority::Member,
            teams: Default::default(),
            correlation_id: command_id.as_str().to_owned(),
            causation_id: command_id.as_str().to_owned(),
            command_id,
            expected_version: None,
            fingerprint: [7; 32],
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commands_beyond_the_byte_allowance_wait_outside_the_queue_until_earlier_ones_are_answered() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("accord.db");
        let store = Store::from(SqliteStore::open(&path).await.expect("open store"));
        let app = App::start(store, AppLimits { queue_bytes: 100, ..AppLimits::default() });
        // Another process holds the write lock: the first command cannot commit yet.
        let mut holder = SqliteConnectOptions::new().filename(&path).connect().await.expect("connect");
        sqlx::query("BEGIN IMMEDIATE").execute(&mut holder).await.expect("take the write lock");

        let first = tokio::spawn({
            let app = app.clone();
            async move { app.execute_sized(create("FIRST-1"), 80).await }
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(app.bytes.available_permits(), 20, "the first command holds its 80 bytes");
        let second = tokio::spawn({
            let app = app.clone();
            async move { app.execute_sized(create("SECOND-1"), 80).await }
        });
        // Larger than the whole allowance: waits for an empty queue, then runs alone.
        let huge = tokio::spawn({
            let app = app.clone();
            async move { app.execute_sized(create("HUGE-1"), 10_000).await }
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!second.is_finished() && !huge.is_finished());
        // The next in line gathers the rest while it waits: never more than the allowance.
        assert_eq!(app.bytes.available_permits(), 0);
        assert_eq!(app.queue.capacity(), app.queue.max_capacity(), "nothing more was queued");

        sqlx::query("ROLLBACK").execute(&mut holder).await.expect("release the write lock");
        for (task, version) in [(first, 1), (second, 1), (huge, 1)] {
            let outcome = task.await.expect("task").expect("the command commits");
            assert_eq!(outcome.stream_version, version);
        }
        // The committer drops a command's bytes just after it answers it, on its own task.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while app.bytes.available_permits() < 100 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(app.bytes.available_permits(), 100, "every byte is returned once answered");
        holder.close().await.expect("close");
    }
}
