//! Reads from a hot standby (`--database-read-url`), end to end: a throw-away PostgreSQL
//! 15 primary (`initdb` in a temporary folder, its own port), a hot standby made of it
//! with `pg_basebackup -R` (streaming replication), and one `accord serve` on both,
//! driven over gRPC on loopback. It shows:
//!
//! - queries (alignment, list, inbox, decision, feedback, as-of, explain, history) are
//!   served by the standby: while only reads run, the primary answers none of them
//!   (`accord_db_reads_total{pool="primary"}` does not move) and the standby all;
//! - read-your-writes: a read naming a write's position (`x-accord-min-position`) sees
//!   it — and so does one that names none, through the server that wrote — whether the standby has replayed it within the wait (measured: median and max
//!   of the call, and of the server's wait histogram) or not at all — replay paused
//!   with `pg_wal_replay_pause()`, the primary answers within the bound;
//! - the standby down (stopped): every read is still answered, by the primary, and
//!   `/readyz` says so.
//! - the live feed, which tails the standby, gives a watcher every change in commit
//!   order through all of the above (strictly increasing positions, every write seen).
//!
//! PostgreSQL refuses to run as root: under root its commands run as `postgres`
//! (`runuser`). One cluster pair for the whole file; about 15 s.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use accord::proto as pb;
use pb::alignment_service_client::AlignmentServiceClient;
use pb::audit_service_client::AuditServiceClient;
use pb::command_service_client::CommandServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use common::{Actor, DRIVER, FUNCTIONS, OWNER, ServeProcess, approver, staffed_initiative};

const BIN: &str = "/usr/lib/postgresql/15/bin";
/// The read-your-writes bound the server is started with.
const WAIT_MS: u64 = 300;

type Commands = CommandServiceClient<InterceptedService<Channel, Actor>>;
type Queries = AlignmentServiceClient<InterceptedService<Channel, Actor>>;
type Audit = AuditServiceClient<InterceptedService<Channel, Actor>>;

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false)
}

/// A PostgreSQL program, as `postgres` under root.
fn pg(program: &str) -> Command {
    let path = format!("{BIN}/{program}");
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", &path]);
        command
    } else {
        Command::new(path)
    }
}

