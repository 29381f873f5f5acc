//! Readiness: whether this server can do its work, which is whether its event store
//! answers. A background probe asks the store a trivial query every second, bounded by a
//! timeout, and publishes the verdict; gRPC health (the overall `""` service and every
//! Accord service) and the HTTP `/readyz` and `/healthz` report it, so that a load
//! balancer or an orchestrator sends no calls to a server whose database is unreachable
//! and sends them again once it answers. Liveness (`/livez`) is only that the process
//! answers: a database outage is no reason to restart Accord.
//!
//! A read-only standby, when configured, is probed too; it does not make the server
//! unready (its reads fall back to the primary), but `/readyz` says so.
//!
//! The pool reconnects by itself on the next call once the database is back; the probe
//! is also what tells the log that the database is gone and that it is being reconnected
//! to, once per outage rather than once per failing call.

use std::time::{Duration, Instant};

use tokio::{sync::watch, task::JoinHandle};
use tracing::{info, warn};

use crate::store::{Store, StoreError};

/// How often the store is probed.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long one probe may take before the store counts as unreachable.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// While the store stays unreachable, a reminder in the log every this many probes.
const REMIND_EVERY: u64 = 60;

/// Whether the store answered its last probe. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Readiness {
    ready: watch::Receiver<bool>,
}

impl Readiness {
    /// Probes `store` until the returned task is aborted (or the last `Readiness` is
    /// dropped). Ready at first: the store has just been opened.
    pub fn probe(store: Store) -> (Readiness, JoinHandle<()>) {
        let (publish, ready) = watch::channel(true);
        let task = tokio::spawn(probe(store, publish));
        (Readiness { ready }, task)
    }

    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Every change of readiness, starting with the current one.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        let mut ready = self.ready.clone();
        ready.mark_changed();
        ready
    }
}

async fn probe(store: Store, publish: watch::Sender<bool>) {
    let mut ticker = tokio::time::interval(PROBE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When the current outage began, and how many probes have failed in it.
    let mut outage: Option<(Instant, u64)> = None;
    loop {
        ticker.tick().await;
        // The standby's state is reported, not required: while it is down the primary
        // answers its reads (see `store::standby`).
        let _ = tokio::time::timeout(PROBE_TIMEOUT, store.probe_standby()).await;
        let answered = match tokio::time::timeout(PROBE_TIMEOUT, store.ping()).await {
            Ok(answered) => answered,
            Err(_) => {
                Err(StoreError::Unavailable(format!("no answer within the probe's {} s", PROBE_TIMEOUT.as_secs_f64())))
            }
        };
        outage = match (answered, outage) {
            (Ok(()), None) => None,
            (Ok(()), Some((since, _))) => {
                info!(
                    store = store.kind(),
                    down_for_s = since.elapsed().as_secs_f64(),
                    "the database answers again: serving (gRPC health SERVING, /readyz 200)"
                );
                publish.send_replace(true);
                None
            }
            (Err(error), None) => {
                warn!(
                    store = store.kind(),
                    %error,
                    "the database does not answer: not serving (gRPC health NOT_SERVING, /readyz 503), \
                     calls fail with UNAVAILABLE; reconnecting"
                );
                publish.send_replace(false);
                Some((Instant::now(), 1))
            }
            (Err(error), Some((since, failures))) => {
                if failures % REMIND_EVERY == 0 {
                    warn!(
                        store = store.kind(),
                        %error,
                        down_for_s = since.elapsed().as_secs_f64(),
                        "the database still does not answer; reconnecting"
                    );
                }
                Some((since, failures + 1))
            }
        };
        if publish.is_closed() {
            return;
        }
    }
}
