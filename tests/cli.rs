//! The command-line client end to end: the real `accord` binary against a real server —
//! a child `accord serve` on a fresh PostgreSQL database, and on the embedded SQLite
//! store — checking what people read, what scripts parse (`--json`) and the exit codes.
//!
//! Every test that needs a server runs once per store through `for_each_store`. While
//! the SQLite store is unfinished (its stub refuses to open), the SQLite runs report
//! "skipped" instead of failing; nothing else is skipped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::CommandFactory;
use serde_json::Value;
use sqlx::migrate::MigrateDatabase;

const ACCORD: &str = env!("CARGO_BIN_EXE_accord");
const START_DEADLINE: Duration = Duration::from_secs(60);
/// What the SQLite stub says while the embedded store is being written.
const SQLITE_UNFINISHED: &str = "the SQLite store is not finished";

const PM: &str = "pm@example.com";
const DRIVER: &str = "dana@example.com";
const ENG: &str = "eve@example.com";
const DES: &str = "dee@example.com";
const BIZ: &str = "bo@example.com";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Store {
    Postgres,
    Sqlite,
}

const STORES: [Store; 2] = [Store::Postgres, Store::Sqlite];

fn admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A URL for a fresh PostgreSQL database on the test server (created by whoever opens it).
fn fresh_postgres_url() -> String {
    let admin = admin_url();
    let base = admin.rsplit_once('/').map(|(base, _)| base.to_owned()).unwrap_or(admin);
    format!("{base}/accord_cli_{}", uuid::Uuid::now_v7().simple())
}

/// Drops a PostgreSQL database when dropped.
struct ThrowAwayDatabase {
    url: String,
}

impl Drop for ThrowAwayDatabase {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        let url = self.url.clone();
        runtime.block_on(async move {
            if let Ok(true) = sqlx::Postgres::database_exists(&url).await {
                let _ = sqlx::Postgres::force_drop_database(&url).await;
            }
        });
    }
}

/// An `accord serve` child process on a loopback port, killed (and its database
/// dropped) when dropped.
struct Server {
    child: Child,
    address: String,
    log: Arc<Mutex<String>>,
    _database: Option<ThrowAwayDatabase>,
    workdir: tempfile::TempDir,
}

enum Started {
    Running(Server),
    /// The store cannot run yet (the SQLite stub said so in the log).
    Unfinished,
}

impl Server {
    fn start(store: Store) -> Started {
        let workdir = tempfile::tempdir().expect("temporary folder");
        let (url, database) = match store {
            Store::Postgres => {
                let url = fresh_postgres_url();
                (Some(url.clone()), Some(ThrowAwayDatabase { url }))
            }
            Store::Sqlite => (Some(format!("sqlite://{}", workdir.path().join("accord.db").display())), None),
        };
        Server::spawn(url.as_deref(), database, workdir)
    }

    /// `accord serve --listen 127.0.0.1:0` in `workdir`, with the database URL given or none at all.
    fn spawn(url: Option<&str>, database: Option<ThrowAwayDatabase>, workdir: tempfile::TempDir) -> Started {
        let mut command = accord_command();
        command.current_dir(workdir.path()).args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"]);
        command.args(["--log", "info"]);
        if let Some(url) = url {
            command.args(["--database-url", url]);
        }
        let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("accord serve starts");
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
        let mut server = Server { child, address: String::new(), log, _database: database, workdir };
        match address {
            Ok(address) => {
                server.address = format!("http://{address}");
                Started::Running(server)
            }
            Err(_) => {
                let _ = server.child.kill();
                let _ = server.child.wait();
                let log = server.log();
                if log.contains(SQLITE_UNFINISHED) {
                    Started::Unfinished
                } else {
                    panic!("accord serve did not start within {START_DEADLINE:?}; its log:\n{log}")
                }
            }
        }
    }

