//! One sentence per event, saying what it did in a few words — "approved decision
//! 0198a1b2 (revision 2) for engineering", "objection from business (user research) on
//! “Use Stripe”: Fees are high." — and how it reads: approvals good; rejections,
//! objections and overrides bad. The actor is shown beside the sentence, so it is not in it.
//!
//! `accord audit history` and the board's timeline both narrate through here, so an
//! event reads the same wherever it is shown. What stays theirs is the [`Reader`]: how
//! they name a decision (a short id in a terminal, its title on the board), whether they
//! tell feedback items apart, and how much of a free text fits their line.

use std::collections::BTreeSet;

use super::event::Event;
use super::values::{DecisionId, FeedbackId, Function, RevisionKind, Verdict};

/// How an event reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Good,
    Warn,
    Bad,
}

impl Tone {
    /// none, good, warn or bad: the names the board colours by.
    pub fn as_str(self) -> &'static str {
        match self {
            Tone::Plain => "none",
            Tone::Good => "good",
            Tone::Warn => "warn",
            Tone::Bad => "bad",
        }
    }
}

/// Whom a narration is for: how it names what an event is about, and how it shows text.
pub trait Reader {
    /// A decision as a sentence names it: `decision 0198a1b2`, `“Use Stripe”`.
    fn decision(&self, id: &DecisionId) -> String;

    /// A decision as it is proposed under `title`: by default its name, then the title.
    fn proposal(&self, id: &DecisionId, title: &str) -> String {
        format!("{} {}", self.decision(id), self.title(title))
    }

    /// A feedback item's name, where this reader tells them apart.
    fn feedback(&self, id: &FeedbackId) -> Option<String>;

    /// The title of an initiative or decision, quoted.
    fn title(&self, title: &str) -> String;

    /// Free text (a body, a reason, a note) shortened to fit the reader's line.
    fn brief(&self, text: &str) -> String;
}

/// What an event did, and how it reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Narration {
    pub text: String,
    pub tone: Tone,
}

