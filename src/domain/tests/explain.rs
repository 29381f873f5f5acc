//! Explanations name the events behind each state.

use super::*;
use crate::domain::alignment::FunctionState;
use crate::domain::explain::{FunctionExplanation, explain};

fn function<'a>(explanation: &'a crate::domain::explain::Explanation, name: &str) -> &'a FunctionExplanation {
    explanation.decisions[0].functions.iter().find(|f| f.function.as_str() == name).expect("function explained")
}

#[test]
fn a_stale_approval_is_explained_by_the_approval_and_the_material_revision() {
    let history = proposed()
        .given(ENG, approve(dec(1), "engineering"))
        .given(DES, approve(dec(1), "design"))
        .given(BIZ, objection(fb(1), Some(dec(1)), "business"))
        .given(DRIVER, revise(dec(1), RevisionKind::Material, "a cheaper plan"));
    let explanation = explain(history.state(), None);
    let engineering = function(&explanation, "engineering");
    assert_eq!(engineering.state, FunctionState::Pending);
    let kinds: Vec<&str> = engineering.events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds, vec!["SignOffRecorded", "DecisionRevised"]);
    assert!(engineering.events[1].summary.contains("revision 2 (material)"), "{:?}", engineering.events[1]);
    assert_eq!(engineering.events[1].version, history.version());

    let business = function(&explanation, "business");
    assert_eq!(business.state, FunctionState::Blocked);
    assert_eq!(business.events.len(), 1);
    assert_eq!(business.events[0].actor, who(BIZ));
    assert!(business.events[0].summary.starts_with("objection from business"));
}

#[test]
fn an_approval_is_explained_by_the_sign_off_and_editorial_revisions_that_carried_it() {
    let history = proposed()
        .given(ENG, approve(dec(1), "engineering"))
        .given(DRIVER, revise(dec(1), RevisionKind::Editorial, "fixed a typo"));
    let explanation = explain(history.state(), Some(dec(1)));
    let engineering = function(&explanation, "engineering");
    assert_eq!(engineering.state, FunctionState::Approved);
    let summaries: Vec<&str> = engineering.events.iter().map(|e| e.summary.as_str()).collect();
    assert_eq!(summaries.len(), 2, "{summaries:?}");
    assert!(summaries[0].contains("approved revision 1"));
    assert!(summaries[1].contains("carried the approval forward"));
}

#[test]
fn a_rejection_is_explained_by_the_rejecting_sign_off_with_its_reason() {
    let history = proposed().given(BIZ, reject(dec(1), "business", "too expensive"));
    let explanation = explain(history.state(), None);
    let business = function(&explanation, "business");
    assert_eq!(business.state, FunctionState::Rejected);
    assert!(business.events[0].summary.contains("too expensive"));
}

#[test]
fn an_override_appears_in_the_lifecycle_with_its_reason_and_the_unaligned_functions() {
    let history = proposed().given(DRIVER, accept_overriding(dec(1), "launch window"));
    let explanation = explain(history.state(), None);
    let lifecycle = &explanation.decisions[0].lifecycle;
    let last = lifecycle.last().expect("closing event");
    assert_eq!(last.event_type, "DecisionAccepted");
    assert!(last.summary.contains("override: launch window"), "{}", last.summary);
    assert!(last.summary.contains("engineering pending"), "{}", last.summary);
    assert_eq!(lifecycle[0].event_type, "DecisionProposed");
}
