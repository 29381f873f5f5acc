//! Teams in decision rights through the API (issue 16): the identity provider's group
//! claim names the caller's teams; a role given to `team:NAME` is every member's; the
//! sign-off records the team; the inbox of a member shows what waits on their teams.

use accord::proto as pb;
use accord::security::Role;
use tonic::Code;

use crate::on_both_stores;
use crate::support::*;

on_both_stores!(
    a_member_of_an_approving_team_signs_through_it_and_sees_its_work_in_their_inbox,
    a_leaver_can_no_longer_sign_but_their_recorded_sign_off_stands,
);

const LEAD: &str = "lea@example.com";
const LEADS: &str = "team:design-leads";

/// A member's token whose `groups` claim lists `groups`.
fn token_in(principal: &str, groups: &[&str]) -> String {
    token_with(principal, &[Role::Member], |claims| claims["groups"] = serde_json::json!(groups))
}

/// CHECKOUT-42 with design's approval given to the design-leads team instead of a person.
async fn checkout_with_a_design_team(app: &TestApp) -> Checkout {
    let ids = checkout(app).await;
    let owner = app.as_(OWNER);
    owner
        .clone()
        .remove_stakeholder(pb::RemoveStakeholderRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            principal: DESIGNER.into(),
            function: "design".into(),
            role: pb::Role::Approver.into(),
        })
        .await
        .expect("remove the designer");
    owner
        .clone()
        .assign_stakeholder(pb::AssignStakeholderRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            principal: LEADS.into(),
            function: "design".into(),
            role: pb::Role::Approver.into(),
        })
        .await
        .expect("give design's approval to the team");
    ids
}

async fn approve_design(app: &TestApp, token: String, decision_id: &str) -> Result<pb::CommandResponse, tonic::Status> {
    app.commands_with(Some(token))
        .record_sign_off(pb::RecordSignOffRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            decision_id: decision_id.into(),
            function: "design".into(),
            verdict: pb::Verdict::Approve.into(),
            reason: String::new(),
            comment: String::new(),
            revision: None,
        })
        .await
        .map(|r| r.into_inner())
}

async fn inbox(app: &TestApp, token: String, principal: &str) -> Vec<pb::InboxItem> {
    app.queries_with(Some(token))
        .get_inbox(pb::GetInboxRequest { principal: principal.into() })
        .await
        .expect("inbox")
        .into_inner()
        .items
}

async fn design_sign_offs(app: &TestApp, decision_id: &str) -> Vec<pb::SignOff> {
    let detail = app
        .queries()
        .get_decision(pb::GetDecisionRequest { initiative: "CHECKOUT-42".into(), decision_id: decision_id.into() })
        .await
        .expect("decision")
        .into_inner();
    detail.sign_offs.into_iter().filter(|s| s.function == "design").collect()
}

async fn a_member_of_an_approving_team_signs_through_it_and_sees_its_work_in_their_inbox(app: TestApp) {
    let ids = checkout_with_a_design_team(&app).await;
    let view = app.alignment("CHECKOUT-42").await;
    let design = view.outstanding.iter().find(|o| o.function == "design").expect("design waits");
    assert_eq!(design.can_sign, vec![LEADS.to_owned()]);

    // Their own inbox names the team; a dashboard asking about them does not know their
    // teams; the team's own inbox is asked for by its name.
    let own = inbox(&app, token_in(LEAD, &["design-leads", "guild-rust"]), LEAD).await;
    assert_eq!(own.iter().map(|i| (i.function.as_str(), i.via_team.as_str())).collect::<Vec<_>>(), [("design", LEADS)]);
    assert!(inbox(&app, token(DASHBOARD, &[Role::Reader]), LEAD).await.is_empty());
    assert_eq!(inbox(&app, token(DASHBOARD, &[Role::Reader]), LEADS).await.len(), 1);

    approve_design(&app, token_in(LEAD, &["design-leads"]), &ids.decision_id).await.expect("a lead approves");
    let sign_offs = design_sign_offs(&app, &ids.decision_id).await;
    assert_eq!(
        sign_offs.iter().map(|s| (s.signer.as_str(), s.via_team.as_str(), s.counts)).collect::<Vec<_>>(),
        [(LEAD, LEADS, true)]
    );
    let view = app.alignment("CHECKOUT-42").await;
    assert_eq!(function_state(&view, "design"), pb::FunctionState::Approved);
    assert!(inbox(&app, token_in(LEAD, &["design-leads"]), LEAD).await.is_empty(), "nothing waits once signed");
}

async fn a_leaver_can_no_longer_sign_but_their_recorded_sign_off_stands(app: TestApp) {
    let ids = checkout_with_a_design_team(&app).await;
    // Someone outside the team is refused, and told their teams do not help.
    let refused = approve_design(&app, token_in(ENGINEER, &["platform"]), &ids.decision_id).await.expect_err("no");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("nor is any of their teams"), "{}", refused.message());

    approve_design(&app, token_in(LEAD, &["design-leads"]), &ids.decision_id).await.expect("a lead approves");
    // The lead leaves the team (their next token has no such group): the approval they
    // recorded still counts; a new verdict through the team is refused.
    let view = app.alignment("CHECKOUT-42").await;
    assert_eq!(function_state(&view, "design"), pb::FunctionState::Approved);
    let refused = app
        .commands_with(Some(token_in(LEAD, &[])))
        .record_sign_off(pb::RecordSignOffRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            decision_id: ids.decision_id.clone(),
            function: "design".into(),
            verdict: pb::Verdict::Reject.into(),
            reason: "Changed my mind.".into(),
            comment: String::new(),
            revision: None,
        })
        .await
        .expect_err("no longer an approver");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(design_sign_offs(&app, &ids.decision_id).await.iter().filter(|s| s.counts).count(), 1);
    assert_eq!(function_state(&app.alignment("CHECKOUT-42").await, "design"), pb::FunctionState::Approved);
}
