//! The command-line client end to end: the real `accord` binary against a real server —
//! a child `accord serve` on a fresh PostgreSQL database, and on the embedded SQLite
//! store — checking what people read, what scripts parse (`--json`) and the exit codes.
//!
//! Every test that needs a server runs once per store through `for_each_store`. While
//! the SQLite store is unfinished (its stub refuses to open), the SQLite runs report
//! "skipped" instead of failing; nothing else is skipped.

mod common;
#[path = "common/proxy.rs"]
mod proxy;
#[path = "common/receiver.rs"]
mod receiver;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use clap::CommandFactory;
use serde_json::Value;

use common::{START_DEADLINE, ServeProcess, ThrowAwayDatabase, accord_command};

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

/// A URL for a fresh PostgreSQL database on the test server (created by whoever opens it).
fn fresh_postgres_url() -> String {
    common::fresh_postgres_url("accord_cli")
}

/// An `accord serve` child process on a loopback port, killed (and its database
/// dropped) when dropped.
struct Server {
    process: ServeProcess,
    address: String,
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
        Server::spawn_with(url, database, workdir, &[])
    }

    /// `spawn`, with more `accord serve` flags.
    fn spawn_with(
        url: Option<&str>,
        database: Option<ThrowAwayDatabase>,
        workdir: tempfile::TempDir,
        extra: &[&str],
    ) -> Started {
        let mut args = extra.to_vec();
        args.extend(["--log", "info"]);
        if let Some(url) = url {
            args.extend(["--database-url", url]);
        }
        match ServeProcess::spawn(workdir.path(), &args) {
            Ok(process) => {
                let address = process.address.clone();
                Started::Running(Server { process, address, _database: database, workdir })
            }
            Err(log) if log.contains(SQLITE_UNFINISHED) => Started::Unfinished,
            Err(log) => panic!("accord serve did not start within {START_DEADLINE:?}; its log:\n{log}"),
        }
    }

    fn log(&self) -> String {
        self.process.log()
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

        // What was agreed and by whom: every function shows as agreed, not "n/a".
        let view = s.json(PM, &["status", key]);
        let agreed = &view["agreed"][0];
        assert_eq!((agreed["revision"].as_u64(), agreed["accepted_by"].as_str()), (Some(2), Some(DRIVER)));
        let signers: Vec<(&str, &str)> = agreed["functions"]
            .as_array()
            .expect("functions")
            .iter()
            .map(|f| (f["function"].as_str().unwrap_or(""), f["sign_offs"][0]["signer"].as_str().unwrap_or("")))
            .collect();
        assert_eq!(signers, [("business", BIZ), ("design", DES), ("engineering", ENG)]);
        let text = s.ok(PM, &["status", key]).stdout;
        assert!(!text.contains("n/a") && text.matches("agreed").count() >= 3, "{text}");
        assert!(text.contains("Agreed (accepted decisions)"), "{text}");
        assert!(text.contains(&format!("design approved by {DES} (r2)")), "{text}");

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
            "as it was at version 10",
            "OK: 16 events in 1 initiative verified",
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
        // The options every command takes come after the command's own, under their own
        // heading.
        let global = run
            .stdout
            .find("Global options:")
            .unwrap_or_else(|| panic!("accord {path:?} --help has no global options heading:\n{}", run.stdout));
        for flag in GLOBAL_FLAGS {
            let at = run.stdout.find(&format!("      {flag}")).or_else(|| run.stdout.find(&format!(" {flag} ")));
            assert!(
                at.is_some_and(|at| at > global),
                "accord {path:?} --help lists {flag} among its own options:\n{}",
                run.stdout
            );
        }
        if let Some(own) = run.stdout.find("\nOptions:") {
            assert!(own < global, "accord {path:?} --help: its own options first:\n{}", run.stdout);
        }
    }
}

/// The eleven options every command takes.
const GLOBAL_FLAGS: [&str; 11] = [
    "--log <LOG>",
    "--log-format",
    "--server <URL>",
    "--as <PRINCIPAL>",
    "--json",
    "--token <TOKEN>",
    "--token-file",
    "--tls-ca",
    "--client-cert",
    "--client-key",
    "--correlation-id",
];

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

// ---------------------------------------------------------------------------------------
// accord audit

/// The event types of the scenario below, in stream order (versions 1 to 16).
const SCENARIO_EVENTS: [&str; 16] = [
    "InitiativeCreated",
    "StakeholderAssigned",
    "StakeholderAssigned",
    "StakeholderAssigned",
    "StakeholderAssigned",
    "DecisionProposed",
    "FeedbackRecorded",
    "SignOffRecorded",
    "SignOffRecorded",
    "FeedbackRecorded",
    "DecisionRevised",
    "FeedbackResolved",
    "SignOffRecorded",
    "SignOffRecorded",
    "SignOffRecorded",
    "DecisionAccepted",
];

/// The stream version at the end of step 4 (engineering and design approved, business objected).
const STEP_4_VERSION: &str = "10";
/// The stream version of the material revision (step 5).
const REVISION_VERSION: u64 = 11;

/// Plays steps 2–6 of the spec's scenario on `key` (16 events); returns the decision's short id.
fn play_scenario(s: &Server, key: &str) -> String {
    set_up_checkout(s, key);
    let decision = propose(s, key, "Use Stripe for payments")["short_id"].as_str().expect("short id").to_owned();
    s.ok(
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
        ],
    );
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
        ],
    );
    s.ok(DRIVER, &["decision", "revise", key, &decision, "--material", "--proposal", "Stripe, enterprise rate."]);
    let objection = objection["short_id"].as_str().expect("short id");
    s.ok(BIZ, &["feedback", "resolve", key, objection, "--resolution", "The rate matches."]);
    for who in [ENG, DES, BIZ] {
        s.ok(who, &["signoff", "approve", key, &decision]);
    }
    s.ok(DRIVER, &["decision", "accept", key, &decision]);
    decision
}

/// `read` again until `done` holds of what it returns (for up to START_DEADLINE).
fn eventually<T: std::fmt::Debug>(read: impl Fn() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = std::time::Instant::now() + START_DEADLINE;
    loop {
        let value = read();
        if done(&value) || std::time::Instant::now() > deadline {
            assert!(done(&value), "still not there after {START_DEADLINE:?}: {value:?}");
            return value;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Each line of stdout as a JSON object (JSON Lines).
fn json_lines(stdout: &str) -> Vec<Value> {
    stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))).collect()
}

