//! The alignment projection: function states, decision alignment, initiative status,
//! score, outstanding items, stale sign-offs, evidence, overrides and the inbox.

use super::*;
use crate::domain::alignment::{
    DecisionAlignment, FunctionState, FunctionStatus, InitiativeStatus, evaluate_decision, evaluate_function,
};

/// The state of `function` on decision `id`.
fn state_of(history: &History, id: DecisionId, function: &str) -> FunctionState {
    evaluate_function(history.state(), history.decision(id), &func(function)).state
}

fn alignment_of(history: &History, id: DecisionId) -> DecisionAlignment {
    evaluate_decision(history.state(), history.decision(id)).alignment
}

/// (state of engineering, design, business) on decision `id`.
fn states(history: &History, id: DecisionId) -> [FunctionState; 3] {
    ["engineering", "design", "business"].map(|f| state_of(history, id, f))
}

fn function_states(view: &AlignmentView) -> Vec<(String, FunctionState)> {
    view.functions.iter().map(|FunctionStatus { function, state }| (function.to_string(), *state)).collect()
}

use FunctionState::{Approved, Blocked, NotApplicable, Pending, Rejected};

// --- Per function -------------------------------------------------------------------

#[test]
fn a_fresh_proposal_is_pending_for_every_function() {
    let history = proposed();
    assert_eq!(states(&history, dec(1)), [Pending, Pending, Pending]);
    assert_eq!(alignment_of(&history, dec(1)), DecisionAlignment::Pending);
}

#[test]
fn an_approval_makes_its_function_approved() {
    let history = proposed().given(ENG, approve(dec(1), "engineering"));
    assert_eq!(states(&history, dec(1)), [Approved, Pending, Pending]);
    let eval = evaluate_function(history.state(), history.decision(dec(1)), &func("engineering"));
    assert!(eval.reason.contains("approved by erin@example.com at revision 1"), "{}", eval.reason);
    assert!(eval.can_sign.is_empty());
}

#[test]
fn a_rejection_makes_its_function_rejected_and_the_decision_blocked() {
    let history = proposed().given(BIZ, reject(dec(1), "business", "too costly"));
    assert_eq!(states(&history, dec(1)), [Pending, Pending, Rejected]);
    assert_eq!(alignment_of(&history, dec(1)), DecisionAlignment::Blocked);
    let eval = evaluate_function(history.state(), history.decision(dec(1)), &func("business"));
    assert!(eval.reason.contains("rejected by bianca@example.com: too costly"), "{}", eval.reason);
    assert_eq!(eval.can_sign, vec![who(BIZ)]);
}

#[test]
fn an_open_objection_makes_its_function_blocked_and_the_decision_blocked() {
    let history = aligned().given(CONTRIB, objection(fb(1), Some(dec(1)), "engineering"));
    assert_eq!(states(&history, dec(1)), [Blocked, Approved, Approved]);
    assert_eq!(alignment_of(&history, dec(1)), DecisionAlignment::Blocked);
    let eval = evaluate_function(history.state(), history.decision(dec(1)), &func("engineering"));
    assert_eq!(eval.can_sign, vec![who(CONTRIB)]);
    assert!(eval.reason.contains("objection by carl@example.com"), "{}", eval.reason);
}

#[test]
fn a_concern_question_or_comment_does_not_block() {
    let mut history = aligned();
    for (n, kind) in [FeedbackKind::Concern, FeedbackKind::Question, FeedbackKind::Comment].into_iter().enumerate() {
        history.run(CONTRIB, feedback(fb(n as u128), Some(dec(1)), "engineering", kind, FeedbackSource::Customer));
    }
    assert_eq!(states(&history, dec(1)), [Approved, Approved, Approved]);
    assert_eq!(alignment_of(&history, dec(1)), DecisionAlignment::Aligned);
    let view = history.view();
    assert_eq!(view.status, InitiativeStatus::Aligned);
    assert_eq!(view.open_concerns.iter().map(|f| f.id).collect::<Vec<_>>(), vec![fb(0)]);
}

#[test]
fn a_resolved_objection_stops_blocking_and_a_reopened_one_blocks_again() {
    let history =
        aligned().given(CONTRIB, objection(fb(1), Some(dec(1)), "engineering")).given(CONTRIB, resolve(fb(1)));
    assert_eq!(alignment_of(&history, dec(1)), DecisionAlignment::Aligned);
    assert!(history.view().open_objections.is_empty());
    let history = history.given(DRIVER, reopen(fb(1)));
    assert_eq!(alignment_of(&history, dec(1)), DecisionAlignment::Blocked);
    assert_eq!(history.view().open_objections.len(), 1);
}

