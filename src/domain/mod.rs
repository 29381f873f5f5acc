//! The pure core of Accord: values, commands, events, the state folded from them, the
//! rules that decide commands, the alignment projection, and the sentence that tells
//! people what an event did (`narrate`). Nothing in here does I/O
//! or knows about gRPC or SQL, so every rule is testable as given(events) / when
//! (command) / then(events or error).

pub mod alignment;
pub mod command;
pub mod decide;
pub mod error;
pub mod event;
pub mod explain;
pub mod narrate;
pub mod notify;
pub mod state;
pub mod upcast;
pub mod values;

pub use alignment::{AlignmentView, project};
pub use command::Command;
pub use decide::{Authority, decide, decide_as, decide_for};
pub use error::DomainError;
pub use event::{Event, Recorded};
pub use state::{Initiative, Member, evolve, fold};

#[cfg(test)]
mod tests;