#[test]
fn audit_history_as_a_timeline_and_as_json_lines() {
    for_each_store(|s| {
        let decision = play_scenario(s, "CHECKOUT-42");
        set_up_checkout(s, "PAYMENTS-7");

        // For people: a header and one line per event, in stream order, saying who did what.
        let text = s.ok(PM, &["audit", "history", "checkout-42"]).stdout;
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 17, "a header and 16 events:\n{text}");
        for word in ["AT", "VER", "POS", "BY", "EVENT", "WHAT"] {
            assert!(lines[0].contains(word), "{}", lines[0]);
        }
        assert!(!lines[0].contains("INITIATIVE"), "one initiative needs no initiative column: {}", lines[0]);
        for (line, event_type) in lines[1..].iter().zip(SCENARIO_EVENTS) {
            assert!(line.contains(event_type) && line.contains(" UTC "), "{event_type} expected:\n{text}");
        }
        assert!(lines[1].contains(PM) && lines[1].contains("created CHECKOUT-42 \"New checkout\""), "{text}");
        assert!(lines[8].contains(ENG) && lines[8].contains(&format!("approved decision {decision} (revision 1)")));
        assert!(lines[10].contains("objection") && lines[10].contains("Fees are above our negotiated rate."), "{text}");
        assert!(
            lines[11].contains(DRIVER)
                && lines[11].contains("to revision 2 (material)")
                && lines[11].contains("stale now: eve@example.com for engineering"),
            "{text}"
        );
        assert!(lines[16].contains(&format!("accepted decision {decision} (revision 2)")), "{text}");

        // For scripts: one object per event with every stored field, chained by hash.
        let events = json_lines(&s.ok(PM, &["--json", "audit", "history", "CHECKOUT-42"]).stdout);
        assert_eq!(events.len(), 16);
        let types: Vec<&str> = events.iter().filter_map(|e| e["event_type"].as_str()).collect();
        assert_eq!(types, SCENARIO_EVENTS);
        for (i, event) in events.iter().enumerate() {
            assert_eq!(event["stream_version"], i + 1);
            for field in ["position", "stream_id", "event_id", "schema_version", "actor", "command_id"] {
                assert!(!event[field].is_null(), "{field} missing: {event}");
            }
            for field in ["correlation_id", "causation_id", "prev_hash", "hash", "recorded_at"] {
                assert!(event[field].as_str().is_some_and(|v| !v.is_empty()), "{field} missing: {event}");
            }
            assert!(event["payload"].is_object(), "the payload is JSON, not text: {event}");
            let at = event["recorded_at"].as_str().expect("time");
            assert!(at.ends_with('Z') && at.split('.').nth(1).is_some_and(|f| f.len() == 7), "{at}");
            if i > 0 {
                assert_eq!(event["prev_hash"], events[i - 1]["hash"], "the chain links event {}", i + 1);
                assert!(event["position"].as_u64() > events[i - 1]["position"].as_u64());
            }
        }
        assert_eq!(events[0]["prev_hash"], "0".repeat(64));
        assert_eq!(events[9]["payload"]["kind"], "objection");

        // Filters: event types (any spelling, repeated or comma-separated) and a starting version.
        let sign_offs =
            json_lines(&s.ok(PM, &["--json", "audit", "history", "CHECKOUT-42", "--type", "SignOffRecorded"]).stdout);
        assert_eq!(sign_offs.len(), 5);
        assert!(sign_offs.iter().all(|e| e["event_type"] == "SignOffRecorded"));
        let some = s.ok(PM, &["audit", "history", "CHECKOUT-42", "--type", "signoffrecorded,decision-revised"]).stdout;
        assert_eq!(some.lines().count(), 1 + 6, "{some}");
        let later =
            json_lines(&s.ok(PM, &["--json", "audit", "history", "CHECKOUT-42", "--from-version", "11"]).stdout);
        let versions: Vec<u64> = later.iter().filter_map(|e| e["stream_version"].as_u64()).collect();
        assert_eq!(versions, (11..=16).collect::<Vec<_>>());

        // The whole log: both initiatives, with an initiative column; after a position.
        let all = s.ok(PM, &["audit", "history"]).stdout;
        assert!(all.lines().next().is_some_and(|h| h.contains("INITIATIVE")), "{all}");
        assert_eq!(all.lines().count(), 1 + 16 + 5, "{all}");
        assert!(all.contains("CHECKOUT-42") && all.contains("PAYMENTS-7"), "{all}");
        let last_of_checkout = events[15]["position"].as_u64().expect("position").to_string();
        // A filtered read of the whole log ends where PostgreSQL can tell that nothing will
        // commit before it any more: a transaction of another test on the server may hold it back.
        let after = eventually(
            || json_lines(&s.ok(PM, &["--json", "audit", "history", "--after-position", &last_of_checkout]).stdout),
            |after| after.len() == 5,
        );
        assert_eq!(after[0]["payload"]["key"], "PAYMENTS-7");

        // Refusals.
        s.run(PM, &["audit", "history", "CHECKOUT-99"]).fails(3, &["CHECKOUT-99"]);
        s.run(PM, &["audit", "history", "CHECKOUT-42", "--type", "Approved"]).fails(2, &["Approved"]);
        s.run(PM, &["audit", "history", "--from-version", "3"]).fails(2, &["accord audit history --help"]);
        s.run(PM, &["audit", "history", "CHECKOUT-42", "--after-position", "3"]).fails(2, &["--after-position"]);
    });
}

