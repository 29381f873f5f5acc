//! Decisions: propose, revise (material / editorial), accept (with or without
//! override), reject, withdraw and supersede.

use super::*;
use crate::domain::alignment::FunctionState;
use crate::domain::event::{OverrideRecord, StaleApproval};
use crate::domain::state::DecisionStatus;

// --- Propose ------------------------------------------------------------------------

#[test]
fn propose_records_the_content_and_defaults_required_functions_to_the_initiatives() {
    let mut history = team();
    let events = history.run(DRIVER, propose(dec(1)));
    assert_eq!(
        events,
        vec![Event::DecisionProposed {
            decision_id: dec(1),
            content: content("Use Stripe for payments", "Stripe"),
            required_functions: funcs(&["engineering", "design", "business"]),
            supersedes: None,
        }]
    );
}

#[test]
fn propose_defaults_to_the_initiatives_current_required_functions_after_an_update() {
    let mut history = team().given(
        OWNER,
        Command::UpdateInitiative {
            title: None,
            summary: None,
            owner: None,
            required_functions: Some(funcs(&["legal", "design"])),
        },
    );
    history.run(DRIVER, propose(dec(1)));
    assert_eq!(history.decision(dec(1)).required_functions(), &funcs(&["design", "legal"]));
}

#[test]
fn propose_with_explicit_required_functions_uses_them() {
    let history = team().given(DRIVER, propose_for(dec(1), &["engineering", "security"]));
    assert_eq!(history.decision(dec(1)).required_functions(), &funcs(&["engineering", "security"]));
}

#[test]
fn proposed_decision_starts_at_revision_one_proposed_by_the_actor() {
    let history = team().given(CONTRIB, propose(dec(1)));
    let decision = history.decision(dec(1));
    assert_eq!(decision.revision(), 1);
    assert_eq!(decision.material_base, 1);
    assert_eq!(decision.status, DecisionStatus::Proposed);
    assert_eq!(decision.proposed_by, who(CONTRIB));
    assert_eq!(decision.proposed_at, at(history.version()));
    assert_eq!(decision.current().kind, RevisionKind::Material);
    assert!(decision.sign_offs.is_empty() && decision.closure.is_none());
}

#[test]
fn propose_is_allowed_to_the_owner_driver_approvers_and_contributors() {
    let history = team();
    for actor in [OWNER, DRIVER, ENG, DES, BIZ, CONTRIB] {
        assert!(history.try_run(actor, propose(dec(1))).is_ok(), "{actor} may propose");
    }
}

#[test]
fn propose_by_an_informed_stakeholder_or_a_stranger_is_permission_denied() {
    let history = team();
    for actor in [INFORMED, STRANGER] {
        assert_denied(history.refuse(actor, propose(dec(1))), &[actor, "may not propose decisions"]);
    }
}

#[test]
fn propose_with_an_id_already_used_is_already_exists() {
    let history = proposed();
    assert_already_exists(history.refuse(DRIVER, propose(dec(1))), &[&dec(1).to_string()]);
}

#[test]
fn propose_superseding_a_decision_that_is_not_accepted_is_failed_precondition() {
    let history = proposed();
    assert_precondition(
        history.refuse(DRIVER, propose_superseding(dec(2), dec(1))),
        &[&dec(1).to_string(), "is proposed", "only an accepted decision"],
    );
}

#[test]
fn propose_superseding_an_unknown_decision_is_not_found_naming_the_field() {
    let history = team();
    assert_not_found(history.refuse(DRIVER, propose_superseding(dec(2), dec(9))), &["supersedes", &dec(9).to_string()]);
}

// --- Revise -------------------------------------------------------------------------

