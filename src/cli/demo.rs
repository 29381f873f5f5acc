//! `accord demo`: the spec's acceptance scenario (section 4), played step by step as
//! the `accord` commands a person would type — each is printed, then run through the
//! same code as on the command line — with the board after each step, ending with the
//! decision's full history. It plays against the server at --server; with --embedded,
//! or when --server is not set and nothing answers at the default address, it starts an
//! in-process server on a free loopback port over a temporary SQLite store (or the
//! database given with --database-url) and stops it at the end.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::client::{self, Client, Credentials};
use super::output::{ExitClass, Style, Tone};
use super::{Context, Failure, Globals, Output, execute};
use crate::config::{Cli, Commands};

pub const EXAMPLES: &str = "\
Examples:
  accord demo                       # the server at --server, or an embedded one if none answers
  accord demo --embedded            # always an embedded server over a temporary SQLite store
  accord demo --database-url postgres://postgres@127.0.0.1:5432/accord_demo
  accord --server http://10.0.0.5:50051 demo --key PAYMENTS-7";

const DEFAULT_KEY_PREFIX: &str = "CHECKOUT";
const DEFAULT_KEY_NUMBER: u32 = 42;
const KEYS_TO_TRY: u32 = 1000;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Start an in-process server on a free loopback port instead of using --server.
    #[arg(long)]
    pub embedded: bool,
    /// Event store of the embedded server (implies --embedded) [default: a temporary SQLite file].
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Key of the initiative the demo creates [default: CHECKOUT-42, or the next free CHECKOUT-N].
    #[arg(long)]
    pub key: Option<String>,
}

const PM: &str = "pm@example.com";
const DRIVER: &str = "dana@example.com";
const ENGINEERING: &str = "eve@example.com";
const DESIGN: &str = "dee@example.com";
const BUSINESS: &str = "bo@example.com";
const TITLE: &str = "Use Stripe for payments";

pub async fn run(globals: &Globals, args: DemoArgs, style: Style) -> Result<(), Failure> {
    if globals.json {
        return Err(Failure::invalid("the demo narrates for people; it has no --json output"));
    }
    let embedded_wanted = args.embedded || args.database_url.is_some();
    let mut embedded = None;
    let base = if embedded_wanted {
        let server = EmbeddedServer::start(args.database_url.clone()).await?;
        let connected = connect(&server.url(), globals).await;
        embedded = Some(server);
        connected
    } else {
        let url = client::server_url(globals.server.as_deref())?;
        match connect(&url, globals).await {
            Err(failure) if failure.class == ExitClass::Unavailable && globals.server.is_none() => {
                println!("No Accord server answers at {url}, so the demo starts an embedded one.\n");
                let server = EmbeddedServer::start(None).await?;
                let connected = connect(&server.url(), globals).await;
                embedded = Some(server);
                connected
            }
            other => other,
        }
    };
    let played = match base {
        Ok(base) => {
            let player = Player { base, style, mismatches: Vec::new() };
            play(player, embedded.as_ref(), args.key).await
        }
        Err(failure) => Err(failure),
    };
    if let Some(server) = embedded {
        server.stop().await;
    }
    played
}

async fn connect(url: &str, globals: &Globals) -> Result<Client, Failure> {
    // The demo acts as each person in turn, which only local development mode allows: it
    // sends names, never the token.
    let credentials = Credentials { token: None, ..globals.credentials.clone() };
    Client::connect(url, &globals.actor(), &credentials, globals.correlation_id.as_deref()).await
}

/// Runs the steps as typed commands and checks the board against what the spec expects.
struct Player {
    base: Client,
    style: Style,
    mismatches: Vec<String>,
}

