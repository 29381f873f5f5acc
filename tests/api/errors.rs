//! SPEC section 2, errors: every gRPC code the service promises, provoked through the
//! API, with a precise message (naming the field or the thing), the wrong field in the
//! `BadRequest` details for bad input, and the log unchanged after every refusal.

use accord::proto as pb;
use tonic::{Code, Request};
use tonic_types::StatusExt;

use crate::support::*;

fn reject_request(initiative: &str, decision_id: &str, function: &str) -> pb::RecordSignOffRequest {
    sign_off_request(initiative, decision_id, function, pb::Verdict::Reject)
}

// ---- INVALID_ARGUMENT ----------------------------------------------------------------

async fn empty_or_blank_title_is_invalid_argument_naming_title_and_writes_nothing(app: TestApp) {
    checkout(&app).await;
    for title in ["", "   \t "] {
        let before = app.log().await;
        let status =
            app.as_(OWNER).create_initiative(new_initiative("PAYMENTS-1", title)).await.expect_err("blank title");
        assert_invalid(&status, "title", "must not be empty");
        assert_eq!(app.log().await, before);
    }
    let before = app.log().await;
    let mut request = proposal("CHECKOUT-42", "");
    request.content.as_mut().expect("content").title = " ".into();
    let status = app.as_(DRIVER).propose_decision(request).await.expect_err("blank decision title");
    assert_invalid(&status, "content.title", "must not be empty");
    assert_eq!(app.log().await, before);
}

async fn title_over_200_characters_is_invalid_argument_and_200_multibyte_characters_are_accepted(app: TestApp) {
    checkout(&app).await;
    let before = app.log().await;
    let status =
        app.as_(OWNER).create_initiative(new_initiative("PAYMENTS-1", &"x".repeat(201))).await.expect_err("201 chars");
    assert_invalid(&status, "title", "is 201 characters long; at most 200 are allowed");
    assert_eq!(app.log().await, before);

    let mut request = proposal("CHECKOUT-42", &"t".repeat(201));
    request.options = options("long-decision-title");
    let status = app.as_(DRIVER).propose_decision(request).await.expect_err("201-char decision title");
    assert_invalid(&status, "content.title", "is 201 characters long; at most 200 are allowed");
    assert_eq!(app.log().await, before);

    // The limit counts characters, not bytes: 200 two-byte characters fit.
    let title = "é".repeat(200);
    app.as_(OWNER).create_initiative(new_initiative("PAYMENTS-1", &title)).await.expect("200 characters fit");
    assert_eq!(app.alignment("PAYMENTS-1").await.title, title);
}

async fn text_over_20000_characters_is_invalid_argument_naming_the_field_and_20000_are_accepted(app: TestApp) {
    let ids = checkout(&app).await;
    let before = app.log().await;

    let too_long = "b".repeat(20_001);
    let request = feedback_request("CHECKOUT-42", &ids.decision_id, "design", pb::FeedbackKind::Comment, &too_long);
    let status = app.as_(DESIGNER).record_feedback(request).await.expect_err("20001-char body");
    assert_invalid(&status, "body", "is 20001 characters long; at most 20000 are allowed");
    assert_eq!(app.log().await, before);

    let mut request = proposal("CHECKOUT-42", "Use Adyen");
    request.content.as_mut().expect("content").context = too_long.clone();
    let status = app.as_(DRIVER).propose_decision(request).await.expect_err("20001-char context");
    assert_invalid(&status, "content.context", "is 20001 characters long; at most 20000 are allowed");
    assert_eq!(app.log().await, before);

    let mut request = new_initiative("PAYMENTS-1", "Payments");
    request.summary = too_long;
    let status = app.as_(OWNER).create_initiative(request).await.expect_err("20001-char summary");
    assert_invalid(&status, "summary", "is 20001 characters long; at most 20000 are allowed");
    assert_eq!(app.log().await, before);

    let exactly = "b".repeat(20_000);
    let request = feedback_request("CHECKOUT-42", &ids.decision_id, "design", pb::FeedbackKind::Comment, &exactly);
    app.as_(DESIGNER).record_feedback(request).await.expect("20000 characters fit");
    assert_eq!(app.log().await.len(), before.len() + 1);
}

async fn nul_character_in_text_is_invalid_argument_naming_the_field(app: TestApp) {
    let ids = checkout(&app).await;
    let before = app.log().await;

    let mut request = new_initiative("PAYMENTS-1", "Payments");
    request.summary = "before\0after".into();
    let status = app.as_(OWNER).create_initiative(request).await.expect_err("NUL in summary");
    assert_invalid(&status, "summary", "must not contain NUL characters");

    let request = feedback_request("CHECKOUT-42", &ids.decision_id, "design", pb::FeedbackKind::Comment, "looks\0fine");
    let status = app.as_(DESIGNER).record_feedback(request).await.expect_err("NUL in body");
    assert_invalid(&status, "body", "must not contain NUL characters");

    let mut request = proposal("CHECKOUT-42", "Use Adyen");
    request.content.as_mut().expect("content").proposal = "\0".into();
    let status = app.as_(DRIVER).propose_decision(request).await.expect_err("NUL in proposal");
    assert_invalid(&status, "content.proposal", "must not contain NUL characters");
    assert_eq!(app.log().await, before);
}

