//! Behaviour through the real gRPC API over loopback against a real PostgreSQL, one
//! fresh database per test (`#[sqlx::test]`).

#![allow(dead_code)]

mod audit;
mod audit_store;
mod bounds;
mod commit_order;
mod concurrency;
mod encoding;
mod errors;
mod health;
mod hostile;
mod idempotency;
mod long_inputs;
mod observability;
#[path = "../common/proxy.rs"]
mod proxy;
mod queries;
mod reads;
mod rebuild;
#[path = "../common/receiver.rs"]
mod receiver;
mod scenario;
mod security;
mod snapshots;
mod store;
mod support;
mod teams;
mod versions;
mod watch;
mod web;
mod webhook_store;
mod webhooks;
