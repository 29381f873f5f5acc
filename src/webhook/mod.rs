//! Outbound webhooks, driven by the log: subscriptions that administrators manage
//! (`subscription`, `manage`), the messages each event gives (`derive`: the event and the
//! notifications derived from it; `payload`: their bodies, Standard Webhooks JSON or
//! Slack blocks), signed as Standard Webhooks 1.0 says (`sign`), sent by a client that
//! refuses private targets unless allowed and bounds what it waits for and reads
//! (`target`, `http`), by one replica at a time under a lease (`dispatch`).

pub mod derive;
pub mod dispatch;
pub mod http;
pub mod manage;
pub mod payload;
pub mod sign;
pub mod subscription;
pub mod target;

use std::time::Duration;

pub use dispatch::Webhooks;

/// How webhooks are delivered (`accord serve --webhook-*`).
#[derive(Clone, Debug)]
pub struct WebhookOptions {
    /// Whether this process delivers (else it only serves the API; another replica
    /// delivers).
    pub deliver: bool,
    /// Addresses a target may resolve to although private or loopback.
    pub allowed_private: target::PrivateAllowed,
    /// Attempts of one message before it is dead-lettered.
    pub attempts: u32,
    /// The first retry's delay; each next one doubles, up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Dead-lettered messages in a row that disable a subscription.
    pub disable_after: u32,
    /// One attempt, in all.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Most bytes of a receiver's answer read.
    pub max_response_bytes: usize,
    /// How long the delivering replica's lease lasts without renewal.
    pub lease_ttl: Duration,
    /// How often subscriptions and queued redeliveries are looked at again.
    pub refresh: Duration,
    /// Most bytes of derived recent events kept for the senders to share.
    pub ring_bytes: usize,
    /// How long delivered messages stay in the delivery log.
    pub keep_deliveries: Duration,
    /// The board's public address, for links in messages.
    pub board_url: Option<String>,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            deliver: true,
            allowed_private: target::PrivateAllowed::default(),
            attempts: 8,
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(3600),
            disable_after: 3,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_response_bytes: 64 * 1024,
            lease_ttl: Duration::from_secs(15),
            refresh: Duration::from_secs(1),
            ring_bytes: 32 * 1024 * 1024,
            keep_deliveries: Duration::from_secs(7 * 24 * 3600),
            board_url: None,
        }
    }
}

impl WebhookOptions {
    pub fn http(&self) -> http::HttpOptions {
        http::HttpOptions {
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            max_response_bytes: self.max_response_bytes,
            allowed: self.allowed_private.clone(),
            user_agent: format!("accord-webhooks/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}
