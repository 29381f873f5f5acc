//! Prometheus metrics of the service: calls by RPC and gRPC code with their durations,
//! appends and their latency, live watchers and how late they are served, and the
//! database pools. One recorder per process (installed on first use, so several servers in
//! one process — the tests — share it); `render` produces the Prometheus text format.
//!
//! Recording is cheap: the labels of a call come from a table of the server's RPCs built
//! once from the proto descriptors, so no per-call strings are made, and paths the API
//! does not know are counted under `unknown` rather than growing the label set.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::OnceLock,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use prost::Message;
use tonic::{Code, Status, body::Body};
use tracing::warn;

use crate::store::Store;

pub const RPC_REQUESTS: &str = "accord_rpc_requests_total";
pub const RPC_DURATION: &str = "accord_rpc_duration_seconds";
pub const APPEND_DURATION: &str = "accord_append_duration_seconds";
pub const EVENTS_APPENDED: &str = "accord_events_appended_total";
pub const WATCHERS: &str = "accord_watchers";
pub const WATCH_DELIVERY_DELAY: &str = "accord_watch_delivery_delay_seconds";
pub const WATCH_BUFFER_BYTES: &str = "accord_watch_buffer_bytes";
pub const WATCH_RESYNCS: &str = "accord_watch_resyncs_total";
pub const FEED_APPLIED: &str = "accord_feed_batches_applied_total";
pub const DB_POOL_CONNECTIONS: &str = "accord_db_pool_connections";
pub const DB_POOL_MAX_CONNECTIONS: &str = "accord_db_pool_max_connections";
pub const DB_READS: &str = "accord_db_reads_total";
pub const STANDBY_FALLBACKS: &str = "accord_standby_fallbacks_total";
pub const STANDBY_WAIT: &str = "accord_standby_read_your_writes_wait_seconds";
pub const STANDBY_UP: &str = "accord_standby_up";
pub const WEBHOOK_ATTEMPTS: &str = "accord_webhook_attempts_total";
pub const WEBHOOK_ATTEMPT_DURATION: &str = "accord_webhook_attempt_duration_seconds";

/// Buckets of call durations: sub-millisecond reads up to the 30 s call deadline.
const RPC_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Buckets of appends: a commit takes milliseconds; imports of a whole log take longer.
const APPEND_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];
/// Buckets of a read-your-writes wait for the standby: replay lag is milliseconds; the
/// wait is bounded by `--read-your-writes-wait` (default 300 ms).
const STANDBY_WAIT_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
/// Buckets of the delay from commit to a watcher: the feed's wake-up to its slow poll.
const DELIVERY_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();
static RPC_NAMES: OnceLock<HashMap<&'static str, RpcLabels>> = OnceLock::new();

/// Installs the process's recorder and describes every metric; later calls do nothing.
pub fn init() {
    recorder();
}

fn recorder() -> &'static PrometheusHandle {
    RECORDER.get_or_init(|| {
        let recorder = match with_buckets() {
            Ok(builder) => builder.build_recorder(),
            Err(error) => {
                warn!(%error, "metrics: histogram buckets refused; histograms are summaries instead");
                PrometheusBuilder::new().build_recorder()
            }
        };
        let handle = recorder.handle();
        if let Err(error) = metrics::set_global_recorder(recorder) {
            warn!(%error, "metrics: another recorder is installed in this process; Accord's metrics stay empty");
        }
        describe();
        handle
    })
}

fn with_buckets() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(RPC_DURATION.into()), RPC_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(APPEND_DURATION.into()), APPEND_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(WATCH_DELIVERY_DELAY.into()), DELIVERY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(STANDBY_WAIT.into()), STANDBY_WAIT_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(WEBHOOK_ATTEMPT_DURATION.into()), DELIVERY_BUCKETS)
}

