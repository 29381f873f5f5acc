//! SPEC section 2, command ids: repeating a command with the same id returns the
//! original result and appends nothing new; an id reused for another request is refused.

use accord::proto as pb;
use futures::future::join_all;
use tonic::Code;

use crate::support::*;

/// The parts of a response that a replay must repeat exactly.
fn result_of(response: &pb::CommandResponse) -> (String, u64, u64, String) {
    (response.initiative_id.clone(), response.stream_version, response.global_position, response.created_id.clone())
}

async fn repeated_create_initiative_returns_the_original_result_replayed_and_appends_nothing(app: TestApp) {
    let mut request = new_initiative("PAYMENTS-1", "Payments");
    request.options = options("create-payments");
    let first = app.as_(OWNER).create_initiative(request.clone()).await.expect("create").into_inner();
    assert!(!first.replayed);
    assert_eq!(first.created_id, first.initiative_id, "a create reports the initiative it created");
    assert_eq!(first.stream_version, 1);
    let log = app.log().await;

    for _ in 0..2 {
        let again = app.as_(OWNER).create_initiative(request.clone()).await.expect("repeat").into_inner();
        assert!(again.replayed);
        assert_eq!(result_of(&again), result_of(&first));
        assert_eq!(app.log().await, log);
    }
    assert_eq!(app.alignment("PAYMENTS-1").await.version, 1);
}

async fn repeated_propose_decision_returns_the_same_decision_id_replayed_and_appends_nothing(app: TestApp) {
    let ids = checkout(&app).await;
    let mut request = proposal("CHECKOUT-42", "Use Adyen for payouts");
    request.options = options("propose-adyen");
    let first = app.as_(DRIVER).propose_decision(request.clone()).await.expect("propose").into_inner();
    assert!(!first.replayed);
    assert!(!first.created_id.is_empty() && first.created_id != ids.decision_id);
    let log = app.log().await;

    let again = app.as_(DRIVER).propose_decision(request).await.expect("repeat").into_inner();
    assert!(again.replayed);
    assert_eq!(result_of(&again), result_of(&first));
    assert_eq!(app.log().await, log);
    assert_eq!(app.alignment("CHECKOUT-42").await.decisions.len(), 2, "one decision was added, not two");
}

async fn repeated_record_sign_off_returns_the_original_result_replayed_and_appends_nothing(app: TestApp) {
    let ids = checkout(&app).await;
    let mut request = sign_off_request("CHECKOUT-42", &ids.decision_id, "engineering", pb::Verdict::Approve);
    request.options = options("eng-approves");
    let first = app.as_(ENGINEER).record_sign_off(request.clone()).await.expect("sign").into_inner();
    assert!(!first.replayed);
    assert_eq!(first.stream_version, 7);
    let log = app.log().await;

    let again = app.as_(ENGINEER).record_sign_off(request).await.expect("repeat").into_inner();
    assert!(again.replayed);
    assert_eq!(result_of(&again), result_of(&first));
    assert_eq!(app.log().await, log);
    let detail = app
        .queries()
        .get_decision(pb::GetDecisionRequest { initiative: "CHECKOUT-42".into(), decision_id: ids.decision_id })
        .await
        .expect("decision")
        .into_inner();
    assert_eq!(detail.sign_off_history.len(), 1, "the repeat recorded no second verdict");
}

async fn retry_after_the_stream_moved_on_returns_the_original_result_even_if_its_expected_version_now_conflicts(
    app: TestApp,
) {
    let ids = checkout(&app).await;
    let mut request = sign_off_request("CHECKOUT-42", &ids.decision_id, "engineering", pb::Verdict::Approve);
    request.options = Some(pb::CommandOptions { command_id: "eng-at-6".into(), expected_version: Some(6) });
    let first = app.as_(ENGINEER).record_sign_off(request.clone()).await.expect("sign at version 6").into_inner();
    assert_eq!(first.stream_version, 7);

    sign(&app, DESIGNER, &ids.decision_id, "design", pb::Verdict::Approve, "").await.expect("design approves");
    app.as_(OWNER)
        .archive_initiative(pb::ArchiveInitiativeRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            reason: "Done.".into(),
        })
        .await
        .expect("archive");
    let log = app.log().await;
    assert_eq!(stream_versions(&log, &ids.initiative_id).last(), Some(&9));

    // The stream is at 9 and archived; the retry still gets the stored result of the
    // original command instead of ABORTED or FAILED_PRECONDITION.
    let again = app.as_(ENGINEER).record_sign_off(request).await.expect("retry").into_inner();
    assert!(again.replayed);
    assert_eq!(result_of(&again), result_of(&first));
    assert_eq!(app.log().await, log);
}