impl Player {
    /// Prints `$ accord --as ACTOR ARGS…`, runs it, prints its result indented.
    async fn run(&self, actor: Option<&str>, args: &[&str]) -> Result<Output, Failure> {
        let mut argv: Vec<String> = vec!["accord".to_owned()];
        if let Some(actor) = actor {
            argv.extend(["--as".to_owned(), actor.to_owned()]);
        }
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        println!("{}", self.style.paint(&format!("$ {}", shell_line(&argv)), Tone::Bold));
        let parsed = Cli::try_parse_from(&argv)
            .map_err(|e| Failure::new(ExitClass::Internal, format!("the demo typed a bad command: {}", e.kind())))?;
        let Commands::Client(command) = parsed.command else {
            return Err(Failure::new(ExitClass::Internal, "the demo typed a server command"));
        };
        let client = self.base.acting_as(actor.unwrap_or(self.base.actor()), None)?;
        let output = execute(&Context { client, style: self.style, json: false }, command).await?;
        println!("{}", indent(&output.text));
        Ok(output)
    }

    /// Shows the board of the initiative and compares it with the spec's expectation.
    async fn board(
        &mut self,
        key: &str,
        expected_status: &str,
        expected_approved: Option<(u64, u64)>,
    ) -> Result<(), Failure> {
        let output = self.run(None, &["status", key]).await?;
        let status = output.json["status"].as_str().unwrap_or_default().to_owned();
        let approved =
            (output.json["approved_pairs"].as_u64().unwrap_or(0), output.json["total_pairs"].as_u64().unwrap_or(0));
        let expected = match expected_approved {
            Some((a, t)) => format!("{expected_status}, {a} of {t} approved"),
            None => expected_status.to_owned(),
        };
        let matches = status == expected_status && expected_approved.is_none_or(|e| e == approved);
        if matches {
            println!("{}\n", self.style.paint(&format!("✓ {expected}, as the spec expects"), Tone::Good));
        } else {
            let seen = format!("{status}, {} of {} approved", approved.0, approved.1);
            println!(
                "{}\n",
                self.style.paint(&format!("✗ the spec expects {expected}; the server says {seen}"), Tone::Bad)
            );
            self.mismatches.push(format!("expected {expected}, got {seen}"));
        }
        Ok(())
    }

    fn narrate(&self, text: &str) {
        println!("{}", self.style.paint(text, Tone::Bold));
    }
}

fn created(output: &Output, field: &str) -> Result<String, Failure> {
    output.json[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Failure::new(ExitClass::Internal, format!("the server's reply has no {field}")))
}

