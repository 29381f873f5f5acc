//! A TCP proxy the tests put between Accord and PostgreSQL to stage outages without
//! touching the shared server: `cut` closes every connection and refuses new ones (a
//! database that went away), `freeze` keeps connections open but passes no bytes and
//! leaves new ones unanswered (a database that hangs: a stopped process, a black-holed
//! network), `restore` forwards again (frozen connections carry on where they were).
//! `Proxy::silent()` has no upstream at all: it accepts and never answers.
//!
//! Self-contained (tokio only), so any test crate can include it by path:
//! `#[path = "../common/proxy.rs"] mod proxy;`.

#![allow(dead_code)]

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, tcp::OwnedReadHalf, tcp::OwnedWriteHalf};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Forward,
    Cut,
    Freeze,
}

/// A loopback proxy to `upstream`, stopped when dropped.
pub struct Proxy {
    address: SocketAddr,
    mode: watch::Sender<Mode>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// A proxy to `upstream` on a free loopback port, forwarding.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        Proxy::start_in(Some(upstream), Mode::Forward).await
    }

    /// A listener that accepts connections and never answers (frozen for good).
    pub async fn silent() -> Proxy {
        Proxy::start_in(None, Mode::Freeze).await
    }

    async fn start_in(upstream: Option<SocketAddr>, mode: Mode) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let address = listener.local_addr().expect("the proxy's address");
        let (mode, modes) = watch::channel(mode);
        let task = tokio::spawn(accept(listener, upstream, modes));
        Proxy { address, mode, task }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Closes every connection and refuses new ones (they are accepted and closed).
    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
    }

    /// Keeps every connection open without passing a byte; new ones get no answer.
    pub fn freeze(&self) {
        self.mode.send_replace(Mode::Freeze);
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.mode.send_replace(Mode::Forward);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.mode.send_replace(Mode::Cut);
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, upstream: Option<SocketAddr>, modes: watch::Receiver<Mode>) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        if *modes.borrow() == Mode::Cut {
            drop(client);
            continue;
        }
        tokio::spawn(connection(client, upstream, modes.clone()));
    }
}

/// Waits until the proxy forwards (true) or cuts (false).
async fn forwarding(modes: &mut watch::Receiver<Mode>) -> bool {
    match modes.wait_for(|mode| *mode != Mode::Freeze).await {
        Ok(mode) => *mode == Mode::Forward,
        Err(_) => false,
    }
}

async fn connection(client: TcpStream, upstream: Option<SocketAddr>, mut modes: watch::Receiver<Mode>) {
    // A connection accepted while frozen is held, unanswered, until the proxy forwards.
    let Some(upstream) = upstream else {
        let _ = modes.wait_for(|mode| *mode == Mode::Cut).await;
        return;
    };
    if !forwarding(&mut modes).await {
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // Both directions end together: a cut, or either side closing.
    tokio::select! {
        () = pipe(client_read, server_write, modes.clone()) => {}
        () = pipe(server_read, client_write, modes) => {}
    }
}

/// Copies `from` to `to` while the proxy forwards; pauses while it is frozen; returns on
/// a cut or when `from` ends.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut modes: watch::Receiver<Mode>) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if !forwarding(&mut modes).await {
            return;
        }
        tokio::select! {
            read = from.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    // A read that completed just as the proxy froze is held back too.
                    if !forwarding(&mut modes).await || to.write_all(&buffer[..n]).await.is_err() {
                        return;
                    }
                }
            },
            // A change of mode: look again (the read is cancel-safe).
            _ = modes.changed() => {}
        }
    }
}
