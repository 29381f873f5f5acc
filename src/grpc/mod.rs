//! The gRPC edge: tonic services that parse requests into domain commands and queries,
//! run them against the store, and map results and errors back to the wire. Everything
//! cross-cutting lives in one place each: the error mapping (`status`), proto ↔ domain
//! conversion (`convert`), request parsing (`parse`). Who the caller is, and whether
//! they may call at all, is settled before a request gets here (`crate::security`).

pub mod audit;
pub mod commands;
pub mod convert;
pub mod parse;
pub mod queries;
pub mod status;
pub mod webhooks;

pub use audit::Audit;
pub use commands::Commands;
pub use queries::Queries;
pub use webhooks::WebhookApi;

/// Names the initiative a request is about in the current call's span (the guard's
/// `call` span declares the field), so that every log line of the call carries it.
pub fn record_initiative(initiative: &impl std::fmt::Display) {
    tracing::Span::current().record("initiative", tracing::field::display(initiative));
}