/// A child process that is killed, if still running, when the test ends (or fails).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn audit_history_follow_prints_new_events_until_interrupted() {
    for_each_store(|s| {
        set_up_checkout(s, "CHECKOUT-42");
        for json in [false, true] {
            let mut command = accord_command();
            command.args(["--server", &s.address, "--as", PM]);
            if json {
                command.arg("--json");
            }
            command.args(["audit", "history", "CHECKOUT-42", "--follow"]);
            let mut child = Reaped(command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("accord runs"));
            let stdout = child.0.stdout.take().expect("piped stdout");
            let (lines, next) = mpsc::channel::<String>();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let _ = lines.send(line);
                }
            });
            let wait_for = |what: &str| loop {
                let line = next.recv_timeout(START_DEADLINE).unwrap_or_else(|_| panic!("no line with {what:?}"));
                if line.contains(what) {
                    return line;
                }
            };
            let marker = wait_for("caught");
            if json {
                // The text run before this one changed the stage: a sixth event.
                assert_eq!(serde_json::from_str::<Value>(&marker).expect("JSON")["caught_up"]["position"], 6);
            } else {
                assert!(marker.contains("caught up at position 5") && marker.contains("Ctrl-C"), "{marker}");
            }
            s.ok(PM, &["initiative", "stage", "CHECKOUT-42", if json { "delivery" } else { "definition" }]);
            let live = wait_for("StageChanged");
            assert!(live.contains(if json { "\"to\":\"delivery\"" } else { "stage discovery → definition" }), "{live}");

            // Ctrl-C ends it, with success.
            let interrupted =
                Command::new("kill").args(["-INT", &child.0.id().to_string()]).status().expect("kill runs");
            assert!(interrupted.success());
            let status = child.0.wait().expect("accord exits");
            assert_eq!(status.code(), Some(0), "Ctrl-C exits 0");
        }
    });
}

#[test]
fn audit_as_of_and_explain_replay_the_past() {
    for_each_store(|s| {
        let decision = play_scenario(s, "CHECKOUT-42");

        // Step 4 of the scenario: blocked, 2 of 3. Now: aligned.
        let then = s.json(PM, &["audit", "as-of", "CHECKOUT-42", "--version", STEP_4_VERSION]);
        assert_eq!(
            (then["status"].as_str(), then["approved_pairs"].as_u64(), then["version"].as_u64()),
            (Some("blocked"), Some(2), Some(10))
        );
        assert_eq!(then["functions"]["business"], "blocked");
        assert_eq!(then["open_objections"][0]["body"], "Fees are above our negotiated rate.");
        assert_eq!(s.json(PM, &["status", "CHECKOUT-42"])["status"], "aligned");
        let board = s.ok(PM, &["audit", "as-of", "checkout-42", "--version", STEP_4_VERSION]).stdout;
        assert!(board.starts_with("CHECKOUT-42 as it was at version 10"), "{board}");
        assert!(board.contains("blocked") && board.contains("Open objections"), "{board}");
        let now = chrono::Utc::now().to_rfc3339();
        let today = s.json(PM, &["audit", "as-of", "CHECKOUT-42", "--at", &now]);
        assert_eq!((today["status"].as_str(), today["version"].as_u64()), (Some("aligned"), Some(16)));

        // Before the initiative existed; a version it never had; no point in time at all.
        s.run(PM, &["audit", "as-of", "CHECKOUT-42", "--at", "2000-01-01"]).fails(3, &["CHECKOUT-42", "did not exist"]);
        s.run(PM, &["audit", "as-of", "CHECKOUT-42", "--version", "99"]).fails(2, &["version"]);
        s.run(PM, &["audit", "as-of", "CHECKOUT-42"]).fails(2, &["accord audit as-of --help"]);
        s.run(PM, &["audit", "as-of", "CHECKOUT-42", "--at", "yesterday"]).fails(2, &["RFC 3339"]);

        // Just after the material revision: the stale approvals name the revision, the objection blocks.
        let version = REVISION_VERSION.to_string();
        let explained = s.json(PM, &["audit", "explain", "CHECKOUT-42", &decision, "--version", &version]);
        assert_eq!((explained["status"].as_str(), explained["version"].as_u64()), (Some("blocked"), Some(11)));
        let functions = explained["decisions"][0]["functions"].as_array().expect("functions");
        let function = |name: &str| functions.iter().find(|f| f["function"] == name).expect("function").clone();
        let engineering = function("engineering");
        assert_eq!(engineering["state"], "pending");
        let events = engineering["events"].as_array().expect("events");
        assert!(
            events.iter().any(|e| e["event_type"] == "DecisionRevised"
                && e["stream_version"] == REVISION_VERSION
                && e["summary"].as_str().is_some_and(|s| s.contains("revision 2 (material)"))),
            "the material revision behind the stale approval: {engineering}"
        );
        assert!(events.iter().any(|e| e["event_type"] == "SignOffRecorded" && e["actor"] == ENG), "{engineering}");
        let business = function("business");
        assert_eq!(business["state"], "blocked");
        assert!(
            business["events"].as_array().expect("events").iter().any(|e| e["actor"] == BIZ
                && e["stream_version"] == 10
                && e["summary"].as_str().is_some_and(|s| s.contains("Fees are above our negotiated rate."))),
            "the objection: {business}"
        );
        let text = s.ok(PM, &["audit", "explain", "CHECKOUT-42", "--version", &version]).stdout;
        for expected in [
            "CHECKOUT-42 is blocked at version 11",
            "engineering: pending",
            "made earlier approvals stale",
            "business: blocked",
            "Fees are above our negotiated rate.",
            "lifecycle:",
        ] {
            assert!(text.contains(expected), "explain should show {expected:?}:\n{text}");
        }

        // Now: the lifecycle ends with the acceptance.
        let lifecycle = s.json(PM, &["audit", "explain", "CHECKOUT-42"])["decisions"][0]["lifecycle"].clone();
        let lifecycle = lifecycle.as_array().expect("lifecycle");
        assert_eq!(lifecycle.first().map(|e| &e["event_type"]), Some(&Value::from("DecisionProposed")));
        assert_eq!(
            lifecycle.last().map(|e| (&e["event_type"], &e["actor"])),
            Some((&"DecisionAccepted".into(), &DRIVER.into()))
        );
        s.run(PM, &["audit", "explain", "CHECKOUT-42", "ffffffff"]).fails(3, &["ffffffff"]);
    });
}