async fn malformed_or_missing_uuid_is_invalid_argument_naming_the_id_field(app: TestApp) {
    checkout(&app).await;
    let before = app.log().await;

    let request = sign_off_request("CHECKOUT-42", "not-a-uuid", "engineering", pb::Verdict::Approve);
    let status = app.as_(ENGINEER).record_sign_off(request).await.expect_err("malformed decision_id");
    assert_invalid(&status, "decision_id", "\"not-a-uuid\" is not a valid UUID");

    let request = sign_off_request("CHECKOUT-42", "", "engineering", pb::Verdict::Approve);
    let status = app.as_(ENGINEER).record_sign_off(request).await.expect_err("empty decision_id");
    assert_invalid(&status, "decision_id", "is required");

    let status = app
        .as_(DRIVER)
        .resolve_feedback(pb::ResolveFeedbackRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            feedback_id: "1234".into(),
            resolution: "Done.".into(),
        })
        .await
        .expect_err("malformed feedback_id");
    assert_invalid(&status, "feedback_id", "\"1234\" is not a valid UUID");

    let status = app
        .queries()
        .get_decision(pb::GetDecisionRequest { initiative: "CHECKOUT-42".into(), decision_id: "zzz".into() })
        .await
        .expect_err("malformed decision_id in a query");
    assert_invalid(&status, "decision_id", "\"zzz\" is not a valid UUID");
    assert_eq!(app.log().await, before);
}

async fn unknown_enum_value_is_invalid_argument_naming_the_field_and_the_value(app: TestApp) {
    let ids = checkout(&app).await;
    let before = app.log().await;

    let mut request = sign_off_request("CHECKOUT-42", &ids.decision_id, "engineering", pb::Verdict::Approve);
    request.verdict = 99;
    let status = app.as_(ENGINEER).record_sign_off(request).await.expect_err("verdict 99");
    assert_invalid(&status, "verdict", "unknown value 99");

    let mut request = assignment("CHECKOUT-42", "ann@example.com", "legal", pb::Role::Approver);
    request.role = 42;
    let status = app.as_(OWNER).assign_stakeholder(request).await.expect_err("role 42");
    assert_invalid(&status, "role", "unknown value 42");

    let mut request = new_initiative("PAYMENTS-1", "Payments");
    request.stage = 7;
    let status = app.as_(OWNER).create_initiative(request).await.expect_err("stage 7");
    assert_invalid(&status, "stage", "unknown value 7");

    let status = app
        .queries()
        .list_alignments(pb::ListAlignmentsRequest { status: -1, ..Default::default() })
        .await
        .expect_err("status -1");
    assert_invalid(&status, "status", "unknown value -1");
    assert_eq!(app.log().await, before);
}

async fn unspecified_required_enum_is_invalid_argument_saying_it_is_required(app: TestApp) {
    let ids = checkout(&app).await;
    let before = app.log().await;

    let mut request = sign_off_request("CHECKOUT-42", &ids.decision_id, "engineering", pb::Verdict::Approve);
    request.verdict = pb::Verdict::Unspecified.into();
    let status = app.as_(ENGINEER).record_sign_off(request).await.expect_err("no verdict");
    assert_invalid(&status, "verdict", "is required (approve or reject)");

    let request = assignment("CHECKOUT-42", "ann@example.com", "legal", pb::Role::Unspecified);
    let status = app.as_(OWNER).assign_stakeholder(request).await.expect_err("no role");
    assert_invalid(&status, "role", "is required");

    let status = app
        .as_(DRIVER)
        .revise_decision(pb::ReviseDecisionRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            decision_id: ids.decision_id.clone(),
            kind: pb::RevisionKind::Unspecified.into(),
            content: content("Use Stripe for payments", "Something else."),
            required_functions: vec![],
            note: String::new(),
        })
        .await
        .expect_err("no revision kind");
    assert_invalid(&status, "kind", "is required (material or editorial)");

    let request = feedback_request("CHECKOUT-42", "", "design", pb::FeedbackKind::Unspecified, "Hmm.");
    let status = app.as_(DESIGNER).record_feedback(request).await.expect_err("no feedback kind");
    assert_invalid(&status, "kind", "is required");

    let status = app
        .as_(OWNER)
        .change_stage(pb::ChangeStageRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            stage: pb::Stage::Unspecified.into(),
        })
        .await
        .expect_err("no stage");
    assert_invalid(&status, "stage", "is required");
    assert_eq!(app.log().await, before);
}

