//! Outbound webhooks: what the dispatcher needs to send one message to a subscriber's
//! endpoint — the Standard Webhooks signature headers (`sign`), the target URL and the
//! guard against reaching private addresses (`target`), and the HTTP client that enforces
//! that guard at every connection and bounds time and response size (`http`).

pub mod http;
pub mod sign;
pub mod target;