async fn reusing_a_command_id_for_a_different_request_is_invalid_argument_naming_command_id(app: TestApp) {
    let ids = checkout(&app).await;
    let mut request = sign_off_request("CHECKOUT-42", &ids.decision_id, "engineering", pb::Verdict::Approve);
    request.options = options("once");
    app.as_(ENGINEER).record_sign_off(request.clone()).await.expect("sign");
    let mut create = new_initiative("PAYMENTS-1", "Payments");
    create.options = options("create-once");
    app.as_(OWNER).create_initiative(create.clone()).await.expect("create");
    let log = app.log().await;

    // Same RPC, different body.
    let mut different = request.clone();
    different.comment = "LGTM".into();
    let status = app.as_(ENGINEER).record_sign_off(different).await.expect_err("same id, other comment");
    assert_invalid(&status, "options.command_id", "\"once\" was already used for a different command");

    // Another RPC on the same initiative.
    let mut assign = assignment("CHECKOUT-42", "ann@example.com", "legal", pb::Role::Approver);
    assign.options = options("once");
    let status = app.as_(OWNER).assign_stakeholder(assign).await.expect_err("same id, other rpc");
    assert_invalid(&status, "options.command_id", "\"once\" was already used for a different command");

    // The same request aimed at another initiative.
    let mut elsewhere = proposal("PAYMENTS-1", "Use Adyen");
    elsewhere.options = options("once");
    let status = app.as_(OWNER).propose_decision(elsewhere).await.expect_err("same id, other initiative");
    assert_invalid(&status, "options.command_id", "\"once\" was already used for a different command");

    // A create with another key.
    create.key = "PAYMENTS-2".into();
    let status = app.as_(OWNER).create_initiative(create).await.expect_err("same id, other key");
    assert_invalid(&status, "options.command_id", "\"create-once\" was already used for a different command");
    assert_eq!(app.log().await, log);
}

async fn a_refused_command_records_nothing_so_its_command_id_stays_free(app: TestApp) {
    let ids = checkout(&app).await;
    let mut request = sign_off_request("CHECKOUT-42", &ids.decision_id, "legal", pb::Verdict::Approve);
    request.options = options("legal-approves");
    let log = app.log().await;
    let status = app.as_("ann@example.com").record_sign_off(request.clone()).await.expect_err("not needed yet");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(app.log().await, log);

    let mut update = pb::UpdateInitiativeRequest {
        initiative: "CHECKOUT-42".into(),
        required_functions: vec!["engineering".into(), "design".into(), "business".into(), "legal".into()],
        ..Default::default()
    };
    update.options = None;
    app.as_(OWNER).update_initiative(update).await.expect("legal is required from now on");
    let mut revise = pb::ReviseDecisionRequest {
        initiative: "CHECKOUT-42".into(),
        decision_id: ids.decision_id.clone(),
        kind: pb::RevisionKind::Editorial.into(),
        content: content("Use Stripe for payments", "Integrate Stripe Checkout."),
        required_functions: vec!["engineering".into(), "design".into(), "business".into(), "legal".into()],
        ..Default::default()
    };
    revise.note = "Legal signs too.".into();
    app.as_(DRIVER).revise_decision(revise).await.expect("decision needs legal");
    assign_role(&app, OWNER, "CHECKOUT-42", "ann@example.com", "legal", pb::Role::Approver).await;

    let done = app.as_("ann@example.com").record_sign_off(request).await.expect("same id, now allowed").into_inner();
    assert!(!done.replayed, "the refused attempt left no stored result to replay");
    assert_eq!(function_state(&app.alignment("CHECKOUT-42").await, "legal"), pb::FunctionState::Approved);
}