async fn badly_shaped_initiative_key_is_invalid_argument_naming_key_with_the_rule(app: TestApp) {
    checkout(&app).await;
    let before = app.log().await;
    let too_long = format!("K{}", "-1".repeat(16));
    for key in ["checkout 42", "42-CHECKOUT", "C", "CHECKOUT--42", "CHECKOUT-", "CHECKOUT_42", "ÄPFEL-1", &too_long] {
        let status = app.as_(OWNER).create_initiative(new_initiative(key, "Payments")).await.expect_err(key);
        assert_invalid(&status, "key", &format!("{key:?} must be 2-32 upper-case letters, digits and dashes"));
    }
    let status = app.as_(OWNER).create_initiative(new_initiative("", "Payments")).await.expect_err("no key");
    assert_invalid(&status, "key", "is required");

    // The initiative a command targets is a UUID or a key, and is checked the same way.
    let request = assignment("not a key!", "ann@example.com", "legal", pb::Role::Approver);
    let status = app.as_(OWNER).assign_stakeholder(request).await.expect_err("bad initiative");
    assert_invalid(&status, "initiative", "\"not a key!\" must be 2-32 upper-case letters");
    let request = assignment("", "ann@example.com", "legal", pb::Role::Approver);
    let status = app.as_(OWNER).assign_stakeholder(request).await.expect_err("no initiative");
    assert_invalid(&status, "initiative", "is required (an initiative id or key)");
    assert_eq!(app.log().await, before);
}

async fn bad_function_slug_is_invalid_argument_naming_the_function_field(app: TestApp) {
    let ids = checkout(&app).await;
    let before = app.log().await;

    for function in ["Engineering", "eng ineering", "-legal", "légal", &"f".repeat(33)] {
        let request = assignment("CHECKOUT-42", "ann@example.com", function, pb::Role::Approver);
        let status = app.as_(OWNER).assign_stakeholder(request).await.expect_err(function);
        assert_invalid(&status, "function", &format!("{function:?} is not a function"));
    }

    let request = sign_off_request("CHECKOUT-42", &ids.decision_id, "", pb::Verdict::Approve);
    let status = app.as_(ENGINEER).record_sign_off(request).await.expect_err("no function");
    assert_invalid(&status, "function", "is required");

    let mut request = new_initiative("PAYMENTS-1", "Payments");
    request.required_functions = vec!["legal".into(), "Legal!".into()];
    let status = app.as_(OWNER).create_initiative(request).await.expect_err("bad required function");
    assert_invalid(&status, "required_functions", "\"Legal!\" is not a function");

    let mut request = new_initiative("PAYMENTS-1", "Payments");
    request.required_functions = vec!["legal".into(), "legal".into()];
    let status = app.as_(OWNER).create_initiative(request).await.expect_err("duplicate required function");
    assert_invalid(&status, "required_functions", "names \"legal\" twice");
    assert_eq!(app.log().await, before);
}

async fn bad_command_id_is_invalid_argument_naming_options_command_id(app: TestApp) {
    let ids = checkout(&app).await;
    let before = app.log().await;
    for command_id in ["has spaces".to_owned(), "c".repeat(129), "ключ".to_owned(), "tab\there".to_owned()] {
        let mut request = sign_off_request("CHECKOUT-42", &ids.decision_id, "engineering", pb::Verdict::Approve);
        request.options = options(&command_id);
        let status = app.as_(ENGINEER).record_sign_off(request).await.expect_err(&command_id);
        assert_invalid(&status, "options.command_id", "must be 1-128 printable ASCII characters without spaces");
    }
    assert_eq!(app.log().await, before);

    // 128 printable characters are a valid id.
    let mut request = sign_off_request("CHECKOUT-42", &ids.decision_id, "engineering", pb::Verdict::Approve);
    request.options = options(&"c".repeat(128));
    app.as_(ENGINEER).record_sign_off(request).await.expect("128-char command id");
}

async fn bad_correlation_or_causation_metadata_is_invalid_argument_naming_the_header(app: TestApp) {
    let ids = checkout(&app).await;
    let before = app.log().await;
    let cases = [
        ("x-correlation-id", "has space".to_owned()),
        ("x-correlation-id", "c".repeat(129)),
        ("x-causation-id", "also has space".to_owned()),
    ];
    for (header, value) in cases {
        let mut request =
            Request::new(sign_off_request("CHECKOUT-42", &ids.decision_id, "engineering", pb::Verdict::Approve));
        request.metadata_mut().insert(header, value.parse().expect("metadata value"));
        let status = app.as_(ENGINEER).record_sign_off(request).await.expect_err(header);
        assert_invalid(&status, header, "must be 1-128 printable ASCII characters without spaces");
    }
    assert_eq!(app.log().await, before);
}

async fn rejection_without_reason_and_bad_principal_are_invalid_argument_naming_the_field(app: TestApp) {
    let ids = checkout(&app).await;
    let before = app.log().await;

    let mut request = reject_request("CHECKOUT-42", &ids.decision_id, "business");
    request.reason = "  ".into();
    let status = app.as_(BUSINESS).record_sign_off(request).await.expect_err("reject without reason");
    assert_invalid(&status, "reason", "is required to reject");

    let request = assignment("CHECKOUT-42", "ann @example.com", "legal", pb::Role::Approver);
    let status = app.as_(OWNER).assign_stakeholder(request).await.expect_err("principal with a space");
    assert_invalid(&status, "principal", "must not contain whitespace or control characters");

    let mut request = proposal("CHECKOUT-42", "Use Adyen");
    request.content = None;
    let status = app.as_(DRIVER).propose_decision(request).await.expect_err("no content");
    assert_invalid(&status, "content", "is required");
    assert_eq!(app.log().await, before);
}

