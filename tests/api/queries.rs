//! SPEC section 2, queries for dashboards: list filters and stable pagination, the
//! inbox, one decision in full, and the operational services (health, reflection).

use std::collections::BTreeSet;

use accord::proto as pb;
use sqlx::PgPool;
use tonic::Code;

use crate::support::*;

const SAM: &str = "sam@example.com";

/// An initiative owned (and created) by `owner`; with `verdicts`, ENGINEER, DESIGNER and
/// BUSINESS become approvers, the owner proposes one decision and the verdicts are
/// signed on it.
async fn initiative(
    app: &TestApp,
    key: &str,
    title: &str,
    owner: &str,
    stage: pb::Stage,
    verdicts: Option<&[(&str, &str, pb::Verdict)]>,
) -> String {
    let mut request = new_initiative(key, title);
    request.stage = stage.into();
    request.owner = owner.to_owned();
    // The administrator sets the initiative up for its owner.
    app.as_(OWNER).create_initiative(request).await.expect("create");
    let Some(verdicts) = verdicts else { return String::new() };
    for (who, function) in [(ENGINEER, "engineering"), (DESIGNER, "design"), (BUSINESS, "business")] {
        assign_role(app, OWNER, key, who, function, pb::Role::Approver).await;
    }
    let decision = propose_decision(app, owner, key, &format!("Decision of {key}")).await.created_id;
    for (who, function, verdict) in verdicts {
        app.as_(who).record_sign_off(sign_off_request(key, &decision, function, *verdict)).await.expect("sign");
    }
    decision
}

/// Six initiatives, one per case the filters tell apart:
/// - ALPHA-1 "Payments revamp": OWNER, discovery, no decisions;
/// - BETA-2 "Search relevance": SAM, delivery, one decision nobody signed (pending);
/// - GAMMA-3 "Checkout payments": OWNER, definition, business still pending;
/// - DELTA-4 "Delivery tracking": OWNER, definition, business rejected (blocked);
/// - EPSILON-5 "Loyalty points": OWNER, launched, all approved (aligned);
/// - ZETA-6 "Payments archive": OWNER, discovery, no decisions, archived.
async fn portfolio(app: &TestApp) {
    use pb::Verdict::{Approve, Reject};
    initiative(app, "ALPHA-1", "Payments revamp", OWNER, pb::Stage::Discovery, None).await;
    initiative(app, "BETA-2", "Search relevance", SAM, pb::Stage::Delivery, Some(&[])).await;
    let two = [(ENGINEER, "engineering", Approve), (DESIGNER, "design", Approve)];
    initiative(app, "GAMMA-3", "Checkout payments", OWNER, pb::Stage::Definition, Some(&two)).await;
    let rejected = [two[0], two[1], (BUSINESS, "business", Reject)];
    initiative(app, "DELTA-4", "Delivery tracking", OWNER, pb::Stage::Definition, Some(&rejected)).await;
    let all = [two[0], two[1], (BUSINESS, "business", Approve)];
    initiative(app, "EPSILON-5", "Loyalty points", OWNER, pb::Stage::Launched, Some(&all)).await;
    initiative(app, "ZETA-6", "Payments archive", OWNER, pb::Stage::Discovery, None).await;
    app.as_(OWNER)
        .archive_initiative(pb::ArchiveInitiativeRequest {
            options: None,
            initiative: "ZETA-6".into(),
            reason: "Merged into ALPHA-1.".into(),
        })
        .await
        .expect("archive");
}

