//! Sign-offs: who may sign what, verdicts replacing each other, revoking.

use super::*;

#[test]
fn approval_by_an_approver_of_the_function_records_the_current_revision() {
    let mut history = proposed().given(DRIVER, revise(dec(1), RevisionKind::Editorial, "Stripe."));
    let events = history.run(ENG, approve(dec(1), "engineering"));
    assert_eq!(
        events,
        vec![Event::SignOffRecorded {
            decision_id: dec(1),
            revision: 2,
            function: func("engineering"),
            verdict: Verdict::Approve,
            reason: String::new(),
            comment: String::new(),
            via_team: None,
        }]
    );
    let in_force = &history.decision(dec(1)).sign_offs;
    assert_eq!(in_force.len(), 1);
    let sign_off = &in_force[0];
    assert_eq!((&sign_off.signer, sign_off.revision, sign_off.at), (&who(ENG), 2, at(history.version())));
}

#[test]
fn sign_off_by_someone_who_is_not_an_approver_of_that_function_is_permission_denied() {
    let history = proposed();
    // A contributor of the function, an approver of another function, the driver, the owner.
    for actor in [CONTRIB, DES, DRIVER, OWNER, INFORMED, STRANGER] {
        assert_denied(
            history.refuse(actor, approve(dec(1), "engineering")),
            &[actor, "not an approver for engineering"],
        );
        assert_denied(history.refuse(actor, reject(dec(1), "engineering", "no")), &[actor, "engineering"]);
    }
}

#[test]
fn sign_off_for_a_function_the_decision_does_not_need_is_failed_precondition() {
    let history = proposed().given(DRIVER, assign(STRANGER, "legal", Role::Approver));
    assert_precondition(
        history.refuse(STRANGER, approve(dec(1), "legal")),
        &["does not need a sign-off from legal", "business, design, engineering"],
    );
}

#[test]
fn sign_off_on_a_closed_decision_is_failed_precondition() {
    let superseded = accepted()
        .given(DRIVER, propose_superseding(dec(2), dec(1)))
        .given(DRIVER, accept_overriding(dec(2), "urgent"));
    let cases = [
        (proposed().given(DRIVER, withdraw(dec(1))), "withdrawn"),
        (proposed().given(DRIVER, reject_decision(dec(1))), "rejected"),
        (accepted(), "accepted"),
        (superseded, "superseded"),
    ];
    for (history, status) in cases {
        assert_precondition(
            history.refuse(ENG, approve(dec(1), "engineering")),
            &[&format!("is {status}"), "only proposed decisions can be signed"],
        );
    }
}

#[test]
fn sign_off_on_an_unknown_decision_is_not_found() {
    assert_not_found(proposed().refuse(ENG, approve(dec(6), "engineering")), &[&dec(6).to_string()]);
}

#[test]
fn rejection_without_a_reason_is_invalid_argument_on_reason() {
    let history = proposed();
    for blank in ["", "  \n"] {
        assert_invalid(history.refuse(BIZ, reject(dec(1), "business", blank)), "reason", &["required to reject"]);
    }
}

#[test]
fn rejection_with_a_reason_is_recorded_with_it() {
    let mut history = proposed();
    let events = history.run(BIZ, reject(dec(1), "business", "too costly"));
    let Event::SignOffRecorded { verdict, reason, .. } = &events[0] else { panic!("expected SignOffRecorded") };
    assert_eq!((*verdict, reason.as_str()), (Verdict::Reject, "too costly"));
}

#[test]
fn sign_off_naming_an_earlier_revision_is_failed_precondition_naming_both_revisions() {
    let history = proposed().given(DRIVER, revise(dec(1), RevisionKind::Editorial, "Stripe."));
    assert_precondition(
        history.refuse(ENG, approve_revision(dec(1), "engineering", 1)),
        &["revision 1", "at revision 2"],
    );
    assert_precondition(history.refuse(ENG, approve_revision(dec(1), "engineering", 3)), &["revision 3"]);
}

#[test]
fn sign_off_naming_the_current_revision_is_recorded() {
    let history = proposed().given(DRIVER, revise(dec(1), RevisionKind::Editorial, "Stripe."));
    let events = history.try_run(ENG, approve_revision(dec(1), "engineering", 2)).unwrap();
    assert!(matches!(events[..], [Event::SignOffRecorded { revision: 2, .. }]));
}

#[test]
fn a_later_verdict_by_the_same_person_replaces_the_earlier_one_and_history_marks_it_replaced() {
    let history =
        proposed().given(BIZ, reject(dec(1), "business", "too costly")).given(BIZ, approve(dec(1), "business"));
    let decision = history.decision(dec(1));
    let in_force: Vec<_> = decision.sign_offs.iter().map(|s| (s.signer.as_str(), s.verdict)).collect();
    assert_eq!(in_force, vec![(BIZ, Verdict::Approve)]);
    let marks: Vec<_> = history.sign_off_history(dec(1)).iter().map(|s| (s.verdict, s.replaced, s.revoked)).collect();
    assert_eq!(marks, vec![(Verdict::Reject, true, false), (Verdict::Approve, false, false)]);
}