async fn eight_concurrent_identical_creates_make_one_initiative_and_eight_identical_responses(app: TestApp) {
    let mut request = new_initiative("PAYMENTS-1", "Payments");
    request.options = options("create-payments-once");
    let calls = (0..8).map(|_| {
        let mut client = app.as_(OWNER);
        let request = request.clone();
        async move { client.create_initiative(request).await.map(|r| r.into_inner()) }
    });
    let responses: Vec<pb::CommandResponse> =
        join_all(calls).await.into_iter().map(|r| r.expect("every duplicate succeeds")).collect();

    let first = result_of(&responses[0]);
    assert!(responses.iter().all(|r| result_of(r) == first), "identical responses: {responses:?}");
    assert_eq!(responses.iter().filter(|r| !r.replayed).count(), 1, "exactly one did the work: {responses:?}");
    let log = app.log().await;
    assert_eq!(log.len(), 1, "one InitiativeCreated: {log:?}");
    assert_eq!(log[0].1.to_string(), first.0);
    let page = app.queries().list_alignments(pb::ListAlignmentsRequest::default()).await.expect("list").into_inner();
    assert_eq!(page.initiatives.len(), 1);
}

async fn eight_concurrent_identical_sign_offs_append_one_event_and_return_identical_results(app: TestApp) {
    let ids = checkout(&app).await;
    let before = app.log().await;
    let mut request = sign_off_request("CHECKOUT-42", &ids.decision_id, "engineering", pb::Verdict::Approve);
    request.options = options("eng-approves-once");
    let calls = (0..8).map(|_| {
        let mut client = app.as_(ENGINEER);
        let request = request.clone();
        async move { client.record_sign_off(request).await.map(|r| r.into_inner()) }
    });
    let responses: Vec<pb::CommandResponse> =
        join_all(calls).await.into_iter().map(|r| r.expect("every duplicate succeeds")).collect();
    assert!(responses.iter().all(|r| result_of(r) == result_of(&responses[0])), "{responses:?}");
    assert_eq!(responses.iter().filter(|r| !r.replayed).count(), 1, "{responses:?}");
    let log = app.log().await;
    assert_eq!(log.len(), before.len() + 1);
    assert_eq!(log.last().map(|e| e.3.as_str()), Some("SignOffRecorded"));
}

async fn another_caller_reusing_a_command_id_gets_invalid_argument_not_a_replay_of_someone_elses_result(app: TestApp) {
    let ids = checkout(&app).await;
    let mut request = sign_off_request("CHECKOUT-42", &ids.decision_id, "engineering", pb::Verdict::Approve);
    request.options = options("approve-engineering");
    app.as_(ENGINEER).record_sign_off(request.clone()).await.expect("the engineer approves");
    let log = app.log().await;

    // The same bytes from someone who may not sign for engineering must not be told
    // that their sign-off succeeded: the command is the caller's, not the request's.
    let status = app.as_(DESIGNER).record_sign_off(request).await.expect_err("not the designer's command");
    assert_invalid(&status, "options.command_id", "\"approve-engineering\" was already used for a different command");
    assert_eq!(app.log().await, log);
}

crate::on_both_stores!(
    repeated_create_initiative_returns_the_original_result_replayed_and_appends_nothing,
    repeated_propose_decision_returns_the_same_decision_id_replayed_and_appends_nothing,
    repeated_record_sign_off_returns_the_original_result_replayed_and_appends_nothing,
    retry_after_the_stream_moved_on_returns_the_original_result_even_if_its_expected_version_now_conflicts,
    reusing_a_command_id_for_a_different_request_is_invalid_argument_naming_command_id,
    a_refused_command_records_nothing_so_its_command_id_stays_free,
    eight_concurrent_identical_creates_make_one_initiative_and_eight_identical_responses,
    eight_concurrent_identical_sign_offs_append_one_event_and_return_identical_results,
    another_caller_reusing_a_command_id_gets_invalid_argument_not_a_replay_of_someone_elses_result,
);
