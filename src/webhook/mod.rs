//! Outbound webhooks: what Accord tells subscribers about the log — its raw events, the
//! notifications derived from them (`domain::notify`) and daily digests — and the bodies
//! they are sent as (`payload`).

pub mod payload;