#[test]
fn material_revision_makes_approvals_stale_and_lists_them_in_the_event() {
    let mut history = proposed().given(ENG, approve(dec(1), "engineering")).given(DES, approve(dec(1), "design"));
    let events = history.run(DRIVER, revise(dec(1), RevisionKind::Material, "Adyen"));
    assert_eq!(
        events,
        vec![Event::DecisionRevised {
            decision_id: dec(1),
            revision: 2,
            kind: RevisionKind::Material,
            content: content("Use Stripe for payments", "Adyen"),
            required_functions: funcs(&["engineering", "design", "business"]),
            note: "material change".into(),
            stale: vec![
                StaleApproval { signer: who(ENG), function: func("engineering"), revision: 1 },
                StaleApproval { signer: who(DES), function: func("design"), revision: 1 },
            ],
        }]
    );
    let decision = history.decision(dec(1));
    assert_eq!((decision.revision(), decision.material_base), (2, 2));
    assert_eq!(decision.current().by, who(DRIVER));
    assert_eq!(history.view().approved_pairs, 0);
}

#[test]
fn material_revision_does_not_list_rejections_as_stale() {
    let mut history =
        proposed().given(ENG, approve(dec(1), "engineering")).given(BIZ, reject(dec(1), "business", "too costly"));
    let events = history.run(DRIVER, revise(dec(1), RevisionKind::Material, "Adyen"));
    let Event::DecisionRevised { stale, .. } = &events[0] else { panic!("expected DecisionRevised, got {events:?}") };
    assert_eq!(stale, &vec![StaleApproval { signer: who(ENG), function: func("engineering"), revision: 1 }]);
}

#[test]
fn a_second_material_revision_does_not_list_approvals_that_were_already_stale() {
    let mut history = proposed()
        .given(ENG, approve(dec(1), "engineering"))
        .given(DRIVER, revise(dec(1), RevisionKind::Material, "Adyen"))
        .given(DES, approve(dec(1), "design"));
    let events = history.run(DRIVER, revise(dec(1), RevisionKind::Material, "Braintree"));
    let Event::DecisionRevised { revision, stale, .. } = &events[0] else { panic!("expected DecisionRevised") };
    assert_eq!(*revision, 3);
    assert_eq!(stale, &vec![StaleApproval { signer: who(DES), function: func("design"), revision: 2 }]);
}

#[test]
fn material_revision_after_an_editorial_one_makes_approvals_of_both_revisions_stale() {
    let mut history = proposed()
        .given(ENG, approve(dec(1), "engineering"))
        .given(DRIVER, revise(dec(1), RevisionKind::Editorial, "Stripe."))
        .given(DES, approve(dec(1), "design"));
    let events = history.run(DRIVER, revise(dec(1), RevisionKind::Material, "Adyen"));
    let Event::DecisionRevised { stale, .. } = &events[0] else { panic!("expected DecisionRevised") };
    assert_eq!(
        stale,
        &vec![
            StaleApproval { signer: who(ENG), function: func("engineering"), revision: 1 },
            StaleApproval { signer: who(DES), function: func("design"), revision: 2 },
        ]
    );
}

#[test]
fn editorial_revision_carries_approvals_forward_and_lists_nothing_stale() {
    let mut history = proposed().given(ENG, approve(dec(1), "engineering"));
    let events = history.run(DRIVER, revise(dec(1), RevisionKind::Editorial, "Stripe (typo fixed)"));
    let Event::DecisionRevised { revision, kind, stale, .. } = &events[0] else { panic!("expected DecisionRevised") };
    assert_eq!((*revision, *kind), (2, RevisionKind::Editorial));
    assert!(stale.is_empty());
    let decision = history.decision(dec(1));
    assert_eq!((decision.revision(), decision.material_base), (2, 1));
    assert_eq!(history.view().approved_pairs, 1);
    assert!(history.view().stale_sign_offs.is_empty());
}

#[test]
fn revision_with_identical_content_and_functions_is_invalid_argument() {
    let history = proposed();
    for kind in [RevisionKind::Material, RevisionKind::Editorial] {
        assert_invalid(history.refuse(DRIVER, revise(dec(1), kind, "Stripe")), "content", &["identical to revision 1"]);
    }
}