fn describe() {
    describe_counter!(RPC_REQUESTS, "gRPC calls answered, by service, RPC and gRPC status code (refusals included)");
    describe_histogram!(
        RPC_DURATION,
        Unit::Seconds,
        "Time from a call's request to the end of its response (for streams: the stream's life)"
    );
    describe_histogram!(
        APPEND_DURATION,
        Unit::Seconds,
        "Time to execute a command or an import against the store (refused commands included)"
    );
    describe_counter!(EVENTS_APPENDED, "Events appended to the log by commands and imports (replays append none)");
    describe_gauge!(WATCHERS, "Live alignment watchers connected now");
    describe_histogram!(
        WATCH_DELIVERY_DELAY,
        Unit::Seconds,
        "Time from an event's commit to its delivery to a watcher"
    );
    describe_gauge!(
        WATCH_BUFFER_BYTES,
        Unit::Bytes,
        "Bytes of recent alignment changes the live feed keeps for watchers that are behind (bounded)"
    );
    describe_counter!(WATCH_RESYNCS, "Watchers that fell behind the live feed's buffer and were caught up afresh");
    describe_counter!(
        FEED_APPLIED,
        "Batches of events the live feed applied, by source: read from the log, or handed over by this process's committer"
    );
    describe_gauge!(DB_POOL_CONNECTIONS, "Database connections of the store's pools, by state (idle, in_use)");
    describe_gauge!(DB_POOL_MAX_CONNECTIONS, "Most connections the store's pools may open");
    describe_counter!(
        DB_READS,
        "Database reads (one store call: a statement or a few), by the pool that answered: primary or standby"
    );
    describe_counter!(
        STANDBY_FALLBACKS,
        "Reads meant for the standby that the primary answered, by reason: down (it failed or failed lately) \
         or lag (it had not replayed the position the caller wrote within the wait)"
    );
    describe_histogram!(
        STANDBY_WAIT,
        Unit::Seconds,
        "Time a read naming a position (read-your-writes) waited for the standby to replay it"
    );
    describe_gauge!(STANDBY_UP, "1 while the read-only standby answers, 0 while reads fall back to the primary");
    describe_counter!(
        WEBHOOK_ATTEMPTS,
        "Webhook delivery attempts, by what became of the message (delivered, failing: retried, dead)"
    );
    describe_histogram!(WEBHOOK_ATTEMPT_DURATION, Unit::Seconds, "Time a webhook receiver took to answer one attempt");
}

/// One webhook delivery attempt and how long its receiver took.
pub fn webhook_attempt(status: &str, took: Duration) {
    let status = match status {
        "delivered" => "delivered",
        "dead" => "dead",
        _ => "failing",
    };
    counter!(WEBHOOK_ATTEMPTS, "status" => status).increment(1);
    histogram!(WEBHOOK_ATTEMPT_DURATION).record(took.as_secs_f64());
}

/// Samples the store's pools and its standby's state, then renders every metric in the Prometheus text format.
pub fn render(store: &Store) -> String {
    let handle = recorder();
    let pools = store.pool_stats();
    gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(f64::from(pools.idle));
    gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set(f64::from(pools.in_use));
    gauge!(DB_POOL_MAX_CONNECTIONS).set(f64::from(pools.max));
    match store.standby_status() {
        crate::store::StandbyStatus::None => {}
        status => standby_up(status == crate::store::StandbyStatus::Up),
    }
    handle.run_upkeep();
    handle.render()
}

/// A live watcher connected.
pub fn watcher_opened() {
    gauge!(WATCHERS).increment(1.0);
}

/// A live watcher went away.
pub fn watcher_closed() {
    gauge!(WATCHERS).decrement(1.0);
}

/// A change reached a watcher `delay` after its event committed.
pub fn watch_delivered(delay: Duration) {
    histogram!(WATCH_DELIVERY_DELAY).record(delay.as_secs_f64());
}

/// The live feed now keeps `bytes` of recent changes for watchers that are behind.
pub fn watch_buffer(bytes: usize) {
    gauge!(WATCH_BUFFER_BYTES).set(bytes as f64);
}

/// The live feed applied a batch of events read from the log (`handed_over` false) or
/// handed over by this process's committer.
pub fn feed_applied(handed_over: bool) {
    counter!(FEED_APPLIED, "source" => if handed_over { "handoff" } else { "log" }).increment(1);
}

