//! SPEC section 4, steps 2-6, end to end through the gRPC API.

use accord::proto as pb;

use crate::support::*;

async fn checkout_scenario_reaches_alignment_through_a_material_revision(app: TestApp) {
    // Steps 2-3: the initiative, its people, the decision and a user-research concern.
    let ids = checkout(&app).await;
    app.as_(DESIGNER)
        .record_feedback(pb::RecordFeedbackRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            decision_id: ids.decision_id.clone(),
            function: "design".into(),
            kind: pb::FeedbackKind::Concern.into(),
            source: pb::FeedbackSource::UserResearch.into(),
            body: "Users in the study distrusted the redirect to a Stripe-hosted page.".into(),
        })
        .await
        .expect("record concern");
    let view = app.alignment("CHECKOUT-42").await;
    assert_eq!(view.status(), pb::InitiativeStatus::Pending);
    assert_eq!((view.approved_pairs, view.total_pairs), (0, 3));
    assert_eq!(view.open_concerns.len(), 1);
    assert_eq!(view.evidence.as_ref().map(|e| e.user_research), Some(1));
    let inbox =
        app.queries().get_inbox(pb::GetInboxRequest { principal: ENGINEER.into() }).await.expect("inbox").into_inner();
    assert_eq!(inbox.items.len(), 1, "engineering's approver has one sign-off waiting");
    assert_eq!(inbox.items[0].function, "engineering");

    // Step 4: engineering and design approve, business objects.
    sign(&app, ENGINEER, &ids.decision_id, "engineering", pb::Verdict::Approve, "").await.expect("eng approves");
    sign(&app, DESIGNER, &ids.decision_id, "design", pb::Verdict::Approve, "").await.expect("design approves");
    let objection = app
        .as_(BUSINESS)
        .record_feedback(pb::RecordFeedbackRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            decision_id: ids.decision_id.clone(),
            function: "business".into(),
            kind: pb::FeedbackKind::Objection.into(),
            source: pb::FeedbackSource::Customer.into(),
            body: "Stripe's fees are above our negotiated rate with Adyen.".into(),
        })
        .await
        .expect("business objects")
        .into_inner();
    let view = app.alignment("CHECKOUT-42").await;
    assert_eq!(view.status(), pb::InitiativeStatus::Blocked);
    assert_eq!(function_state(&view, "business"), pb::FunctionState::Blocked);
    assert_eq!(function_state(&view, "engineering"), pb::FunctionState::Approved);
    assert_eq!(view.open_objections.len(), 1);

    // Step 5: a material revision makes the two approvals stale; the objection stays.
    let revised = app
        .as_(DRIVER)
        .revise_decision(pb::ReviseDecisionRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            decision_id: ids.decision_id.clone(),
            kind: pb::RevisionKind::Material.into(),
            content: content("Use Stripe for payments", "Integrate Stripe with the negotiated enterprise rate."),
            required_functions: vec![],
            note: "Negotiated Stripe's enterprise pricing.".into(),
        })
        .await
        .expect("revise")
        .into_inner();
    let view = app.alignment("CHECKOUT-42").await;
    assert_eq!(view.version, revised.stream_version);
    assert_eq!(function_state(&view, "engineering"), pb::FunctionState::Pending);
    assert_eq!(function_state(&view, "design"), pb::FunctionState::Pending);
    assert_eq!(function_state(&view, "business"), pb::FunctionState::Blocked);
    let mut stale: Vec<_> =
        view.stale_sign_offs.iter().map(|s| (s.signer.as_str(), s.signed_revision, s.stale_since_revision)).collect();
    stale.sort();
    assert_eq!(stale, vec![(DESIGNER, 1, 2), (ENGINEER, 1, 2)]);
    assert_eq!(view.open_objections.len(), 1, "a revision never clears an objection");

    // Step 6: business resolves its objection; all three approve revision 2.
    app.as_(BUSINESS)
        .resolve_feedback(pb::ResolveFeedbackRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            feedback_id: objection.created_id.clone(),
            resolution: "Enterprise rate matches Adyen.".into(),
        })
        .await
        .expect("resolve objection");
    for (who, function) in [(ENGINEER, "engineering"), (DESIGNER, "design"), (BUSINESS, "business")] {
        sign(&app, who, &ids.decision_id, function, pb::Verdict::Approve, "").await.expect("approve revision 2");
    }
    let view = app.alignment("CHECKOUT-42").await;
    assert_eq!(view.status(), pb::InitiativeStatus::Aligned);
    assert_eq!((view.approved_pairs, view.total_pairs), (3, 3));
    assert!((view.score - 1.0).abs() < f64::EPSILON);
    assert!(view.stale_sign_offs.is_empty());

    let accepted = app
        .as_(DRIVER)
        .accept_decision(pb::AcceptDecisionRequest {
            options: None,
            initiative: ids.initiative_id.clone(),
            decision_id: ids.decision_id.clone(),
            override_reason: String::new(),
        })
        .await
        .expect("accept")
        .into_inner();
    let view = app.alignment(&ids.initiative_id).await;
    assert_eq!(view.status(), pb::InitiativeStatus::Aligned);
    assert!(view.overrides.is_empty(), "an aligned acceptance is not an override");
    assert_eq!(view.version, accepted.stream_version);

    let detail = app
        .queries()
        .get_decision(pb::GetDecisionRequest { initiative: "CHECKOUT-42".into(), decision_id: ids.decision_id.clone() })
        .await
        .expect("decision")
        .into_inner();
    assert_eq!(detail.status(), pb::DecisionStatus::Accepted);
    assert_eq!(detail.revisions.len(), 2);
    assert_eq!(detail.revisions[1].kind(), pb::RevisionKind::Material);
    assert_eq!(detail.sign_off_history.len(), 5, "2 approvals of revision 1, 3 of revision 2");
    assert_eq!(detail.sign_offs.iter().filter(|s| s.counts && s.revision == 2).count(), 3);
    assert_eq!(detail.feedback.len(), 2);
    assert_eq!(detail.closed_by, DRIVER);

    // The log holds the whole story, in order, hash-chained.
    let log = app.log().await;
    let types: Vec<&str> = log.iter().map(|(_, _, _, t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        vec![
            "InitiativeCreated",
            "StakeholderAssigned",
            "StakeholderAssigned",
            "StakeholderAssigned",
            "StakeholderAssigned",
            "DecisionProposed",
            "FeedbackRecorded",
            "SignOffRecorded",
            "SignOffRecorded",
            "FeedbackRecorded",
            "DecisionRevised",
            "FeedbackResolved",
            "SignOffRecorded",
            "SignOffRecorded",
            "SignOffRecorded",
            "DecisionAccepted",
        ]
    );
    let versions: Vec<i64> = log.iter().map(|(_, _, v, _, _)| *v).collect();
    assert_eq!(versions, (1..=16).collect::<Vec<i64>>());
}

crate::on_both_stores!(checkout_scenario_reaches_alignment_through_a_material_revision,);