#[test]
fn audit_verify_and_checkpoints_on_an_untouched_log() {
    for_each_store(|s| {
        play_scenario(s, "CHECKOUT-42");
        set_up_checkout(s, "PAYMENTS-7");
        assert_eq!(
            s.ok(PM, &["audit", "verify"]).stdout.trim(),
            "OK: 21 events in 2 initiatives verified, 0 checkpoints"
        );

        let created = s.ok(PM, &["audit", "checkpoint", "create"]).stdout;
        assert!(
            created.starts_with("checkpoint 1 created at ") && created.contains("2 initiatives, 21 events"),
            "{created}"
        );
        let root = created.lines().find_map(|l| l.strip_prefix("root ")).expect("root line").to_owned();
        assert!(root.len() == 64 && root.chars().all(|c| c.is_ascii_hexdigit()), "{root}");
        // Nothing appended since: the same checkpoint answers, and none is recorded.
        let again = s.ok(PM, &["audit", "checkpoint", "create"]).stdout;
        assert!(again.starts_with("checkpoint 1 already covers the log (nothing appended since)"), "{again}");
        let full = s.json(PM, &["audit", "checkpoint", "create"]);
        assert_eq!(
            (full["id"].as_u64(), full["events"].as_u64(), full["root"].as_str(), full["already_covered"].as_bool()),
            (Some(1), Some(21), Some(root.as_str()), Some(true))
        );
        let heads = full["heads"].as_array().expect("heads");
        assert_eq!(
            heads.iter().filter_map(|h| h["version"].as_u64()).collect::<std::collections::BTreeSet<_>>(),
            [5, 16].into()
        );
        assert!(heads.iter().all(|h| h["hash"].as_str().is_some_and(|x| x.len() == 64)));
        assert_eq!(s.ok(PM, &["audit", "checkpoint", "create", "--root-only"]).stdout.trim(), root);

        // The log grows: the next one is recorded.
        propose(s, "PAYMENTS-7", "Invoices");
        let grown = s.json(PM, &["audit", "checkpoint", "create"]);
        assert_eq!((grown["id"].as_u64(), grown["already_covered"].as_bool()), (Some(2), Some(false)));

        let listed = s.json(PM, &["audit", "checkpoint", "list"]);
        assert_eq!(listed["checkpoints"].as_array().map(Vec::len), Some(2));
        assert_eq!(listed["checkpoints"][0]["heads"].as_array().map(Vec::len), Some(2));
        let table = s.ok(PM, &["audit", "checkpoint"]).stdout;
        assert_eq!(table.lines().count(), 3, "a header and two checkpoints:\n{table}");
        assert!(table.lines().nth(1).is_some_and(|l| l.ends_with(&root)), "{table}");

        assert_eq!(
            s.ok(PM, &["audit", "verify"]).stdout.trim(),
            "OK: 22 events in 2 initiatives verified, 2 checkpoints"
        );
        assert!(
            s.ok(PM, &["audit", "verify", "payments-7"]).stdout.starts_with("OK: 6 events in 1 initiative verified")
        );
        let verified = s.json(PM, &["audit", "verify"]);
        assert_eq!((verified["ok"].as_bool(), verified["first_break"].is_null()), (Some(true), true));
        s.run(PM, &["audit", "verify", "NOPE-1"]).fails(3, &["NOPE-1"]);
    });
}

/// Runs SQL on the server's database directly, past the triggers that keep the log
/// append-only, as someone with access to the database could.
fn tamper(server: &Server, postgres: &str, sqlite: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        match &server._database {
            Some(database) => {
                let pool = sqlx::PgPool::connect(&database.url).await.expect("connect to PostgreSQL");
                let sql = format!("ALTER TABLE events DISABLE TRIGGER USER; {postgres}");
                sqlx::raw_sql(&sql).execute(&pool).await.expect("tamper with PostgreSQL");
            }
            None => {
                let url = format!("sqlite://{}", server.workdir.path().join("accord.db").display());
                let pool = sqlx::SqlitePool::connect(&url).await.expect("open the SQLite file");
                let sql = format!("DROP TRIGGER events_no_update; {sqlite}");
                sqlx::raw_sql(&sql).execute(&pool).await.expect("tamper with SQLite");
            }
        }
    });
}

#[test]
fn audit_verify_names_the_first_broken_link_and_exits_7() {
    for_each_store(|s| {
        let created = set_up_checkout(s, "CHECKOUT-42");
        let stream = created["initiative_id"].as_str().expect("id").to_owned();
        set_up_checkout(s, "PAYMENTS-7");
        // Someone with access to the database rewrites who was assigned at version 2.
        tamper(
            s,
            &format!(
                "UPDATE events SET payload = jsonb_set(payload, '{{principal}}', '\"mallory@example.com\"')
                  WHERE stream_id = '{stream}' AND stream_version = 2"
            ),
            &format!(
                "UPDATE events SET payload = json_set(payload, '$.principal', 'mallory@example.com')
                  WHERE stream_id = '{stream}' AND stream_version = 2"
            ),
        );
        s.run(PM, &["audit", "verify"])
            .fails(7, &["verification FAILED", "CHECKOUT-42", &stream, "version 2", "position 2"]);
        let report = s.run(PM, &["--json", "audit", "verify"]);
        assert_eq!(report.code, 7, "{}", report.stderr);
        let report = report.json();
        let broken = &report["first_break"];
        assert_eq!(report["ok"], false);
        assert_eq!(
            (broken["key"].as_str(), broken["stream_id"].as_str(), broken["stream_version"].as_u64()),
            (Some("CHECKOUT-42"), Some(stream.as_str()), Some(2))
        );
        assert!(broken["reason"].as_str().is_some_and(|r| !r.is_empty()), "{report}");
        s.run(PM, &["audit", "verify", "CHECKOUT-42"]).fails(7, &["CHECKOUT-42", "version 2"]);
        // The other initiative's chain is intact.
        assert!(s.ok(PM, &["audit", "verify", "PAYMENTS-7"]).stdout.starts_with("OK: 5 events in 1 initiative"));
    });
}

/// Starts a server on `store`, or `None` (said on stderr) if that store cannot run here.
fn server_on(store: Store) -> Option<Server> {
    match Server::start(store) {
        Started::Running(server) => Some(server),
        Started::Unfinished => {
            eprintln!("— {store:?} store: skipped ({SQLITE_UNFINISHED})");
            None
        }
    }
}

/// `accord audit import` of `file` on `server`.
fn import(server: &Server, file: &Path) -> Run {
    server.run(PM, &["audit", "import", &file.display().to_string()])
}

/// An export without the global positions, which belong to the store that assigned them.
fn without_positions(export: &str) -> Vec<Value> {
    json_lines(export)
        .into_iter()
        .map(|mut e| {
            e.as_object_mut().map(|o| o.remove("position"));
            e
        })
        .collect()
}