#[test]
fn a_rejection_outranks_an_objection_from_the_same_function() {
    let history =
        proposed().given(BIZ, objection(fb(1), Some(dec(1)), "business")).given(BIZ, reject(dec(1), "business", "no"));
    assert_eq!(state_of(&history, dec(1), "business"), Rejected);
}

#[test]
fn an_objection_from_a_function_the_decision_does_not_need_still_blocks_it() {
    let history = team()
        .given(DRIVER, assign(STRANGER, "legal", Role::Contributor))
        .given(DRIVER, propose(dec(1)))
        .given(ENG, approve(dec(1), "engineering"))
        .given(DES, approve(dec(1), "design"))
        .given(BIZ, approve(dec(1), "business"))
        .given(STRANGER, objection(fb(1), Some(dec(1)), "legal"));
    assert_eq!(states(&history, dec(1)), [Approved, Approved, Approved]);
    assert_eq!(alignment_of(&history, dec(1)), DecisionAlignment::Blocked);
    let view = history.view();
    assert_eq!(view.status, InitiativeStatus::Blocked);
    let item =
        view.outstanding.iter().find(|o| o.function == func("legal")).expect("the legal objection is outstanding");
    assert_eq!((item.decision_id, item.state, &item.can_sign), (Some(dec(1)), Blocked, &vec![who(STRANGER)]));
}

// --- Revisions and stale approvals --------------------------------------------------

#[test]
fn approvals_go_stale_after_a_material_revision_and_show_in_stale_sign_offs() {
    let history = aligned().given(DRIVER, revise(dec(1), RevisionKind::Material, "Adyen"));
    assert_eq!(states(&history, dec(1)), [Pending, Pending, Pending]);
    let view = history.view();
    let stale: Vec<_> = view
        .stale_sign_offs
        .iter()
        .map(|s| {
            (s.decision_id, s.function.to_string(), s.signer.to_string(), s.signed_revision, s.stale_since_revision)
        })
        .collect();
    assert_eq!(
        stale,
        vec![
            (dec(1), "engineering".to_owned(), ENG.to_owned(), 1, 2),
            (dec(1), "design".to_owned(), DES.to_owned(), 1, 2),
            (dec(1), "business".to_owned(), BIZ.to_owned(), 1, 2),
        ]
    );
    let eval = evaluate_function(history.state(), history.decision(dec(1)), &func("design"));
    assert!(
        eval.reason.contains("approval by desmond@example.com of revision 1 went stale at revision 2"),
        "{}",
        eval.reason
    );
    assert_eq!(eval.can_sign, vec![who(DES)]);
}

#[test]
fn approving_the_new_revision_clears_the_stale_sign_off() {
    let history = aligned()
        .given(DRIVER, revise(dec(1), RevisionKind::Material, "Adyen"))
        .given(ENG, approve(dec(1), "engineering"));
    assert_eq!(states(&history, dec(1)), [Approved, Pending, Pending]);
    let stale: Vec<_> = history.view().stale_sign_offs.iter().map(|s| s.signer.to_string()).collect();
    assert_eq!(stale, vec![DES.to_owned(), BIZ.to_owned()]);
}

#[test]
fn approvals_carry_forward_across_editorial_revisions() {
    let history = aligned()
        .given(DRIVER, revise(dec(1), RevisionKind::Editorial, "Stripe."))
        .given(DRIVER, revise(dec(1), RevisionKind::Editorial, "Stripe!"));
    assert_eq!(states(&history, dec(1)), [Approved, Approved, Approved]);
    assert_eq!(alignment_of(&history, dec(1)), DecisionAlignment::Aligned);
    assert!(history.view().stale_sign_offs.is_empty());
}

#[test]
fn an_approval_of_an_editorial_revision_after_a_material_one_counts() {
    let history = proposed()
        .given(DRIVER, revise(dec(1), RevisionKind::Material, "Adyen"))
        .given(DRIVER, revise(dec(1), RevisionKind::Editorial, "Adyen."))
        .given(ENG, approve(dec(1), "engineering"))
        .given(DRIVER, revise(dec(1), RevisionKind::Editorial, "Adyen!"));
    assert_eq!(state_of(&history, dec(1), "engineering"), Approved);
}