/// The keys of one page of `request`.
async fn keys(app: &TestApp, request: pb::ListAlignmentsRequest) -> Vec<String> {
    let page = app.queries().list_alignments(request).await.expect("list").into_inner();
    assert!(page.next_page_token.is_empty(), "one page is enough here");
    page.initiatives.into_iter().map(|i| i.key).collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

// ---- ListAlignments filters ----------------------------------------------------------

async fn list_without_filters_returns_every_unarchived_initiative_in_key_order(app: TestApp) {
    portfolio(&app).await;
    let all = keys(&app, pb::ListAlignmentsRequest::default()).await;
    assert_eq!(all, strings(&["ALPHA-1", "BETA-2", "DELTA-4", "EPSILON-5", "GAMMA-3"]));
}

async fn list_status_filter_returns_only_initiatives_with_that_status(app: TestApp) {
    portfolio(&app).await;
    let by = |status: pb::InitiativeStatus| pb::ListAlignmentsRequest { status: status.into(), ..Default::default() };
    assert_eq!(keys(&app, by(pb::InitiativeStatus::Pending)).await, strings(&["BETA-2", "GAMMA-3"]));
    assert_eq!(keys(&app, by(pb::InitiativeStatus::Blocked)).await, strings(&["DELTA-4"]));
    assert_eq!(keys(&app, by(pb::InitiativeStatus::Aligned)).await, strings(&["EPSILON-5"]));
    assert_eq!(keys(&app, by(pb::InitiativeStatus::NoDecisions)).await, strings(&["ALPHA-1"]));
    let views = app.queries().list_alignments(by(pb::InitiativeStatus::Blocked)).await.expect("list").into_inner();
    assert!(views.initiatives.iter().all(|v| v.status() == pb::InitiativeStatus::Blocked));
}

async fn list_pending_function_filter_returns_initiatives_where_that_function_is_not_yet_approved(app: TestApp) {
    portfolio(&app).await;
    let by = |function: &str| pb::ListAlignmentsRequest { pending_function: function.into(), ..Default::default() };
    assert_eq!(keys(&app, by("business")).await, strings(&["BETA-2", "DELTA-4", "GAMMA-3"]));
    assert_eq!(keys(&app, by("engineering")).await, strings(&["BETA-2"]));
    assert_eq!(keys(&app, by("legal")).await, Vec::<String>::new());
    let status = app.queries().list_alignments(by("Legal")).await.expect_err("bad slug");
    assert_invalid(&status, "pending_function", "\"Legal\" is not a function");
}

async fn list_stage_filter_returns_only_initiatives_in_that_stage(app: TestApp) {
    portfolio(&app).await;
    let by = |stage: pb::Stage| pb::ListAlignmentsRequest { stage: stage.into(), ..Default::default() };
    assert_eq!(keys(&app, by(pb::Stage::Definition)).await, strings(&["DELTA-4", "GAMMA-3"]));
    assert_eq!(keys(&app, by(pb::Stage::Delivery)).await, strings(&["BETA-2"]));
    assert_eq!(keys(&app, by(pb::Stage::Sunset)).await, Vec::<String>::new());
}

async fn list_owner_filter_returns_only_initiatives_of_that_owner(app: TestApp) {
    portfolio(&app).await;
    let by = |owner: &str| pb::ListAlignmentsRequest { owner: owner.into(), ..Default::default() };
    assert_eq!(keys(&app, by(SAM)).await, strings(&["BETA-2"]));
    assert_eq!(keys(&app, by(OWNER)).await, strings(&["ALPHA-1", "DELTA-4", "EPSILON-5", "GAMMA-3"]));
    assert_eq!(keys(&app, by("nobody@example.com")).await, Vec::<String>::new());
}

async fn list_text_filter_matches_key_or_title_case_insensitively_and_treats_wildcards_literally(app: TestApp) {
    portfolio(&app).await;
    let by = |text: &str| pb::ListAlignmentsRequest { text: text.into(), ..Default::default() };
    assert_eq!(keys(&app, by("PAYMENTS")).await, strings(&["ALPHA-1", "GAMMA-3"]), "title, any case");
    assert_eq!(keys(&app, by("gamma")).await, strings(&["GAMMA-3"]), "key, any case");
    assert_eq!(keys(&app, by("ta-4")).await, strings(&["DELTA-4"]), "substring of the key");
    assert_eq!(keys(&app, by("Relevance")).await, strings(&["BETA-2"]));
    assert_eq!(keys(&app, by("%")).await, Vec::<String>::new(), "% is not a wildcard");
    assert_eq!(keys(&app, by("_")).await, Vec::<String>::new(), "_ is not a wildcard");
    assert_eq!(keys(&app, by("roadmap")).await, Vec::<String>::new());
}

async fn list_excludes_archived_initiatives_unless_include_archived_is_set(app: TestApp) {
    portfolio(&app).await;
    let payments = |include_archived| pb::ListAlignmentsRequest {
        text: "payments".into(),
        include_archived,
        ..Default::default()
    };
    assert_eq!(keys(&app, payments(false)).await, strings(&["ALPHA-1", "GAMMA-3"]));
    assert_eq!(keys(&app, payments(true)).await, strings(&["ALPHA-1", "GAMMA-3", "ZETA-6"]));
    let all = app
        .queries()
        .list_alignments(pb::ListAlignmentsRequest { include_archived: true, ..Default::default() })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(all.initiatives.len(), 6);
    let zeta = all.initiatives.iter().find(|v| v.key == "ZETA-6").expect("ZETA-6 listed");
    assert!(zeta.archived);
}

async fn list_filters_combine_with_and(app: TestApp) {
    portfolio(&app).await;
    let request = pb::ListAlignmentsRequest {
        status: pb::InitiativeStatus::Pending.into(),
        owner: OWNER.into(),
        ..Default::default()
    };
    assert_eq!(keys(&app, request).await, strings(&["GAMMA-3"]));
    let request = pb::ListAlignmentsRequest {
        stage: pb::Stage::Definition.into(),
        pending_function: "business".into(),
        text: "delivery".into(),
        ..Default::default()
    };
    assert_eq!(keys(&app, request).await, strings(&["DELTA-4"]));
}

// ---- Pagination ----------------------------------------------------------------------

async fn seven(app: &TestApp) {
    // Created out of key order: the listing orders by key, not by creation.
    for key in ["KEY-G", "KEY-C", "KEY-A", "KEY-E", "KEY-B", "KEY-F", "KEY-D"] {
        create_initiative(app, OWNER, key, &format!("Initiative {key}")).await;
    }
}

async fn page(app: &TestApp, page_size: u32, page_token: &str) -> pb::ListAlignmentsResponse {
    app.queries()
        .list_alignments(pb::ListAlignmentsRequest { page_size, page_token: page_token.into(), ..Default::default() })
        .await
        .expect("page")
        .into_inner()
}

fn page_keys(page: &pb::ListAlignmentsResponse) -> Vec<String> {
    page.initiatives.iter().map(|i| i.key.clone()).collect()
}

async fn seven_initiatives_in_pages_of_three_come_as_3_3_1_in_key_order_without_repeats(app: TestApp) {
    seven(&app).await;
    let first = page(&app, 3, "").await;
    assert_eq!(page_keys(&first), strings(&["KEY-A", "KEY-B", "KEY-C"]));
    assert!(!first.next_page_token.is_empty());
    let second = page(&app, 3, &first.next_page_token).await;
    assert_eq!(page_keys(&second), strings(&["KEY-D", "KEY-E", "KEY-F"]));
    assert!(!second.next_page_token.is_empty());
    let third = page(&app, 3, &second.next_page_token).await;
    assert_eq!(page_keys(&third), strings(&["KEY-G"]));
    assert!(third.next_page_token.is_empty(), "the last page has no token");

    // The default page size (50) holds all seven on one page.
    let whole = page(&app, 0, "").await;
    assert_eq!(page_keys(&whole).len(), 7);
    assert!(whole.next_page_token.is_empty());
}

async fn page_token_stays_valid_while_initiatives_are_created_between_pages(app: TestApp) {
    seven(&app).await;
    let first = page(&app, 3, "").await;
    assert_eq!(page_keys(&first), strings(&["KEY-A", "KEY-B", "KEY-C"]));

    // One before the cursor (KEY-C) and one after the last key.
    create_initiative(&app, OWNER, "KEY-AB", "Before the cursor").await;
    create_initiative(&app, OWNER, "KEY-H", "After the cursor").await;

    let second = page(&app, 3, &first.next_page_token).await;
    assert_eq!(page_keys(&second), strings(&["KEY-D", "KEY-E", "KEY-F"]));
    let third = page(&app, 3, &second.next_page_token).await;
    assert_eq!(page_keys(&third), strings(&["KEY-G", "KEY-H"]));
    assert!(third.next_page_token.is_empty());

    let seen: Vec<String> = [first, second, third].iter().flat_map(page_keys).collect();
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no key is served twice: {seen:?}");
    assert!(!seen.contains(&"KEY-AB".to_owned()), "a key before the cursor is not served late");
}

async fn page_token_with_different_filters_or_not_issued_by_the_service_is_invalid_argument(app: TestApp) {
    seven(&app).await;
    let first = page(&app, 3, "").await;
    let status = app
        .queries()
        .list_alignments(pb::ListAlignmentsRequest {
            page_size: 3,
            page_token: first.next_page_token.clone(),
            text: "key".into(),
            ..Default::default()
        })
        .await
        .expect_err("other filters");
    assert_invalid(&status, "page_token", "was issued for different filters");
    let status = app
        .queries()
        .list_alignments(pb::ListAlignmentsRequest {
            page_token: first.next_page_token.clone(),
            include_archived: true,
            ..Default::default()
        })
        .await
        .expect_err("include_archived changed");
    assert_invalid(&status, "page_token", "was issued for different filters");

    let status = app
        .queries()
        .list_alignments(pb::ListAlignmentsRequest { page_token: "not a token!".into(), ..Default::default() })
        .await
        .expect_err("garbage token");
    assert_invalid(&status, "page_token", "is not a token this service issued");

    // A different page size with the same filters is fine.
    let next = page(&app, 10, &first.next_page_token).await;
    assert_eq!(page_keys(&next), strings(&["KEY-D", "KEY-E", "KEY-F", "KEY-G"]));
}

async fn page_size_over_500_is_invalid_argument_naming_page_size_and_500_is_accepted(app: TestApp) {
    seven(&app).await;
    let status = app
        .queries()
        .list_alignments(pb::ListAlignmentsRequest { page_size: 501, ..Default::default() })
        .await
        .expect_err("501");
    assert_invalid(&status, "page_size", "is 501; at most 500 are allowed");
    assert_eq!(page_keys(&page(&app, 500, "").await).len(), 7);
}

// ---- GetAlignment --------------------------------------------------------------------

async fn alignment_is_the_same_by_id_by_key_and_by_lower_case_key(app: TestApp) {
    let ids = checkout(&app).await;
    let by_key = app.alignment("CHECKOUT-42").await;
    assert_eq!(by_key.initiative_id, ids.initiative_id);
    assert_eq!(app.alignment(&ids.initiative_id).await, by_key);
    assert_eq!(app.alignment("checkout-42").await, by_key);
    let status =
        app.queries().get_alignment(pb::GetAlignmentRequest { initiative: String::new() }).await.expect_err("empty");
    assert_invalid(&status, "initiative", "is required");
}

// ---- GetInbox ------------------------------------------------------------------------

async fn inbox(app: &TestApp, principal: &str) -> Vec<(String, String, String, u32)> {
    let response =
        app.queries().get_inbox(pb::GetInboxRequest { principal: principal.into() }).await.expect("inbox").into_inner();
    assert!(response.items.iter().all(|i| i.state() == pb::FunctionState::Pending), "{response:?}");
    response
        .items
        .into_iter()
        .map(|i| (i.initiative_key, i.decision_id, i.function, i.revision))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

async fn inbox_lists_exactly_the_pending_sign_offs_of_a_principal_and_drops_one_once_signed(app: TestApp) {
    let ids = checkout(&app).await;
    let mut request = new_initiative("ONBOARD-7", "Onboarding");
    request.required_functions = vec!["engineering".into(), "security".into()];
    app.as_(OWNER).create_initiative(request).await.expect("create");
    assign_role(&app, OWNER, "ONBOARD-7", ENGINEER, "engineering", pb::Role::Approver).await;
    assign_role(&app, OWNER, "ONBOARD-7", ENGINEER, "security", pb::Role::Approver).await;
    let onboard = propose_decision(&app, OWNER, "ONBOARD-7", "Single sign-on").await.created_id;

    let checkout_item = ("CHECKOUT-42".to_owned(), ids.decision_id.clone(), "engineering".to_owned(), 1);
    let onboard_eng = ("ONBOARD-7".to_owned(), onboard.clone(), "engineering".to_owned(), 1);
    let onboard_sec = ("ONBOARD-7".to_owned(), onboard.clone(), "security".to_owned(), 1);
    assert_eq!(inbox(&app, ENGINEER).await, vec![checkout_item.clone(), onboard_eng.clone(), onboard_sec.clone()]);
    assert_eq!(
        inbox(&app, DESIGNER).await,
        vec![("CHECKOUT-42".to_owned(), ids.decision_id.clone(), "design".to_owned(), 1)]
    );
    assert_eq!(inbox(&app, DRIVER).await, vec![], "a driver signs nothing");
    assert_eq!(inbox(&app, "nobody@example.com").await, vec![]);

    sign(&app, ENGINEER, &ids.decision_id, "engineering", pb::Verdict::Approve, "").await.expect("approve");
    assert_eq!(inbox(&app, ENGINEER).await, vec![onboard_eng.clone(), onboard_sec.clone()]);
    app.as_(ENGINEER)
        .record_sign_off(sign_off_request("ONBOARD-7", &onboard, "security", pb::Verdict::Approve))
        .await
        .expect("approve security");
    assert_eq!(inbox(&app, ENGINEER).await, vec![onboard_eng]);

    // A rejection is not waiting on anyone's signature either.
    sign(&app, BUSINESS, &ids.decision_id, "business", pb::Verdict::Reject, "Too expensive.").await.expect("reject");
    assert_eq!(inbox(&app, BUSINESS).await, vec![]);
}

async fn inbox_item_returns_at_the_new_revision_when_an_approval_goes_stale(app: TestApp) {
    let ids = checkout(&app).await;
    sign(&app, ENGINEER, &ids.decision_id, "engineering", pb::Verdict::Approve, "").await.expect("approve");
    assert_eq!(inbox(&app, ENGINEER).await, vec![]);
    app.as_(DRIVER)
        .revise_decision(pb::ReviseDecisionRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            decision_id: ids.decision_id.clone(),
            kind: pb::RevisionKind::Material.into(),
            content: content("Use Stripe for payments", "Stripe with 3-D Secure everywhere."),
            required_functions: vec![],
            note: String::new(),
        })
        .await
        .expect("revise");
    let response =
        app.queries().get_inbox(pb::GetInboxRequest { principal: ENGINEER.into() }).await.expect("inbox").into_inner();
    assert_eq!(response.items.len(), 1);
    let item = &response.items[0];
    assert_eq!(
        (item.decision_id.as_str(), item.function.as_str(), item.revision),
        (ids.decision_id.as_str(), "engineering", 2)
    );
    assert_eq!(item.decision_title, "Use Stripe for payments");
    assert_eq!(item.initiative_title, "New checkout");
    assert!(item.reason.contains("went stale at revision 2"), "{item:?}");
}

async fn inbox_drops_every_item_of_an_archived_initiative(app: TestApp) {
    checkout(&app).await;
    assert_eq!(inbox(&app, DESIGNER).await.len(), 1);
    app.as_(OWNER)
        .archive_initiative(pb::ArchiveInitiativeRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            reason: "Cancelled.".into(),
        })
        .await
        .expect("archive");
    assert_eq!(inbox(&app, DESIGNER).await, vec![]);
    let status =
        app.queries().get_inbox(pb::GetInboxRequest { principal: String::new() }).await.expect_err("no principal");
    assert_invalid(&status, "principal", "is required");
}