async fn play(mut p: Player, embedded: Option<&EmbeddedServer>, key: Option<String>) -> Result<(), Failure> {
    p.narrate("Accord demo: the first five minutes of a newcomer (SPEC section 4).");
    println!("Every step below is an `accord` command you can type yourself; its output follows it.\n");
    match embedded {
        Some(server) => {
            p.narrate(&format!(
                "1. The service runs embedded in this process on {} over {}.",
                server.address, server.store_label
            ));
            println!(
                "   (`accord serve` with no configuration does the same for good, keeping its log in ./accord-data;\n    \
                 this embedded server stops when the demo ends.)\n"
            );
        }
        None => p.narrate(&format!("1. The service is running at {}.\n", p.base.server())),
    }

    let key = choose_key(&p.base, key).await?;
    p.narrate(&format!(
        "2. {PM} creates {key} needing engineering, design and business, and assigns a driver and one approver per function."
    ));
    p.run(
        Some(PM),
        &[
            "initiative",
            "create",
            &key,
            "--title",
            "New checkout",
            "--summary",
            "Rebuild checkout around a payment provider.",
            "--functions",
            "engineering,design,business",
        ],
    )
    .await?;
    for (who, function, role) in [
        (DRIVER, "product", "driver"),
        (ENGINEERING, "engineering", "approver"),
        (DESIGN, "design", "approver"),
        (BUSINESS, "business", "approver"),
    ] {
        p.run(Some(PM), &["stakeholder", "assign", &key, who, "--function", function, "--role", role]).await?;
    }
    p.board(&key, "no_decisions", None).await?;

    p.narrate(&format!("3. {DRIVER} proposes {TITLE:?}; design records a user-research concern."));
    let proposed = p
        .run(
            Some(DRIVER),
            &[
                "decision",
                "propose",
                &key,
                "--title",
                TITLE,
                "--context",
                "Checkout needs a payment provider.",
                "--option",
                "Stripe",
                "--option",
                "Adyen",
                "--option",
                "Build in-house",
                "--proposal",
                "Integrate Stripe Checkout.",
                "--rationale",
                "Fastest to integrate.",
            ],
        )
        .await?;
    let decision = created(&proposed, "short_id")?;
    p.run(
        Some(DESIGN),
        &[
            "feedback",
            "add",
            &key,
            "Study participants distrusted the redirect to a hosted payment page.",
            "--decision",
            &decision,
            "--kind",
            "concern",
            "--source",
            "user-research",
        ],
    )
    .await?;
    p.board(&key, "pending", Some((0, 3))).await?;

    p.narrate("4. Engineering and design approve. Business objects.");
    p.run(Some(ENGINEERING), &["signoff", "approve", &key, &decision]).await?;
    p.run(Some(DESIGN), &["signoff", "approve", &key, &decision]).await?;
    let objection = p
        .run(
            Some(BUSINESS),
            &[
                "feedback",
                "add",
                &key,
                "Stripe's fees are above our negotiated rate.",
                "--decision",
                &decision,
                "--kind",
                "objection",
                "--source",
                "customer",
            ],
        )
        .await?;
    let blocked_at = objection.json["stream_version"].as_u64().unwrap_or_default().to_string();
    let objection = created(&objection, "short_id")?;
    p.board(&key, "blocked", Some((2, 3))).await?;

    p.narrate(&format!(
        "5. {DRIVER} revises the decision materially: engineering's and design's approvals go stale; the objection stays."
    ));
    p.run(
        Some(DRIVER),
        &[
            "decision",
            "revise",
            &key,
            &decision,
            "--material",
            "--proposal",
            "Integrate Stripe at the negotiated enterprise rate.",
            "--rationale",
            "Fastest to integrate; the fees now match Adyen's.",
            "--note",
            "Negotiated enterprise pricing.",
        ],
    )
    .await?;
    p.board(&key, "blocked", Some((0, 3))).await?;

    p.narrate("6. Business resolves its objection; all three approve revision 2; the driver accepts.");
    p.run(
        Some(BUSINESS),
        &["feedback", "resolve", &key, &objection, "--resolution", "The enterprise rate matches Adyen's."],
    )
    .await?;
    p.run(None, &["inbox", DESIGN]).await?;
    println!();
    for who in [ENGINEERING, DESIGN, BUSINESS] {
        p.run(Some(who), &["signoff", "approve", &key, &decision, "--revision", "2"]).await?;
    }
    p.board(&key, "aligned", Some((3, 3))).await?;
    p.run(Some(DRIVER), &["decision", "accept", &key, &decision]).await?;
    p.board(&key, "aligned", None).await?;

    p.narrate(&format!(
        "7. An auditor asks for the alignment as of step 4 (version {blocked_at}), the events that explain it, \
         verifies the history and exports it."
    ));
    p.run(None, &["audit", "as-of", &key, "--version", &blocked_at]).await?;
    p.run(None, &["audit", "explain", &key, &decision, "--version", &blocked_at]).await?;
    p.run(None, &["audit", "history", &key, "--type", "SignOffRecorded", "--type", "DecisionRevised"]).await?;
    p.run(None, &["audit", "checkpoint", "create"]).await?;
    p.run(None, &["audit", "verify", &key]).await?;
    p.run(None, &["decision", "show", &key, &decision]).await?;
    println!(
        "   `accord audit export {key} -o checkout.jsonl` writes this history as JSON Lines; \
         `accord audit import` loads it into an empty store, verifying every hash."
    );
    println!();
    p.narrate("Try it yourself:");
    for (line, what) in [
        ("accord status".to_owned(), "the board of every initiative"),
        (format!("accord --json status {key}"), "the same facts for scripts"),
        (format!("accord --as {DESIGN} inbox"), "what waits on someone"),
        ("accord --help".to_owned(), "every command, with examples and exit codes"),
    ] {
        println!("  {line:<40} # {what}");
    }
    if embedded.is_some() {
        println!("  (start `accord serve` first: this demo's embedded server stops now.)");
    }
    if p.mismatches.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(ExitClass::Internal, format!("the board differed from the spec: {}", p.mismatches.join("; "))))
    }
}