// ---- NOT_FOUND -----------------------------------------------------------------------

async fn unknown_initiative_by_id_or_key_is_not_found_naming_it(app: TestApp) {
    let ids = checkout(&app).await;
    let before = app.log().await;
    let unknown = uuid::Uuid::now_v7().to_string();

    let request = sign_off_request(&unknown, &ids.decision_id, "engineering", pb::Verdict::Approve);
    let status = app.as_(ENGINEER).record_sign_off(request).await.expect_err("unknown id");
    assert_status(&status, Code::NotFound, &[&format!("initiative {unknown} not found")]);

    let request = assignment("NOPE-1", "ann@example.com", "legal", pb::Role::Approver);
    let status = app.as_(OWNER).assign_stakeholder(request).await.expect_err("unknown key");
    assert_status(&status, Code::NotFound, &["initiative NOPE-1 not found"]);

    // A lower-case key is the same key, so the message names it upper-cased.
    let request = assignment("nope-1", "ann@example.com", "legal", pb::Role::Approver);
    let status = app.as_(OWNER).assign_stakeholder(request).await.expect_err("unknown lower-case key");
    assert_status(&status, Code::NotFound, &["initiative NOPE-1 not found"]);
    assert_eq!(app.log().await, before);

    let status = app
        .queries()
        .get_alignment(pb::GetAlignmentRequest { initiative: unknown.clone() })
        .await
        .expect_err("query unknown id");
    assert_status(&status, Code::NotFound, &[&format!("initiative {unknown} not found")]);
    let status = app
        .queries()
        .get_alignment(pb::GetAlignmentRequest { initiative: "NOPE-1".into() })
        .await
        .expect_err("query unknown key");
    assert_status(&status, Code::NotFound, &["initiative NOPE-1 not found"]);
}

async fn unknown_decision_id_is_not_found_naming_the_decision_and_initiative(app: TestApp) {
    checkout(&app).await;
    let before = app.log().await;
    let unknown = uuid::Uuid::now_v7().to_string();

    let request = sign_off_request("CHECKOUT-42", &unknown, "engineering", pb::Verdict::Approve);
    let status = app.as_(ENGINEER).record_sign_off(request).await.expect_err("unknown decision");
    assert_status(&status, Code::NotFound, &[&format!("decision {unknown} not found on initiative CHECKOUT-42")]);

    let status = app.as_(DRIVER).accept_decision(acceptance("CHECKOUT-42", &unknown, "")).await.expect_err("accept");
    assert_status(&status, Code::NotFound, &[&format!("decision {unknown} not found on initiative CHECKOUT-42")]);
    assert_eq!(app.log().await, before);

    let status = app
        .queries()
        .get_decision(pb::GetDecisionRequest { initiative: "CHECKOUT-42".into(), decision_id: unknown.clone() })
        .await
        .expect_err("query unknown decision");
    assert_status(&status, Code::NotFound, &[&format!("decision {unknown} not found on initiative CHECKOUT-42")]);
}

async fn unknown_feedback_id_is_not_found_naming_the_feedback(app: TestApp) {
    checkout(&app).await;
    let before = app.log().await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let status = app
        .as_(DRIVER)
        .resolve_feedback(pb::ResolveFeedbackRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            feedback_id: unknown.clone(),
            resolution: "Done.".into(),
        })
        .await
        .expect_err("unknown feedback");
    assert_status(&status, Code::NotFound, &[&format!("feedback {unknown} not found on initiative CHECKOUT-42")]);
    let status = app
        .as_(DRIVER)
        .reopen_feedback(pb::ReopenFeedbackRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            feedback_id: unknown.clone(),
            reason: String::new(),
        })
        .await
        .expect_err("unknown feedback");
    assert_status(&status, Code::NotFound, &[&format!("feedback {unknown} not found")]);
    assert_eq!(app.log().await, before);
}

async fn removing_a_role_nobody_holds_is_not_found_naming_person_role_and_function(app: TestApp) {
    checkout(&app).await;
    let before = app.log().await;
    let status = app
        .as_(OWNER)
        .remove_stakeholder(pb::RemoveStakeholderRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            principal: ENGINEER.into(),
            function: "design".into(),
            role: pb::Role::Approver.into(),
        })
        .await
        .expect_err("not assigned");
    assert_status(&status, Code::NotFound, &["eve@example.com is not approver for design on CHECKOUT-42"]);
    assert_eq!(app.log().await, before);
}

// ---- ALREADY_EXISTS ------------------------------------------------------------------