// ---- GetDecision ---------------------------------------------------------------------

async fn decision_detail_shows_revisions_matrix_with_stale_approvals_marked_history_and_thread(app: TestApp) {
    let ids = checkout(&app).await;
    let d = ids.decision_id.clone();
    sign(&app, ENGINEER, &d, "engineering", pb::Verdict::Approve, "").await.expect("eng approves r1");
    sign(&app, BUSINESS, &d, "business", pb::Verdict::Reject, "Fees too high.").await.expect("business rejects r1");
    sign(&app, BUSINESS, &d, "business", pb::Verdict::Approve, "").await.expect("business approves r1 instead");
    let question =
        feedback_request("CHECKOUT-42", &d, "design", pb::FeedbackKind::Question, "Hosted page or embedded?");
    let question = app.as_(DESIGNER).record_feedback(question).await.expect("question").into_inner();
    let elsewhere = feedback_request("CHECKOUT-42", "", "design", pb::FeedbackKind::Comment, "About the initiative.");
    app.as_(DESIGNER).record_feedback(elsewhere).await.expect("initiative-level comment");
    app.as_(DRIVER)
        .revise_decision(pb::ReviseDecisionRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            decision_id: d.clone(),
            kind: pb::RevisionKind::Material.into(),
            content: content("Use Stripe for payments", "Embedded Stripe Elements."),
            required_functions: vec![],
            note: "Embedded, not hosted.".into(),
        })
        .await
        .expect("material revision");
    sign(&app, DESIGNER, &d, "design", pb::Verdict::Approve, "").await.expect("design approves r2");

    let detail = app
        .queries()
        .get_decision(pb::GetDecisionRequest { initiative: "CHECKOUT-42".into(), decision_id: d.clone() })
        .await
        .expect("decision")
        .into_inner();
    assert_eq!(
        (detail.initiative_id.as_str(), detail.initiative_key.as_str()),
        (ids.initiative_id.as_str(), "CHECKOUT-42")
    );
    assert_eq!(detail.status(), pb::DecisionStatus::Proposed);
    assert_eq!(detail.alignment(), pb::DecisionAlignment::Pending);
    assert_eq!(detail.revision, 2);
    assert_eq!(detail.content.as_ref().map(|c| c.proposal.as_str()), Some("Embedded Stripe Elements."));
    assert_eq!(detail.proposed_by, DRIVER);

    let revisions: Vec<(u32, String, String)> = detail
        .revisions
        .iter()
        .map(|r| (r.number, r.content.as_ref().map(|c| c.proposal.clone()).unwrap_or_default(), r.revised_by.clone()))
        .collect();
    assert_eq!(
        revisions,
        vec![
            (1, "Integrate Stripe Checkout.".to_owned(), DRIVER.to_owned()),
            (2, "Embedded Stripe Elements.".to_owned(), DRIVER.to_owned())
        ]
    );
    assert_eq!(detail.revisions[1].kind(), pb::RevisionKind::Material);
    assert_eq!(detail.revisions[1].note, "Embedded, not hosted.");

    // The matrix: one verdict in force per signer and function; stale approvals do not count.
    let mut matrix: Vec<(String, String, pb::Verdict, u32, bool)> = detail
        .sign_offs
        .iter()
        .map(|s| (s.signer.clone(), s.function.clone(), s.verdict(), s.revision, s.counts))
        .collect();
    matrix.sort();
    assert_eq!(
        matrix,
        vec![
            (BUSINESS.to_owned(), "business".to_owned(), pb::Verdict::Approve, 1, false),
            (DESIGNER.to_owned(), "design".to_owned(), pb::Verdict::Approve, 2, true),
            (ENGINEER.to_owned(), "engineering".to_owned(), pb::Verdict::Approve, 1, false),
        ]
    );

    // The history: every verdict, oldest first, the replaced rejection marked.
    let history: Vec<(String, pb::Verdict, u32, bool, String)> = detail
        .sign_off_history
        .iter()
        .map(|s| (s.signer.clone(), s.verdict(), s.revision, s.replaced, s.reason.clone()))
        .collect();
    assert_eq!(
        history,
        vec![
            (ENGINEER.to_owned(), pb::Verdict::Approve, 1, false, String::new()),
            (BUSINESS.to_owned(), pb::Verdict::Reject, 1, true, "Fees too high.".to_owned()),
            (BUSINESS.to_owned(), pb::Verdict::Approve, 1, false, String::new()),
            (DESIGNER.to_owned(), pb::Verdict::Approve, 2, false, String::new()),
        ]
    );

    let functions: Vec<(String, pb::FunctionState)> =
        detail.functions.iter().map(|f| (f.function.clone(), f.state())).collect();
    assert_eq!(
        functions,
        vec![
            ("business".to_owned(), pb::FunctionState::Pending),
            ("design".to_owned(), pb::FunctionState::Approved),
            ("engineering".to_owned(), pb::FunctionState::Pending),
        ]
    );
    let outstanding: BTreeSet<&str> = detail.outstanding.iter().map(|o| o.function.as_str()).collect();
    assert_eq!(outstanding, BTreeSet::from(["business", "engineering"]));
    assert!(detail.outstanding.iter().all(|o| o.reason.contains("went stale")), "{:?}", detail.outstanding);

    // The thread: feedback on this decision only.
    let thread: Vec<(&str, pb::FeedbackKind, &str)> =
        detail.feedback.iter().map(|f| (f.feedback_id.as_str(), f.kind(), f.author.as_str())).collect();
    assert_eq!(thread, vec![(question.created_id.as_str(), pb::FeedbackKind::Question, DESIGNER)]);
}

