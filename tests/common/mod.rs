//! Helpers shared by the tests that run the real `accord` binary as child processes
//! (tests/cli.rs, tests/replicas.rs) and by the watch benchmark (benches/watch.rs, which
//! includes this file by path): a throw-away PostgreSQL database, an `accord serve`
//! child process whose address is read from its JSON "accord listening" log line, and
//! a gRPC interceptor naming the caller in local development mode, and the staffed
//! initiative the replicas test and the benchmark both write to.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use sqlx::migrate::MigrateDatabase;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// The `accord` binary Cargo built for this test or benchmark.
pub const ACCORD: &str = env!("CARGO_BIN_EXE_accord");
/// How long a child `accord serve` may take to say it is listening.
pub const START_DEADLINE: Duration = Duration::from_secs(60);

/// The binary with no ACCORD_* variables from the environment running the tests.
pub fn accord_command() -> Command {
    let mut command = Command::new(ACCORD);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ACCORD_") {
            command.env_remove(&name);
        }
    }
    command.env_remove("NO_COLOR");
    command
}

/// The PostgreSQL server the tests use (`DATABASE_URL`, see .cargo/config.toml).
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A URL for a fresh PostgreSQL database named `{prefix}_{uuid}` on the server of
/// `base` (created by whoever opens it).
pub fn fresh_postgres_url_on(base: &str, prefix: &str) -> String {
    let server = base.rsplit_once('/').map(|(server, _)| server.to_owned()).unwrap_or_else(|| base.to_owned());
    format!("{server}/{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// A URL for a fresh PostgreSQL database on the test server.
pub fn fresh_postgres_url(prefix: &str) -> String {
    fresh_postgres_url_on(&admin_url(), prefix)
}

/// Drops a PostgreSQL database when dropped (also while a test unwinds from a failure).
pub struct ThrowAwayDatabase {
    pub url: String,
}

impl ThrowAwayDatabase {
    /// A fresh database on the test server; nothing is created until someone opens it.
    pub fn new(prefix: &str) -> ThrowAwayDatabase {
        ThrowAwayDatabase { url: fresh_postgres_url(prefix) }
    }
}

impl Drop for ThrowAwayDatabase {
    fn drop(&mut self) {
        let url = self.url.clone();
        // A thread of its own, so that dropping works inside an async runtime too.
        let dropped = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async move {
                // A few tries: the backends of a server just killed may still be ending.
                let mut last_error = None;
                for _ in 0..5 {
                    let dropped = match sqlx::Postgres::database_exists(&url).await {
                        Ok(true) => sqlx::Postgres::force_drop_database(&url).await,
                        Ok(false) => return,
                        Err(error) => Err(error),
                    };
                    match dropped {
                        Ok(()) => return,
                        Err(error) => last_error = Some(error),
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                if let Some(error) = last_error {
                    eprintln!("could not drop the test database {url}: {error}");
                }
            });
        });
        let _ = dropped.join();
    }
}

/// An `accord serve` child process, killed (SIGKILL) when dropped. Its stderr is kept.
pub struct ServeProcess {
    pub child: Child,
    /// `http://host:port`, as the server said in its "accord listening" log line.
    pub address: String,
    log: Arc<Mutex<String>>,
}

impl ServeProcess {
    /// Runs `accord serve --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --log-format json
    /// ARGS…` (free ports, so servers in parallel never compete) in `workdir` and
    /// waits for its "accord listening" line. On failure, the child is killed and its log
    /// returned.
    pub fn spawn(workdir: &Path, args: &[&str]) -> Result<ServeProcess, String> {
        let mut command = accord_command();
        command.current_dir(workdir).args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ]);
        command.args(args);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("accord serve does not start: {e}"))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (found, address) = mpsc::channel::<String>();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(entry) = serde_json::from_str::<Value>(&line)
                    && entry["fields"]["message"] == "accord listening"
                    && let Some(address) = entry["fields"]["address"].as_str()
                {
                    let _ = found.send(address.to_owned());
                }
                if let Ok(mut log) = sink.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let address = address.recv_timeout(START_DEADLINE);
        let mut process = ServeProcess { child, address: String::new(), log };
        match address {
            Ok(address) => {
                process.address = format!("http://{address}");
                Ok(process)
            }
            Err(_) => {
                process.kill();
                Err(process.log())
            }
        }
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        // A moment for the reader thread to catch up after the child exits.
        std::thread::sleep(Duration::from_millis(100));
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// `http://host:port` of the board's HTTP listener, from its "accord board listening"
    /// log line (waits for the line for a while: the two listeners start concurrently).
    pub fn http_address(&self) -> Option<String> {
        let deadline = std::time::Instant::now() + START_DEADLINE;
        while std::time::Instant::now() < deadline {
            let log = self.log.lock().map(|l| l.clone()).unwrap_or_default();
            let address = log.lines().filter_map(|line| serde_json::from_str::<Value>(line).ok()).find_map(|entry| {
                (entry["fields"]["message"] == "accord board listening")
                    .then(|| entry["fields"]["address"].as_str().map(str::to_owned))
                    .flatten()
            });
            if let Some(address) = address {
                return Some(format!("http://{address}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGKILL (no graceful shutdown) and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Names the caller in the `x-accord-actor` metadata entry (local development mode).
#[derive(Clone)]
pub struct Actor(MetadataValue<Ascii>);

impl Actor {
    pub fn new(principal: &str) -> Actor {
        Actor(principal.parse().expect("a principal is valid metadata"))
    }
}

impl Interceptor for Actor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert("x-accord-actor", self.0.clone());
        Ok(request)
    }
}

/// The owner of the staffed initiatives, and their driver.
pub const OWNER: &str = "pm@example.com";
pub const DRIVER: &str = "dana@example.com";
/// The functions every staffed initiative needs.
pub const FUNCTIONS: [&str; 3] = ["engineering", "design", "business"];

/// The `n`-th approver of a function on a staffed initiative.
pub fn approver(function: &str, n: usize) -> String {
    format!("{function}-{n}@example.com")
}

/// An initiative and its open decision.
#[derive(Clone, Debug)]
pub struct StaffedInitiative {
    pub id: String,
    pub decision: String,
}

/// Creates `key` owned by `OWNER`, with `DRIVER` as driver and `approvers` approvers per
/// function (`approver(function, n)`), and proposes one decision: the set-up every
/// sign-off then lands on. Local development mode (callers named by `Actor`).
pub async fn staffed_initiative(channel: &tonic::transport::Channel, key: &str, approvers: usize) -> StaffedInitiative {
    use accord::proto as pb;
    use pb::command_service_client::CommandServiceClient;
    let commands = |actor: &str| CommandServiceClient::with_interceptor(channel.clone(), Actor::new(actor));
    let created = commands(OWNER)
        .create_initiative(pb::CreateInitiativeRequest {
            options: None,
            key: key.to_owned(),
            title: format!("Initiative {key}"),
            summary: "Written through several replicas.".to_owned(),
            owner: String::new(),
            stage: pb::Stage::Definition.into(),
            required_functions: vec![],
        })
        .await
        .expect("create initiative")
        .into_inner();
    let mut people = vec![(DRIVER.to_owned(), "product", pb::Role::Driver)];
    for function in FUNCTIONS {
        for n in 0..approvers {
            people.push((approver(function, n), function, pb::Role::Approver));
        }
    }
    for (principal, function, role) in people {
        commands(OWNER)
            .assign_stakeholder(pb::AssignStakeholderRequest {
                options: None,
                initiative: created.initiative_id.clone(),
                principal,
                function: function.to_owned(),
                role: role.into(),
            })
            .await
            .expect("assign stakeholder");
    }
    let proposed = commands(DRIVER)
        .propose_decision(pb::ProposeDecisionRequest {
            options: None,
            initiative: created.initiative_id.clone(),
            content: Some(pb::DecisionContent {
                title: "Use Stripe for payments".to_owned(),
                context: "Replicas share one log.".to_owned(),
                options: vec!["Stripe".to_owned(), "Adyen".to_owned()],
                proposal: "Integrate Stripe Checkout.".to_owned(),
                rationale: "Fastest to integrate.".to_owned(),
            }),
            required_functions: vec![],
            supersedes: String::new(),
        })
        .await
        .expect("propose decision")
        .into_inner();
    StaffedInitiative { id: created.initiative_id, decision: proposed.created_id }
}