fn run(mut command: Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// One PostgreSQL server in a folder of its own, stopped (immediately) when dropped.
struct Server {
    data: PathBuf,
    port: u16,
    running: bool,
}

impl Server {
    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn start(&mut self) {
        let log = self.data.with_extension("log");
        let mut command = pg("pg_ctl");
        command.args(["-D"]).arg(&self.data).args(["-l"]).arg(&log).args(["-w", "-t", "30", "start"]);
        let output = command.output().expect("pg_ctl start");
        assert!(
            output.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        self.running = true;
    }

    fn stop(&mut self) {
        if self.running {
            let mut command = pg("pg_ctl");
            command.args(["-D"]).arg(&self.data).args(["-m", "immediate", "-w", "stop"]);
            let _ = command.output();
            self.running = false;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A primary and its hot standby, in `dir`.
struct Pair {
    // Dropped in this order: the standby, then the primary, then the folder.
    standby: Server,
    primary: Server,
    _dir: tempfile::TempDir,
}

fn start_pair() -> Pair {
    let dir = tempfile::tempdir().expect("a folder");
    if running_as_root() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    let primary_data = dir.path().join("primary");
    let mut initdb = pg("initdb");
    initdb.args(["-D"]).arg(&primary_data).args(["-U", "postgres", "--auth=trust", "-N"]);
    run(initdb, "initdb");
    let mut primary = Server { data: primary_data.clone(), port: free_port(), running: false };
    append_conf(
        &primary_data,
        &format!(
            "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\n\
             wal_level = replica\nmax_wal_senders = 4\n",
            primary.port,
            dir.path().display()
        ),
    );
    primary.start();
    let standby_data = dir.path().join("standby");
    let mut backup = pg("pg_basebackup");
    backup
        .args(["-h", "127.0.0.1", "-p", &primary.port.to_string(), "-U", "postgres", "-D"])
        .arg(&standby_data)
        .args(["-R", "-X", "stream", "-c", "fast"]);
    run(backup, "pg_basebackup");
    let mut standby = Server { data: standby_data.clone(), port: free_port(), running: false };
    append_conf(&standby_data, &format!("port = {}\nhot_standby = on\n", standby.port));
    standby.start();
    Pair { standby, primary, _dir: dir }
}

fn append_conf(data: &Path, lines: &str) {
    use std::io::Write;
    let mut conf =
        std::fs::OpenOptions::new().append(true).open(data.join("postgresql.conf")).expect("postgresql.conf");
    conf.write_all(lines.as_bytes()).expect("write postgresql.conf");
}

/// One statement on a server (as a fresh connection: the standby may restart).
async fn sql(url: &str, statement: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::query(statement).execute(&mut conn).await.map(|_| ())
}

/// The highest position the standby shows (0 before the database or table exists there).
async fn standby_head(url: &str) -> u64 {
    use sqlx::Connection;
    let Ok(mut conn) = sqlx::PgConnection::connect(url).await else { return 0 };
    let head: Result<i64, _> =
        sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM events").fetch_one(&mut conn).await;
    head.map_or(0, |head| u64::try_from(head).unwrap_or_default())
}

/// `GET path` on the server's HTTP port: the status line and the body.
async fn get(http: &str, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = http.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(authority).await.expect("connect to the HTTP port");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send the request");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read the response");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((response.as_str(), ""));
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

/// A counter or histogram figure from the server's `/metrics` (summed over the lines
/// whose name and labels start with `name`).
async fn metric(http: &str, name: &str) -> f64 {
    let (_, body) = get(http, "/metrics").await;
    body.lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with([' ', '{']))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The cumulative buckets of the server's read-your-writes wait histogram: (upper
/// bound in seconds, count).
async fn wait_buckets(http: &str) -> Vec<(f64, f64)> {
    let (_, body) = get(http, "/metrics").await;
    let prefix = "accord_standby_read_your_writes_wait_seconds_bucket{le=\"";
    let mut buckets: Vec<(f64, f64)> = body
        .lines()
        .filter_map(|line| {
            let (le, count) = line.strip_prefix(prefix)?.split_once("\"} ")?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, count.trim().parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// The bucket bounds the median and the largest of the waits recorded between two
/// readings of `wait_buckets` fall under, in milliseconds.
fn wait_quantiles(before: &[(f64, f64)], after: &[(f64, f64)]) -> (f64, f64) {
    let counts: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, count)| (*le, count - before.iter().find(|(b, _)| b == le).map_or(0.0, |(_, c)| *c)))
        .collect();
    let total = counts.last().map_or(0.0, |(_, count)| *count);
    let under =
        |share: f64| counts.iter().find(|(_, count)| *count >= total * share).map_or(f64::NAN, |(le, _)| le * 1e3);
    (under(0.5), under(1.0))
}

async fn reads_by(http: &str, pool: &str) -> f64 {
    metric(http, &format!("accord_db_reads_total{{pool=\"{pool}\"}}")).await
}

fn with_position<T>(message: T, position: u64) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("x-accord-min-position", position.to_string().parse().expect("ascii"));
    request
}

/// Every kind of query the standby serves, once.
async fn read_everything(queries: &mut Queries, audit: &mut Audit, initiative: &str, decision: &str, position: u64) {
    let at = |position| position;
    queries
        .get_alignment(with_position(pb::GetAlignmentRequest { initiative: initiative.to_owned() }, at(position)))
        .await
        .expect("get alignment");
    queries
        .list_alignments(with_position(pb::ListAlignmentsRequest::default(), at(position)))
        .await
        .expect("list alignments");
    queries
        .get_inbox(with_position(pb::GetInboxRequest { principal: approver(FUNCTIONS[0], 0) }, at(position)))
        .await
        .expect("inbox");
    queries
        .get_decision(with_position(
            pb::GetDecisionRequest { initiative: initiative.to_owned(), decision_id: decision.to_owned() },
            at(position),
        ))
        .await
        .expect("decision");
    queries
        .list_feedback(with_position(
            pb::ListFeedbackRequest { initiative: initiative.to_owned(), ..Default::default() },
            at(position),
        ))
        .await
        .expect("feedback");
    audit
        .get_alignment_as_of(with_position(
            pb::GetAlignmentAsOfRequest {
                initiative: initiative.to_owned(),
                at: Some(pb::get_alignment_as_of_request::At::Version(1)),
            },
            at(position),
        ))
        .await
        .expect("as of");
    audit
        .explain(with_position(
            pb::ExplainRequest { initiative: initiative.to_owned(), ..Default::default() },
            at(position),
        ))
        .await
        .expect("explain");
    let mut history = audit
        .read_events(with_position(
            pb::ReadEventsRequest { initiative: initiative.to_owned(), ..Default::default() },
            at(position),
        ))
        .await
        .expect("history")
        .into_inner();
    while let Some(item) = history.message().await.expect("history item") {
        if matches!(item.item, Some(pb::read_events_response::Item::CaughtUp(_))) {
            break;
        }
    }
}

/// A write whose effect a read can check: the initiative's title, and the version.
async fn retitle(commands: &mut Commands, initiative: &str, title: &str) -> pb::CommandResponse {
    commands
        .update_initiative(pb::UpdateInitiativeRequest {
            initiative: initiative.to_owned(),
            title: Some(title.to_owned()),
            ..Default::default()
        })
        .await
        .expect("update initiative")
        .into_inner()
}

/// A write, then at once reads naming its position: the feed's answer (alignment) and
/// the database's (explain) both show it. Returns how long the explain call took.
async fn write_then_read(
    commands: &mut Commands,
    queries: &mut Queries,
    audit: &mut Audit,
    initiative: &str,
    title: &str,
) -> Duration {
    let written = retitle(commands, initiative, title).await;
    let began = Instant::now();
    let explained = audit
        .explain(with_position(
            pb::ExplainRequest { initiative: initiative.to_owned(), ..Default::default() },
            written.global_position,
        ))
        .await
        .expect("explain after a write")
        .into_inner();
    let took = began.elapsed();
    assert!(
        explained.version >= written.stream_version,
        "explain read version {} after a write at version {}",
        explained.version,
        written.stream_version
    );
    // Without naming it: this server waits for its own writes all the same.
    let unnamed = audit
        .explain(pb::ExplainRequest { initiative: initiative.to_owned(), ..Default::default() })
        .await
        .expect("explain after a write, no position named")
        .into_inner();
    assert!(unnamed.version >= written.stream_version, "a read through the server that wrote shows the write");
    let view = queries
        .get_alignment(with_position(
            pb::GetAlignmentRequest { initiative: initiative.to_owned() },
            written.global_position,
        ))
        .await
        .expect("alignment after a write")
        .into_inner();
    assert_eq!(view.title, title, "the alignment read after the write shows it");
    took
}

fn quantiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_are_served_by_the_standby_with_read_your_writes_and_survive_it_going_down() {
    let started = Instant::now();
    let mut pair = tokio::task::block_in_place(start_pair);
    let primary_url = pair.primary.url("accord");
    let standby_url = pair.standby.url("accord");
    eprintln!("primary and standby up in {:.1} s", started.elapsed().as_secs_f64());
    let workdir = tempfile::tempdir().expect("a folder");
    let wait = WAIT_MS.to_string();
    let args = [
        "--database-url",
        primary_url.as_str(),
        "--database-read-url",
        standby_url.as_str(),
        "--read-your-writes-wait-ms",
        wait.as_str(),
        "--max-connections",
        "8",
        "--log",
        "info",
    ];
    let server = tokio::task::block_in_place(|| ServeProcess::spawn(workdir.path(), &args))
        .unwrap_or_else(|log| panic!("accord serve did not start with a standby; its log:\n{log}"));
    let http = server.http_address().expect("the board's address");
    let channel = Channel::from_shared(server.address.clone()).expect("a URI").connect().await.expect("connect");
    let mut commands = CommandServiceClient::with_interceptor(channel.clone(), Actor::new(OWNER));
    let mut queries = AlignmentServiceClient::with_interceptor(channel.clone(), Actor::new(DRIVER));
    let mut audit = AuditServiceClient::with_interceptor(channel.clone(), Actor::new(DRIVER));

    // A watcher of every change, from the start: the feed it follows tails the standby.
    let mut watch =
        queries.watch_alignments(pb::WatchAlignmentsRequest::default()).await.expect("watch alignments").into_inner();
    let watched = tokio::spawn(async move {
        let mut seen: Vec<(u64, String)> = Vec::new();
        while let Ok(Some(update)) = watch.message().await {
            if let Some(pb::alignment_update::Update::Alignment(view)) = update.update {
                seen.push((update.position, view.title));
            }
        }
        seen
    });

    // Writes, then wait until the standby has replayed them all.
    let staffed = staffed_initiative(&channel, "STANDBY-1", 1).await;
    let written = retitle(&mut commands, &staffed.id, "written").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while standby_head(&standby_url).await < written.global_position {
        assert!(Instant::now() < deadline, "the standby did not replay position {}", written.global_position);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Reads that found no database there yet (before it was replayed) left the standby
    // marked as failing for a moment: wait until the server counts it as up again.
    while metric(&http, "accord_standby_up").await != 1.0 {
        assert!(Instant::now() < deadline, "the server does not count the standby as up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // 1. Only reads: the primary answers none of them.
    let primary_before = reads_by(&http, "primary").await;
    let standby_before = reads_by(&http, "standby").await;
    const ROUNDS: usize = 20;
    for _ in 0..ROUNDS {
        read_everything(&mut queries, &mut audit, &staffed.id, &staffed.decision, written.global_position).await;
    }
    let primary_reads = reads_by(&http, "primary").await - primary_before;
    let standby_reads = reads_by(&http, "standby").await - standby_before;
    eprintln!(
        "{} queries ({ROUNDS} rounds of 8 kinds): database reads by the primary {primary_reads}, by the standby {standby_reads}",
        ROUNDS * 8
    );
    assert_eq!(
        primary_reads,
        0.0,
        "while only reads run the primary answers none; the server's log:\n{}",
        server.log()
    );
    assert!(standby_reads >= (ROUNDS * 5) as f64, "the standby answers the queries' database reads");

    // 2. Writes and reads: the primary's reads are the writes' own.
    let primary_before = reads_by(&http, "primary").await;
    let standby_before = reads_by(&http, "standby").await;
    let waits_before = metric(&http, "accord_standby_read_your_writes_wait_seconds_count").await;
    let waited_before = metric(&http, "accord_standby_read_your_writes_wait_seconds_sum").await;
    let lag_before = metric(&http, "accord_standby_fallbacks_total{reason=\"lag\"}").await;
    let buckets_before = wait_buckets(&http).await;
    const WRITES: usize = 40;
    let mut calls = Vec::new();
    for n in 0..WRITES {
        calls.push(write_then_read(&mut commands, &mut queries, &mut audit, &staffed.id, &format!("title {n}")).await);
    }
    let primary_reads = reads_by(&http, "primary").await - primary_before;
    let standby_reads = reads_by(&http, "standby").await - standby_before;
    let waits = metric(&http, "accord_standby_read_your_writes_wait_seconds_count").await - waits_before;
    let waited = metric(&http, "accord_standby_read_your_writes_wait_seconds_sum").await - waited_before;
    let lagged = metric(&http, "accord_standby_fallbacks_total{reason=\"lag\"}").await - lag_before;
    let (wait_median, wait_max) = wait_quantiles(&buckets_before, &wait_buckets(&http).await);
    eprintln!(
        "the server's read-your-writes waits: median under {wait_median} ms, max under {wait_max} ms (histogram buckets)"
    );
    let (median, max) = quantiles(calls);
    eprintln!(
        "{WRITES} writes, each read back at once naming its position: explain call median {:.2} ms, max {:.2} ms; \
         the server waited for the standby {waits} times, {:.2} ms on average; {lagged} fell back to the primary \
         (lag); database reads by the primary {primary_reads}, by the standby {standby_reads}",
        median.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        if waits > 0.0 { waited / waits * 1e3 } else { 0.0 },
    );
    assert!(max < Duration::from_millis(WAIT_MS + 1000), "a read-your-writes read stays within its bound");

    // 3. Replay paused: the standby lags for good; a read naming a new write's position
    // still sees it, from the primary, once the wait runs out.
    sql(&standby_url, "SELECT pg_wal_replay_pause()").await.expect("pause replay");
    let mut calls = Vec::new();
    for n in 0..3 {
        calls.push(write_then_read(&mut commands, &mut queries, &mut audit, &staffed.id, &format!("paused {n}")).await);
    }
    let (median, max) = quantiles(calls);
    eprintln!(
        "replay paused: explain after a write median {:.1} ms, max {:.1} ms (bound {WAIT_MS} ms)",
        median.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    assert!(median >= Duration::from_millis(WAIT_MS), "the read waited for the standby first");
    assert!(max < Duration::from_millis(WAIT_MS + 1000), "then the primary answered within the bound");
    sql(&standby_url, "SELECT pg_wal_replay_resume()").await.expect("resume replay");

    // 4. The standby down: every read is still answered (by the primary).
    pair.standby.stop();
    let down_before = metric(&http, "accord_standby_fallbacks_total{reason=\"down\"}").await;
    let primary_before = reads_by(&http, "primary").await;
    let began = Instant::now();
    for n in 0..3 {
        write_then_read(&mut commands, &mut queries, &mut audit, &staffed.id, &format!("down {n}")).await;
        read_everything(&mut queries, &mut audit, &staffed.id, &staffed.decision, 0).await;
    }
    eprintln!("standby down: 3 rounds of writes and reads answered in {:.0} ms", began.elapsed().as_secs_f64() * 1e3);
    assert!(reads_by(&http, "primary").await > primary_before, "the primary answers the reads");
    assert!(metric(&http, "accord_standby_fallbacks_total{reason=\"down\"}").await > down_before);
    let (status, said) = get(&http, "/readyz").await;
    assert!(status.contains(" 200 "), "the server stays ready without its standby: {status}");
    assert!(said.contains("standby does not answer"), "/readyz says the standby is down: {said}");
    assert_eq!(metric(&http, "accord_standby_up").await, 0.0);
    let log = server.log();
    // The watcher got the changes in commit order, through the paused replay and the
    // standby's stop, up to the last write.
    let last = retitle(&mut commands, &staffed.id, "last").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let views = queries
            .get_alignment(with_position(
                pb::GetAlignmentRequest { initiative: staffed.id.clone() },
                last.global_position,
            ))
            .await
            .expect("alignment")
            .into_inner();
        if views.title == "last" || Instant::now() > deadline {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(server);
    let seen = watched.await.expect("the watcher task");
    assert!(seen.windows(2).all(|pair| pair[0].0 < pair[1].0), "positions strictly increase: {seen:?}");
    assert_eq!(seen.last().map(|(_, title)| title.as_str()), Some("last"), "the watcher saw the last write");
    for title in ["written", "title 39", "paused 2", "down 2"] {
        assert!(seen.iter().any(|(_, seen)| seen == title), "the watcher saw {title:?}");
    }
    eprintln!("the watcher got {} changes in commit order", seen.len());
    assert!(!log.contains("\"level\":\"ERROR\""), "the server logs no error:\n{}", log);
    eprintln!("whole test {:.1} s", started.elapsed().as_secs_f64());
}

/// A read URL without a PostgreSQL primary is refused at start, naming the flag.
#[test]
fn a_read_url_without_a_postgres_primary_is_refused() {
    let workdir = tempfile::tempdir().expect("a folder");
    let output = common::accord_command()
        .current_dir(workdir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "off"])
        .args(["--database-read-url", "postgres://postgres@127.0.0.1:1/accord"])
        .output()
        .expect("accord runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--database-read-url needs a PostgreSQL --database-url"), "{stderr}");
}
