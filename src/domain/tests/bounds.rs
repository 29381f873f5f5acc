//! One alignment view stays bounded in size however much is written on an initiative:
//! exact counts, the most recent items of each list, previews of long texts; the inbox
//! and the filters still see everything.

use super::*;
use crate::domain::alignment::bounds;

fn long_feedback(id: u128, kind: FeedbackKind, chars: usize) -> Command {
    Command::RecordFeedback {
        feedback_id: fb(id),
        decision_id: Some(dec(1)),
        function: func("engineering"),
        kind,
        source: FeedbackSource::UserResearch,
        body: format!("{id:03} {}", "x".repeat(chars)),
    }
}

fn encoded_len(view: &AlignmentView) -> usize {
    serde_json::to_vec(view).expect("a view encodes").len()
}

#[test]
fn many_long_concerns_are_counted_exactly_and_the_most_recent_listed_as_previews() {
    let mut history = proposed();
    for n in 1..=60 {
        history = history.given(CONTRIB, long_feedback(n, FeedbackKind::Concern, 5_000));
    }
    let view = history.view();
    assert_eq!(view.counts.open_concerns, 60);
    assert_eq!(view.open_concerns.len(), bounds::ITEMS);
    let kept: Vec<FeedbackId> = view.open_concerns.iter().map(|f| f.id).collect();
    assert_eq!(kept, (41..=60).map(fb).collect::<Vec<_>>(), "the most recent, oldest first");
    for concern in &view.open_concerns {
        assert_eq!(concern.body.chars().count(), bounds::PREVIEW_CHARS + 1, "a preview and its ellipsis");
        assert!(concern.body.ends_with('…'));
        assert_eq!(concern.body.chars().take(3).collect::<String>(), format!("{:03}", concern.id.0.as_u128() & 0xff));
    }
    assert_eq!(view.evidence.user_research, 60, "evidence counts everything");
    // The full texts are in the state the detail queries read.
    assert_eq!(history.feedback(fb(1)).body.chars().count(), 5_004);
    assert!(encoded_len(&view) < 32 * 1024, "{} bytes", encoded_len(&view));
}

#[test]
fn many_open_decisions_keep_their_counts_the_inbox_and_the_filters_exact() {
    let mut history = team();
    for n in 1..=70 {
        history = history.given(DRIVER, propose(dec(n)));
    }
    history = history.given(DRIVER, accept_overriding(dec(1), "we must ship"));
    let view = history.view();
    assert_eq!((view.counts.decisions, view.counts.open_decisions), (70, 69));
    assert_eq!(view.decisions.len(), bounds::DECISIONS);
    assert!(view.decisions.iter().all(|d| d.status == crate::domain::state::DecisionStatus::Proposed), "open first");
    assert_eq!(view.counts.outstanding, 69 * 3);
    assert_eq!(view.outstanding.len(), bounds::OUTSTANDING);
    assert!(!view.outstanding_is_complete());
    assert_eq!(view.outstanding_functions(), ["business", "design", "engineering"]);
    assert_eq!(history.inbox(DES).len(), 69, "the inbox reads the initiative, not the bounded view");
    assert_eq!(history.awaiting(), [BIZ, DES, ENG], "the inbox index is exact");
    assert_eq!(view.counts.overrides, 1);
}

#[test]
fn a_view_of_everything_at_its_limits_stays_small() {
    let mut history = team();
    for n in 1..=60 {
        history = history.given(DRIVER, propose(dec(n)));
    }
    for n in 1..=60 {
        let kind = if n % 2 == 0 { FeedbackKind::Objection } else { FeedbackKind::Concern };
        history = history.given(CONTRIB, long_feedback(n, kind, MAX_TEXT - 10));
    }
    for n in 0..200 {
        history = history.given(DRIVER, assign(&format!("approver-{n}@example.com"), "design", Role::Approver));
    }
    let view = history.view();
    assert_eq!(view.counts.stakeholders, 206);
    assert_eq!(view.stakeholders.len(), bounds::STAKEHOLDERS);
    assert!(view.outstanding.iter().all(|item| item.can_sign.len() <= bounds::NAMES));
    assert!(view.outstanding.iter().all(|item| item.reason.chars().count() <= bounds::PREVIEW_CHARS + 1));
    let bytes = encoded_len(&view);
    assert!(bytes < 128 * 1024, "a view of {bytes} bytes");
    // The projection a rebuild makes is the same bounded view.
    assert_eq!(project(&fold(&history.events).unwrap().unwrap()), view);
}

#[test]
fn previews_cut_at_characters_not_bytes() {
    use crate::domain::alignment::preview;
    assert_eq!(preview("short", 10), "short");
    assert_eq!(preview("ééééé", 3), "ééé…");
    assert_eq!(preview("", 0), "");
    assert_eq!(preview("ab", 0), "…");
}
