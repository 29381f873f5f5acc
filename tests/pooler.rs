//! Accord behind PgBouncer in transaction pooling mode: a real `pgbouncer` (Debian 1.18,
//! `tests/run` installs it) with its own folder and port in front of the test
//! PostgreSQL, four server connections shared by the service's sixteen, and
//! `accord serve --database-url <through PgBouncer> --database-pooled
//! --database-direct-url <direct>`. The core of the behaviour runs through it:
//! initiatives created and staffed, decisions proposed and signed off (several
//! initiatives at once, so that transactions of different client connections
//! interleave on the same server connections), alignment read back, a live watcher
//! that sees every change (LISTEN takes the direct connection), the history, Verify.
//! No call fails and the server logs no error. In transaction mode, moreover, no server
//! connection is left holding a prepared statement: the service sends every statement
//! unnamed there (`store::postgres::session`).
//!
//! Session pooling runs the same core without `--database-pooled`: each client
//! connection keeps its server connection, and its statements stay prepared and cached as
//! on a direct connection. So PgBouncer has as many server connections as the service
//! has connections (`SESSION_POOL`): with fewer, a connection the service opens beyond
//! them waits for one that the service never gives back (the pool keeps it idle).

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use accord::proto as pb;
use pb::alignment_service_client::AlignmentServiceClient;
use pb::audit_service_client::AuditServiceClient;
use pb::command_service_client::CommandServiceClient;
use tonic::transport::Channel;

use common::{Actor, FUNCTIONS, ServeProcess, ThrowAwayDatabase, approver, staffed_initiative};

/// Initiatives written at once.
const INITIATIVES: usize = 4;

/// The service's connections (`--max-connections`).
const CONNECTIONS: usize = 16;

/// PgBouncer's server connections in transaction mode: fewer than the service's, shared
/// transaction by transaction.
const TRANSACTION_POOL: usize = 4;

/// PgBouncer's server connections in session mode: one for each of the service's.
const SESSION_POOL: usize = CONNECTIONS;