#[test]
fn export_and_import_move_the_log_between_stores() {
    let Some(postgres) = server_on(Store::Postgres) else { return };
    play_scenario(&postgres, "CHECKOUT-42");
    set_up_checkout(&postgres, "PAYMENTS-7");
    let decision = propose(&postgres, "PAYMENTS-7", "Adopt Adyen")["short_id"].as_str().expect("id").to_owned();
    postgres.ok(BIZ, &["signoff", "reject", "PAYMENTS-7", &decision, "--reason", "Fees."]);
    postgres.ok(DRIVER, &["decision", "accept", "PAYMENTS-7", &decision, "--override", "Launch date is fixed."]);
    let folder = tempfile::tempdir().expect("temporary folder");
    let file = folder.path().join("accord.jsonl");

    let exported = postgres.ok(PM, &["audit", "export", "-o", &file.display().to_string()]);
    assert_eq!(exported.stdout, "", "the export went to the file");
    assert!(exported.stderr.contains("exported 24 events of 2 initiatives to "), "{}", exported.stderr);
    let original = std::fs::read_to_string(&file).expect("the export");
    assert_eq!(original.lines().count(), 24);
    assert_eq!(original, postgres.ok(PM, &["audit", "export"]).stdout, "the same lines on stdout");
    let one = postgres.ok(PM, &["audit", "export", "CHECKOUT-42"]);
    assert_eq!((one.stdout.lines().count(), one.stderr.trim()), (16, "exported 16 events of CHECKOUT-42"));

    // PostgreSQL → SQLite: the same boards, a verified chain, the same events.
    let Some(sqlite) = server_on(Store::Sqlite) else { return };
    let imported = import(&sqlite, &file);
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    assert!(imported.stdout.starts_with("imported 24 events of 2 initiatives"), "{}", imported.stdout);
    for key in ["CHECKOUT-42", "PAYMENTS-7"] {
        assert_eq!(sqlite.json(PM, &["status", key]), postgres.json(PM, &["status", key]), "{key} after the import");
    }
    assert_eq!(
        sqlite.ok(PM, &["audit", "verify"]).stdout.trim(),
        "OK: 24 events in 2 initiatives verified, 0 checkpoints"
    );
    let again = sqlite.ok(PM, &["audit", "export"]).stdout;
    assert_eq!(without_positions(&again), without_positions(&original));

    // And back, from standard input, into a fresh PostgreSQL.
    let Some(back) = server_on(Store::Postgres) else { return };
    let mut command = accord_command();
    command.args(["--server", &back.address, "--as", PM, "--json", "audit", "import", "-"]);
    command.stdin(std::fs::File::open(&file).expect("the export"));
    let run = Run::of(command, &["audit", "import", "-"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!((run.json()["events"].as_u64(), run.json()["initiatives"].as_u64()), (Some(24), Some(2)));
    assert_eq!(back.json(PM, &["status", "CHECKOUT-42"]), postgres.json(PM, &["status", "CHECKOUT-42"]));
    assert_eq!(
        back.ok(PM, &["audit", "verify"]).stdout.trim(),
        "OK: 24 events in 2 initiatives verified, 0 checkpoints"
    );

    // A store that holds events already takes no import.
    import(&back, &file).fails(4, &["not empty"]);
    import(&back, &folder.path().join("missing.jsonl")).fails(2, &["missing.jsonl"]);
}

#[test]
fn a_corrupted_export_is_refused_naming_its_line_and_nothing_is_written() {
    for (from, to) in [(Store::Postgres, Store::Sqlite), (Store::Sqlite, Store::Postgres)] {
        let (Some(source), Some(target)) = (server_on(from), server_on(to)) else { continue };
        eprintln!("— {from:?} → {to:?}");
        play_scenario(&source, "CHECKOUT-42");
        let export = source.ok(PM, &["audit", "export"]).stdout;
        let folder = tempfile::tempdir().expect("temporary folder");

        // Line 5 assigns bo@example.com to business; make it legal, keeping its hash.
        let mut lines: Vec<String> = export.lines().map(str::to_owned).collect();
        assert!(lines[4].contains("\"business\""), "{}", lines[4]);
        lines[4] = lines[4].replace("\"business\"", "\"legal\"");
        let edited = folder.path().join("edited.jsonl");
        std::fs::write(&edited, lines.join("\n") + "\n").expect("written");
        import(&target, &edited).fails(2, &["line 5"]);

        // A file cut by bytes that are not text: refused by the client, the call abandoned.
        let cut = folder.path().join("cut.jsonl");
        let mut bytes = export.clone().into_bytes();
        bytes.extend_from_slice(b"{\"position\": \xff}\n");
        std::fs::write(&cut, bytes).expect("written");
        import(&target, &cut).fails(2, &["line 17", "UTF-8", "nothing was imported"]);

        // Nothing of either was written.
        assert_eq!(
            target.ok(PM, &["audit", "verify"]).stdout.trim(),
            "OK: 0 events in 0 initiatives verified, 0 checkpoints"
        );
        assert_eq!(target.json(PM, &["status"])["initiatives"].as_array().map(Vec::len), Some(0));
        assert_eq!(target.ok(PM, &["--json", "audit", "history"]).stdout, "");
        // The untouched export still goes in whole.
        let whole = folder.path().join("whole.jsonl");
        std::fs::write(&whole, &export).expect("written");
        assert!(import(&target, &whole).stdout.starts_with("imported 16 events of 1 initiative"));
    }
}

// ---------------------------------------------------------------------------------------
// Security: authentication configured, tokens from the CLI

#[test]
fn serve_refuses_a_public_address_without_authentication_and_a_broken_configuration() {
    let workdir = tempfile::tempdir().expect("temporary folder");
    let mut command = accord_command();
    command.current_dir(workdir.path()).args(["serve", "--listen", "0.0.0.0:0"]);
    let run = Run::of(command, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("accord: refusing to listen on 0.0.0.0:0 without authentication"), "{}", run.stderr);
    assert!(run.stderr.contains("--auth-config"), "{}", run.stderr);
    assert!(!workdir.path().join("accord-data").exists(), "nothing was opened before the refusal");

    let config = workdir.path().join("accord-auth.toml");
    std::fs::write(
        &config,
        "[jwt]\nissuer = \"https://id.example/\"\naudience = \"accord\"\nleeway_seconds = 900\nkeys = []\n",
    )
    .expect("write");
    let mut command = accord_command();
    command.current_dir(workdir.path()).args(["serve", "--auth-config", "accord-auth.toml"]);
    let run = Run::of(command, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("accord: accord-auth.toml: jwt.leeway_seconds: is 900; at most 300"), "{}", run.stderr);
}

#[test]
fn serve_against_a_database_that_never_answers_says_what_it_waits_for_and_exits_6_after_the_timeout() {
    // A listener that accepts connections and never answers, like a stopped PostgreSQL.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let silent = runtime.block_on(proxy::Proxy::silent());
    let workdir = tempfile::tempdir().expect("temporary folder");
    let url = format!("postgres://postgres:s3cret-pw@127.0.0.1:{}/accord_hung", silent.port());
    let mut command = accord_command();
    command
        .current_dir(workdir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "off", "--log-format", "json"])
        .args(["--database-url", &url])
        .env("ACCORD_DB_CONNECT_TIMEOUT", "2")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("accord serve starts");
    // Generous: the point is that it ends at all (it used to wait forever).
    let deadline = std::time::Instant::now() + START_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("accord serve still waits for the database after {START_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("read stderr");
    assert_eq!(status.code(), Some(6), "exits unavailable: {stderr}");
    let waited = format!("127.0.0.1:{}/accord_hung", silent.port());
    let connecting = stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|entry| entry["fields"]["message"] == "connecting to the database")
        .unwrap_or_else(|| panic!("no \"connecting to the database\" line in\n{stderr}"));
    assert_eq!(connecting["fields"]["database"], waited.as_str(), "{connecting}");
    assert_eq!(connecting["fields"]["timeout_s"], 2.0, "{connecting}");
    assert!(
        stderr.contains(&format!("accord: cannot open the event store at postgres://postgres:***@{waited}")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("{waited} did not answer within 2 s")), "{stderr}");
    assert!(stderr.contains("--db-connect-timeout"), "names the setting: {stderr}");
    assert!(!stderr.contains("s3cret-pw"), "the password never shows: {stderr}");
}

/// An HS256 token from the test's identity provider.
fn jwt(secret: &[u8], principal: &str, roles: &[&str]) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims = serde_json::json!({"iss": "https://id.example/", "aud": "accord", "sub": principal,
        "exp": now + 600, "roles": roles});
    let key = jsonwebtoken::EncodingKey::from_secret(secret).expect("key");
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("sign")
}

