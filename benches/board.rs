//! Board benchmark: how soon the web board shows a list of thousands of initiatives. The
//! store is created afresh and filled through the real gRPC API (each initiative created,
//! given an engineering approver and one open decision: three commands), then the board's
//! list (`/?view=list`) is opened in Debian's headless Chromium over WebDriver
//! (chromedriver), --loads times in fresh tabs, and the Performance API of the page says:
//!
//! - `fcp_ms`: first-contentful-paint (the page's frame and headings);
//! - `first_rows_ms`: when the first cards went into the list (`performance.mark`
//!   "accord:first-rows", set by board.js on its first cards);
//! - `first_rows_painted_ms`: when the first card's title was painted (element timing,
//!   `elementtiming="first-rows"`) — the first rows visible;
//! - `caught_up_ms`: when the event stream's snapshot of every initiative had arrived
//!   ("accord:caught-up");
//! - `cards`: cards in the page then (the list draws a page at a time), and `nodes`, the
//!   page's element count.
//!
//! All from navigation start, in the page's own clock. The server runs in this process
//! (as in `benches/reads.rs`), with the bench, Chromium and the database on the same
//! machine; nothing else runs while the page loads.
//!
//!   cargo bench --bench board -- [--database-url postgres://postgres@127.0.0.1:5432/accord_bench_board
//!       | sqlite:///tmp/accord-bench-board/accord.db] [--initiatives 5000] [--loads 5]
//!
//! Chromium and chromedriver: `apt-get install -y chromium chromium-driver` (tests/run
//! installs them). The last line is machine-readable:
//! `board-summary initiatives=… fcp_ms=… first_rows_ms=… first_rows_painted_ms=… caught_up_ms=… cards=…`
//! (medians of the loads).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use accord::proto::{self as pb, command_service_client::CommandServiceClient};
use accord::security::Limits;
use accord::server::ServerOptions;
use accord::store::Store;
use fantoccini::ClientBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use sqlx::{Postgres, migrate::MigrateDatabase};
use tonic::{
    Request,
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Clients that fill the store.
const WRITERS: usize = 32;
const OWNERS: [&str; 8] = [
    "ana@bench.io",
    "ben@bench.io",
    "cai@bench.io",
    "dev@bench.io",
    "eli@bench.io",
    "fay@bench.io",
    "gus@bench.io",
    "hal@bench.io",
];
const APPROVER: &str = "approver@bench.io";
const STAGES: [pb::Stage; 4] = [pb::Stage::Discovery, pb::Stage::Definition, pb::Stage::Delivery, pb::Stage::Launched];

struct Args {
    database_url: String,
    initiatives: usize,
    loads: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        database_url: "postgres://postgres@127.0.0.1:5432/accord_bench_board".into(),
        initiatives: 5000,
        loads: 5,
    };
    let mut it = std::env::args().skip(1);
    fn number(flag: &str, value: Option<String>) -> Result<usize, String> {
        let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
        value.parse().map_err(|_| format!("{flag}: {value:?} is not a number"))
    }
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--database-url" => args.database_url = it.next().ok_or("--database-url needs a value")?,
            "--initiatives" => args.initiatives = number("--initiatives", it.next())?,
            "--loads" => args.loads = number("--loads", it.next())?,
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.initiatives == 0 || args.loads == 0 {
        return Err("--initiatives and --loads must be at least 1".into());
    }
    Ok(args)
}

fn actor(name: &str) -> Result<MetadataValue<Ascii>, String> {
    MetadataValue::try_from(name).map_err(|e| e.to_string())
}

fn as_actor<T>(message: T, actor: &MetadataValue<Ascii>) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("x-accord-actor", actor.clone());
    request
}

/// Creates initiatives `n` = `first`, `first + step`, … below `count`: each with an
/// approver and an open decision, owned by one of `OWNERS`, at one of `STAGES`.
async fn fill(address: SocketAddr, first: usize, step: usize, count: usize) -> Result<(), String> {
    let channel = Channel::from_shared(format!("http://{address}")).map_err(|e| e.to_string())?.connect_lazy();
    let mut client = CommandServiceClient::new(channel);
    for n in (first..count).step_by(step) {
        let owner = actor(OWNERS[n % OWNERS.len()])?;
        let key = format!("BOARD-{n:05}");
        let create = pb::CreateInitiativeRequest {
            key: key.clone(),
            title: format!("Initiative number {n}"),
            summary: format!("The board benchmark's initiative {n}: what the teams have to agree on."),
            stage: STAGES[n % STAGES.len()].into(),
            ..Default::default()
        };
        client.create_initiative(as_actor(create, &owner)).await.map_err(|e| format!("create {key}: {e}"))?;
        let assign = pb::AssignStakeholderRequest {
            initiative: key.clone(),
            principal: APPROVER.into(),
            function: "engineering".into(),
            role: pb::Role::Approver.into(),
            ..Default::default()
        };
        client.assign_stakeholder(as_actor(assign, &owner)).await.map_err(|e| format!("assign on {key}: {e}"))?;
        let propose = pb::ProposeDecisionRequest {
            initiative: key.clone(),
            content: Some(pb::DecisionContent {
                title: format!("Ship initiative {n}"),
                context: "The board benchmark.".into(),
                options: vec!["Ship".into(), "Wait".into()],
                proposal: "Ship it.".into(),
                rationale: "It is ready.".into(),
            }),
            ..Default::default()
        };
        client.propose_decision(as_actor(propose, &owner)).await.map_err(|e| format!("propose on {key}: {e}"))?;
    }
    Ok(())
}

