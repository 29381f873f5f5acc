//! Teams in decision rights (issue 16): a role given to a team (`team:NAME`) is held by
//! every member; a sign-off records the team it was given through, so replay needs no
//! directory; membership changes never rewrite recorded sign-offs.

use std::collections::BTreeSet;

use super::*;
use crate::domain::alignment::{FunctionState, inbox_of};
use crate::domain::decide::{Authority, decide_for};
use crate::domain::state::Member;

const LEADS: &str = "team:design-leads";
const LEAD: &str = "lea@example.com";

fn teams(names: &[&str]) -> BTreeSet<Principal> {
    names.iter().map(|n| who(n)).collect()
}

impl History {
    /// Runs a command as a member of `of` teams; it must succeed.
    #[track_caller]
    fn run_in(&mut self, actor: &str, of: &[&str], command: Command) -> Vec<Event> {
        let teams = teams(of);
        let member = Member { person: &who(actor), teams: &teams };
        let events = decide_for(self.state.as_ref(), &command, member, Authority::Member)
            .unwrap_or_else(|e| panic!("{actor} in {of:?} could not {command:?}: {e:?}"));
        for event in &events {
            self.record(actor, event.clone());
        }
        events
    }

    fn refuse_in(&self, actor: &str, of: &[&str], command: Command) -> DomainError {
        let teams = teams(of);
        let member = Member { person: &who(actor), teams: &teams };
        match decide_for(self.state.as_ref(), &command, member, Authority::Member) {
            Ok(events) => panic!("{actor} in {of:?} was allowed to {command:?}: {events:?}"),
            Err(error) => error,
        }
    }
}

/// `team()` with design's approver a team instead of a person, and decision 1 proposed.
fn team_approves_design() -> History {
    team()
        .given(DRIVER, remove(DES, "design", Role::Approver))
        .given(DRIVER, assign(LEADS, "design", Role::Approver))
        .given(DRIVER, propose(dec(1)))
}

#[test]
fn a_team_is_a_principal_with_a_name_after_its_prefix() {
    assert!(Principal::parse("p", "team:design-leads").expect("a team").is_team());
    assert!(!who(DES).is_team());
    assert_eq!(Principal::team("groups", "ux").map(|p| p.to_string()), Ok("team:ux".to_owned()));
    let error = Principal::parse("principal", "team:").expect_err("no name");
    assert!(error.to_string().contains("principal") && error.to_string().contains("names no team"), "{error}");
}

#[test]
fn any_member_of_an_approving_team_signs_for_it_and_the_sign_off_records_the_team() {
    let mut history = team_approves_design();
    let events = history.run_in(LEAD, &[LEADS], approve(dec(1), "design"));
    let [Event::SignOffRecorded { via_team, .. }] = &events[..] else { panic!("{events:?}") };
    assert_eq!(via_team.as_ref().map(Principal::as_str), Some(LEADS));
    let view = history.view();
    let design = view.decisions[0].functions.iter().find(|f| f.function.as_str() == "design").map(|f| f.state);
    assert_eq!(design, Some(FunctionState::Approved));
    let reason =
        crate::domain::alignment::evaluate_function(history.state(), history.decision(dec(1)), &func("design")).reason;
    assert_eq!(reason, format!("approved by {LEAD} (for {LEADS}) at revision 1"));
}

#[test]
fn someone_outside_the_team_is_refused_and_the_refusal_says_their_teams_do_not_help() {
    let history = team_approves_design();
    let error = history.refuse_in(STRANGER, &["team:marketing"], approve(dec(1), "design"));
    assert_denied(error.clone(), &[STRANGER, "not an approver for design", "nor is any of their teams"]);
    assert_denied(history.refuse(STRANGER, approve(dec(1), "design")), &["not an approver for design"]);
}

#[test]
fn a_person_who_is_an_approver_themselves_signs_as_themselves_even_inside_the_team() {
    let mut history = proposed().given(DRIVER, assign(LEADS, "design", Role::Approver));
    let events = history.run_in(DES, &[LEADS], approve(dec(1), "design"));
    assert!(matches!(&events[..], [Event::SignOffRecorded { via_team: None, .. }]), "{events:?}");
}

