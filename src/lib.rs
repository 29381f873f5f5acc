//! Accord: an event-sourced stakeholder alignment service.
//!
//! The crate is laid out in rings, inside out:
//! - [`domain`]: the pure rules — values, commands, events, the fold, `decide`, and the
//!   alignment projection. No I/O.
//! - [`store`]: the append-only event log and the projections it maintains in the same
//!   transaction (PostgreSQL), plus the gap-free global read.
//! - [`grpc`]: the tonic services — conversion between proto and domain, the caller's
//!   identity, one error mapping.
//! - [`http`]: the built-in web board and its JSON / server-sent-events API.
//! - [`webhook`]: outbound webhooks driven by the log — subscriptions, notifications
//!   and digests, Standard Webhooks signatures, the guarded sender, the dispatcher.
//! - [`health`]: readiness, from a probe of the store; gRPC health and `/readyz` report it.
//! - [`server`] and [`config`]: start-up, wiring and graceful shutdown; `main.rs` only
//!   parses flags and calls into them.

pub mod app;
pub mod cli;
pub mod config;
pub mod domain;
pub mod grpc;
pub mod health;
pub mod http;
pub mod live;
pub mod metrics;
pub mod security;
pub mod server;
pub mod store;
pub mod webhook;

/// The generated protobuf and gRPC code of package `accord.v1`.
pub mod proto {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("accord.v1");

    /// The file descriptor set, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("accord_descriptor");
}