#[test]
fn the_cli_sends_tokens_from_a_flag_the_environment_or_a_file_to_a_configured_server() {
    let workdir = tempfile::tempdir().expect("temporary folder");
    let secret = b"a-secret-of-the-identity-provider-that-is-long-enough";
    std::fs::write(workdir.path().join("jwt.secret"), secret).expect("write");
    // A service token made by `accord token generate`; only its entry goes in the file.
    let mut command = accord_command();
    command.args(["token", "generate", "--principal", "dashboard@svc", "--role", "reader"]);
    let generated = Run::of(command, &[]);
    assert_eq!(generated.code, 0, "{}", generated.stderr);
    let (service_token, entry) = generated.stdout.split_once('\n').expect("token, then the entry");
    assert!(service_token.starts_with("accord_st_") && !entry.contains(service_token), "{}", generated.stdout);
    let mut hash = accord_command();
    hash.arg("token").arg("hash").stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = hash.spawn().expect("accord token hash");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), service_token.as_bytes()).expect("write");
    let hashed = child.wait_with_output().expect("hash output");
    let digest = String::from_utf8_lossy(&hashed.stdout).trim().to_owned();
    assert!(entry.contains(&format!("sha256 = \"{digest}\"")), "hash agrees with generate: {digest} / {entry}");
    std::fs::write(workdir.path().join("dashboard.token"), format!("{service_token}\n")).expect("write");
    let config = format!(
        "[jwt]\nissuer = \"https://id.example/\"\naudience = \"accord\"\n\n[[jwt.keys]]\nalgorithm = \"HS256\"\nsecret_file = \"jwt.secret\"\n{entry}"
    );
    std::fs::write(workdir.path().join("accord-auth.toml"), config).expect("write");
    let url = format!("sqlite://{}", workdir.path().join("accord.db").display());
    let token_dir = workdir.path().to_path_buf();
    let server = match Server::spawn_with(Some(&url), None, workdir, &["--auth-config", "accord-auth.toml"]) {
        Started::Running(server) => server,
        Started::Unfinished => return eprintln!("skipped ({SQLITE_UNFINISHED})"),
    };
    assert!(!server.log().contains("LOCAL DEVELOPMENT MODE"), "authentication is configured");
    let with = |setup: &dyn Fn(&mut Command), args: &[&str]| {
        let mut command = accord_command();
        command.args(["--server", &server.address]);
        setup(&mut command);
        command.args(args);
        Run::of(command, args)
    };
    let admin = jwt(secret, PM, &["admin"]);
    let created = with(
        &|c| {
            c.args(["--token", &admin]);
        },
        &["--json", "initiative", "create", "SEC-1", "--title", "Secure"],
    );
    assert_eq!(created.code, 0, "{}", created.stderr);
    let shown = with(
        &|c| {
            c.args(["--token", &admin]);
        },
        &["--json", "initiative", "show", "SEC-1"],
    );
    assert_eq!(shown.json()["owner"], PM, "the token's subject is the actor: {}", shown.stdout);
    let member = jwt(secret, ENG, &["member"]);
    with(
        &|c| {
            c.env("ACCORD_TOKEN", &member);
        },
        &["initiative", "create", "SEC-2", "--title", "No"],
    )
    .fails(5, &["CreateInitiative needs the admin role", "eve@example.com holds member"]);
    let file = token_dir.join("dashboard.token");
    let board = with(
        &|c| {
            c.arg("--token-file").arg(&file);
        },
        &["--json", "status", "SEC-1"],
    );
    assert_eq!(board.code, 0, "{}", board.stderr);
    assert_eq!(board.json()["key"], "SEC-1");
    with(
        &|c| {
            c.arg("--token-file").arg(&file);
        },
        &["initiative", "create", "SEC-3", "--title", "No"],
    )
    .fails(5, &["dashboard@svc holds reader"]);
    with(
        &|c| {
            c.args(["--as", PM]);
        },
        &["status"],
    )
    .fails(5, &["no credentials"]);
    with(
        &|c| {
            c.args(["--token", "accord_st_wrong"]);
        },
        &["status"],
    )
    .fails(5, &["not a known service token"]);
}