#[test]
fn a_leavers_recorded_sign_off_keeps_counting_because_membership_is_not_in_the_log() {
    let mut history = team_approves_design();
    history.run_in(LEAD, &[LEADS], approve(dec(1), "design"));
    // The lead leaves the team: nothing is recorded, and a replay of the log (which knows
    // no membership) folds to the same view — the approval stands.
    let replayed = fold(&history.events).expect("folds").expect("exists");
    assert_eq!(project(&replayed), history.view());
    assert!(history.decision(dec(1)).sign_offs.iter().all(|s| history.state().still_entitled(s)));
    // What they had not signed yet, they no longer can: the next sign-off is refused.
    assert_denied(history.refuse_in(LEAD, &[], approve(dec(1), "design")), &["not an approver for design"]);
    // … but they may still take back their own verdict.
    history.run_in(LEAD, &[], revoke(dec(1), "design"));
    assert!(history.decision(dec(1)).sign_offs.is_empty());
}

#[test]
fn removing_the_team_from_the_role_retracts_its_members_sign_offs_as_for_a_person() {
    let mut history = team_approves_design();
    history.run_in(LEAD, &[LEADS], approve(dec(1), "design"));
    history.run(DRIVER, remove(LEADS, "design", Role::Approver));
    let view = history.view();
    let design = view.decisions[0].functions.iter().find(|f| f.function.as_str() == "design").map(|f| f.state);
    assert_eq!(design, Some(FunctionState::Pending));
}

#[test]
fn a_material_revision_makes_a_team_approval_stale_and_it_is_listed_as_such() {
    let mut history = team_approves_design();
    history.run_in(LEAD, &[LEADS], approve(dec(1), "design"));
    history.run(DRIVER, revise(dec(1), RevisionKind::Material, "Adyen"));
    let view = history.view();
    assert_eq!(view.stale_sign_offs.iter().map(|s| s.signer.as_str()).collect::<Vec<_>>(), vec![LEAD]);
}

#[test]
fn team_drivers_accept_and_team_contributors_propose_and_give_feedback() {
    let mut history = aligned().given(DRIVER, assign("team:product-leads", "product", Role::Driver));
    history.run_in(STRANGER, &["team:product-leads"], accept(dec(1)));
    let mut history = history.given(DRIVER, assign("team:platform", "engineering", Role::Contributor));
    history.run_in(STRANGER, &["team:platform"], propose(dec(2)));
    history.run_in(
        STRANGER,
        &["team:platform"],
        feedback(fb(1), Some(dec(2)), "engineering", FeedbackKind::Concern, FeedbackSource::Internal),
    );
    assert_denied(history.refuse(STRANGER, propose(dec(3))), &["may not propose"]);
}

#[test]
fn the_inbox_of_a_member_lists_what_waits_on_their_teams_naming_the_team() {
    let history = team_approves_design();
    let leads = teams(&[LEADS]);
    let items = inbox_of(history.state(), Member { person: &who(LEAD), teams: &leads });
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0].function.as_str(), items[0].via_team.as_ref().map(Principal::as_str)),
        ("design", Some(LEADS))
    );
    assert!(history.inbox(LEAD).is_empty(), "without their teams, nothing waits on them");
    // The team's own inbox is asked for by its name.
    assert_eq!(history.inbox(LEADS).len(), 1);
    assert!(history.awaiting().contains(&LEADS.to_owned()));
}

#[test]
fn an_accepted_decision_records_the_team_an_agreed_sign_off_came_through() {
    let mut history = team_approves_design();
    history.run(ENG, approve(dec(1), "engineering"));
    history.run(BIZ, approve(dec(1), "business"));
    history.run_in(LEAD, &[LEADS], approve(dec(1), "design"));
    history.run(DRIVER, accept(dec(1)));
    let agreed = &history.view().agreed[0];
    let design = agreed.functions.iter().find(|f| f.function.as_str() == "design").expect("design");
    assert_eq!(design.sign_offs[0].via_team.as_ref().map(Principal::as_str), Some(LEADS));
}