// ---- Health and reflection -----------------------------------------------------------

#[sqlx::test(migrator = "accord::store::postgres::MIGRATOR")]
async fn health_service_reports_serving_for_the_server_and_both_accord_services(pool: PgPool) {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    let app = TestApp::spawn(pool).await;
    let mut health = HealthClient::new(app.channel());
    for service in ["", "accord.v1.CommandService", "accord.v1.AlignmentService"] {
        let response =
            health.check(HealthCheckRequest { service: service.into() }).await.expect("health check").into_inner();
        assert_eq!(response.status(), ServingStatus::Serving, "{service:?}");
    }
    let status =
        health.check(HealthCheckRequest { service: "accord.v1.Nothing".into() }).await.expect_err("unknown service");
    assert_eq!(status.code(), Code::NotFound);
}

#[sqlx::test(migrator = "accord::store::postgres::MIGRATOR")]
async fn server_reflection_lists_the_accord_services_and_health(pool: PgPool) {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let app = TestApp::spawn(pool).await;
    let mut reflection = ServerReflectionClient::new(app.channel());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses =
        reflection.server_reflection_info(futures::stream::iter([request])).await.expect("reflection").into_inner();
    let response = responses.message().await.expect("a response").expect("one message");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a list of services, got {response:?}");
    };
    let services: BTreeSet<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in ["accord.v1.CommandService", "accord.v1.AlignmentService", "grpc.health.v1.Health"] {
        assert!(services.contains(expected), "{expected} missing from {services:?}");
    }
}