#[test]
fn rejections_are_sticky_across_material_and_editorial_revisions() {
    let history = proposed()
        .given(BIZ, reject(dec(1), "business", "too costly"))
        .given(DRIVER, revise(dec(1), RevisionKind::Material, "Adyen"))
        .given(DRIVER, revise(dec(1), RevisionKind::Editorial, "Adyen."));
    assert_eq!(state_of(&history, dec(1), "business"), Rejected);
    assert_eq!(alignment_of(&history, dec(1)), DecisionAlignment::Blocked);
    assert!(history.view().stale_sign_offs.is_empty(), "a rejection is never stale");
}

#[test]
fn a_rejection_is_cleared_only_by_its_author_changing_it() {
    let history =
        proposed().given(BIZ, reject(dec(1), "business", "too costly")).given(BIZ, approve(dec(1), "business"));
    assert_eq!(state_of(&history, dec(1), "business"), Approved);
    let history =
        proposed().given(BIZ, reject(dec(1), "business", "too costly")).given(BIZ, revoke(dec(1), "business"));
    assert_eq!(state_of(&history, dec(1), "business"), Pending);
}

#[test]
fn objections_are_sticky_across_revisions_until_resolved() {
    let history = aligned()
        .given(BIZ, objection(fb(1), Some(dec(1)), "business"))
        .given(DRIVER, revise(dec(1), RevisionKind::Material, "Adyen"))
        .given(DRIVER, revise(dec(1), RevisionKind::Editorial, "Adyen."))
        .given(BIZ, approve(dec(1), "business"));
    assert_eq!(state_of(&history, dec(1), "business"), Blocked);
    assert_eq!(alignment_of(&history, dec(1)), DecisionAlignment::Blocked);
    let history = history.given(BIZ, resolve(fb(1)));
    assert_eq!(state_of(&history, dec(1), "business"), Approved);
}

// --- Several approvers --------------------------------------------------------------

/// `proposed()` with a second business approver.
fn two_business_approvers() -> History {
    proposed().given(DRIVER, assign(STRANGER, "business", Role::Approver))
}

#[test]
fn one_approval_is_enough_when_a_function_has_several_approvers() {
    let history = two_business_approvers().given(STRANGER, approve(dec(1), "business"));
    assert_eq!(state_of(&history, dec(1), "business"), Approved);
}

#[test]
fn with_several_approvers_a_rejection_wins_over_an_approval() {
    for (first, second) in [(BIZ, STRANGER), (STRANGER, BIZ)] {
        let history = two_business_approvers()
            .given(first, approve(dec(1), "business"))
            .given(second, reject(dec(1), "business", "no budget"));
        assert_eq!(state_of(&history, dec(1), "business"), Rejected);
        let history = two_business_approvers()
            .given(second, reject(dec(1), "business", "no budget"))
            .given(first, approve(dec(1), "business"));
        assert_eq!(state_of(&history, dec(1), "business"), Rejected);
    }
}

#[test]
fn with_several_approvers_an_objection_wins_over_an_approval() {
    let history = two_business_approvers()
        .given(BIZ, approve(dec(1), "business"))
        .given(STRANGER, objection(fb(1), Some(dec(1)), "business"));
    assert_eq!(state_of(&history, dec(1), "business"), Blocked);
}

#[test]
fn with_several_approvers_pending_lists_all_of_them_as_able_to_sign() {
    let history = two_business_approvers();
    let eval = evaluate_function(history.state(), history.decision(dec(1)), &func("business"));
    assert_eq!(eval.can_sign, vec![who(BIZ), who(STRANGER)]);
}

#[test]
fn a_removed_approvers_approval_stops_counting() {
    let history = aligned().given(DRIVER, remove(DES, "design", Role::Approver));
    assert_eq!(state_of(&history, dec(1), "design"), Pending);
    assert_eq!(alignment_of(&history, dec(1)), DecisionAlignment::Pending);
    let eval = evaluate_function(history.state(), history.decision(dec(1)), &func("design"));
    assert!(eval.reason.contains("no approver assigned for design"), "{}", eval.reason);
    assert!(eval.can_sign.is_empty());
}

#[test]
fn a_removed_approvers_rejection_stops_counting() {
    let history = two_business_approvers()
        .given(STRANGER, reject(dec(1), "business", "no budget"))
        .given(BIZ, approve(dec(1), "business"))
        .given(DRIVER, remove(STRANGER, "business", Role::Approver));
    assert_eq!(state_of(&history, dec(1), "business"), Approved);
}