/// A PgBouncer process in transaction pooling mode, killed when dropped.
struct PgBouncer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl PgBouncer {
    /// Starts PgBouncer on a free port in front of the server at 127.0.0.1:5432 (every
    /// database, trust authentication) and waits until it accepts connections.
    fn start(mode: &str) -> PgBouncer {
        let dir = tempfile::tempdir().expect("a folder for PgBouncer");
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let path = dir.path();
        std::fs::write(path.join("userlist.txt"), "\"postgres\" \"\"\n").expect("userlist");
        let pool = if mode == "session" { SESSION_POOL } else { TRANSACTION_POOL };
        let config = format!(
            "[databases]\n* = host=127.0.0.1 port=5432\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
             unix_socket_dir =\nauth_type = trust\nauth_file = {dir}/userlist.txt\npool_mode = {mode}\n\
             default_pool_size = {pool}\nmin_pool_size = 0\nmax_client_conn = 200\n\
             ignore_startup_parameters = extra_float_digits\nlogfile = {dir}/pgbouncer.log\n\
             pidfile = {dir}/pgbouncer.pid\nadmin_users = postgres\n",
            dir = path.display()
        );
        std::fs::write(path.join("pgbouncer.ini"), config).expect("pgbouncer.ini");
        let ini = path.join("pgbouncer.ini");
        // PgBouncer refuses to run as root: under root it runs as postgres.
        let root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
        // Debian installs it in /usr/sbin, which a user's PATH may not hold.
        let program =
            if std::path::Path::new("/usr/sbin/pgbouncer").exists() { "/usr/sbin/pgbouncer" } else { "pgbouncer" };
        let mut command = if root {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--", program]);
            command
        } else {
            Command::new(program)
        };
        let child = command
            .arg(&ini)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("pgbouncer runs (tests/run installs it)");
        let bouncer = PgBouncer { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "PgBouncer did not listen; its log:\n{}", bouncer.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        bouncer
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // runuser passes the signal on to pgbouncer.
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Session pooling: each of the service's connections keeps one server connection while
/// it is open, so prepared statements and session settings work as on a direct one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_core_behaviour_runs_through_pgbouncer_in_session_mode() {
    core_behaviour_through("session", &[]).await;
}

/// Transaction pooling with `--database-pooled`: sqlx sends Parse/Describe and
/// Bind/Execute in two round trips, and PgBouncer 1.18 keeps no prepared statement
/// between transactions, so the service sends every statement unnamed and inside a
/// transaction. Without that, calls fail with `prepared statement "sqlx_s_1" already
/// exists` / `does not exist`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_core_behaviour_runs_through_pgbouncer_in_transaction_mode() {
    core_behaviour_through("transaction", &["--database-pooled"]).await;
}

async fn core_behaviour_through(mode: &str, extra: &[&str]) {
    let started = Instant::now();
    let database = ThrowAwayDatabase::new("pooler");
    let bouncer = PgBouncer::start(mode);
    let name = database.url.rsplit_once('/').expect("a database name").1.to_owned();
    let pooled = format!("postgres://postgres@127.0.0.1:{}/{name}", bouncer.port);
    let workdir = tempfile::tempdir().expect("a folder");
    let connections = CONNECTIONS.to_string();
    let mut args = vec![
        "--database-url",
        pooled.as_str(),
        "--database-direct-url",
        database.url.as_str(),
        "--max-connections",
        &connections,
        "--log",
        "info",
    ];
    args.extend_from_slice(extra);
    let server = tokio::task::block_in_place(|| ServeProcess::spawn(workdir.path(), &args))
        .unwrap_or_else(|log| panic!("accord serve did not start behind PgBouncer; its log:\n{log}"));
    let channel = Channel::from_shared(server.address.clone()).expect("a URI").connect().await.expect("connect");

    // The live watcher, opened before any write.
    let mut queries = AlignmentServiceClient::with_interceptor(channel.clone(), Actor::new("dashboard@example.com"));
    let mut watch = queries.watch_alignments(pb::WatchAlignmentsRequest::default()).await.expect("watch").into_inner();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let watcher = tokio::spawn(async move {
        while let Some(update) = watch.message().await.expect("the watch stream fails not") {
            if let Some(pb::alignment_update::Update::Alignment(view)) = update.update {
                let _ = seen_tx.send((view.initiative_id, view.version, view.status));
            }
        }
    });

    // Several initiatives written at once: in transaction mode their transactions
    // interleave on PgBouncer's few server connections.
    let mut writers = Vec::new();
    for i in 0..INITIATIVES {
        let channel = channel.clone();
        writers.push(tokio::spawn(async move {
            let initiative = staffed_initiative(&channel, &format!("POOL-{i}"), 1).await;
            for function in FUNCTIONS {
                CommandServiceClient::with_interceptor(channel.clone(), Actor::new(&approver(function, 0)))
                    .record_sign_off(pb::RecordSignOffRequest {
                        options: None,
                        initiative: initiative.id.clone(),
                        decision_id: initiative.decision.clone(),
                        function: function.to_owned(),
                        verdict: pb::Verdict::Approve.into(),
                        reason: String::new(),
                        comment: "Through the pooler.".to_owned(),
                        revision: None,
                    })
                    .await
                    .expect("sign-off through PgBouncer");
            }
            initiative
        }));
    }
    let mut initiatives = Vec::new();
    for writer in writers {
        match writer.await {
            Ok(initiative) => initiatives.push(initiative),
            Err(error) => {
                let log = server.log();
                let errors: Vec<&str> =
                    log.lines().filter(|l| l.contains("ERROR") || l.contains("WARN")).take(20).collect();
                panic!("a writer failed: {error}\nthe server's errors:\n{}", errors.join("\n"));
            }
        }
    }

    // Alignment, read back through the pool.
    let mut finals = std::collections::HashMap::new();
    for initiative in &initiatives {
        let view = queries
            .get_alignment(pb::GetAlignmentRequest { initiative: initiative.id.clone() })
            .await
            .expect("get alignment")
            .into_inner();
        assert_eq!(view.status, pb::InitiativeStatus::Aligned as i32, "every function approved: {view:?}");
        finals.insert(initiative.id.clone(), view.version);
        let decision = queries
            .get_decision(pb::GetDecisionRequest {
                initiative: initiative.id.clone(),
                decision_id: initiative.decision.clone(),
            })
            .await
            .expect("get decision")
            .into_inner();
        assert_eq!(decision.decision_id, initiative.decision, "the decision");
    }

    // The watcher sees every initiative reach its final version (LISTEN on the direct
    // connection wakes the live feed).
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut reached = std::collections::HashSet::new();
    while reached.len() < initiatives.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let (id, version, status) = tokio::time::timeout(left, seen.recv())
            .await
            .unwrap_or_else(|_| panic!("the watcher saw {} of {} final versions", reached.len(), initiatives.len()))
            .expect("the watcher runs");
        if finals.get(&id) == Some(&version) {
            assert_eq!(status, pb::InitiativeStatus::Aligned as i32);
            reached.insert(id);
        }
    }
    watcher.abort();