/// Which database answered one read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadPool {
    Primary,
    Standby,
}

impl ReadPool {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadPool::Primary => "primary",
            ReadPool::Standby => "standby",
        }
    }
}

/// One store read was answered by `pool`.
pub fn db_read(pool: ReadPool) {
    counter!(DB_READS, "pool" => pool.as_str()).increment(1);
}

/// A read meant for the standby went to the primary: `reason` is `down` or `lag`.
pub fn standby_fallback(reason: &'static str) {
    counter!(STANDBY_FALLBACKS, "reason" => reason).increment(1);
}

/// A read-your-writes read waited `waited` for the standby (whether or not it got there).
pub fn standby_wait(waited: Duration) {
    histogram!(STANDBY_WAIT).record(waited.as_secs_f64());
}

/// Whether the standby answers (1) or reads fall back to the primary (0).
pub fn standby_up(up: bool) {
    gauge!(STANDBY_UP).set(if up { 1.0 } else { 0.0 });
}

/// A watcher fell behind the live feed's buffer and is caught up afresh.
pub fn watch_resynced() {
    counter!(WATCH_RESYNCS).increment(1);
}

/// A command or an import appended `count` events.
pub fn events_appended(count: u64) {
    if count > 0 {
        counter!(EVENTS_APPENDED).increment(count);
    }
}

/// A command or an import took `elapsed` in the store.
pub fn append_latency(elapsed: Duration) {
    histogram!(APPEND_DURATION).record(elapsed.as_secs_f64());
}

/// The `service` and `rpc` labels of one RPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RpcLabels {
    pub service: &'static str,
    pub rpc: &'static str,
}

impl RpcLabels {
    const UNKNOWN: RpcLabels = RpcLabels { service: "unknown", rpc: "unknown" };

    /// The labels of the RPC at `path` (`/package.Service/Method`); `unknown` for a path
    /// the server does not offer.
    pub fn of_path(path: &str) -> RpcLabels {
        RPC_NAMES.get_or_init(rpc_names).get(path).copied().unwrap_or(RpcLabels::UNKNOWN)
    }
}

/// Every RPC path the server offers, from the descriptors it serves reflection from.
/// The names are leaked once, a bounded set, so that labels are `&'static str`.
fn rpc_names() -> HashMap<&'static str, RpcLabels> {
    let sets = [
        crate::proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
    ];
    let mut names = HashMap::new();
    for bytes in sets {
        let set = match prost_types::FileDescriptorSet::decode(bytes) {
            Ok(set) => set,
            Err(error) => {
                warn!(%error, "metrics: a file descriptor set does not decode; its RPCs count as unknown");
                continue;
            }
        };
        for file in &set.file {
            let package = file.package();
            for service in &file.service {
                let full = if package.is_empty() {
                    service.name().to_owned()
                } else {
                    format!("{package}.{}", service.name())
                };
                let service_name: &'static str = Box::leak(full.into_boxed_str());
                for method in &service.method {
                    let rpc: &'static str = Box::leak(method.name().to_owned().into_boxed_str());
                    let path: &'static str = Box::leak(format!("/{service_name}/{rpc}").into_boxed_str());
                    names.insert(path, RpcLabels { service: service_name, rpc });
                }
            }
        }
    }
    names
}

/// The name Prometheus shows for a gRPC code, as the gRPC specification spells it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

fn record_call(labels: RpcLabels, code: Code, elapsed: Duration) {
    counter!(RPC_REQUESTS, "service" => labels.service, "rpc" => labels.rpc, "code" => code_name(code)).increment(1);
    histogram!(RPC_DURATION, "service" => labels.service, "rpc" => labels.rpc).record(elapsed.as_secs_f64());
}

fn status_of(headers: &http::HeaderMap) -> Option<Code> {
    headers.get("grpc-status").map(|value| Code::from_bytes(value.as_bytes()))
}

/// Counts a call that ended without a response (the service failed at the transport).
pub fn call_failed(labels: RpcLabels, started: Instant) {
    record_call(labels, Code::Unknown, started.elapsed());
}