#[test]
fn a_removed_approvers_stale_approval_is_not_listed_as_stale() {
    let history = aligned()
        .given(DRIVER, revise(dec(1), RevisionKind::Material, "Adyen"))
        .given(DRIVER, remove(DES, "design", Role::Approver));
    let stale: Vec<_> = history.view().stale_sign_offs.iter().map(|s| s.signer.to_string()).collect();
    assert_eq!(stale, vec![ENG.to_owned(), BIZ.to_owned()]);
}

// --- Decision and initiative status -------------------------------------------------

#[test]
fn a_decision_is_aligned_when_every_function_it_needs_approved() {
    let history = aligned();
    assert_eq!(alignment_of(&history, dec(1)), DecisionAlignment::Aligned);
    let summary = &history.view().decisions[0];
    assert_eq!((summary.alignment, summary.approved, summary.required), (DecisionAlignment::Aligned, 3, 3));
}

#[test]
fn a_closed_decision_is_closed_not_aligned() {
    let history = accepted();
    assert_eq!(alignment_of(&history, dec(1)), DecisionAlignment::Closed);
}

#[test]
fn an_initiative_without_decisions_has_status_no_decisions_and_score_zero() {
    let view = team().view();
    assert_eq!(view.status, InitiativeStatus::NoDecisions);
    assert_eq!((view.score, view.approved_pairs, view.total_pairs), (0.0, 0, 0));
    assert!(function_states(&view).iter().all(|(_, state)| *state == NotApplicable));
}

#[test]
fn an_initiative_whose_decisions_were_all_withdrawn_or_rejected_has_status_no_decisions() {
    let history = proposed()
        .given(DRIVER, withdraw(dec(1)))
        .given(DRIVER, propose(dec(2)))
        .given(DRIVER, reject_decision(dec(2)));
    assert_eq!(history.view().status, InitiativeStatus::NoDecisions);
}

#[test]
fn an_initiative_with_one_pending_decision_is_pending() {
    let view = proposed().given(ENG, approve(dec(1), "engineering")).view();
    assert_eq!(view.status, InitiativeStatus::Pending);
    assert_eq!((view.approved_pairs, view.total_pairs), (1, 3));
    assert!((view.score - 1.0 / 3.0).abs() < 1e-12);
}

#[test]
fn an_initiative_whose_open_decisions_are_all_aligned_is_aligned_with_score_one() {
    let view = aligned().view();
    assert_eq!(view.status, InitiativeStatus::Aligned);
    assert_eq!((view.score, view.approved_pairs, view.total_pairs), (1.0, 3, 3));
    assert!(view.outstanding.is_empty());
}

#[test]
fn an_initiative_with_no_open_but_an_accepted_decision_is_aligned_with_score_one() {
    let view = accepted().view();
    assert_eq!(view.status, InitiativeStatus::Aligned);
    assert_eq!((view.score, view.approved_pairs, view.total_pairs), (1.0, 0, 0));
}

#[test]
fn an_initiative_with_an_accepted_decision_and_a_pending_one_is_pending() {
    let history = accepted().given(DRIVER, propose(dec(2)));
    assert_eq!(history.view().status, InitiativeStatus::Pending);
}

#[test]
fn a_blocked_decision_makes_the_initiative_blocked_even_beside_an_aligned_one() {
    let history = aligned().given(DRIVER, propose(dec(2))).given(BIZ, reject(dec(2), "business", "no"));
    let view = history.view();
    assert_eq!(view.status, InitiativeStatus::Blocked);
    assert_eq!((view.approved_pairs, view.total_pairs), (3, 6));
}

#[test]
fn an_initiative_level_objection_blocks_the_initiative_even_with_all_decisions_aligned() {
    let history = aligned().given(BIZ, objection(fb(1), None, "business"));
    assert_eq!(alignment_of(&history, dec(1)), DecisionAlignment::Aligned, "the objection is not against the decision");
    let view = history.view();
    assert_eq!(view.status, InitiativeStatus::Blocked);
    assert_eq!(
        function_states(&view),
        vec![("business".to_owned(), Blocked), ("design".to_owned(), Approved), ("engineering".to_owned(), Approved)]
    );
    let item = view.outstanding.iter().find(|o| o.decision_id.is_none()).expect("an initiative-level item");
    assert_eq!((&item.function, item.state, &item.can_sign), (&func("business"), Blocked, &vec![who(BIZ)]));
    assert_eq!(view.open_objections.iter().map(|f| f.id).collect::<Vec<_>>(), vec![fb(1)]);
}