#[test]
fn revision_changing_only_the_required_functions_is_allowed() {
    let mut history = proposed();
    history.run(
        DRIVER,
        Command::ReviseDecision {
            decision_id: dec(1),
            kind: RevisionKind::Material,
            content: content("Use Stripe for payments", "Stripe"),
            required_functions: Some(funcs(&["engineering", "legal"])),
            note: "legal must sign".into(),
        },
    );
    assert_eq!(history.decision(dec(1)).required_functions(), &funcs(&["engineering", "legal"]));
    assert_eq!(history.decision(dec(1)).revision(), 2);
}

#[test]
fn revision_without_functions_keeps_the_current_required_functions() {
    let history = team()
        .given(DRIVER, propose_for(dec(1), &["legal"]))
        .given(DRIVER, revise(dec(1), RevisionKind::Material, "Adyen"));
    assert_eq!(history.decision(dec(1)).required_functions(), &funcs(&["legal"]));
}

#[test]
fn revision_by_the_proposer_who_is_not_a_driver_is_allowed() {
    let history = team().given(CONTRIB, propose(dec(1)));
    assert!(history.try_run(CONTRIB, revise(dec(1), RevisionKind::Editorial, "Stripe!")).is_ok());
}

#[test]
fn revision_by_anyone_but_a_driver_or_the_proposer_is_permission_denied() {
    let history = team().given(CONTRIB, propose(dec(1)));
    for actor in [OWNER, ENG, INFORMED, STRANGER] {
        assert_denied(
            history.refuse(actor, revise(dec(1), RevisionKind::Material, "Adyen")),
            &[actor, "may revise it"],
        );
    }
    assert!(history.try_run(DRIVER, revise(dec(1), RevisionKind::Material, "Adyen")).is_ok());
}

#[test]
fn revision_of_a_closed_decision_is_failed_precondition() {
    for (history, status) in [(accepted(), "accepted"), (proposed().given(DRIVER, withdraw(dec(1))), "withdrawn")] {
        assert_precondition(
            history.refuse(DRIVER, revise(dec(1), RevisionKind::Editorial, "Stripe.")),
            &[&format!("is {status}"), "only proposed decisions can be revised"],
        );
    }
}

#[test]
fn revision_of_an_unknown_decision_is_not_found() {
    assert_not_found(
        team().refuse(DRIVER, revise(dec(7), RevisionKind::Material, "x")),
        &["decision_id", &dec(7).to_string()],
    );
}

#[test]
fn revisions_are_kept_in_order_with_their_kind_author_and_note() {
    let history = team()
        .given(CONTRIB, propose(dec(1)))
        .given(CONTRIB, revise(dec(1), RevisionKind::Editorial, "Stripe."))
        .given(DRIVER, revise(dec(1), RevisionKind::Material, "Adyen"));
    let revisions: Vec<_> = history
        .decision(dec(1))
        .revisions
        .iter()
        .map(|r| (r.number, r.kind, r.by.as_str().to_owned(), r.content.proposal.clone(), r.note.clone()))
        .collect();
    assert_eq!(
        revisions,
        vec![
            (1, RevisionKind::Material, CONTRIB.to_owned(), "Stripe".to_owned(), String::new()),
            (2, RevisionKind::Editorial, CONTRIB.to_owned(), "Stripe.".to_owned(), "editorial change".to_owned()),
            (3, RevisionKind::Material, DRIVER.to_owned(), "Adyen".to_owned(), "material change".to_owned()),
        ]
    );
}

// --- Accept -------------------------------------------------------------------------