#[test]
fn a_verdict_by_another_approver_of_the_same_function_does_not_replace_the_first() {
    let history = proposed()
        .given(DRIVER, assign(STRANGER, "business", Role::Approver))
        .given(BIZ, approve(dec(1), "business"))
        .given(STRANGER, reject(dec(1), "business", "no budget"));
    let signers: Vec<_> = history.decision(dec(1)).sign_offs.iter().map(|s| (s.signer.as_str(), s.verdict)).collect();
    assert_eq!(signers, vec![(BIZ, Verdict::Approve), (STRANGER, Verdict::Reject)]);
    assert!(history.sign_off_history(dec(1)).iter().all(|s| !s.replaced));
}

#[test]
fn a_verdict_for_one_function_does_not_replace_the_same_persons_verdict_for_another() {
    let history = proposed()
        .given(DRIVER, assign(ENG, "design", Role::Approver))
        .given(ENG, approve(dec(1), "engineering"))
        .given(ENG, reject(dec(1), "design", "ugly"));
    assert_eq!(history.decision(dec(1)).sign_offs.len(), 2);
}

#[test]
fn revoke_removes_the_signers_verdict_and_history_marks_it_revoked() {
    let mut history = proposed().given(ENG, approve(dec(1), "engineering"));
    let events = history.run(ENG, revoke(dec(1), "engineering"));
    assert_eq!(events, vec![Event::SignOffRevoked { decision_id: dec(1), function: func("engineering") }]);
    let decision = history.decision(dec(1));
    assert!(decision.sign_offs.is_empty());
    let marks: Vec<_> = history.sign_off_history(dec(1)).iter().map(|s: &SignOff| (s.replaced, s.revoked)).collect();
    assert_eq!(marks, vec![(false, true)]);
}

#[test]
fn revoke_without_a_verdict_in_force_is_not_found() {
    let history = proposed().given(ENG, approve(dec(1), "engineering")).given(ENG, revoke(dec(1), "engineering"));
    assert_not_found(history.refuse(ENG, revoke(dec(1), "engineering")), &[ENG, "no sign-off for engineering"]);
    assert_not_found(proposed().refuse(BIZ, revoke(dec(1), "business")), &[BIZ, "to revoke"]);
}

#[test]
fn revoke_only_touches_the_callers_own_verdict() {
    let history = proposed()
        .given(DRIVER, assign(STRANGER, "engineering", Role::Approver))
        .given(ENG, approve(dec(1), "engineering"));
    // Another approver of the same function has nothing of their own to revoke.
    assert_not_found(history.refuse(STRANGER, revoke(dec(1), "engineering")), &[STRANGER]);
    // The driver may not revoke someone else's sign-off either.
    assert_not_found(history.refuse(DRIVER, revoke(dec(1), "engineering")), &[DRIVER]);
    let history =
        history.given(STRANGER, approve(dec(1), "engineering")).given(STRANGER, revoke(dec(1), "engineering"));
    let left: Vec<_> = history.decision(dec(1)).sign_offs.iter().map(|s| s.signer.as_str()).collect();
    assert_eq!(left, vec![ENG]);
}

#[test]
fn revoke_on_a_closed_decision_is_failed_precondition() {
    assert_precondition(accepted().refuse(ENG, revoke(dec(1), "engineering")), &["is accepted"]);
}

#[test]
fn revoke_then_sign_again_keeps_both_in_history() {
    let history = proposed()
        .given(ENG, approve(dec(1), "engineering"))
        .given(ENG, revoke(dec(1), "engineering"))
        .given(ENG, reject(dec(1), "engineering", "on reflection, no"));
    let decision = history.decision(dec(1));
    let marks: Vec<_> = history.sign_off_history(dec(1)).iter().map(|s| (s.verdict, s.replaced, s.revoked)).collect();
    assert_eq!(marks, vec![(Verdict::Approve, false, true), (Verdict::Reject, false, false)]);
    assert_eq!(decision.sign_offs.len(), 1);
}

#[test]
fn sign_off_history_lists_only_the_verdicts_on_the_decision_asked_for() {
    let history = proposed()
        .given(DRIVER, propose(dec(2)))
        .given(ENG, approve(dec(1), "engineering"))
        .given(ENG, reject(dec(2), "engineering", "not this one"))
        .given(ENG, approve(dec(2), "engineering"));
    let on_first: Vec<_> = history.sign_off_history(dec(1)).iter().map(|s| (s.verdict, s.replaced)).collect();
    assert_eq!(on_first, vec![(Verdict::Approve, false)]);
    let on_second: Vec<_> = history.sign_off_history(dec(2)).iter().map(|s| (s.verdict, s.replaced)).collect();
    assert_eq!(on_second, vec![(Verdict::Reject, true), (Verdict::Approve, false)]);
    assert!(history.sign_off_history(dec(3)).is_empty());
}