async fn duplicate_initiative_key_in_any_case_is_already_exists_naming_the_key(app: TestApp) {
    checkout(&app).await;
    let before = app.log().await;
    for (who, key) in [(OWNER, "CHECKOUT-42"), (DRIVER, "checkout-42"), (ENGINEER, " Checkout-42 ")] {
        let mut admin = app.commands_with(Some(token(who, &[Role::Admin])));
        let status = admin.create_initiative(new_initiative(key, "Another checkout")).await.expect_err("duplicate key");
        assert_status(&status, Code::AlreadyExists, &["CHECKOUT-42", "exists already"]);
    }
    assert_eq!(app.log().await, before);
    assert_eq!(app.alignment("CHECKOUT-42").await.title, "New checkout", "the original is untouched");
}

async fn duplicate_stakeholder_assignment_is_already_exists_naming_person_role_and_function(app: TestApp) {
    checkout(&app).await;
    let before = app.log().await;
    let request = assignment("CHECKOUT-42", ENGINEER, "engineering", pb::Role::Approver);
    let status = app.as_(OWNER).assign_stakeholder(request).await.expect_err("duplicate assignment");
    assert_status(
        &status,
        Code::AlreadyExists,
        &["eve@example.com is already approver for engineering on CHECKOUT-42"],
    );
    assert_eq!(app.log().await, before);

    // The same person in another role of the same function is a different assignment.
    let request = assignment("CHECKOUT-42", ENGINEER, "engineering", pb::Role::Contributor);
    app.as_(OWNER).assign_stakeholder(request).await.expect("another role");
}

// ---- FAILED_PRECONDITION -------------------------------------------------------------

async fn signing_a_withdrawn_decision_is_failed_precondition_naming_its_status(app: TestApp) {
    let ids = checkout(&app).await;
    app.as_(DRIVER)
        .withdraw_decision(pb::WithdrawDecisionRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            decision_id: ids.decision_id.clone(),
            reason: "Postponed.".into(),
        })
        .await
        .expect("withdraw");
    let before = app.log().await;
    let status = sign(&app, ENGINEER, &ids.decision_id, "engineering", pb::Verdict::Approve, "")
        .await
        .expect_err("sign withdrawn");
    assert_status(
        &status,
        Code::FailedPrecondition,
        &[&format!("decision {} is withdrawn; only proposed decisions can be signed", ids.decision_id)],
    );
    assert_eq!(app.log().await, before);
}

async fn signing_a_superseded_decision_is_failed_precondition_naming_its_status(app: TestApp) {
    let ids = checkout(&app).await;
    app.as_(DRIVER)
        .accept_decision(acceptance("CHECKOUT-42", &ids.decision_id, "Deadline."))
        .await
        .expect("accept the first decision");
    let mut request = proposal("CHECKOUT-42", "Use Adyen for payments");
    request.supersedes = ids.decision_id.clone();
    let second = app.as_(DRIVER).propose_decision(request).await.expect("propose replacement").into_inner();
    app.as_(DRIVER)
        .accept_decision(acceptance("CHECKOUT-42", &second.created_id, "Contract signed."))
        .await
        .expect("accepting the replacement supersedes the first");
    let detail = app
        .queries()
        .get_decision(pb::GetDecisionRequest { initiative: "CHECKOUT-42".into(), decision_id: ids.decision_id.clone() })
        .await
        .expect("first decision")
        .into_inner();
    assert_eq!(detail.status(), pb::DecisionStatus::Superseded);
    assert_eq!(detail.superseded_by, second.created_id);

    let before = app.log().await;
    let status = sign(&app, ENGINEER, &ids.decision_id, "engineering", pb::Verdict::Approve, "")
        .await
        .expect_err("sign superseded");
    assert_status(
        &status,
        Code::FailedPrecondition,
        &[&format!("decision {} is superseded; only proposed decisions can be signed", ids.decision_id)],
    );
    assert_eq!(app.log().await, before);
}

async fn accepting_unaligned_decision_needs_an_override_reason_which_the_alignment_then_shows(app: TestApp) {
    let ids = checkout(&app).await;
    sign(&app, ENGINEER, &ids.decision_id, "engineering", pb::Verdict::Approve, "").await.expect("eng approves");
    let before = app.log().await;
    for reason in ["", "   "] {
        let status = app
            .as_(DRIVER)
            .accept_decision(acceptance("CHECKOUT-42", &ids.decision_id, reason))
            .await
            .expect_err("unaligned without reason");
        assert_status(
            &status,
            Code::FailedPrecondition,
            &[
                &format!("decision {} is not aligned (business pending, design pending)", ids.decision_id),
                "override reason",
            ],
        );
        assert!(!status.message().contains("engineering"), "approved functions are not listed: {status:?}");
        assert_eq!(app.log().await, before);
    }

    let why = "Launch date is contractual; design reviews after launch.";
    app.as_(DRIVER)
        .accept_decision(acceptance("CHECKOUT-42", &ids.decision_id, why))
        .await
        .expect("accept with override");
    let view = app.alignment("CHECKOUT-42").await;
    assert_eq!(view.overrides.len(), 1);
    let recorded = &view.overrides[0];
    assert_eq!(recorded.decision_id, ids.decision_id);
    assert_eq!(recorded.accepted_by, DRIVER);
    assert_eq!(recorded.reason, why);
    let unaligned: Vec<(&str, pb::FunctionState)> =
        recorded.unaligned.iter().map(|f| (f.function.as_str(), f.state())).collect();
    assert_eq!(unaligned, vec![("business", pb::FunctionState::Pending), ("design", pb::FunctionState::Pending)]);

    let detail = app
        .queries()
        .get_decision(pb::GetDecisionRequest { initiative: "CHECKOUT-42".into(), decision_id: ids.decision_id.clone() })
        .await
        .expect("decision")
        .into_inner();
    assert_eq!(detail.status(), pb::DecisionStatus::Accepted);
    let shown = detail.r#override.expect("the decision shows its override");
    assert_eq!((shown.accepted_by.as_str(), shown.reason.as_str()), (DRIVER, why));
    assert_eq!(detail.closed_by, DRIVER);
}