/// Runs `accord ARGS…` with no server at all.
fn offline(args: &[&str]) -> Run {
    let mut command = accord_command();
    command.args(["--server", "http://127.0.0.1:9"]).args(args);
    Run::of(command, args)
}

/// Rewrites the payload of one event of an export and re-hashes it and every later event
/// of its stream: a log that is consistent with itself, but not the one that was signed.
fn rewrite_export(lines: &str, stream: &str, version: u64) -> String {
    use accord::store::{ExportLine, event_hash};
    let mut events: Vec<ExportLine> =
        lines.lines().map(|line| serde_json::from_str(line).expect("an export line")).collect();
    let mut prev: Option<String> = None;
    for line in events.iter_mut().filter(|line| line.stream_id == stream) {
        if line.stream_version == version {
            line.payload["principal"] = "mallory@example.com".into();
        }
        if line.stream_version >= version {
            if let Some(prev) = &prev {
                line.prev_hash = prev.clone();
            }
            let text = serde_json::to_string(&*line).expect("encode");
            let event = ExportLine::parse(1, &text).expect("parse");
            line.hash = hex::encode(event_hash(&event.prev_hash, &event.content()));
        }
        prev = Some(line.hash.clone());
    }
    events.iter().map(|line| serde_json::to_string(line).expect("encode") + "\n").collect()
}

#[test]
fn signed_checkpoints_are_exported_and_a_log_is_verified_against_them() {
    let keys = tempfile::tempdir().expect("temporary folder");
    let key_file = keys.path().join("checkpoint.key");
    let key_path = key_file.to_str().expect("UTF-8 path");
    let made = offline(&["audit", "keygen", "--name", "accord.example/cli-test", "-o", key_path]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    let verifier = made.stdout.trim().to_owned();
    // name+hash+key, where the base64 key may itself contain '+'.
    let parts: Vec<&str> = verifier.splitn(3, '+').collect();
    assert!(
        parts.len() == 3
            && parts[0] == "accord.example/cli-test"
            && parts[1].len() == 8
            && parts[1].chars().all(|c| c.is_ascii_hexdigit())
            && !parts[2].is_empty(),
        "{verifier}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).expect("key file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only the owner reads the key");
    }
    offline(&["audit", "keygen", "-o", key_path]).fails(2, &["never overwritten"]);
    let other = keys.path().join("other.key");
    let other_verifier = offline(&["audit", "keygen", "-o", other.to_str().expect("path")]).stdout.trim().to_owned();
    assert!(other_verifier.starts_with("accord.example/log-"), "a default name: {other_verifier}");
    let verifier_file = keys.path().join("verifier.txt");
    std::fs::write(&verifier_file, &verifier).expect("write the verifier key");

    for store in STORES {
        let workdir = tempfile::tempdir().expect("temporary folder");
        let (url, database) = match store {
            Store::Postgres => {
                let url = fresh_postgres_url();
                (url.clone(), Some(ThrowAwayDatabase { url }))
            }
            Store::Sqlite => (format!("sqlite://{}", workdir.path().join("accord.db").display()), None),
        };
        let Started::Running(s) = Server::spawn_with(Some(&url), database, workdir, &["--checkpoint-key", key_path])
        else {
            continue;
        };
        eprintln!("— {store:?} store");
        assert!(s.log().contains(&verifier), "the server logs its verifier key");
        let created = set_up_checkout(&s, "CHECKOUT-42");
        let stream = created["initiative_id"].as_str().expect("id").to_owned();
        let first = s.ok(PM, &["audit", "checkpoint", "create"]).stdout;
        assert!(first.contains("signed by accord.example/cli-test"), "{first}");
        propose(&s, "CHECKOUT-42", "Stripe");
        s.ok(PM, &["audit", "checkpoint", "create"]);
        let listed = s.json(PM, &["audit", "checkpoint", "list"]);
        let note = listed["checkpoints"][0]["note"].as_str().expect("a signed note").to_owned();
        assert!(
            note.starts_with("accord.example/cli-test\n") && note.contains("\n\n— accord.example/cli-test "),
            "{note}"
        );
        assert_eq!(listed["checkpoints"][1]["tree"], "log");

        let kept = s.workdir.path().join("kept.jsonl");
        let kept_path = kept.to_str().expect("path");
        s.ok(PM, &["audit", "checkpoint", "export", "-o", kept_path]);
        let kept_text = std::fs::read_to_string(&kept).expect("the kept file");
        assert_eq!(kept_text.lines().count(), 2, "{kept_text}");
        let ok = s.ok(PM, &["audit", "verify", "--checkpoints", kept_path, "--key", &verifier]).stdout;
        assert!(ok.starts_with("OK: the log of ") && ok.contains("matches all 2 kept checkpoints"), "{ok}");

        let log = s.workdir.path().join("accord.jsonl");
        let log_path = log.to_str().expect("path");
        s.ok(PM, &["audit", "export", "-o", log_path]);
        let verifier_path = verifier_file.to_str().expect("path");
        let offline_ok =
            offline(&["audit", "verify", "--checkpoints", kept_path, "--key", verifier_path, "--export", log_path]);
        assert_eq!(offline_ok.code, 0, "{}", offline_ok.stderr);

        // The assignment at version 2 rewritten, and the rest of the stream re-hashed.
        let forged = s.workdir.path().join("forged.jsonl");
        let text = std::fs::read_to_string(&log).expect("the export");
        std::fs::write(&forged, rewrite_export(&text, &stream, 2)).expect("write");
        let forged_path = forged.to_str().expect("path");
        let args = ["audit", "verify", "--checkpoints", kept_path, "--key", &verifier, "--export", forged_path];
        offline(&args).fails(7, &["verification FAILED", "checkpoint 1", "no checkpoint before it matches", &stream]);
        let mut with_json = vec!["--json"];
        with_json.extend(args);
        let report = offline(&with_json);
        assert_eq!(report.code, 7);
        let report = report.json();
        assert_eq!((report["ok"].as_bool(), report["mismatch"]["id"].as_u64()), (Some(false), Some(1)));
        assert_eq!(report["mismatch"]["streams"][0]["stream_id"], stream.as_str());

        s.run(PM, &["audit", "verify", "--checkpoints", kept_path, "--key", &other_verifier])
            .fails(7, &["line 1", "is not signed by the key given"]);
        s.run(PM, &["audit", "verify", "--checkpoints", kept_path]).fails(2, &["--key"]);
    }
}

/// The database URL the server runs on.
fn database_url(server: &Server) -> String {
    match &server._database {
        Some(database) => database.url.clone(),
        None => format!("sqlite://{}", server.workdir.path().join("accord.db").display()),
    }
}

/// Runs `sql` (the same on both stores) on the server's database, as an operator could.
fn execute(server: &Server, sql: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        match &server._database {
            Some(database) => {
                let pool = sqlx::PgPool::connect(&database.url).await.expect("connect to PostgreSQL");
                sqlx::raw_sql(sql).execute(&pool).await.map(|_| ())
            }
            None => {
                let pool = sqlx::SqlitePool::connect(&database_url(server)).await.expect("open the SQLite file");
                sqlx::raw_sql(sql).execute(&pool).await.map(|_| ())
            }
        }
        .expect(sql)
    });
}