/// Counts a call once its gRPC status is known: at once for a trailers-only response
/// (an error, or a refusal of the guard), otherwise when the trailers of its body pass.
pub fn observe_call(labels: RpcLabels, started: Instant, response: http::Response<Body>) -> http::Response<Body> {
    if let Some(code) = status_of(response.headers()) {
        record_call(labels, code, started.elapsed());
        return response;
    }
    response.map(|inner| Body::new(ObservedBody { inner, pending: Some((labels, started)) }))
}

/// A response body that records its call when the trailers (the gRPC status) pass, or
/// when it is dropped before them (the client went away: `CANCELLED`).
struct ObservedBody {
    inner: Body,
    pending: Option<(RpcLabels, Instant)>,
}

impl ObservedBody {
    fn finish(&mut self, code: Code) {
        if let Some((labels, started)) = self.pending.take() {
            record_call(labels, code, started.elapsed());
        }
    }
}

impl http_body::Body for ObservedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    self.finish(status_of(trailers).unwrap_or(Code::Unknown));
                }
            }
            Poll::Ready(Some(Err(status))) => self.finish(status.code()),
            // A body that ends without trailers carries no status: gRPC reads that as UNKNOWN.
            Poll::Ready(None) => self.finish(Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        let code = if http_body::Body::is_end_stream(&self.inner) { Code::Unknown } else { Code::Cancelled };
        self.finish(code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_the_api_health_and_reflection_have_labels_and_others_are_unknown() {
        assert_eq!(
            RpcLabels::of_path("/accord.v1.CommandService/CreateInitiative"),
            RpcLabels { service: "accord.v1.CommandService", rpc: "CreateInitiative" }
        );
        assert_eq!(
            RpcLabels::of_path("/accord.v1.AlignmentService/GetAlignment"),
            RpcLabels { service: "accord.v1.AlignmentService", rpc: "GetAlignment" }
        );
        assert_eq!(RpcLabels::of_path("/grpc.health.v1.Health/Check").service, "grpc.health.v1.Health");
        assert_eq!(
            RpcLabels::of_path("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo").rpc,
            "ServerReflectionInfo"
        );
        assert_eq!(RpcLabels::of_path("/accord.v1.CommandService/DropTables"), RpcLabels::UNKNOWN);
        assert_eq!(RpcLabels::of_path("/"), RpcLabels::UNKNOWN);
    }

    #[test]
    fn every_code_has_its_specification_name() {
        assert_eq!(code_name(Code::from_bytes(b"0")), "OK");
        assert_eq!(code_name(Code::from_bytes(b"5")), "NOT_FOUND");
        assert_eq!(code_name(Code::from_bytes(b"7")), "PERMISSION_DENIED");
        assert_eq!(code_name(Code::from_bytes(b"16")), "UNAUTHENTICATED");
        assert_eq!(code_name(Code::from_bytes(b"garbage")), "UNKNOWN");
    }

    #[test]
    fn calls_and_appends_show_in_the_rendered_text_with_their_help() {
        init();
        init();
        let labels = RpcLabels::of_path("/accord.v1.AuditService/Verify");
        record_call(labels, Code::DataLoss, Duration::from_millis(3));
        events_appended(2);
        append_latency(Duration::from_millis(1));
        watcher_opened();
        watch_delivered(Duration::from_millis(20));
        watcher_closed();
        let handle = recorder();
        handle.run_upkeep();
        let text = handle.render();
        assert!(
            text.contains(
                r#"accord_rpc_requests_total{service="accord.v1.AuditService",rpc="Verify",code="DATA_LOSS"}"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"accord_rpc_duration_seconds_bucket{service="accord.v1.AuditService",rpc="Verify",le="0.005"}"#
            ),
            "{text}"
        );
        assert!(text.contains("# HELP accord_events_appended_total Events appended"), "{text}");
        assert!(text.contains("accord_append_duration_seconds_bucket"), "{text}");
        assert!(text.contains("accord_watch_delivery_delay_seconds_count"), "{text}");
        assert!(text.contains("accord_watchers "), "{text}");
    }
}
