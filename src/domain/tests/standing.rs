//! What stands and what is history: stale lists, objections on closed decisions, and
//! objections from functions the initiative does not require.

use super::*;
use crate::domain::alignment::{FunctionState, InitiativeStatus};

#[test]
fn reopening_an_objection_against_a_closed_decision_is_failed_precondition() {
    let history = proposed()
        .given(BIZ, objection(fb(1), Some(dec(1)), "business"))
        .given(BIZ, resolve(fb(1)))
        .given(DRIVER, accept_overriding(dec(1), "launch window"));
    let error = history.refuse(BIZ, reopen(fb(1)));
    assert_precondition(error, &["accepted", "cannot be reopened"]);
}

#[test]
fn a_material_revision_lists_as_stale_only_approvals_that_still_counted() {
    let mut history = proposed()
        .given(ENG, approve(dec(1), "engineering"))
        .given(DES, approve(dec(1), "design"))
        .given(OWNER, remove(ENG, "engineering", Role::Approver));
    let events = history.run(DRIVER, revise(dec(1), RevisionKind::Material, "a new proposal"));
    let Some(Event::DecisionRevised { stale, .. }) = events.first() else {
        panic!("expected DecisionRevised, got {events:?}");
    };
    let signers: Vec<&str> = stale.iter().map(|s| s.signer.as_str()).collect();
    assert_eq!(signers, vec![DES], "the removed approver's approval no longer counted, so it cannot go stale");
}

#[test]
fn an_objection_overridden_at_acceptance_leaves_the_open_objections_and_stays_in_the_override() {
    let history = proposed()
        .given(BIZ, objection(fb(1), Some(dec(1)), "business"))
        .given(DRIVER, accept_overriding(dec(1), "launch window"));
    let view = history.view();
    assert!(view.open_objections.is_empty(), "no objection stands against an accepted decision");
    assert_eq!(view.overrides.len(), 1);
    assert_eq!(view.overrides[0].record.objections, vec![fb(1)]);
}

#[test]
fn an_initiative_level_objection_from_an_unrequired_function_shows_that_function_blocked() {
    let history = team()
        .given(OWNER, assign(CONTRIB, "legal", Role::Contributor))
        .given(CONTRIB, objection(fb(1), None, "legal"));
    let view = history.view();
    assert_eq!(view.status, InitiativeStatus::Blocked);
    let legal = view.functions.iter().find(|f| f.function.as_str() == "legal").map(|f| f.state);
    assert_eq!(legal, Some(FunctionState::Blocked));
}