/// One number from the server's database (`sql` runs as is on both stores).
fn count(server: &Server, sql: &str) -> i64 {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        match &server._database {
            Some(database) => {
                let pool = sqlx::PgPool::connect(&database.url).await.expect("connect to PostgreSQL");
                sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.expect(sql)
            }
            None => {
                let pool = sqlx::SqlitePool::connect(&database_url(server)).await.expect("open the SQLite file");
                sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.expect(sql)
            }
        }
    })
}

#[test]
fn rebuild_projections_online_swaps_in_a_rebuilt_projection_beside_a_running_server() {
    for_each_store(|s| {
        set_up_checkout(s, "CHECKOUT-42");
        set_up_checkout(s, "PAYMENTS-7");
        // The served projection as an older projection version wrote it.
        execute(s, "UPDATE alignment SET projection_version = 0, title = 'stale'");
        assert_eq!(count(s, "SELECT count(*) FROM alignment WHERE projection_version = 0"), 2);
        let mut command = accord_command();
        command.args(["rebuild-projections", "--online", "--database-url", &database_url(s)]);
        let run = Run::of(command, &["rebuild-projections", "--online"]);
        assert_eq!(run.code, 0, "{}{}", run.stderr, run.stdout);
        assert!(
            run.stdout.starts_with("rebuilt the alignment projection of 2 initiatives beside the served one"),
            "{}",
            run.stdout
        );
        let current = accord::domain::alignment::PROJECTION_VERSION;
        let sql = format!("SELECT count(*) FROM alignment WHERE projection_version = {current} AND title <> 'stale'");
        assert_eq!(count(s, &sql), 2);
        // The server goes on over the swapped projection.
        let decision = propose(s, "CHECKOUT-42", "Adopt Adyen")["short_id"].as_str().expect("id").to_owned();
        s.ok(BIZ, &["signoff", "approve", "CHECKOUT-42", &decision]);
    });
}

#[test]
fn webhooks_are_added_listed_paused_resumed_rotated_redelivered_and_removed() {
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for store in STORES {
        let workdir = tempfile::tempdir().expect("temporary folder");
        let (url, database) = match store {
            Store::Postgres => {
                let url = fresh_postgres_url();
                (url.clone(), Some(ThrowAwayDatabase { url }))
            }
            Store::Sqlite => (format!("sqlite://{}", workdir.path().join("accord.db").display()), None),
        };
        let extra = ["--webhook-allow-private", "127.0.0.0/8", "--webhook-backoff-ms", "50"];
        let Started::Running(server) = Server::spawn_with(Some(&url), database, workdir, &extra) else {
            panic!("{store:?} store did not start");
        };
        let receiver = runtime.block_on(receiver::Receiver::start(SECRET));
        let added = server.json(
            PM,
            &[
                "webhook",
                "add",
                &receiver.url(),
                "--types",
                "InitiativeCreated",
                "--secret",
                SECRET,
                "--description",
                "ops",
            ],
        );
        assert_eq!(added["secret"], SECRET, "the secret is shown once, at creation");
        assert_eq!(added["state"], "enabled");
        let id = added["id"].as_str().expect("id").to_owned();
        server.json(PM, &["initiative", "create", "HOOK-1", "--title", "Hooked"]);
        eventually(|| receiver.accepted().len(), |n| *n == 1);
        let log = eventually(
            || server.json(PM, &["webhook", "deliveries", &id]),
            |log| log["deliveries"].as_array().is_some_and(|d| d.len() == 1 && d[0]["status"] == "delivered"),
        );
        let message = log["deliveries"][0]["message_id"].as_str().expect("message id").to_owned();
        let table = server.ok(PM, &["webhook", "deliveries", &id]).stdout;
        assert!(table.contains("delivered") && table.contains(&message) && table.contains("204"), "{table}");
        let listed = server.json(PM, &["webhook", "list"]);
        assert_eq!(listed.as_array().map(Vec::len), Some(1));
        assert!(listed[0].get("secret").is_none(), "a list never shows a secret: {listed}");
        assert_eq!(server.json(PM, &["webhook", "pause", &id])["state"], "paused");
        assert_eq!(server.json(PM, &["webhook", "resume", &id])["state"], "enabled");
        let rotated = server.json(PM, &["webhook", "rotate-secret", &id]);
        assert!(rotated["secret"].as_str().is_some_and(|s| s.starts_with("whsec_") && s != SECRET));
        assert_eq!(rotated["active_secrets"], 2);
        let queued = server.json(PM, &["webhook", "redeliver", &id, &message]);
        assert_eq!(queued["status"], "queued");
        eventually(|| receiver.accepted().len(), |n| *n == 2);
        assert_eq!(receiver.accepted()[1].id, message, "sent again with the same webhook-id");
        server.run(PM, &["webhook", "add", "ftp://example.com/x"]).fails(2, &["url"]);
        server.run(PM, &["webhook", "show", "not-a-uuid"]).fails(2, &["id"]);
        server.ok(PM, &["webhook", "remove", &id]);
        assert_eq!(server.json(PM, &["webhook", "list"]).as_array().map(Vec::len), Some(0));
        server.run(PM, &["webhook", "show", &id]).fails(3, &["no webhook subscription"]);
    }
}