async fn objection_on_a_closed_decision_is_failed_precondition(app: TestApp) {
    let ids = checkout(&app).await;
    app.as_(DRIVER)
        .accept_decision(acceptance("CHECKOUT-42", &ids.decision_id, "Deadline."))
        .await
        .expect("accept with override");
    let before = app.log().await;
    let request = feedback_request("CHECKOUT-42", &ids.decision_id, "business", pb::FeedbackKind::Objection, "No!");
    let status = app.as_(BUSINESS).record_feedback(request).await.expect_err("objection on accepted");
    assert_status(
        &status,
        Code::FailedPrecondition,
        &[&format!(
            "decision {} is accepted; objections can only be raised against proposed decisions",
            ids.decision_id
        )],
    );
    assert_eq!(app.log().await, before);
}

async fn signing_a_stale_revision_number_is_failed_precondition_naming_both_revisions(app: TestApp) {
    let ids = checkout(&app).await;
    app.as_(DRIVER)
        .revise_decision(pb::ReviseDecisionRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            decision_id: ids.decision_id.clone(),
            kind: pb::RevisionKind::Material.into(),
            content: content("Use Stripe for payments", "Integrate Stripe Elements instead."),
            required_functions: vec![],
            note: String::new(),
        })
        .await
        .expect("revise");
    let before = app.log().await;
    let mut request = sign_off_request("CHECKOUT-42", &ids.decision_id, "engineering", pb::Verdict::Approve);
    request.revision = Some(1);
    let status = app.as_(ENGINEER).record_sign_off(request.clone()).await.expect_err("stale revision");
    assert_status(
        &status,
        Code::FailedPrecondition,
        &[&format!("you signed revision 1 but decision {} is at revision 2", ids.decision_id)],
    );
    assert_eq!(app.log().await, before);

    request.revision = Some(2);
    app.as_(ENGINEER).record_sign_off(request).await.expect("current revision");
}

async fn every_command_on_an_archived_initiative_is_failed_precondition_naming_who_archived(app: TestApp) {
    let ids = checkout(&app).await;
    app.as_(OWNER)
        .archive_initiative(pb::ArchiveInitiativeRequest {
            options: None,
            initiative: "CHECKOUT-42".into(),
            reason: "Cancelled.".into(),
        })
        .await
        .expect("archive");
    let before = app.log().await;
    let says = "initiative CHECKOUT-42 was archived by pm@example.com and takes no more commands";

    let status =
        sign(&app, ENGINEER, &ids.decision_id, "engineering", pb::Verdict::Approve, "").await.expect_err("sign");
    assert_status(&status, Code::FailedPrecondition, &[says]);
    let status = app.as_(DRIVER).propose_decision(proposal("CHECKOUT-42", "Adyen")).await.expect_err("propose");
    assert_status(&status, Code::FailedPrecondition, &[says]);
    let request = assignment("CHECKOUT-42", "ann@example.com", "legal", pb::Role::Approver);
    let status = app.as_(OWNER).assign_stakeholder(request).await.expect_err("assign");
    assert_status(&status, Code::FailedPrecondition, &[says]);
    let status = app
        .as_(OWNER)
        .archive_initiative(pb::ArchiveInitiativeRequest {
            options: None,
            initiative: ids.initiative_id.clone(),
            reason: String::new(),
        })
        .await
        .expect_err("archive twice");
    assert_status(&status, Code::FailedPrecondition, &[says]);
    assert_eq!(app.log().await, before);
}

async fn signing_for_a_function_the_decision_does_not_need_is_failed_precondition_listing_needed(app: TestApp) {
    let ids = checkout(&app).await;
    assign_role(&app, OWNER, "CHECKOUT-42", "ann@example.com", "legal", pb::Role::Approver).await;
    let before = app.log().await;
    let status =
        sign(&app, "ann@example.com", &ids.decision_id, "legal", pb::Verdict::Approve, "").await.expect_err("legal");
    assert_status(
        &status,
        Code::FailedPrecondition,
        &[&format!(
            "decision {} does not need a sign-off from legal (it needs business, design, engineering)",
            ids.decision_id
        )],
    );
    assert_eq!(app.log().await, before);
}