crate::on_both_stores!(
    list_without_filters_returns_every_unarchived_initiative_in_key_order,
    list_status_filter_returns_only_initiatives_with_that_status,
    list_pending_function_filter_returns_initiatives_where_that_function_is_not_yet_approved,
    list_stage_filter_returns_only_initiatives_in_that_stage,
    list_owner_filter_returns_only_initiatives_of_that_owner,
    list_text_filter_matches_key_or_title_case_insensitively_and_treats_wildcards_literally,
    list_excludes_archived_initiatives_unless_include_archived_is_set,
    list_filters_combine_with_and,
    seven_initiatives_in_pages_of_three_come_as_3_3_1_in_key_order_without_repeats,
    page_token_stays_valid_while_initiatives_are_created_between_pages,
    page_token_with_different_filters_or_not_issued_by_the_service_is_invalid_argument,
    page_size_over_500_is_invalid_argument_naming_page_size_and_500_is_accepted,
    alignment_is_the_same_by_id_by_key_and_by_lower_case_key,
    inbox_lists_exactly_the_pending_sign_offs_of_a_principal_and_drops_one_once_signed,
    inbox_item_returns_at_the_new_revision_when_an_approval_goes_stale,
    inbox_drops_every_item_of_an_archived_initiative,
    decision_detail_shows_revisions_matrix_with_stale_approvals_marked_history_and_thread,
);
