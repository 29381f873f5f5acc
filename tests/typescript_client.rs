//! The TypeScript client (clients/typescript) end to end: generated from the proto with
//! buf and protoc-gen-es, type-checked with tsc, and its check script
//! (clients/typescript/test/check.ts) run with node against a real `accord serve` over
//! gRPC-Web — a child process on loopback, once on a fresh PostgreSQL database and once
//! on the embedded SQLite store, in local development mode.
//!
//! It needs `node` and `npm` (tests/run installs them, `need_node`) and fails without
//! them. `npm ci` runs only when clients/typescript/node_modules is missing or older
//! than package-lock.json; the client is generated afresh on every run (src/gen is not
//! committed).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{START_DEADLINE, ServeProcess, ThrowAwayDatabase};

/// How long one step (npm ci, generate, tsc, the check script) may take.
const STEP_DEADLINE: Duration = Duration::from_secs(300);

/// The lines the check script prints, one per check that passed.
const CHECKS: [&str; 9] = [
    "ok: created initiative TS-",
    "ok: assigned a driver and two approvers",
    "ok: proposed decision ",
    "ok: signed off engineering and design",
    "ok: alignment of TS-",
    "ok: WatchAlignments streamed 1 alignment and caught_up at position ",
    "ok: ReadEvents streamed 7 events (InitiativeCreated … SignOffRecorded)",
    "ok: GetAlignment of a missing initiative is NotFound: ",
    "all checks passed",
];

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients").join("typescript")
}

/// Runs `program args…` in the client's folder, killing it after `STEP_DEADLINE`, and
/// panics with everything it printed unless it exits 0.
fn run(program: &str, args: &[&str]) -> Output {
    let what = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .current_dir(client_dir())
        .env("npm_config_update_notifier", "false")
        .env("npm_config_fund", "false")
        .env("npm_config_audit", "false")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("`{what}` does not start in {}: {e}", client_dir().display()));
    // Read both pipes on threads of their own, so a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if started.elapsed() > STEP_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            let (stdout, stderr) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
            panic!(
                "`{what}` did not finish within {STEP_DEADLINE:?}\n--- stdout\n{}\n--- stderr\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() };
    assert!(
        output.status.success(),
        "`{what}` failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// node and npm, or a failure saying how to get them.
fn require_node() {
    for tool in ["node", "npm"] {
        let found = Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
        assert!(
            matches!(found, Ok(status) if status.success()),
            "`{tool}` is missing, and tests/typescript_client.rs needs node and npm: run the tests \
             with tests/run (it installs them), or `apt-get install -y nodejs npm`"
        );
    }
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Once per test process: node_modules (npm ci when missing or stale), the generated
/// client, and tsc's verdict on it and the check script.
fn prepare() {
    static PREPARED: OnceLock<()> = OnceLock::new();
    static PREPARING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = PREPARING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if PREPARED.get().is_some() {
        return;
    }
    require_node();
    let dir = client_dir();
    // npm ci leaves node_modules/.package-lock.json; a lock file newer than it was changed since.
    let installed = modified(&dir.join("node_modules").join(".package-lock.json"));
    let locked = modified(&dir.join("package-lock.json")).expect("clients/typescript/package-lock.json is there");
    if installed.is_none_or(|installed| installed < locked) {
        eprintln!("npm ci in {}", dir.display());
        run("npm", &["ci"]);
    }
    run("npm", &["run", "--silent", "generate"]);
    for file in ["types_pb.ts", "commands_pb.ts", "alignment_pb.ts", "audit_pb.ts", "webhooks_pb.ts"] {
        let path = dir.join("src/gen/accord/v1").join(file);
        assert!(path.is_file(), "buf generate did not write {}", path.display());
    }
    run("npm", &["run", "--silent", "typecheck"]);
    let _ = PREPARED.set(());
}

/// `accord serve` on loopback in local development mode with `--database-url url`.
fn serve(workdir: &Path, url: &str) -> ServeProcess {
    ServeProcess::spawn(workdir, &["--log", "info", "--database-url", url])
        .unwrap_or_else(|log| panic!("accord serve did not start within {START_DEADLINE:?}; its log:\n{log}"))
}

/// Runs the check script against `server` and asserts every check's line.
fn check_against(server: &ServeProcess) {
    // An absolute path: a relative program's meaning under current_dir differs by platform.
    let tsx = client_dir().join("node_modules").join(".bin").join("tsx");
    let output = run(&tsx.to_string_lossy(), &["test/check.ts", &server.address]);
    let printed = String::from_utf8_lossy(&output.stdout);
    eprintln!("{printed}");
    for check in CHECKS {
        assert!(
            printed.lines().any(|line| line.starts_with(check)),
            "the check script did not print a line starting {check:?}; it printed:\n{printed}\n--- stderr\n{}\n--- server log\n{}",
            String::from_utf8_lossy(&output.stderr),
            server.log()
        );
    }
    let aligned = printed.lines().find(|line| line.starts_with("ok: alignment of")).unwrap_or_default();
    assert!(aligned.contains(" is ALIGNED at version 7"), "{aligned}");
}

#[test]
fn the_generated_typescript_client_works_over_grpc_web_on_postgresql() {
    prepare();
    let database = ThrowAwayDatabase::new("accord_ts");
    let workdir = tempfile::tempdir().expect("temporary folder");
    let server = serve(workdir.path(), &database.url);
    check_against(&server);
}

#[test]
fn the_generated_typescript_client_works_over_grpc_web_on_sqlite() {
    prepare();
    let workdir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", workdir.path().join("accord.db").display());
    let server = serve(workdir.path(), &url);
    check_against(&server);
}
