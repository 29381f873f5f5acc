//! Concurrent commands through the API: one initiative's stream takes commands one at a
//! time (an expected version admits exactly one of many racing writers), different
//! initiatives proceed in parallel, and versions stay contiguous under every race.

use std::collections::BTreeSet;

use accord::proto as pb;
use futures::future::join_all;
use tonic::Code;

use crate::support::*;

const FUNCTIONS: [&str; 3] = ["engineering", "design", "business"];

/// RACE-1 with four approvers in each of engineering, design and business, and one
/// proposed decision. Returns (initiative id, decision id, the 12 (approver, function)).
async fn twelve_approvers(app: &TestApp) -> (String, String, Vec<(String, &'static str)>) {
    let created = create_initiative(app, OWNER, "RACE-1", "Twelve approvers").await;
    let mut approvers = Vec::new();
    for function in FUNCTIONS {
        for n in 1..=4 {
            let who = format!("{function}{n}@example.com");
            assign_role(app, OWNER, "RACE-1", &who, function, pb::Role::Approver).await;
            approvers.push((who, function));
        }
    }
    let decision = propose_decision(app, OWNER, "RACE-1", "Ship it").await;
    (created.initiative_id, decision.created_id, approvers)
}

async fn twelve_parallel_sign_offs_with_one_expected_version_admit_exactly_one_and_abort_the_rest(app: TestApp) {
    let (initiative_id, decision_id, approvers) = twelve_approvers(&app).await;
    let before = app.log().await;
    let version = app.alignment("RACE-1").await.version;
    assert_eq!(version, 14, "create + 12 assignments + proposal");

    let calls = approvers.iter().map(|(who, function)| {
        let mut client = app.as_(who);
        let mut request = sign_off_request("RACE-1", &decision_id, function, pb::Verdict::Approve);
        request.options = expecting(version);
        async move { client.record_sign_off(request).await.map(|r| r.into_inner()) }
    });
    let results = join_all(calls).await;

    let winners: Vec<&pb::CommandResponse> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one racer wins: {results:?}");
    assert_eq!(winners[0].stream_version, version + 1);
    for status in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(status.code(), Code::Aborted, "{status:?}");
        assert!(
            status.message().contains(&format!("at version {}, not the expected {version}", version + 1)),
            "{status:?}"
        );
    }

    let log = app.log().await;
    assert_eq!(log.len(), before.len() + 1, "only the winner appended");
    assert_eq!(log[..before.len()], before[..]);
    assert_eq!(log.last().map(|e| e.3.as_str()), Some("SignOffRecorded"));
    assert_eq!(stream_versions(&log, &initiative_id), (1..=15).collect::<Vec<i64>>());
    let view = app.alignment("RACE-1").await;
    assert_eq!(view.version, version + 1);
    assert_eq!(view.approved_pairs, 1, "the projection holds the winner's approval only");
}

async fn twelve_parallel_sign_offs_without_expected_version_all_succeed_with_contiguous_distinct_versions(
    app: TestApp,
) {
    let (initiative_id, decision_id, approvers) = twelve_approvers(&app).await;
    let before = app.log().await;

    let calls = approvers.iter().map(|(who, function)| {
        let mut client = app.as_(who);
        let request = sign_off_request("RACE-1", &decision_id, function, pb::Verdict::Approve);
        async move { client.record_sign_off(request).await.map(|r| r.into_inner()) }
    });
    let responses: Vec<pb::CommandResponse> =
        join_all(calls).await.into_iter().map(|r| r.expect("every sign-off succeeds")).collect();

    let versions: BTreeSet<u64> = responses.iter().map(|r| r.stream_version).collect();
    assert_eq!(versions, (15..=26).collect::<BTreeSet<u64>>(), "one distinct version each: {responses:?}");
    let positions: BTreeSet<u64> = responses.iter().map(|r| r.global_position).collect();
    assert_eq!(positions.len(), 12, "one distinct global position each");

    let log = app.log().await;
    assert_eq!(log.len(), before.len() + 12);
    assert_eq!(stream_versions(&log, &initiative_id), (1..=26).collect::<Vec<i64>>());
    let view = app.alignment("RACE-1").await;
    assert_eq!(view.version, 26);
    assert_eq!(view.status(), pb::InitiativeStatus::Aligned);
    for function in FUNCTIONS {
        assert_eq!(function_state(&view, function), pb::FunctionState::Approved, "{function}");
    }
    let detail = app
        .queries()
        .get_decision(pb::GetDecisionRequest { initiative: "RACE-1".into(), decision_id })
        .await
        .expect("decision")
        .into_inner();
    let signers: BTreeSet<(String, String)> =
        detail.sign_offs.iter().filter(|s| s.counts).map(|s| (s.signer.clone(), s.function.clone())).collect();
    let expected: BTreeSet<(String, String)> =
        approvers.iter().map(|(who, function)| (who.clone(), (*function).to_owned())).collect();
    assert_eq!(signers, expected, "every sign-off is in force");
    assert_eq!(detail.sign_off_history.len(), 12);
}