#[test]
fn an_initiative_level_objection_blocks_an_initiative_without_decisions() {
    let history = team().given(BIZ, objection(fb(1), None, "business"));
    assert_eq!(history.view().status, InitiativeStatus::Blocked);
    let history = history.given(BIZ, resolve(fb(1)));
    assert_eq!(history.view().status, InitiativeStatus::NoDecisions);
}

#[test]
fn the_score_counts_approved_function_decision_pairs_over_open_decisions_only() {
    let history = accepted() // closed: not counted
        .given(DRIVER, propose(dec(2)))
        .given(DRIVER, propose_for(dec(3), &["engineering"]))
        .given(ENG, approve(dec(2), "engineering"))
        .given(DES, approve(dec(2), "design"))
        .given(ENG, approve(dec(3), "engineering"))
        .given(DRIVER, propose(dec(4)))
        .given(DRIVER, withdraw(dec(4))); // closed: not counted
    let view = history.view();
    assert_eq!((view.approved_pairs, view.total_pairs), (3, 4));
    assert!((view.score - 0.75).abs() < 1e-12);
}

#[test]
fn each_function_shows_its_worst_state_across_open_decisions() {
    let history = proposed()
        .given(DRIVER, propose(dec(2)))
        .given(ENG, approve(dec(1), "engineering"))
        .given(ENG, approve(dec(2), "engineering"))
        .given(DES, approve(dec(1), "design"))
        .given(BIZ, approve(dec(1), "business"))
        .given(BIZ, reject(dec(2), "business", "no"));
    assert_eq!(
        function_states(&history.view()),
        vec![("business".to_owned(), Rejected), ("design".to_owned(), Pending), ("engineering".to_owned(), Approved)]
    );
}

#[test]
fn functions_needed_only_by_a_decision_also_show_in_the_function_list() {
    let history = team().given(DRIVER, propose_for(dec(1), &["engineering", "legal"]));
    let states = function_states(&history.view());
    assert!(states.contains(&("legal".to_owned(), Pending)), "{states:?}");
    assert!(states.contains(&("business".to_owned(), NotApplicable)), "{states:?}");
}

// --- Outstanding items, evidence, overrides -----------------------------------------

#[test]
fn outstanding_items_name_the_decision_function_and_who_can_sign() {
    let history = proposed()
        .given(DRIVER, assign(STRANGER, "design", Role::Approver))
        .given(ENG, approve(dec(1), "engineering"))
        .given(BIZ, reject(dec(1), "business", "too costly"));
    let view = history.view();
    let items: Vec<_> = view
        .outstanding
        .iter()
        .map(|o| {
            (
                o.decision_id,
                o.function.to_string(),
                o.state,
                o.can_sign.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            )
        })
        .collect();
    assert_eq!(
        items,
        vec![
            (Some(dec(1)), "business".to_owned(), Rejected, vec![BIZ.to_owned()]),
            (Some(dec(1)), "design".to_owned(), Pending, vec![DES.to_owned(), STRANGER.to_owned()]),
        ]
    );
    assert!(view.outstanding.iter().all(|o| o.decision_title == "Use Stripe for payments" && o.revision == 1));
    assert_eq!(view.outstanding_functions(), vec!["business".to_owned(), "design".to_owned()]);
    assert_eq!(history.awaiting(), vec![DES.to_owned(), STRANGER.to_owned()]);
}

#[test]
fn outstanding_items_of_a_function_without_approvers_say_so() {
    let history = team().given(DRIVER, propose_for(dec(1), &["legal"]));
    let view = history.view();
    assert_eq!(view.outstanding.len(), 1);
    assert!(view.outstanding[0].can_sign.is_empty());
    assert!(view.outstanding[0].reason.contains("no approver assigned for legal"), "{}", view.outstanding[0].reason);
}

#[test]
fn evidence_is_counted_by_source_for_the_initiative_and_each_decision() {
    let history = proposed()
        .given(DES, feedback(fb(1), Some(dec(1)), "design", FeedbackKind::Concern, FeedbackSource::UserResearch))
        .given(DES, feedback(fb(2), Some(dec(1)), "design", FeedbackKind::Comment, FeedbackSource::UserResearch))
        .given(BIZ, feedback(fb(3), Some(dec(1)), "business", FeedbackKind::Question, FeedbackSource::Customer))
        .given(CONTRIB, feedback(fb(4), None, "engineering", FeedbackKind::Comment, FeedbackSource::Internal))
        .given(DES, resolve(fb(2))); // resolved evidence still counts
    let view = history.view();
    assert_eq!((view.evidence.internal, view.evidence.user_research, view.evidence.customer), (1, 2, 1));
    let of_decision = &view.decisions[0].evidence;
    assert_eq!((of_decision.internal, of_decision.user_research, of_decision.customer), (0, 2, 1));
    assert_eq!(view.open_concerns.iter().map(|f| f.id).collect::<Vec<_>>(), vec![fb(1)]);
}