/// The key to create: the one given, else CHECKOUT-42 or the next number not yet taken,
/// so the demo can run again on the same server.
async fn choose_key(client: &Client, given: Option<String>) -> Result<String, Failure> {
    if let Some(key) = given {
        return Ok(key.to_uppercase());
    }
    for number in DEFAULT_KEY_NUMBER..DEFAULT_KEY_NUMBER + KEYS_TO_TRY {
        let key = format!("{DEFAULT_KEY_PREFIX}-{number}");
        match super::resolve::alignment(client, &key).await {
            Err(failure) if failure.class == ExitClass::NotFound => {
                if number != DEFAULT_KEY_NUMBER {
                    println!(
                        "({DEFAULT_KEY_PREFIX}-{DEFAULT_KEY_NUMBER} is taken on this server, so this run uses {key}.)\n"
                    );
                }
                return Ok(key);
            }
            Err(failure) => return Err(failure),
            Ok(_) => continue,
        }
    }
    Err(Failure::new(ExitClass::Conflict, "every demo key is taken: give one with --key"))
}

/// An Accord server inside this process, on a free loopback port.
struct EmbeddedServer {
    address: SocketAddr,
    store_label: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), crate::server::ServeError>>,
    scratch: Option<ScratchDir>,
}

impl EmbeddedServer {
    async fn start(database_url: Option<String>) -> Result<EmbeddedServer, Failure> {
        let (url, scratch, store_label) = match database_url {
            Some(url) => {
                let label = format!("the store at {url}");
                (url, None, label)
            }
            None => {
                let scratch = ScratchDir::create()?;
                let file = scratch.path.join("accord.db");
                let label = format!("a temporary SQLite store ({})", file.display());
                (format!("sqlite://{}", file.display()), Some(scratch), label)
            }
        };
        let store = crate::store::Store::open(&url, 8).await.map_err(|e| {
            let hint = if scratch.is_some() {
                "; give the demo another store with --database-url postgres://postgres@127.0.0.1:5432/accord_demo"
            } else {
                ""
            };
            Failure::new(ExitClass::Unavailable, format!("cannot open the demo's event store at {url}: {e}{hint}"))
        })?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Failure::new(ExitClass::Unavailable, format!("cannot listen on a loopback port: {e}")))?;
        let address = listener
            .local_addr()
            .map_err(|e| Failure::new(ExitClass::Unavailable, format!("cannot read the loopback port: {e}")))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(crate::server::serve(listener, store, async move {
            let _ = stopped.await;
        }));
        Ok(EmbeddedServer { address, store_label, stop, task, scratch })
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
        drop(self.scratch);
    }
}

/// A temporary folder for the embedded store, removed when dropped.
struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    fn create() -> Result<ScratchDir, Failure> {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let path = std::env::temp_dir().join(format!("accord-demo-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|e| {
            Failure::new(ExitClass::Internal, format!("cannot create a temporary folder {}: {e}", path.display()))
        })?;
        Ok(ScratchDir { path })
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A command line as a POSIX shell would take it back: arguments quoted when needed.
fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|arg| {
            let plain = !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c));
            if plain { arg.clone() } else { format!("'{}'", arg.replace('\'', r"'\''")) }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn indent(text: &str) -> String {
    text.trim_end()
        .lines()
        .map(|line| if line.is_empty() { String::new() } else { format!("  {line}") })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_are_quoted_for_the_shell() {
        let argv: Vec<String> =
            ["accord", "--title", "Use Stripe", "Stripe's fees", "a@b.c"].map(String::from).to_vec();
        assert_eq!(shell_line(&argv), r"accord --title 'Use Stripe' 'Stripe'\''s fees' a@b.c");
    }
}