async fn sixteen_initiatives_created_and_signed_in_parallel_all_succeed_with_contiguous_streams(app: TestApp) {
    let app = &app;
    let work = (0..16).map(|n| async move {
        let key = format!("PAR-{n}");
        let mut request = new_initiative(&key, &format!("Parallel {n}"));
        request.required_functions = vec!["engineering".into()];
        let created = app.as_(OWNER).create_initiative(request).await?.into_inner();
        let engineer = format!("eng{n}@example.com");
        app.as_(OWNER).assign_stakeholder(assignment(&key, &engineer, "engineering", pb::Role::Approver)).await?;
        let decision = app.as_(OWNER).propose_decision(proposal(&key, "Ship it")).await?.into_inner();
        let signed = app
            .as_(&engineer)
            .record_sign_off(sign_off_request(&key, &decision.created_id, "engineering", pb::Verdict::Approve))
            .await?
            .into_inner();
        Ok::<_, tonic::Status>((key, created.initiative_id, signed))
    });
    let done: Vec<(String, String, pb::CommandResponse)> =
        join_all(work).await.into_iter().map(|r| r.expect("every initiative's commands succeed")).collect();

    let log = app.log().await;
    assert_eq!(log.len(), 16 * 4);
    let streams: BTreeSet<_> = log.iter().map(|e| e.1).collect();
    assert_eq!(streams.len(), 16);
    for (key, initiative_id, signed) in &done {
        assert_eq!(stream_versions(&log, initiative_id), vec![1, 2, 3, 4], "{key}");
        assert_eq!(signed.stream_version, 4);
        let view = app.alignment(key).await;
        assert_eq!(view.status(), pb::InitiativeStatus::Aligned, "{key}");
        assert_eq!(view.version, 4);
    }
    let positions: BTreeSet<i64> = log.iter().map(|e| e.0).collect();
    assert_eq!(positions.len(), log.len(), "global positions are unique");
}

async fn one_key_created_by_eight_concurrent_callers_has_one_winner_and_seven_already_exists(app: TestApp) {
    let callers: Vec<String> = (0..8).map(|n| format!("pm{n}@example.com")).collect();
    let calls = callers.iter().map(|who| {
        // Eight administrators: the race is between authorised creators.
        let mut client = app.commands_with(Some(token(who, &[Role::Admin])));
        let request = new_initiative("SAME-1", &format!("Created by {who}"));
        async move { client.create_initiative(request).await.map(|r| r.into_inner()) }
    });
    let results = join_all(calls).await;

    let winners: Vec<usize> = (0..8).filter(|&n| results[n].is_ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for status in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
        assert!(status.message().contains("an initiative with key SAME-1 exists already"), "{status:?}");
    }
    let log = app.log().await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].3, "InitiativeCreated");
    let view = app.alignment("SAME-1").await;
    assert_eq!(view.owner, callers[winners[0]], "the winner owns it");
    assert_eq!(view.title, format!("Created by {}", callers[winners[0]]));
}

/// Two servers on one database (two processes, each with its own head cache) write one
/// initiative in turns, each with the expected version the other just produced. After
/// the other's write, a server's cached head is stale: the version check in the append
/// itself must catch it every time, so that the current expected version is admitted
/// and the one before is refused naming the version the stream is really at — never
/// decided against the stale head.
async fn two_servers_writing_one_initiative_in_turns_never_let_a_stale_cached_head_through(app: TestApp) {
    let other = app.reserve(harness_options()).await;
    let created = create_initiative(&app, OWNER, "TURNS-1", "Two servers, one initiative").await;
    // Both servers know the head (and cache it) before the turns begin.
    for server in [&app, &other] {
        let request = assignment("TURNS-1", "reader@example.com", "design", pb::Role::Informed);
        let mut request = request;
        request.options = expecting(99);
        let refused = server.as_(OWNER).assign_stakeholder(request).await.expect_err("a wrong expected version");
        assert_eq!(refused.code(), Code::Aborted, "{refused:?}");
    }
    for turn in 0..24u64 {
        // The version the stream is at when this turn begins.
        let version = turn + 1;
        let server = if turn % 2 == 0 { &other } else { &app };
        let who = format!("member{turn}@example.com");
        let mut stale = assignment("TURNS-1", &who, "engineering", pb::Role::Contributor);
        stale.options = expecting(version - 1);
        if version > 1 {
            let refused = server.as_(OWNER).assign_stakeholder(stale).await.expect_err("the version before is stale");
            assert_eq!(refused.code(), Code::Aborted, "turn {turn}: {refused:?}");
            assert!(
                refused.message().contains(&format!("at version {version}, not the expected {}", version - 1)),
                "turn {turn}: {refused:?}"
            );
        }
        let mut current = assignment("TURNS-1", &who, "engineering", pb::Role::Contributor);
        current.options = expecting(version);
        let written = server.as_(OWNER).assign_stakeholder(current).await;
        let written = written.unwrap_or_else(|e| panic!("turn {turn}: the current version is admitted: {e:?}"));
        assert_eq!(written.into_inner().stream_version, version + 1, "turn {turn}");
    }
    let log = app.log().await;
    assert_eq!(stream_versions(&log, &created.initiative_id), (1..=25).collect::<Vec<i64>>());
    assert_eq!(app.alignment("TURNS-1").await.version, 25);
}

crate::on_both_stores!(
    twelve_parallel_sign_offs_with_one_expected_version_admit_exactly_one_and_abort_the_rest,
    twelve_parallel_sign_offs_without_expected_version_all_succeed_with_contiguous_distinct_versions,
    sixteen_initiatives_created_and_signed_in_parallel_all_succeed_with_contiguous_streams,
    one_key_created_by_eight_concurrent_callers_has_one_winner_and_seven_already_exists,
    two_servers_writing_one_initiative_in_turns_never_let_a_stale_cached_head_through,
);