/// The sentence of one event, for `reader`.
pub fn narrate(event: &Event, reader: &impl Reader) -> Narration {
    let said = |text: String, tone: Tone| Narration { text, tone };
    let colon = |text: &str| if text.trim().is_empty() { String::new() } else { format!(": {}", reader.brief(text)) };
    let decision = |id: &DecisionId| reader.decision(id);
    let feedback = |id: &FeedbackId| reader.feedback(id).map(|name| format!(" {name}")).unwrap_or_default();
    match event {
        Event::InitiativeCreated { key, title, owner, stage, required_functions, .. } => said(
            format!(
                "created {key} {} — owner {owner}, stage {stage}, needs {}",
                reader.title(title),
                listed(required_functions)
            ),
            Tone::Plain,
        ),
        Event::InitiativeUpdated { title, summary, owner, required_functions } => {
            let mut changes = Vec::new();
            if let Some(title) = title {
                changes.push(format!("title {}", reader.title(title)));
            }
            if summary.is_some() {
                changes.push("summary".to_owned());
            }
            if let Some(owner) = owner {
                changes.push(format!("owner {owner}"));
            }
            if let Some(functions) = required_functions {
                changes.push(format!("needs {}", listed(functions)));
            }
            let changes = if changes.is_empty() { "nothing".to_owned() } else { changes.join(", ") };
            said(format!("updated {changes}"), Tone::Plain)
        }
        Event::StageChanged { from, to } => said(format!("stage {from} → {to}"), Tone::Plain),
        Event::InitiativeArchived { reason } => said(format!("archived the initiative{}", colon(reason)), Tone::Plain),
        Event::StakeholderAssigned { principal, function, role } => {
            said(format!("assigned {principal} as {function} {role}"), Tone::Plain)
        }
        Event::StakeholderRemoved { principal, function, role } => {
            said(format!("removed {principal} as {function} {role}"), Tone::Plain)
        }
        Event::DecisionProposed { decision_id, content, required_functions, supersedes } => {
            let supersedes = supersedes.as_ref().map(|old| format!(", to supersede {}", decision(old)));
            said(
                format!(
                    "proposed {} (needs {}){}",
                    reader.proposal(decision_id, &content.title),
                    listed(required_functions),
                    supersedes.unwrap_or_default()
                ),
                Tone::Plain,
            )
        }
        Event::DecisionRevised { decision_id, revision, kind, stale, note, .. } => {
            let stale = if stale.is_empty() {
                String::new()
            } else {
                let who: Vec<String> = stale.iter().map(|s| format!("{} for {}", s.signer, s.function)).collect();
                format!("; stale now: {}", who.join(", "))
            };
            let note = if note.trim().is_empty() { String::new() } else { format!(" — {}", reader.brief(note)) };
            said(
                format!("revised {} to revision {revision} ({kind}){stale}{note}", decision(decision_id)),
                if *kind == RevisionKind::Material { Tone::Warn } else { Tone::Plain },
            )
        }
        Event::DecisionAccepted { decision_id, revision, r#override } => match r#override {
            Some(record) => {
                let unaligned: Vec<String> = record
                    .unaligned
                    .iter()
                    .map(|(function, state)| format!("{function} {}", state.as_str().replace('_', " ")))
                    .collect();
                let unaligned = if unaligned.is_empty() { "not aligned".to_owned() } else { unaligned.join(", ") };
                said(
                    format!(
                        "accepted {} (revision {revision}) by OVERRIDE although {unaligned}{}",
                        decision(decision_id),
                        colon(&record.reason)
                    ),
                    Tone::Bad,
                )
            }
            None => said(format!("accepted {} (revision {revision}), aligned", decision(decision_id)), Tone::Good),
        },
        Event::DecisionRejected { decision_id, reason } => {
            said(format!("rejected {}{}", decision(decision_id), colon(reason)), Tone::Bad)
        }
        Event::DecisionWithdrawn { decision_id, reason } => {
            said(format!("withdrew {}{}", decision(decision_id), colon(reason)), Tone::Plain)
        }
        Event::DecisionSuperseded { decision_id, superseded_by } => {
            said(format!("{} is superseded by {}", decision(decision_id), decision(superseded_by)), Tone::Plain)
        }
        Event::FeedbackRecorded { feedback_id, decision_id, function, kind, source, body } => {
            let on = decision_id.as_ref().map_or_else(|| "the initiative".to_owned(), decision);
            let tone = match kind.as_str() {
                "objection" => Tone::Bad,
                "concern" => Tone::Warn,
                _ => Tone::Plain,
            };
            let source = source.as_str().replace('_', " ");
            said(format!("{kind}{} from {function} ({source}) on {on}{}", feedback(feedback_id), colon(body)), tone)
        }
        Event::FeedbackResolved { feedback_id, resolution } => {
            said(format!("resolved feedback{}{}", feedback(feedback_id), colon(resolution)), Tone::Good)
        }
        Event::FeedbackReopened { feedback_id, reason } => {
            said(format!("reopened feedback{}{}", feedback(feedback_id), colon(reason)), Tone::Warn)
        }
        Event::SignOffRecorded { decision_id, revision, function, verdict, reason, comment, via_team } => {
            let words: Vec<&str> =
                [reason.as_str(), comment.as_str()].into_iter().filter(|w| !w.trim().is_empty()).collect();
            let (word, tone) = match verdict {
                Verdict::Approve => ("approved", Tone::Good),
                Verdict::Reject => ("rejected", Tone::Bad),
            };
            said(
                format!(
                    "{word} {} (revision {revision}) for {function}{}{}",
                    decision(decision_id),
                    via_team.as_ref().map(|team| format!(" as a member of {team}")).unwrap_or_default(),
                    colon(&words.join(" — "))
                ),
                tone,
            )
        }
        Event::SignOffRevoked { decision_id, function } => {
            said(format!("revoked the {function} verdict on {}", decision(decision_id)), Tone::Warn)
        }
    }
}

/// Functions as "a, b, c".
fn listed(functions: &BTreeSet<Function>) -> String {
    functions.iter().map(Function::as_str).collect::<Vec<_>>().join(", ")
}