// ---- PERMISSION_DENIED ---------------------------------------------------------------

async fn signing_for_a_function_one_is_not_approver_of_is_permission_denied(app: TestApp) {
    let ids = checkout(&app).await;
    let before = app.log().await;
    let status =
        sign(&app, ENGINEER, &ids.decision_id, "design", pb::Verdict::Approve, "").await.expect_err("eng for design");
    assert_status(&status, Code::PermissionDenied, &["eve@example.com is not an approver for design on CHECKOUT-42"]);
    // The driver runs the decision but does not sign for a function.
    let status =
        sign(&app, DRIVER, &ids.decision_id, "business", pb::Verdict::Approve, "").await.expect_err("driver signs");
    assert_status(&status, Code::PermissionDenied, &["dana@example.com is not an approver for business"]);
    assert_eq!(app.log().await, before);
    assert_eq!(function_state(&app.alignment("CHECKOUT-42").await, "design"), pb::FunctionState::Pending);
}

async fn accepting_as_anyone_but_a_driver_is_permission_denied_even_for_the_owner(app: TestApp) {
    let ids = checkout(&app).await;
    for (who, function) in [(ENGINEER, "engineering"), (DESIGNER, "design"), (BUSINESS, "business")] {
        sign(&app, who, &ids.decision_id, function, pb::Verdict::Approve, "").await.expect("approve");
    }
    let before = app.log().await;
    for who in [ENGINEER, OWNER] {
        let status = app
            .as_(who)
            .accept_decision(acceptance("CHECKOUT-42", &ids.decision_id, ""))
            .await
            .expect_err("non-driver accepts");
        assert_status(
            &status,
            Code::PermissionDenied,
            &[&format!("only a driver of CHECKOUT-42 may accept decisions; {who} is not one")],
        );
    }
    assert_eq!(app.log().await, before);
}

async fn informed_stakeholder_giving_feedback_is_permission_denied(app: TestApp) {
    let ids = checkout(&app).await;
    assign_role(&app, OWNER, "CHECKOUT-42", "ivy@example.com", "business", pb::Role::Informed).await;
    let before = app.log().await;
    let request = feedback_request("CHECKOUT-42", &ids.decision_id, "business", pb::FeedbackKind::Comment, "FYI");
    let status = app.as_("ivy@example.com").record_feedback(request).await.expect_err("informed gives feedback");
    assert_status(
        &status,
        Code::PermissionDenied,
        &["ivy@example.com holds no driver, approver or contributor role for business on CHECKOUT-42"],
    );
    assert_eq!(app.log().await, before);
}

async fn outsider_assigning_stakeholders_is_permission_denied_naming_who_may(app: TestApp) {
    checkout(&app).await;
    let before = app.log().await;
    let request = assignment("CHECKOUT-42", "mallory@example.com", "engineering", pb::Role::Approver);
    let status = app.as_("mallory@example.com").assign_stakeholder(request).await.expect_err("outsider");
    assert_status(
        &status,
        Code::PermissionDenied,
        &["AssignStakeholder needs the admin role; mallory@example.com holds member"],
    );
    assert_eq!(app.log().await, before);
}

// ---- ABORTED -------------------------------------------------------------------------

async fn wrong_expected_version_is_aborted_with_the_current_version_in_message_and_error_info(app: TestApp) {
    let ids = checkout(&app).await;
    assert_eq!(app.alignment("CHECKOUT-42").await.version, 6);
    let before = app.log().await;
    for expected in [3, 7] {
        let mut request = sign_off_request("CHECKOUT-42", &ids.decision_id, "engineering", pb::Verdict::Approve);
        request.options = expecting(expected);
        let status = app.as_(ENGINEER).record_sign_off(request).await.expect_err("stale expected version");
        assert_status(&status, Code::Aborted, &[&format!("initiative is at version 6, not the expected {expected}")]);
        let details = status.get_error_details();
        let info = details.error_info().expect("ErrorInfo details");
        assert_eq!(info.reason, "VERSION_CONFLICT");
        assert_eq!(info.metadata.get("expected_version").map(String::as_str), Some(expected.to_string().as_str()));
        assert_eq!(info.metadata.get("current_version").map(String::as_str), Some("6"));
        assert_eq!(app.log().await, before);
    }

    let mut request = sign_off_request("CHECKOUT-42", &ids.decision_id, "engineering", pb::Verdict::Approve);
    request.options = expecting(6);
    let done = app.as_(ENGINEER).record_sign_off(request).await.expect("matching expected version").into_inner();
    assert_eq!(done.stream_version, 7);
}

// ---- UNAUTHENTICATED -----------------------------------------------------------------