/// chromedriver on a free loopback port, ended when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Result<Driver, String> {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            if !std::path::Path::new(binary).exists() {
                return Err(format!("{binary} is missing: apt-get install -y chromium chromium-driver"));
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|probe| probe.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {CHROMEDRIVER}: {e}"))?;
        let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if Instant::now() >= deadline {
                return Err(format!("chromedriver did not listen on port {port} within 15 s"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(driver)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One load's figures, in milliseconds from navigation start.
#[derive(Clone, Copy, Debug, Default)]
struct Load {
    fcp: f64,
    first_rows: f64,
    first_rows_painted: f64,
    caught_up: f64,
    cards: f64,
    nodes: f64,
}

/// What the page's Performance API says once the snapshot has arrived (polled from the
/// bench; the figures are the page's, so the polling does not enter them).
const FIGURES: &str = r##"const done = arguments[arguments.length - 1];
    const mark = (name) => performance.getEntriesByName(name)[0]?.startTime ?? null;
    const wait = () => {
      if (mark("accord:caught-up") === null) { setTimeout(wait, 50); return; }
      let painted = null;
      const observer = new PerformanceObserver((list) => {
        for (const e of list.getEntries()) if (e.identifier === "first-rows") painted = e.renderTime || e.loadTime;
      });
      observer.observe({ type: "element", buffered: true });
      setTimeout(() => {
        observer.disconnect();
        done({
          fcp: performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? null,
          first_rows: mark("accord:first-rows"),
          first_rows_painted: painted,
          caught_up: mark("accord:caught-up"),
          cards: document.querySelectorAll("#board article.card").length,
          nodes: document.getElementsByTagName("*").length,
        });
      }, 300);
    };
    wait();"##;

fn figure(value: &Value, name: &str) -> Result<f64, String> {
    value[name].as_f64().ok_or_else(|| format!("the page has no {name} figure: {value}"))
}

async fn load(browser: &fantoccini::Client, url: &str) -> Result<Load, String> {
    browser.goto(url).await.map_err(|e| format!("open the board: {e}"))?;
    let value = browser.execute_async(FIGURES, vec![]).await.map_err(|e| format!("read the figures: {e}"))?;
    Ok(Load {
        fcp: figure(&value, "fcp")?,
        first_rows: figure(&value, "first_rows")?,
        first_rows_painted: figure(&value, "first_rows_painted")?,
        caught_up: figure(&value, "caught_up")?,
        cards: figure(&value, "cards")?,
        nodes: figure(&value, "nodes")?,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

async fn run(args: &Args) -> Result<(), String> {
    let url = &args.database_url;
    if let Some(path) = url.strip_prefix("sqlite://") {
        if let Some(folder) = std::path::Path::new(path).parent() {
            std::fs::create_dir_all(folder).map_err(|e| format!("create {}: {e}", folder.display()))?;
        }
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    } else if Postgres::database_exists(url).await.map_err(|e| e.to_string())? {
        Postgres::drop_database(url).await.map_err(|e| e.to_string())?;
    }
    let store = Store::open(url, 16).await.map_err(|e| e.to_string())?;
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let grpc_address = grpc.local_addr().map_err(|e| e.to_string())?;
    let http_address = http.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = ServerOptions {
        limits: Limits { max_concurrent_calls: 4096, ..Limits::default() },
        ..ServerOptions::local_development()
    };
    let server = tokio::spawn(accord::server::serve_all(grpc, Some(http), store, options, async move {
        let _ = stopped.await;
    }));

    let count = args.initiatives;
    let filling = Instant::now();
    let writers: Vec<_> =
        (0..WRITERS.min(count)).map(|first| tokio::spawn(fill(grpc_address, first, WRITERS, count))).collect();
    for writer in writers {
        writer.await.map_err(|e| e.to_string())??;
    }
    let seconds = filling.elapsed().as_secs_f64();
    println!(
        "board-fill      initiatives={count} commands={} seconds={seconds:.1} (through gRPC, {WRITERS} clients)",
        count * 3
    );

    let driver = Driver::start().await?;
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000"],
        }),
    );
    let browser = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .map_err(|e| format!("a WebDriver session with headless Chromium: {e}"))?;
    let page = format!("http://{http_address}/?view=list");
    let mut loads = Vec::new();
    let mut failure = None;
    // One load to warm the server and the browser's caches is not counted.
    for n in 0..=args.loads {
        match load(&browser, &page).await {
            Ok(figures) if n > 0 => {
                println!(
                    "board-load      n={n} fcp_ms={:.0} first_rows_ms={:.0} first_rows_painted_ms={:.0} caught_up_ms={:.0} cards={} nodes={}",
                    figures.fcp,
                    figures.first_rows,
                    figures.first_rows_painted,
                    figures.caught_up,
                    figures.cards,
                    figures.nodes
                );
                loads.push(figures);
            }
            Ok(_) => {}
            Err(message) => {
                failure = Some(message);
                break;
            }
        }
    }
    let _ = browser.close().await;
    drop(driver);
    let _ = stop.send(());
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(error.to_string()),
        Err(error) => return Err(error.to_string()),
    }
    if let Some(message) = failure {
        return Err(message);
    }
    let pick = |f: fn(&Load) -> f64| median(loads.iter().map(f).collect());
    println!(
        "board-summary initiatives={count} loads={} fcp_ms={:.0} first_rows_ms={:.0} first_rows_painted_ms={:.0} \
         caught_up_ms={:.0} cards={:.0} nodes={:.0}",
        loads.len(),
        pick(|l| l.fcp),
        pick(|l| l.first_rows),
        pick(|l| l.first_rows_painted),
        pick(|l| l.caught_up),
        pick(|l| l.cards),
        pick(|l| l.nodes)
    );
    Ok(())
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("board bench: {message}");
            std::process::exit(2);
        }
    };
    if let Err(message) = run(&args).await {
        eprintln!("board bench: {message}");
        std::process::exit(1);
    }
}