    // The history of each initiative, and the whole log verified.
    let mut audit = AuditServiceClient::with_interceptor(channel.clone(), Actor::new("auditor@example.com"));
    for initiative in &initiatives {
        let mut history = audit
            .read_events(pb::ReadEventsRequest { initiative: initiative.id.clone(), ..Default::default() })
            .await
            .expect("read events")
            .into_inner();
        let mut events = 0u64;
        while let Some(item) = history.message().await.expect("the history") {
            if let Some(pb::read_events_response::Item::Event(_)) = item.item {
                events += 1;
            }
        }
        assert_eq!(events, finals[&initiative.id], "one event per version");
    }
    let verified = audit.verify(pb::VerifyRequest { initiative: String::new() }).await.expect("Verify").into_inner();
    assert!(verified.ok, "Verify: {verified:?}");
    assert_eq!(verified.streams_checked, INITIATIVES as u64);

    if mode == "transaction" {
        let left = prepared_statements_left(bouncer.port, &name).await;
        assert!(left.is_empty(), "server connections hold prepared statements: {left:?}");
    }

    let log = server.log();
    for line in log.lines() {
        assert!(
            !line.contains("\"level\":\"ERROR\""),
            "the server logged an error: {line}\nPgBouncer:\n{}",
            bouncer.log()
        );
    }
    drop(server);
    println!(
        "through PgBouncer ({mode} pooling): {INITIATIVES} initiatives, verified, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The named prepared statements on each of PgBouncer's server connections to database
/// `name`: one client connection per server connection (`TRANSACTION_POOL`), each in an
/// open transaction, so that each lands on a server connection of its own and together
/// they cover them all. Simple-protocol statements only, which prepare nothing.
async fn prepared_statements_left(port: u16, name: &str) -> Vec<String> {
    use sqlx::Connection;
    let url = format!("postgres://postgres@127.0.0.1:{port}/{name}");
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("a URL");
    let options = options.statement_cache_capacity(0);
    let mut connections = Vec::new();
    for _ in 0..TRANSACTION_POOL {
        let mut conn = sqlx::PgConnection::connect_with(&options).await.expect("connect through PgBouncer");
        sqlx::raw_sql("BEGIN").execute(&mut conn).await.expect("BEGIN");
        connections.push(conn);
    }
    let mut left = Vec::new();
    for conn in &mut connections {
        let rows = sqlx::raw_sql("SELECT pg_backend_pid()::text || ': ' || name FROM pg_prepared_statements")
            .fetch_all(&mut *conn)
            .await
            .expect("pg_prepared_statements");
        for row in rows {
            left.push(sqlx::Row::try_get::<String, _>(&row, 0).expect("a name"));
        }
    }
    for mut conn in connections {
        sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.expect("ROLLBACK");
        let _ = conn.close().await;
    }
    left
}
