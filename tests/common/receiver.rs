//! A webhook receiver for the tests, as a real one is written: an HTTP server on a
//! loopback port that verifies every request's Standard Webhooks signature with the
//! published `standardwebhooks` crate (not Accord's code), de-duplicates nothing (the
//! tests count duplicates), and records what came: id, type, body, when, and whether
//! two requests with one id were ever in flight at once. What it answers can be
//! scripted (an HTTP status, a delay, no answer at all), and it can go down (its port
//! closed) and come up again on the same port.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::oneshot;

/// How the receiver answers.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Ok,
    Status(u16),
    /// Waits this long, then answers 204.
    Slow(Duration),
    /// Never answers.
    Hang,
}

#[derive(Clone, Debug)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub message_type: String,
    pub body: Value,
    pub raw: Vec<u8>,
    pub at: Instant,
    /// When it was answered, by the wall clock (for latency against `recorded_at`).
    pub wall: chrono::DateTime<chrono::Utc>,
    /// What it answered.
    pub answered: u16,
    /// Which of the receiver's secrets verified it.
    pub verified_by: Vec<usize>,
}

#[derive(Default)]
struct Inner {
    answer: Option<Answer>,
    received: Vec<Received>,
    in_flight: HashMap<String, usize>,
    /// Ids that arrived while another request with the same id was in flight.
    overlapping: Vec<String>,
    bad_signatures: usize,
    /// The id of every request as it arrived (before it was answered).
    arrivals: Vec<String>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    secrets: Arc<Mutex<Vec<String>>>,
}

pub struct Receiver {
    pub address: SocketAddr,
    shared: Shared,
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl Receiver {
    /// A receiver that verifies with `secret` (more can be added: `trust`).
    pub async fn start(secret: &str) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let address = listener.local_addr().expect("receiver address");
        let shared = Shared {
            inner: Arc::new(Mutex::new(Inner { answer: Some(Answer::Ok), ..Inner::default() })),
            secrets: Arc::new(Mutex::new(vec![secret.to_owned()])),
        };
        let receiver = Receiver { address, shared, stop: Mutex::new(None) };
        receiver.serve(listener);
        receiver
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.address)
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let (stop, stopped) = oneshot::channel::<()>();
        *self.stop.lock().expect("lock") = Some(stop);
        let app = axum::Router::new().route("/hook", post(receive)).with_state(self.shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
    }

    /// Closes the port: connections are refused until `up`.
    pub async fn down(&self) {
        if let Some(stop) = self.stop.lock().expect("lock").take() {
            let _ = stop.send(());
        }
        // Until the port refuses connections.
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(self.address).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Listens again on the same port.
    pub async fn up(&self) {
        for _ in 0..100 {
            if let Ok(listener) = tokio::net::TcpListener::bind(self.address).await {
                self.serve(listener);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("cannot listen on {} again", self.address);
    }

    pub fn answer(&self, answer: Answer) {
        self.shared.inner.lock().expect("lock").answer = Some(answer);
    }

    /// Also verify with this secret (a rotation's new one).
    pub fn trust(&self, secret: &str) {
        self.shared.secrets.lock().expect("lock").push(secret.to_owned());
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.inner.lock().expect("lock").received.clone()
    }

    /// How many requests were answered so far.
    pub fn count(&self) -> usize {
        self.shared.inner.lock().expect("lock").received.len()
    }

    /// Forgets what was received (a benchmark's next phase).
    pub fn clear(&self) {
        self.shared.inner.lock().expect("lock").received.clear();
    }

    /// The requests it answered with a 2xx.
    pub fn accepted(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| (200..300).contains(&r.answered)).collect()
    }

    /// The id of every request so far, as it arrived.
    pub fn arrivals(&self) -> Vec<String> {
        self.shared.inner.lock().expect("lock").arrivals.clone()
    }

    /// Requests it is answering now.
    pub fn in_flight(&self) -> usize {
        self.shared.inner.lock().expect("lock").in_flight.values().sum()
    }

    pub fn overlapping(&self) -> Vec<String> {
        self.shared.inner.lock().expect("lock").overlapping.clone()
    }

    pub fn bad_signatures(&self) -> usize {
        self.shared.inner.lock().expect("lock").bad_signatures
    }

    /// Waits until `done` holds of the accepted requests (at most `within`).
    pub async fn wait_until(&self, within: Duration, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let accepted = self.accepted();
            if done(&accepted) {
                return accepted;
            }
            if Instant::now() > deadline {
                let types: Vec<_> = accepted.iter().map(|r| r.message_type.as_str()).collect();
                panic!(
                    "the receiver did not get what was expected within {within:?}; accepted: {types:?}; all: {}",
                    self.received().len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Ok(mut stop) = self.stop.lock()
            && let Some(stop) = stop.take()
        {
            let _ = stop.send(());
        }
    }
}

async fn receive(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let secrets = shared.secrets.lock().expect("lock").clone();
    let verified_by: Vec<usize> = secrets
        .iter()
        .enumerate()
        .filter(|(_, secret)| {
            standardwebhooks::Webhook::new(secret).is_ok_and(|hook| hook.verify(&body, &headers).is_ok())
        })
        .map(|(index, _)| index)
        .collect();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let id = header("webhook-id");
    let answer = {
        let mut inner = shared.inner.lock().expect("lock");
        if verified_by.is_empty() {
            inner.bad_signatures += 1;
        }
        inner.arrivals.push(id.clone());
        let flying = inner.in_flight.entry(id.clone()).or_default();
        *flying += 1;
        if *flying > 1 {
            inner.overlapping.push(id.clone());
        }
        inner.answer.clone().unwrap_or(Answer::Ok)
    };
    // Counts the request out however it ends (a sender that gives up drops it).
    let _flight = Flight { inner: Arc::clone(&shared.inner), id: id.clone() };
    let status = match &answer {
        _ if verified_by.is_empty() => 401,
        Answer::Ok => 204,
        Answer::Status(code) => *code,
        Answer::Slow(delay) => {
            tokio::time::sleep(*delay).await;
            204
        }
        Answer::Hang => {
            // Until the sender gives up and the connection closes (then this future is dropped).
            tokio::time::sleep(Duration::from_secs(3600)).await;
            204
        }
    };
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut inner = shared.inner.lock().expect("lock");
    inner.received.push(Received {
        id,
        timestamp: header("webhook-timestamp"),
        message_type: parsed["type"].as_str().unwrap_or_default().to_owned(),
        body: parsed,
        raw: body.to_vec(),
        at: Instant::now(),
        wall: chrono::Utc::now(),
        answered: status,
        verified_by,
    });
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

struct Flight {
    inner: Arc<Mutex<Inner>>,
    id: String,
}

impl Drop for Flight {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.inner.lock()
            && let Some(flying) = inner.in_flight.get_mut(&self.id)
        {
            *flying = flying.saturating_sub(1);
        }
    }
}