    fn log(&self) -> String {
        // A moment for the reader thread to catch up after the child exits.
        std::thread::sleep(Duration::from_millis(100));
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Runs `accord --server THIS --as ACTOR ARGS…`.
    fn run(&self, actor: &str, args: &[&str]) -> Run {
        let mut command = accord_command();
        command.args(["--server", &self.address, "--as", actor]).args(args);
        Run::of(command, args)
    }

    /// Runs it and expects success.
    fn ok(&self, actor: &str, args: &[&str]) -> Run {
        let run = self.run(actor, args);
        assert_eq!(run.code, 0, "accord {args:?} failed: {}{}", run.stderr, run.stdout);
        run
    }

    /// Runs it with --json and expects success and a JSON document.
    fn json(&self, actor: &str, args: &[&str]) -> Value {
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        self.ok(actor, &with_json).json()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `test` against a server on each store.
fn for_each_store(test: impl Fn(&Server)) {
    for store in STORES {
        match Server::start(store) {
            Started::Running(server) => {
                eprintln!("— {store:?} store");
                test(&server);
            }
            Started::Unfinished => {
                assert_eq!(store, Store::Sqlite, "only the SQLite store may be unfinished");
                eprintln!("— {store:?} store: skipped ({SQLITE_UNFINISHED})");
            }
        }
    }
}

/// The binary with no ACCORD_* variables from the environment running the tests.
fn accord_command() -> Command {
    let mut command = Command::new(ACCORD);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ACCORD_") {
            command.env_remove(&name);
        }
    }
    command.env_remove("NO_COLOR");
    command
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn of(mut command: Command, args: &[&str]) -> Run {
        let output = command.output().unwrap_or_else(|e| panic!("accord {args:?} runs: {e}"));
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }

    /// Asserts the exit code and that stderr is one line containing each of `words`.
    fn fails(&self, code: i32, words: &[&str]) -> &Run {
        assert_eq!(self.code, code, "exit code; stderr: {}; stdout: {}", self.stderr, self.stdout);
        let message = self.stderr.trim_end();
        assert_eq!(message.lines().count(), 1, "one line on stderr, got:\n{message}");
        assert!(message.starts_with("accord: "), "{message}");
        for word in words {
            assert!(message.contains(word), "{message:?} should mention {word:?}");
        }
        self
    }
}

/// Creates CHECKOUT-42 with a driver and one approver per function, as step 2 of the spec.
fn set_up_checkout(server: &Server, key: &str) -> Value {
    let created = server.json(PM, &["initiative", "create", key, "--title", "New checkout"]);
    for (who, function, role) in [
        (DRIVER, "product", "driver"),
        (ENG, "engineering", "approver"),
        (DES, "design", "approver"),
        (BIZ, "business", "approver"),
    ] {
        server.ok(PM, &["stakeholder", "assign", key, who, "--function", function, "--role", role]);
    }
    created
}

fn propose(server: &Server, key: &str, title: &str) -> Value {
    server.json(DRIVER, &["decision", "propose", key, "--title", title, "--option", "Stripe", "--proposal", "Stripe."])
}

#[test]
fn the_acceptance_scenario_through_the_cli() {
    for_each_store(|s| {
        let key = "CHECKOUT-42";
        let created = set_up_checkout(s, key);
        assert_eq!(created["key"], key);
        assert_eq!(created["stream_version"], 1);
        assert_eq!(s.json(PM, &["status", key])["status"], "no_decisions");

        // 3. Propose; design records a user-research concern.
        let proposed = propose(s, key, "Use Stripe for payments");
        let decision = proposed["short_id"].as_str().expect("short id").to_owned();
        assert!(proposed["decision_id"].as_str().is_some_and(|id| id.starts_with(&decision)));
        let concern = s.json(
            DES,
            &[
                "feedback",
                "add",
                key,
                "Participants distrusted the redirect.",
                "--decision",
                &decision,
                "--kind",
                "concern",
                "--source",
                "user-research",
            ],
        );
        assert_eq!(concern["function"], "design", "the one function dee holds a role in");
        let view = s.json(PM, &["status", key]);
        assert_eq!(
            (view["status"].as_str(), view["approved_pairs"].as_u64(), view["total_pairs"].as_u64()),
            (Some("pending"), Some(0), Some(3))
        );
        assert_eq!(view["open_concerns"][0]["source"], "user_research");
        assert_eq!(view["evidence"]["user_research"], 1);
        let inbox = s.json(PM, &["inbox", ENG]);
        assert_eq!(inbox["items"][0]["function"], "engineering");

        // 4. Engineering and design approve; business objects.
        s.ok(ENG, &["signoff", "approve", key, &decision]);
        s.ok(DES, &["signoff", "approve", key, &decision]);
        let objection = s.json(
            BIZ,
            &[
                "feedback",
                "add",
                key,
                "Fees are above our negotiated rate.",
                "--decision",
                &decision,
                "--kind",
                "objection",
                "--source",
                "customer",
            ],
        );
        let board = s.ok(PM, &["status", key]).stdout;
        assert!(board.contains("blocked") && board.contains("Fees are above our negotiated rate."), "{board}");
        let view = s.json(PM, &["status", key]);
        assert_eq!(view["status"], "blocked");
        assert_eq!(view["functions"]["business"], "blocked");
        assert_eq!(view["approved_pairs"], 2);
        assert_eq!(s.json(PM, &["inbox", ENG])["items"].as_array().map(Vec::len), Some(0));

        // 5. Material revision: the approvals go stale, the objection stays.
        let revised = s.json(
            DRIVER,
            &[
                "decision",
                "revise",
                key,
                &decision,
                "--material",
                "--proposal",
                "Stripe at the enterprise rate.",
                "--note",
                "Negotiated.",
            ],
        );
        assert_eq!(revised["revision"], 2);
        let view = s.json(PM, &["status", key]);
        assert_eq!(view["status"], "blocked");
        assert_eq!(view["approved_pairs"], 0);
        assert_eq!(view["stale_sign_offs"].as_array().map(Vec::len), Some(2));
        assert_eq!(view["open_objections"].as_array().map(Vec::len), Some(1));
        let inbox = s.json(PM, &["inbox", DES]);
        assert_eq!(
            (inbox["items"][0]["revision"].as_u64(), inbox["items"][0]["function"].as_str()),
            (Some(2), Some("design"))
        );
        let text = s.ok(DES, &["inbox"]).stdout;
        assert!(text.contains("1 sign-off waiting on dee@example.com") && text.contains(key), "{text}");

        // 6. Business resolves its objection (by prefix); all three approve; the driver accepts.
        let objection_prefix = objection["short_id"].as_str().expect("short id");
        s.ok(BIZ, &["feedback", "resolve", key, objection_prefix, "--resolution", "The rate matches."]);
        for who in [ENG, DES, BIZ] {
            s.ok(who, &["signoff", "approve", key, &decision, "--revision", "2"]);
        }
        let view = s.json(PM, &["status", key]);
        assert_eq!(
            (view["status"].as_str(), view["approved_pairs"].as_u64(), view["total_pairs"].as_u64()),
            (Some("aligned"), Some(3), Some(3))
        );
        let accepted = s.json(DRIVER, &["decision", "accept", key, &decision]);
        assert_eq!(accepted["override"], false);

        // The decision's record.
        let detail = s.json(PM, &["decision", "show", key, &decision]);
        assert_eq!(detail["status"], "accepted");
        assert_eq!(detail["revision"], 2);
        assert_eq!(detail["closed_by"], DRIVER);
        let history = detail["sign_off_history"].as_array().expect("history");
        assert_eq!(history.len(), 5);
        assert_eq!(history.iter().filter(|s| s["stale"] == true).count(), 2);
        assert_eq!(history.iter().filter(|s| s["replaced"] == true).count(), 2);
        assert_eq!(detail["feedback"].as_array().map(Vec::len), Some(2));
        let text = s.ok(PM, &["decision", "show", key, &decision]).stdout;
        assert!(text.contains("stale, replaced") && text.contains("Accepted by dana@example.com"), "{text}");
        assert!(!text.contains('\u{1b}'), "no colour when stdout is not a terminal");
    });
}

#[test]
fn lists_and_boards_in_json_and_as_tables() {
    for_each_store(|s| {
        set_up_checkout(s, "CHECKOUT-1");
        set_up_checkout(s, "PAYMENTS-7");
        propose(s, "PAYMENTS-7", "Adopt Adyen");
        s.ok(PM, &["initiative", "stage", "payments-7", "delivery"]);

        let all = s.json(PM, &["status"]);
        let keys: Vec<&str> =
            all["initiatives"].as_array().expect("list").iter().filter_map(|v| v["key"].as_str()).collect();
        assert_eq!(keys, ["CHECKOUT-1", "PAYMENTS-7"]);
        let pending = s.json(PM, &["status", "--status", "pending", "--pending", "design"]);
        assert_eq!(pending["initiatives"].as_array().map(Vec::len), Some(1));
        assert_eq!(pending["initiatives"][0]["key"], "PAYMENTS-7");
        let delivery = s.json(PM, &["initiative", "list", "--stage", "delivery"]);
        assert_eq!(delivery["initiatives"][0]["stage"], "delivery");
        assert_eq!(
            s.json(PM, &["initiative", "list", "--limit", "1"])["initiatives"].as_array().map(Vec::len),
            Some(1)
        );

        let board = s.ok(PM, &["status"]).stdout;
        let lines: Vec<&str> = board.lines().collect();
        assert_eq!(lines.len(), 3, "header and one line per initiative:\n{board}");
        assert!(lines[0].starts_with("KEY") && lines[0].contains("ENGINEERING") && lines[0].contains("OUTSTANDING"));
        let status_column = lines[0].find("STATUS").expect("STATUS column");
        assert!(lines.iter().skip(1).all(|l| l.get(status_column..).is_some()), "aligned columns:\n{board}");
        assert_eq!(&lines[2][status_column..status_column + 7], "pending", "{board}");
        assert!(lines[2].contains("design → dee@example.com"), "{board}");

        let shown = s.json(PM, &["initiative", "show", "CHECKOUT-1"]);
        assert_eq!(shown["stakeholders"].as_array().map(Vec::len), Some(4));
        assert_eq!(shown["owner"], PM);
        s.ok(PM, &["initiative", "update", "CHECKOUT-1", "--title", "Checkout v2"]);
        s.ok(PM, &["initiative", "archive", "CHECKOUT-1", "--reason", "Merged into PAYMENTS-7"]);
        assert_eq!(s.json(PM, &["initiative", "list"])["initiatives"].as_array().map(Vec::len), Some(1));
        let archived = s.json(PM, &["initiative", "list", "--archived", "--text", "checkout"]);
        assert_eq!(
            (archived["initiatives"][0]["title"].as_str(), archived["initiatives"][0]["archived"].as_bool()),
            (Some("Checkout v2"), Some(true))
        );
    });
}

#[test]
fn every_exit_code_class() {
    for_each_store(|s| {
        set_up_checkout(s, "CHECKOUT-42");
        let decision = propose(s, "CHECKOUT-42", "Use Stripe")["short_id"].as_str().expect("id").to_owned();

        // 3: not found.
        s.run(PM, &["status", "CHECKOUT-99"]).fails(3, &["CHECKOUT-99", "not found"]);
        s.run(PM, &["decision", "show", "CHECKOUT-42", "ffffffff"]).fails(3, &["ffffffff"]);
        s.run(PM, &["feedback", "resolve", "CHECKOUT-42", "ffffffff", "--resolution", "x"]).fails(3, &["ffffffff"]);

        // 2: invalid input, from the server and from the command line.
        s.run(PM, &["initiative", "create", "not a key", "--title", "x"]).fails(2, &["invalid input", "key"]);
        s.run(PM, &["decision", "propose", "CHECKOUT-42", "--title", "", "--proposal", "p"]).fails(2, &["title"]);
        s.run(PM, &["stakeholder", "assign", "CHECKOUT-42", "x@y", "--function", "design", "--role", "boss"])
            .fails(2, &["'boss'", "possible values", "accord stakeholder assign --help"]);
        s.run(PM, &["decision", "revise", "CHECKOUT-42", &decision, "--title", "t"]).fails(2, &["--material"]);
        s.run(PM, &["initiative", "update", "CHECKOUT-42"]).fails(2, &["nothing to update"]);
        s.run("not ok", &["status"]).fails(2, &["--as"]);

        // 4: conflict — already exists, version mismatch, a rule of the domain.
        s.run(PM, &["initiative", "create", "CHECKOUT-42", "--title", "Again"]).fails(4, &["exists already"]);
        s.run(PM, &["initiative", "stage", "CHECKOUT-42", "delivery", "--expected-version", "1"])
            .fails(4, &["version conflict", "6"]);
        s.run(DRIVER, &["decision", "accept", "CHECKOUT-42", &decision]).fails(4, &[]);
        s.run(ENG, &["signoff", "reject", "CHECKOUT-42", &decision, "--reason", "No.", "--revision", "7"])
            .fails(4, &[]);

        // 5: permission denied.
        s.run(BIZ, &["signoff", "approve", "CHECKOUT-42", &decision, "--function", "engineering"])
            .fails(5, &["permission denied", "bo@example.com"]);
        s.run(ENG, &["decision", "accept", "CHECKOUT-42", &decision]).fails(5, &["driver"]);

        // Idempotency through the CLI: the same command id twice writes once.
        let first = s.json(PM, &["initiative", "stage", "CHECKOUT-42", "definition", "--command-id", "stage-once"]);
        let again = s.json(PM, &["initiative", "stage", "CHECKOUT-42", "definition", "--command-id", "stage-once"]);
        assert_eq!((first["replayed"].as_bool(), again["replayed"].as_bool()), (Some(false), Some(true)));
        assert_eq!(first["stream_version"], again["stream_version"]);
    });

    // 6: unavailable — nobody listens there.
    let port = free_port();
    let mut command = accord_command();
    command.args(["--server", &format!("127.0.0.1:{port}"), "status"]);
    Run::of(command, &["status"]).fails(6, &[&format!("http://127.0.0.1:{port}"), "accord serve"]);
}

#[test]
fn initiatives_by_key_or_id_decisions_and_feedback_by_prefix() {
    for_each_store(|s| {
        let created = set_up_checkout(s, "CHECKOUT-42");
        let initiative_id = created["initiative_id"].as_str().expect("id").to_owned();
        let first = propose(s, "checkout-42", "Use Stripe");
        let second = propose(s, &initiative_id, "Use Adyen");
        let (a, b) = (first["decision_id"].as_str().expect("id"), second["decision_id"].as_str().expect("id"));

        // The initiative by id and by key in any case.
        assert_eq!(s.json(PM, &["status", &initiative_id])["key"], "CHECKOUT-42");
        assert_eq!(s.json(PM, &["initiative", "show", "checkout-42"])["initiative_id"], initiative_id.as_str());

        // Decisions: the full id, the shortest unambiguous prefix, with or without dashes.
        assert_eq!(s.json(PM, &["decision", "show", "CHECKOUT-42", a])["content"]["title"], "Use Stripe");
        let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
        let unique_b = &b[..common + 1];
        assert_eq!(s.json(PM, &["decision", "show", "CHECKOUT-42", unique_b])["content"]["title"], "Use Adyen");
        let undashed: String = b.chars().filter(|c| *c != '-').take(20).collect();
        assert_eq!(s.json(PM, &["decision", "show", "CHECKOUT-42", &undashed])["decision_id"], b);

        // Both ids are UUID v7 of the same minute: their first 4 digits are shared.
        let ambiguous = &a[..4];
        s.run(PM, &["decision", "show", "CHECKOUT-42", ambiguous])
            .fails(2, &["ambiguous", a, b, "Use Stripe", "Use Adyen"]);
        s.run(PM, &["decision", "show", "CHECKOUT-42", &a[..3]]).fails(2, &["too short"]);
        s.run(PM, &["decision", "show", "CHECKOUT-42", "not-hex!"]).fails(2, &["not an id"]);

        // Feedback: by prefix among open objections and the decision threads.
        let comment = s.json(
            DES,
            &["feedback", "add", "CHECKOUT-42", "Which provider supports SEPA?", "--decision", a, "--kind", "question"],
        );
        let objection =
            s.json(BIZ, &["feedback", "add", "CHECKOUT-42", "Too expensive.", "--decision", b, "--kind", "objection"]);
        let (q, o) = (comment["feedback_id"].as_str().expect("id"), objection["feedback_id"].as_str().expect("id"));
        let common = q.chars().zip(o.chars()).take_while(|(x, y)| x == y).count();
        s.run(BIZ, &["feedback", "resolve", "CHECKOUT-42", &o[..common.max(4)], "--resolution", "x"])
            .fails(2, &["ambiguous", q, o]);
        let resolved =
            s.json(BIZ, &["feedback", "resolve", "CHECKOUT-42", &o[..common + 1], "--resolution", "Discount agreed."]);
        assert_eq!(resolved["feedback_id"], o);
        // Resolved feedback is still found (in its decision's thread), to be reopened.
        s.ok(BIZ, &["feedback", "reopen", "CHECKOUT-42", &o[..common + 1], "--reason", "Not signed yet."]);
        assert_eq!(s.json(PM, &["status", "CHECKOUT-42"])["open_objections"][0]["feedback_id"], o);
    });
}

#[test]
fn withdraw_reject_supersede_override_and_revoke() {
    for_each_store(|s| {
        set_up_checkout(s, "CHECKOUT-42");
        let old = propose(s, "CHECKOUT-42", "Use Stripe")["decision_id"].as_str().expect("id").to_owned();
        let rejected = propose(s, "CHECKOUT-42", "Build in-house")["decision_id"].as_str().expect("id").to_owned();
        let withdrawn = propose(s, "CHECKOUT-42", "Use PayPal")["decision_id"].as_str().expect("id").to_owned();
        s.ok(ENG, &["signoff", "approve", "CHECKOUT-42", &old]);
        s.ok(ENG, &["signoff", "revoke", "CHECKOUT-42", &old]);
        s.ok(BIZ, &["signoff", "reject", "CHECKOUT-42", &old, "--reason", "Fees."]);
        let overridden =
            s.json(DRIVER, &["decision", "accept", "CHECKOUT-42", &old, "--override", "Launch date is fixed."]);
        assert_eq!(overridden["override"], true);
        s.ok(DRIVER, &["decision", "reject", "CHECKOUT-42", &rejected, "--reason", "Too slow."]);
        s.ok(DRIVER, &["decision", "withdraw", "CHECKOUT-42", &withdrawn, "--reason", "Not needed."]);
        let new = propose(s, "CHECKOUT-42", "Use Adyen")["decision_id"].as_str().expect("id").to_owned();
        for who in [ENG, DES, BIZ] {
            s.ok(who, &["signoff", "approve", "CHECKOUT-42", &new]);
        }
        s.ok(DRIVER, &["decision", "accept", "CHECKOUT-42", &new]);
        s.ok(DRIVER, &["decision", "supersede", "CHECKOUT-42", &old, "--by", &new]);

        let view = s.json(PM, &["status", "CHECKOUT-42"]);
        assert_eq!(view["overrides"][0]["reason"], "Launch date is fixed.");
        let statuses: Vec<&str> =
            view["decisions"].as_array().expect("decisions").iter().filter_map(|d| d["status"].as_str()).collect();
        assert_eq!(statuses, ["superseded", "rejected", "withdrawn", "accepted"]);
        let detail = s.json(PM, &["decision", "show", "CHECKOUT-42", &old]);
        assert_eq!(detail["superseded_by"], new.as_str());
        assert_eq!(detail["override"]["accepted_by"], DRIVER);
        assert_eq!(detail["sign_off_history"][0]["revoked"], true);
        let text = s.ok(PM, &["decision", "show", "CHECKOUT-42", &old]).stdout;
        assert!(
            text.contains("OVERRIDE:") && text.contains("Launch date is fixed.") && text.contains("revoked"),
            "{text}"
        );
    });
}

#[test]
fn the_demo_plays_twice_against_a_running_server() {
    for_each_store(|s| {
        let first = s.ok(PM, &["demo"]).stdout;
        assert!(first.contains("$ accord --as pm@example.com initiative create CHECKOUT-42"), "{first}");
        for expected in [
            "✓ pending, 0 of 3 approved",
            "✓ blocked, 2 of 3 approved",
            "✓ blocked, 0 of 3 approved",
            "✓ aligned, 3 of 3 approved",
            "stale, replaced",
            "audit API",
        ] {
            assert!(first.contains(expected), "the demo should show {expected:?}:\n{first}");
        }
        assert!(!first.contains('✗'), "{first}");
        let second = s.ok(PM, &["demo"]).stdout;
        assert!(second.contains("CHECKOUT-42 is taken on this server, so this run uses CHECKOUT-43"), "{second}");
        assert!(second.contains("✓ aligned, 3 of 3 approved"), "{second}");
        s.run(PM, &["--json", "demo"]).fails(2, &["--json"]);
    });
}

#[test]
fn the_demo_starts_an_embedded_server() {
    let database = ThrowAwayDatabase { url: fresh_postgres_url() };
    let mut command = accord_command();
    command.args(["demo", "--embedded", "--database-url", &database.url]);
    let run = Run::of(command, &["demo"]);
    assert_eq!(run.code, 0, "{}{}", run.stderr, run.stdout);
    assert!(run.stdout.contains("runs embedded in this process") && run.stdout.contains("✓ aligned, 3 of 3 approved"));

    let mut command = accord_command();
    command.args(["demo", "--embedded"]);
    let run = Run::of(command, &["demo"]);
    if run.stderr.contains(SQLITE_UNFINISHED) {
        eprintln!("— embedded SQLite demo: skipped ({SQLITE_UNFINISHED})");
        run.fails(6, &["--database-url"]);
    } else {
        assert_eq!(run.code, 0, "{}{}", run.stderr, run.stdout);
        assert!(run.stdout.contains("temporary SQLite store") && run.stdout.contains("✓ aligned, 3 of 3 approved"));
    }
}

#[test]
fn serve_with_no_configuration_runs_on_the_embedded_store() {
    let workdir = tempfile::tempdir().expect("temporary folder");
    match Server::spawn(None, None, workdir) {
        Started::Running(server) => {
            assert!(Path::new(&server.workdir.path().join("accord-data")).is_dir(), "./accord-data is created");
            set_up_checkout(&server, "CHECKOUT-42");
            assert_eq!(server.json(PM, &["status", "CHECKOUT-42"])["status"], "no_decisions");
        }
        Started::Unfinished => eprintln!("— serve with no configuration: skipped ({SQLITE_UNFINISHED})"),
    }
}

#[test]
fn every_command_has_help_with_an_example() {
    fn paths(command: &clap::Command, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        for sub in command.get_subcommands().filter(|c| c.get_name() != "help") {
            let mut path = prefix.clone();
            path.push(sub.get_name().to_owned());
            out.push(path.clone());
            paths(sub, path, out);
        }
    }
    let mut all = vec![Vec::new()];
    paths(&accord::config::Cli::command(), Vec::new(), &mut all);
    assert!(all.len() > 30, "every group and command: {all:?}");
    for path in all {
        let mut command = accord_command();
        command.args(&path).arg("--help");
        let run = Run::of(command, &["--help"]);
        assert_eq!(run.code, 0, "accord {path:?} --help: {}", run.stderr);
        assert!(run.stdout.contains("Example"), "accord {path:?} --help shows no example:\n{}", run.stdout);
    }
}

#[test]
fn usage_errors_are_one_line_naming_the_help_to_read() {
    let mut command = accord_command();
    command.args(["decision", "propose", "CHECKOUT-42", "--titel", "x"]);
    Run::of(command, &[]).fails(2, &["--titel", "accord decision propose --help"]);
    let mut command = accord_command();
    command.args(["initiative", "stage", "CHECKOUT-42", "later"]);
    Run::of(command, &[]).fails(2, &["'later'", "discovery", "accord initiative stage --help"]);
    let mut command = accord_command();
    command.args(["--server", "http://[::1", "status"]);
    Run::of(command, &[]).fails(2, &["--server"]);
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}
