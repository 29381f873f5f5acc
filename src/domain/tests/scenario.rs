//! The acceptance scenario of SPEC section 4, steps 2 to 6, on the domain alone.

use super::*;
use crate::domain::alignment::{FunctionState, InitiativeStatus};
use crate::domain::state::DecisionStatus;

#[track_caller]
fn assert_alignment(history: &History, status: InitiativeStatus, approved: u32, total: u32) {
    let view = history.view();
    assert_eq!(view.status, status, "status at version {}", history.version());
    assert_eq!((view.approved_pairs, view.total_pairs), (approved, total), "score at version {}", history.version());
    assert!((view.score - f64::from(approved) / f64::from(total)).abs() < 1e-12);
}

#[test]
fn spec_section_4_scenario_goes_pending_blocked_stale_then_aligned_and_is_accepted_without_override() {
    // 2. Create CHECKOUT-42 needing engineering, design and business; a driver and one
    //    approver per function.
    let mut history = History::new().given(
        DRIVER,
        Command::CreateInitiative {
            id: INITIATIVE,
            key: InitiativeKey::parse("key", "checkout-42").unwrap(),
            title: "Checkout".into(),
            summary: "Let customers pay".into(),
            owner: None,
            stage: None,
            required_functions: Some(funcs(&["engineering", "design", "business"])),
        },
    );
    history.run(DRIVER, assign(DRIVER, "product", Role::Driver));
    history.run(DRIVER, assign(ENG, "engineering", Role::Approver));
    history.run(DRIVER, assign(DES, "design", Role::Approver));
    history.run(DRIVER, assign(BIZ, "business", Role::Approver));
    assert_eq!(history.view().status, InitiativeStatus::NoDecisions);

    // 3. Propose "Use Stripe for payments"; a user-research concern from design.
    //    Alignment: pending, 0 of 3.
    history.run(DRIVER, propose(dec(1)));
    history.run(DES, feedback(fb(1), Some(dec(1)), "design", FeedbackKind::Concern, FeedbackSource::UserResearch));
    assert_alignment(&history, InitiativeStatus::Pending, 0, 3);
    let view = history.view();
    assert_eq!(view.open_concerns.len(), 1);
    assert_eq!(view.decisions[0].evidence.user_research, 1);
    assert_eq!(view.outstanding.len(), 3);

    // 4. Engineering and design approve; business objects. Alignment: blocked.
    history.run(ENG, approve(dec(1), "engineering"));
    history.run(DES, approve(dec(1), "design"));
    history.run(BIZ, objection(fb(2), Some(dec(1)), "business"));
    assert_alignment(&history, InitiativeStatus::Blocked, 2, 3);
    let step_4 = history.view();
    assert_eq!(step_4.outstanding.len(), 1);
    assert_eq!(
        (&step_4.outstanding[0].function, step_4.outstanding[0].state),
        (&func("business"), FunctionState::Blocked)
    );

    // 5. The driver revises materially: engineering's and design's approvals go stale;
    //    the objection stays.
    let events = history.run(DRIVER, revise(dec(1), RevisionKind::Material, "Stripe, with Adyen as fallback"));
    let Event::DecisionRevised { stale, .. } = &events[0] else { panic!("expected DecisionRevised") };
    let stale_signers: Vec<_> = stale.iter().map(|s| s.signer.as_str()).collect();
    assert_eq!(stale_signers, vec![ENG, DES]);
    assert_alignment(&history, InitiativeStatus::Blocked, 0, 3);
    let view = history.view();
    let stale_functions: Vec<_> = view.stale_sign_offs.iter().map(|s| s.function.as_str()).collect();
    assert_eq!(stale_functions, vec!["engineering", "design"]);
    assert_eq!(view.open_objections.iter().map(|f| f.id).collect::<Vec<_>>(), vec![fb(2)]);

    // 6. Business resolves its objection; all three approve revision 2. Aligned, 3 of 3.
    history.run(BIZ, resolve(fb(2)));
    assert_alignment(&history, InitiativeStatus::Pending, 0, 3);
    history.run(ENG, approve_revision(dec(1), "engineering", 2));
    history.run(DES, approve_revision(dec(1), "design", 2));
    history.run(BIZ, approve_revision(dec(1), "business", 2));
    assert_alignment(&history, InitiativeStatus::Aligned, 3, 3);
    assert!(history.view().stale_sign_offs.is_empty());

    //    The driver accepts, without an override.
    let events = history.run(DRIVER, accept(dec(1)));
    assert_eq!(events, vec![Event::DecisionAccepted { decision_id: dec(1), revision: 2, r#override: None }]);
    assert_eq!(history.decision(dec(1)).status, DecisionStatus::Accepted);
    let view = history.view();
    assert_eq!(view.status, InitiativeStatus::Aligned);
    assert!(view.overrides.is_empty());

    // 7 (domain part). Replaying the history up to step 4 gives "blocked" again.
    let step_4_version = step_4.version as usize;
    let as_of = fold(&history.events[..step_4_version]).unwrap().unwrap();
    assert_eq!(project(&as_of), step_4);
}
