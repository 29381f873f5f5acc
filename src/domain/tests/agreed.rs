//! What an accepted decision agreed: the `agreed` field of the projection (issue 16),
//! recorded by the acceptance and never rewritten by a later change of decision rights.

use super::*;
use crate::domain::alignment::{AgreedFunction, FunctionState, InitiativeStatus, bounds};

/// A function's state and its sign-offs as (signer, verdict, revision).
type AgreedRow<'a> = (&'a str, FunctionState, Vec<(&'a str, Verdict, u32)>);

fn states(agreed: &[AgreedFunction]) -> Vec<AgreedRow<'_>> {
    agreed
        .iter()
        .map(|f| {
            let signers = f.sign_offs.iter().map(|s| (s.signer.as_str(), s.verdict, s.revision)).collect();
            (f.function.as_str(), f.state, signers)
        })
        .collect()
}

#[test]
fn an_accepted_decision_lists_who_approved_each_function_while_function_states_count_open_decisions_only() {
    let history = accepted();
    let view = history.view();
    assert_eq!(view.status, InitiativeStatus::Aligned);
    assert!(view.functions.iter().all(|f| f.state == FunctionState::NotApplicable), "{:?}", view.functions);
    assert_eq!(view.agreed.len(), 1);
    assert_eq!(view.counts.agreed, 1);
    let agreed = &view.agreed[0];
    assert_eq!((agreed.decision_id, agreed.revision, &agreed.accepted_by), (dec(1), 1, &who(DRIVER)));
    assert!(!agreed.overridden);
    assert_eq!(agreed.accepted_at, at(history.version()));
    assert_eq!(
        states(&agreed.functions),
        vec![
            ("business", FunctionState::Approved, vec![(BIZ, Verdict::Approve, 1)]),
            ("design", FunctionState::Approved, vec![(DES, Verdict::Approve, 1)]),
            ("engineering", FunctionState::Approved, vec![(ENG, Verdict::Approve, 1)]),
        ]
    );
}

#[test]
fn an_open_decision_is_not_agreed_and_a_stale_approval_does_not_count_as_agreed() {
    assert!(aligned().view().agreed.is_empty());
    // Approvals of revision 1 went stale at revision 2; only the re-approvals count.
    let history = aligned()
        .given(DRIVER, revise(dec(1), RevisionKind::Material, "Adyen"))
        .given(ENG, approve_revision(dec(1), "engineering", 2))
        .given(DES, approve_revision(dec(1), "design", 2))
        .given(BIZ, approve_revision(dec(1), "business", 2))
        .given(DRIVER, accept(dec(1)));
    let agreed = &history.view().agreed[0];
    assert_eq!(agreed.revision, 2);
    assert!(agreed.functions.iter().all(|f| f.sign_offs.iter().all(|s| s.revision == 2)), "{:?}", agreed.functions);
}

#[test]
fn removing_an_approver_after_acceptance_does_not_rewrite_who_agreed() {
    let history = accepted().given(DRIVER, remove(DES, "design", Role::Approver));
    // A fresh evaluation would no longer count the removed approver's sign-off …
    let decision = history.decision(dec(1));
    let now = crate::domain::alignment::agreement(history.state(), decision);
    assert!(now.iter().any(|f| f.function.as_str() == "design" && f.sign_offs.is_empty()), "{now:?}");
    // … but what the acceptance agreed stays as it was, in the state and the view.
    let design = history.view().agreed[0].functions.iter().find(|f| f.function.as_str() == "design").cloned();
    assert_eq!(
        design.map(|f| (f.state, f.sign_offs.iter().map(|s| s.signer.to_string()).collect::<Vec<_>>())),
        Some((FunctionState::Approved, vec![DES.to_owned()]))
    );
}

#[test]
fn an_override_shows_what_it_accepted_over_with_the_rejections_that_counted() {
    let history = proposed()
        .given(ENG, approve(dec(1), "engineering"))
        .given(BIZ, reject(dec(1), "business", "too costly"))
        .given(DRIVER, accept_overriding(dec(1), "deadline"));
    let agreed = &history.view().agreed[0];
    assert!(agreed.overridden);
    assert_eq!(
        states(&agreed.functions),
        vec![
            ("business", FunctionState::Rejected, vec![(BIZ, Verdict::Reject, 1)]),
            ("design", FunctionState::Pending, vec![]),
            ("engineering", FunctionState::Approved, vec![(ENG, Verdict::Approve, 1)]),
        ]
    );
}

#[test]
fn a_superseded_decision_leaves_the_agreed_list_and_its_successor_joins_it_once_accepted() {
    let history = accepted()
        .given(DRIVER, propose_superseding(dec(2), dec(1)))
        .given(ENG, approve(dec(2), "engineering"))
        .given(DES, approve(dec(2), "design"))
        .given(BIZ, approve(dec(2), "business"));
    assert_eq!(history.view().agreed.iter().map(|a| a.decision_id).collect::<Vec<_>>(), vec![dec(1)]);
    let history = history.given(DRIVER, accept(dec(2)));
    assert_eq!(history.decision(dec(1)).status, crate::domain::state::DecisionStatus::Superseded);
    assert_eq!(history.view().agreed.iter().map(|a| a.decision_id).collect::<Vec<_>>(), vec![dec(2)]);
}

#[test]
fn the_view_lists_the_most_recent_agreed_decisions_and_counts_them_all() {
    let mut history = team();
    let total = bounds::ITEMS as u128 + 5;
    for n in 1..=total {
        history.run(DRIVER, propose(dec(n)));
        for (who, function) in [(ENG, "engineering"), (DES, "design"), (BIZ, "business")] {
            history.run(who, approve(dec(n), function));
        }
        history.run(DRIVER, accept(dec(n)));
    }
    let view = history.view();
    assert_eq!(view.counts.agreed as u128, total);
    assert_eq!(view.agreed.len(), bounds::ITEMS);
    assert_eq!(view.agreed.first().map(|a| a.decision_id), Some(dec(total - bounds::ITEMS as u128 + 1)));
    assert_eq!(view.agreed.last().map(|a| a.decision_id), Some(dec(total)));
}
