//! The application layer: the command cycle, owned once for every backend and every
//! edge. A command goes head (cached, or loaded) → expected version → decide → fold →
//! hash → project → append → outcome; commands that arrive together — on one
//! initiative or many — are planned one after another against the heads in memory and
//! appended as one batch in one transaction (group commit), so a busy server pays one
//! round trip and one commit for many commands. The store underneath checks, in the
//! write itself, that every head the batch moves is where this process saw it; when
//! another process wrote first, the batch is planned again against fresh heads.
//!
//! Layering: domain ← store ← app ← edges (grpc, http, cli).

mod command;
mod committed;
mod committer;
mod head;

pub use command::{CommandEnvelope, CommandId, CommandOutcome};
pub use committed::{CommitSink, Committed};
pub use committer::{App, AppLimits};