#[test]
fn accept_of_an_aligned_decision_needs_no_override() {
    let mut history = aligned();
    let events = history.run(DRIVER, accept(dec(1)));
    assert_eq!(events, vec![Event::DecisionAccepted { decision_id: dec(1), revision: 1, r#override: None }]);
    let decision = history.decision(dec(1));
    assert_eq!(decision.status, DecisionStatus::Accepted);
    assert_eq!(decision.closure.as_ref().map(|c| (&c.by, c.at)), Some((&who(DRIVER), at(history.version()))));
    assert!(decision.r#override.is_none());
    assert!(history.view().overrides.is_empty());
}

#[test]
fn accept_of_an_aligned_decision_with_a_reason_records_no_override() {
    let mut history = aligned();
    let events = history.run(DRIVER, accept_overriding(dec(1), "just in case"));
    assert_eq!(events, vec![Event::DecisionAccepted { decision_id: dec(1), revision: 1, r#override: None }]);
}

#[test]
fn accept_records_the_current_revision() {
    let mut history = proposed()
        .given(DRIVER, revise(dec(1), RevisionKind::Material, "Adyen"))
        .given(DRIVER, revise(dec(1), RevisionKind::Editorial, "Adyen."))
        .given(ENG, approve(dec(1), "engineering"))
        .given(DES, approve(dec(1), "design"))
        .given(BIZ, approve(dec(1), "business"));
    let events = history.run(DRIVER, accept(dec(1)));
    assert_eq!(events, vec![Event::DecisionAccepted { decision_id: dec(1), revision: 3, r#override: None }]);
}

#[test]
fn accept_of_an_unaligned_decision_without_a_reason_is_failed_precondition_naming_the_waiting_functions() {
    let history =
        proposed().given(ENG, approve(dec(1), "engineering")).given(BIZ, reject(dec(1), "business", "too costly"));
    let error = history.refuse(DRIVER, accept(dec(1)));
    assert_precondition(error.clone(), &["not aligned", "business rejected", "design pending", "override reason"]);
    assert!(!error.to_string().contains("engineering"), "approved functions are not waiting: {error}");
}

#[test]
fn accept_of_a_decision_blocked_by_an_objection_without_a_reason_names_the_objection() {
    let history = aligned().given(CONTRIB, objection(fb(1), Some(dec(1)), "engineering"));
    assert_precondition(history.refuse(DRIVER, accept(dec(1))), &["engineering blocked", "1 open objection(s)"]);
}

#[test]
fn accept_of_an_unaligned_decision_with_a_blank_reason_is_failed_precondition() {
    let history = proposed();
    for blank in ["", "   "] {
        assert_precondition(
            history.refuse(DRIVER, accept_overriding(dec(1), blank)),
            &["not aligned", "override reason"],
        );
    }
}

#[test]
fn accept_with_a_reason_records_an_override_with_the_unaligned_functions_and_objections() {
    let mut history = proposed()
        .given(ENG, approve(dec(1), "engineering"))
        .given(BIZ, reject(dec(1), "business", "too costly"))
        .given(DES, objection(fb(1), Some(dec(1)), "design"));
    let events = history.run(DRIVER, accept_overriding(dec(1), "deadline; we revisit in Q3"));
    let record = OverrideRecord {
        reason: "deadline; we revisit in Q3".into(),
        unaligned: vec![(func("business"), FunctionState::Rejected), (func("design"), FunctionState::Blocked)],
        objections: vec![fb(1)],
    };
    assert_eq!(
        events,
        vec![Event::DecisionAccepted { decision_id: dec(1), revision: 1, r#override: Some(record.clone()) }]
    );
    let decision = history.decision(dec(1));
    assert_eq!(decision.status, DecisionStatus::Accepted);
    assert_eq!(decision.r#override.as_ref(), Some(&record));
    assert_eq!(decision.closure.as_ref().unwrap().reason, "deadline; we revisit in Q3");
    let view = history.view();
    assert_eq!(view.overrides.len(), 1);
    let shown = &view.overrides[0];
    assert_eq!(
        (shown.decision_id, &shown.accepted_by, shown.accepted_at),
        (dec(1), &who(DRIVER), at(history.version()))
    );
    assert_eq!(shown.record, record);
    assert_eq!(shown.decision_title, "Use Stripe for payments");
}

#[test]
fn accept_by_anyone_but_a_driver_is_permission_denied_even_the_owner_and_proposer() {
    let history = team().given(CONTRIB, propose(dec(1)));
    for actor in [OWNER, CONTRIB, ENG, STRANGER] {
        assert_denied(
            history.refuse(actor, accept_overriding(dec(1), "because")),
            &[actor, "only a driver", "accept decisions"],
        );
    }
}

#[test]
fn accept_of_a_closed_decision_is_failed_precondition() {
    let history = accepted();
    assert_precondition(
        history.refuse(DRIVER, accept(dec(1))),
        &["is accepted", "only proposed decisions can be accepted"],
    );
    let history = proposed().given(DRIVER, reject_decision(dec(1)));
    assert_precondition(history.refuse(DRIVER, accept_overriding(dec(1), "r")), &["is rejected"]);
}

#[test]
fn accept_of_an_unknown_decision_is_not_found() {
    assert_not_found(team().refuse(DRIVER, accept(dec(3))), &[&dec(3).to_string()]);
}

// --- Reject and withdraw ------------------------------------------------------------

#[test]
fn reject_by_the_driver_closes_the_decision_with_the_reason() {
    let mut history = proposed();
    let events = history.run(DRIVER, reject_decision(dec(1)));
    assert_eq!(events, vec![Event::DecisionRejected { decision_id: dec(1), reason: "not now".into() }]);
    let decision = history.decision(dec(1));
    assert_eq!(decision.status, DecisionStatus::Rejected);
    let closure = decision.closure.as_ref().unwrap();
    assert_eq!((&closure.by, closure.reason.as_str()), (&who(DRIVER), "not now"));
}

#[test]
fn reject_by_anyone_but_a_driver_is_permission_denied() {
    let history = team().given(CONTRIB, propose(dec(1)));
    for actor in [OWNER, CONTRIB, ENG] {
        assert_denied(history.refuse(actor, reject_decision(dec(1))), &[actor, "reject decisions"]);
    }
}

#[test]
fn reject_of_a_closed_decision_is_failed_precondition() {
    assert_precondition(accepted().refuse(DRIVER, reject_decision(dec(1))), &["is accepted", "can be rejected"]);
}

#[test]
fn withdraw_by_the_driver_or_the_proposer_closes_the_decision() {
    let history = team().given(CONTRIB, propose(dec(1)));
    for actor in [DRIVER, CONTRIB] {
        let mut history = history.clone();
        let events = history.run(actor, withdraw(dec(1)));
        assert_eq!(events, vec![Event::DecisionWithdrawn { decision_id: dec(1), reason: "changed our mind".into() }]);
        assert_eq!(history.decision(dec(1)).status, DecisionStatus::Withdrawn);
        assert_eq!(history.decision(dec(1)).closure.as_ref().unwrap().by, who(actor));
    }
}

#[test]
fn withdraw_by_anyone_else_is_permission_denied() {
    let history = team().given(CONTRIB, propose(dec(1)));
    for actor in [OWNER, ENG, STRANGER] {
        assert_denied(history.refuse(actor, withdraw(dec(1))), &[actor, "may withdraw it"]);
    }
}

#[test]
fn withdraw_of_a_closed_decision_is_failed_precondition() {
    let history = proposed().given(DRIVER, withdraw(dec(1)));
    assert_precondition(history.refuse(DRIVER, withdraw(dec(1))), &["is withdrawn", "can be withdrawn"]);
}

// --- Supersede ----------------------------------------------------------------------

/// Decisions 1 and 2 both accepted.
fn two_accepted() -> History {
    accepted()
        .given(DRIVER, propose(dec(2)))
        .given(ENG, approve(dec(2), "engineering"))
        .given(DES, approve(dec(2), "design"))
        .given(BIZ, approve(dec(2), "business"))
        .given(DRIVER, accept(dec(2)))
}

#[test]
fn supersede_of_an_accepted_decision_by_another_links_both_ways() {
    let mut history = two_accepted();
    let events = history.run(DRIVER, supersede(dec(1), dec(2)));
    assert_eq!(events, vec![Event::DecisionSuperseded { decision_id: dec(1), superseded_by: dec(2) }]);
    let (old, new) = (history.decision(dec(1)), history.decision(dec(2)));
    assert_eq!(old.status, DecisionStatus::Superseded);
    assert_eq!(old.superseded_by, Some(dec(2)));
    assert_eq!(new.supersedes, Some(dec(1)));
    assert_eq!(new.status, DecisionStatus::Accepted);
}

#[test]
fn supersede_of_a_decision_by_itself_is_invalid_argument() {
    assert_invalid(two_accepted().refuse(DRIVER, supersede(dec(1), dec(1))), "superseded_by", &["itself"]);
}

#[test]
fn supersede_needs_both_decisions_accepted() {
    let history = accepted().given(DRIVER, propose(dec(2)));
    assert_precondition(history.refuse(DRIVER, supersede(dec(1), dec(2))), &[&dec(2).to_string(), "is proposed"]);
    assert_precondition(history.refuse(DRIVER, supersede(dec(2), dec(1))), &[&dec(2).to_string(), "is proposed"]);
    let history = two_accepted().given(DRIVER, supersede(dec(1), dec(2)));
    assert_precondition(history.refuse(DRIVER, supersede(dec(1), dec(2))), &[&dec(1).to_string(), "is superseded"]);
}

#[test]
fn supersede_of_an_unknown_decision_is_not_found_naming_the_field() {
    let history = accepted();
    assert_not_found(history.refuse(DRIVER, supersede(dec(1), dec(5))), &["superseded_by", &dec(5).to_string()]);
    assert_not_found(history.refuse(DRIVER, supersede(dec(5), dec(1))), &["decision_id", &dec(5).to_string()]);
}

#[test]
fn supersede_by_anyone_but_a_driver_is_permission_denied() {
    let history = two_accepted();
    for actor in [OWNER, ENG] {
        assert_denied(history.refuse(actor, supersede(dec(1), dec(2))), &[actor, "supersede decisions"]);
    }
}

#[test]
fn supersede_by_a_decision_that_already_supersedes_another_is_failed_precondition() {
    // 2 supersedes 1; 3 is accepted independently; 2 cannot also supersede 3, or the
    // link "3 superseded by 2" would have no way back.
    let history = two_accepted()
        .given(DRIVER, supersede(dec(1), dec(2)))
        .given(DRIVER, propose(dec(3)))
        .given(DRIVER, accept_overriding(dec(3), "urgent"));
    assert_precondition(
        history.refuse(DRIVER, supersede(dec(3), dec(2))),
        &[&dec(2).to_string(), "already supersedes", &dec(1).to_string()],
    );
}

#[test]
fn accepting_a_decision_proposed_as_superseding_supersedes_the_old_one() {
    let mut history = accepted()
        .given(DRIVER, propose_superseding(dec(2), dec(1)))
        .given(ENG, approve(dec(2), "engineering"))
        .given(DES, approve(dec(2), "design"))
        .given(BIZ, approve(dec(2), "business"));
    assert_eq!(history.decision(dec(2)).supersedes, Some(dec(1)));
    assert_eq!(history.decision(dec(1)).status, DecisionStatus::Accepted, "not superseded before acceptance");
    let events = history.run(DRIVER, accept(dec(2)));
    assert_eq!(
        events,
        vec![
            Event::DecisionAccepted { decision_id: dec(2), revision: 1, r#override: None },
            Event::DecisionSuperseded { decision_id: dec(1), superseded_by: dec(2) },
        ]
    );
    assert_eq!(history.decision(dec(1)).status, DecisionStatus::Superseded);
    assert_eq!(history.decision(dec(1)).superseded_by, Some(dec(2)));
    assert_eq!(history.decision(dec(2)).status, DecisionStatus::Accepted);
}

#[test]
fn withdrawing_a_decision_proposed_as_superseding_leaves_the_old_one_accepted() {
    let history = accepted().given(DRIVER, propose_superseding(dec(2), dec(1))).given(DRIVER, withdraw(dec(2)));
    assert_eq!(history.decision(dec(1)).status, DecisionStatus::Accepted);
    assert_eq!(history.decision(dec(1)).superseded_by, None);
}