#[test]
fn overrides_stay_listed_after_the_decision_is_superseded() {
    let history = proposed()
        .given(DRIVER, accept_overriding(dec(1), "deadline"))
        .given(DRIVER, propose_superseding(dec(2), dec(1)))
        .given(DRIVER, accept_overriding(dec(2), "deadline again"));
    let view = history.view();
    let listed: Vec<_> = view.overrides.iter().map(|o| (o.decision_id, o.record.reason.as_str())).collect();
    assert_eq!(listed, vec![(dec(1), "deadline"), (dec(2), "deadline again")]);
    let record = &view.overrides[0].record;
    assert_eq!(record.unaligned.len(), 3);
    assert!(record.unaligned.iter().all(|(_, state)| *state == Pending));
}

#[test]
fn the_view_reflects_the_stream_version_last_activity_and_initiative_fields() {
    let history = proposed().given(OWNER, Command::ChangeStage { stage: Stage::Delivery });
    let view = history.view();
    assert_eq!(view.version, history.version());
    assert_eq!(view.last_activity, at(history.version()));
    assert_eq!((view.key.as_str(), view.stage, view.owner.as_str()), ("CHECKOUT-42", Stage::Delivery, OWNER));
    assert_eq!(view.stakeholders.len(), 6);
    assert_eq!(view.decisions.len(), 1);
    assert!(!view.archived);
}

// --- Inbox --------------------------------------------------------------------------

#[test]
fn the_inbox_shows_the_pending_functions_the_principal_approves_for() {
    let history = proposed().given(DRIVER, propose(dec(2)));
    let items: Vec<_> = history.inbox(ENG).iter().map(|i| (i.decision_id, i.function.to_string(), i.state)).collect();
    assert_eq!(items, vec![(dec(1), "engineering".to_owned(), Pending), (dec(2), "engineering".to_owned(), Pending)]);
}

#[test]
fn the_inbox_of_someone_who_approves_nothing_is_empty() {
    let history = proposed();
    for principal in [DRIVER, CONTRIB, INFORMED, STRANGER, OWNER] {
        assert!(history.inbox(principal).is_empty(), "{principal}");
    }
}

#[test]
fn the_inbox_drops_functions_that_are_approved_rejected_or_blocked() {
    let history = proposed()
        .given(DRIVER, assign(ENG, "design", Role::Approver))
        .given(DRIVER, assign(ENG, "business", Role::Approver))
        .given(ENG, approve(dec(1), "engineering"))
        .given(BIZ, reject(dec(1), "business", "no"))
        .given(DES, objection(fb(1), Some(dec(1)), "design"));
    assert!(history.inbox(ENG).is_empty(), "{:?}", history.inbox(ENG));
    let history = history.given(DES, resolve(fb(1)));
    let functions: Vec<_> = history.inbox(ENG).iter().map(|i| i.function.to_string()).collect();
    assert_eq!(functions, vec!["design".to_owned()]);
}

#[test]
fn the_inbox_drops_a_function_another_approver_already_approved() {
    let history =
        proposed().given(DRIVER, assign(STRANGER, "business", Role::Approver)).given(BIZ, approve(dec(1), "business"));
    assert!(history.inbox(STRANGER).is_empty());
}

#[test]
fn the_inbox_shows_again_a_function_whose_approval_went_stale() {
    let history = aligned().given(DRIVER, revise(dec(1), RevisionKind::Material, "Adyen"));
    let items = history.inbox(ENG);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].revision, 2);
    assert!(items[0].reason.contains("went stale"), "{}", items[0].reason);
}

#[test]
fn the_inbox_ignores_closed_decisions_and_archived_initiatives() {
    assert!(accepted().inbox(ENG).is_empty());
    let history = proposed().given(OWNER, Command::ArchiveInitiative { reason: "stop".into() });
    assert!(history.inbox(ENG).is_empty());
    assert!(history.awaiting().is_empty());
}