async fn command_without_credentials_or_with_a_bad_subject_is_unauthenticated(app: TestApp) {
    let ids = checkout(&app).await;
    let before = app.log().await;

    let status = app.anonymous().create_initiative(new_initiative("PAYMENTS-1", "Payments")).await.expect_err("anon");
    assert_status(&status, Code::Unauthenticated, &["no credentials: send the metadata entry `authorization: Bearer"]);
    let request = sign_off_request("CHECKOUT-42", &ids.decision_id, "engineering", pb::Verdict::Approve);
    let status = app.anonymous().record_sign_off(request).await.expect_err("anonymous sign-off");
    assert_status(&status, Code::Unauthenticated, &["no credentials"]);
    // A name in metadata counts for nothing once authentication is configured.
    let mut request = Request::new(new_initiative("PAYMENTS-1", "Payments"));
    request.metadata_mut().insert("x-accord-actor", OWNER.parse().expect("metadata"));
    let status = app.anonymous().create_initiative(request).await.expect_err("a name is no credential");
    assert_status(&status, Code::Unauthenticated, &["no credentials"]);

    let status =
        app.as_("eve @example.com").create_initiative(new_initiative("PAYMENTS-1", "Payments")).await.expect_err("ws");
    assert_status(&status, Code::Unauthenticated, &["subject is not a valid principal", "must not contain whitespace"]);
    assert_eq!(app.log().await, before);
}

// ---- UNAVAILABLE ---------------------------------------------------------------------

#[tokio::test]
async fn database_down_is_unavailable_without_sql_or_connection_details_in_the_message() {
    let app = TestApp::spawn_unreachable().await;
    let status =
        app.as_(OWNER).create_initiative(new_initiative("PAYMENTS-1", "Payments")).await.expect_err("no database");
    assert_status(&status, Code::Unavailable, &["the database is unavailable; try again later"]);
    let status = app
        .queries()
        .get_alignment(pb::GetAlignmentRequest { initiative: "PAYMENTS-1".into() })
        .await
        .expect_err("no database for queries");
    assert_status(&status, Code::Unavailable, &["the database is unavailable"]);
    for leak in ["select", "insert", "sql", "postgres", "127.0.0.1", "pool", "connection"] {
        assert!(!status.message().to_lowercase().contains(leak), "{leak:?} leaks into {:?}", status.message());
    }

    // Bad input is still reported as such: it is checked before the database is needed.
    let status =
        app.as_(OWNER).create_initiative(new_initiative("bad key", "Payments")).await.expect_err("bad key, no db");
    assert_invalid(&status, "key", "must be 2-32 upper-case letters");
}

crate::on_both_stores!(
    empty_or_blank_title_is_invalid_argument_naming_title_and_writes_nothing,
    title_over_200_characters_is_invalid_argument_and_200_multibyte_characters_are_accepted,
    text_over_20000_characters_is_invalid_argument_naming_the_field_and_20000_are_accepted,
    nul_character_in_text_is_invalid_argument_naming_the_field,
    malformed_or_missing_uuid_is_invalid_argument_naming_the_id_field,
    unknown_enum_value_is_invalid_argument_naming_the_field_and_the_value,
    unspecified_required_enum_is_invalid_argument_saying_it_is_required,
    badly_shaped_initiative_key_is_invalid_argument_naming_key_with_the_rule,
    bad_function_slug_is_invalid_argument_naming_the_function_field,
    bad_command_id_is_invalid_argument_naming_options_command_id,
    bad_correlation_or_causation_metadata_is_invalid_argument_naming_the_header,
    rejection_without_reason_and_bad_principal_are_invalid_argument_naming_the_field,
    unknown_initiative_by_id_or_key_is_not_found_naming_it,
    unknown_decision_id_is_not_found_naming_the_decision_and_initiative,
    unknown_feedback_id_is_not_found_naming_the_feedback,
    removing_a_role_nobody_holds_is_not_found_naming_person_role_and_function,
    duplicate_initiative_key_in_any_case_is_already_exists_naming_the_key,
    duplicate_stakeholder_assignment_is_already_exists_naming_person_role_and_function,
    signing_a_withdrawn_decision_is_failed_precondition_naming_its_status,
    signing_a_superseded_decision_is_failed_precondition_naming_its_status,
    accepting_unaligned_decision_needs_an_override_reason_which_the_alignment_then_shows,
    objection_on_a_closed_decision_is_failed_precondition,
    signing_a_stale_revision_number_is_failed_precondition_naming_both_revisions,
    every_command_on_an_archived_initiative_is_failed_precondition_naming_who_archived,
    signing_for_a_function_the_decision_does_not_need_is_failed_precondition_listing_needed,
    signing_for_a_function_one_is_not_approver_of_is_permission_denied,
    accepting_as_anyone_but_a_driver_is_permission_denied_even_for_the_owner,
    informed_stakeholder_giving_feedback_is_permission_denied,
    outsider_assigning_stakeholders_is_permission_denied_naming_who_may,
    wrong_expected_version_is_aborted_with_the_current_version_in_message_and_error_info,
    command_without_credentials_or_with_a_bad_subject_is_unauthenticated,
);
