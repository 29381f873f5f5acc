//! Stakeholders: assigning and removing roles per function.

use super::*;
use crate::domain::state::Stakeholder;

#[test]
fn assign_records_the_stakeholder_and_adds_it_to_the_state() {
    let mut history = team();
    let events = history.run(DRIVER, assign(STRANGER, "legal", Role::Approver));
    assert_eq!(
        events,
        vec![Event::StakeholderAssigned { principal: who(STRANGER), function: func("legal"), role: Role::Approver }]
    );
    assert!(history.state().has_role(&who(STRANGER), &func("legal"), Role::Approver));
    assert!(history.state().stakeholders.contains(&Stakeholder {
        principal: who(STRANGER),
        function: func("legal"),
        role: Role::Approver
    }));
}

#[test]
fn assign_of_a_role_already_held_is_already_exists_naming_person_role_and_function() {
    let history = team();
    assert_already_exists(
        history.refuse(DRIVER, assign(ENG, "engineering", Role::Approver)),
        &[ENG, "approver", "engineering", "CHECKOUT-42"],
    );
}

#[test]
fn assign_of_another_role_in_the_same_function_is_allowed() {
    let history = team().given(DRIVER, assign(ENG, "engineering", Role::Contributor));
    assert!(history.state().has_role(&who(ENG), &func("engineering"), Role::Approver));
    assert!(history.state().has_role(&who(ENG), &func("engineering"), Role::Contributor));
}

#[test]
fn remove_records_the_removal_and_drops_the_role() {
    let mut history = team();
    let events = history.run(DRIVER, remove(CONTRIB, "engineering", Role::Contributor));
    assert_eq!(
        events,
        vec![Event::StakeholderRemoved {
            principal: who(CONTRIB),
            function: func("engineering"),
            role: Role::Contributor
        }]
    );
    assert!(!history.state().stakeholders.iter().any(|s| s.principal == who(CONTRIB)));
}

#[test]
fn remove_of_a_role_not_held_is_not_found_naming_person_role_and_function() {
    let history = team();
    assert_not_found(
        history.refuse(DRIVER, remove(STRANGER, "engineering", Role::Approver)),
        &[STRANGER, "approver", "engineering"],
    );
    // The right person with the wrong role or function is not a match either.
    assert_not_found(history.refuse(DRIVER, remove(ENG, "engineering", Role::Contributor)), &[ENG, "contributor"]);
    assert_not_found(history.refuse(DRIVER, remove(ENG, "design", Role::Approver)), &[ENG, "design"]);
}

#[test]
fn a_person_may_approve_for_several_functions_and_sign_for_each() {
    let mut history = team().given(DRIVER, assign(ENG, "design", Role::Approver)).given(DRIVER, propose(dec(1)));
    assert_eq!(history.state().approvers(&func("design")), vec![&who(DES), &who(ENG)]);
    assert_eq!(history.state().approvers(&func("engineering")), vec![&who(ENG)]);
    history.run(ENG, approve(dec(1), "engineering"));
    history.run(ENG, approve(dec(1), "design"));
    let signed: Vec<&str> = history.decision(dec(1)).sign_offs.iter().map(|s| s.function.as_str()).collect();
    assert_eq!(signed, vec!["engineering", "design"]);
}

#[test]
fn removing_one_of_a_persons_roles_keeps_the_others() {
    let history = team()
        .given(DRIVER, assign(ENG, "design", Role::Approver))
        .given(DRIVER, remove(ENG, "design", Role::Approver));
    assert!(history.state().has_role(&who(ENG), &func("engineering"), Role::Approver));
    assert!(!history.state().has_role(&who(ENG), &func("design"), Role::Approver));
}

#[test]
fn a_role_may_be_assigned_again_after_removal() {
    let history = team()
        .given(DRIVER, remove(ENG, "engineering", Role::Approver))
        .given(DRIVER, assign(ENG, "engineering", Role::Approver));
    assert!(history.state().has_role(&who(ENG), &func("engineering"), Role::Approver));
}
