//! The SPEC section 4 scenario played against a running Accord server, step by step,
//! printing the alignment after each step. A plain gRPC client: what any internal tool
//! does.
//!
//!   cargo run --example walkthrough -- [http://127.0.0.1:50051] [KEY]

use accord::proto::{
    self as pb, alignment_service_client::AlignmentServiceClient, command_service_client::CommandServiceClient,
};
use tonic::{Request, metadata::MetadataValue, transport::Channel};

type Error = Box<dyn std::error::Error>;

fn as_<T>(actor: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(value) = MetadataValue::try_from(actor) {
        request.metadata_mut().insert("x-accord-actor", value);
    }
    request
}

async fn board(queries: &mut AlignmentServiceClient<Channel>, key: &str) -> Result<(), Error> {
    let view = queries.get_alignment(pb::GetAlignmentRequest { initiative: key.into() }).await?.into_inner();
    let functions: Vec<String> =
        view.functions.iter().map(|f| format!("{}={}", f.function, state_name(f.state()))).collect();
    println!(
        "   ┗ {key}: {} — {} of {} approved [{}] (version {})",
        status_name(view.status()),
        view.approved_pairs,
        view.total_pairs,
        functions.join(", "),
        view.version
    );
    for item in &view.outstanding {
        println!("       waiting: {} on {:?} — {}", item.function, item.decision_title, item.reason);
    }
    for stale in &view.stale_sign_offs {
        println!(
            "       stale: {} ({}) signed revision {}, now at {}",
            stale.signer, stale.function, stale.signed_revision, stale.stale_since_revision
        );
    }
    Ok(())
}

fn state_name(state: pb::FunctionState) -> &'static str {
    match state {
        pb::FunctionState::Approved => "approved",
        pb::FunctionState::Pending => "pending",
        pb::FunctionState::Blocked => "blocked",
        pb::FunctionState::Rejected => "rejected",
        pb::FunctionState::NotApplicable => "n/a",
        pb::FunctionState::Unspecified => "?",
    }
}

fn status_name(status: pb::InitiativeStatus) -> &'static str {
    match status {
        pb::InitiativeStatus::Aligned => "ALIGNED",
        pb::InitiativeStatus::Pending => "PENDING",
        pb::InitiativeStatus::Blocked => "BLOCKED",
        pb::InitiativeStatus::NoDecisions => "NO DECISIONS",
        pb::InitiativeStatus::Unspecified => "?",
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let server = args.next().unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let key = args.next().unwrap_or_else(|| "CHECKOUT-42".into());
    let channel =
        Channel::from_shared(server.clone())?.connect().await.map_err(|e| format!("cannot reach {server}: {e}"))?;
    let mut commands = CommandServiceClient::new(channel.clone());
    let mut queries = AlignmentServiceClient::new(channel);
    let (pm, driver, eng, des, biz) =
        ("pm@example.com", "dana@example.com", "eve@example.com", "dee@example.com", "bo@example.com");

    println!("2. {pm} creates {key} and assigns a driver and one approver per function");
    commands
        .create_initiative(as_(
            pm,
            pb::CreateInitiativeRequest {
                key: key.clone(),
                title: "New checkout".into(),
                summary: "Rebuild checkout around a payment provider.".into(),
                ..Default::default()
            },
        ))
        .await?;
    for (who, function, role) in [
        (driver, "product", pb::Role::Driver),
        (eng, "engineering", pb::Role::Approver),
        (des, "design", pb::Role::Approver),
        (biz, "business", pb::Role::Approver),
    ] {
        commands
            .assign_stakeholder(as_(
                pm,
                pb::AssignStakeholderRequest {
                    initiative: key.clone(),
                    principal: who.into(),
                    function: function.into(),
                    role: role.into(),
                    ..Default::default()
                },
            ))
            .await?;
    }
    board(&mut queries, &key).await?;

    println!("3. {driver} proposes \"Use Stripe for payments\"; design records a user-research concern");
    let decision = commands
        .propose_decision(as_(
            driver,
            pb::ProposeDecisionRequest {
                initiative: key.clone(),
                content: Some(pb::DecisionContent {
                    title: "Use Stripe for payments".into(),
                    context: "Checkout needs a payment provider.".into(),
                    options: vec!["Stripe".into(), "Adyen".into(), "Build in-house".into()],
                    proposal: "Integrate Stripe Checkout.".into(),
                    rationale: "Fastest to integrate.".into(),
                }),
                ..Default::default()
            },
        ))
        .await?
        .into_inner()
        .created_id;
    commands
        .record_feedback(as_(
            des,
            pb::RecordFeedbackRequest {
                initiative: key.clone(),
                decision_id: decision.clone(),
                function: "design".into(),
                kind: pb::FeedbackKind::Concern.into(),
                source: pb::FeedbackSource::UserResearch.into(),
                body: "Study participants distrusted the redirect to a hosted page.".into(),
                ..Default::default()
            },
        ))
        .await?;
    board(&mut queries, &key).await?;

    let sign = |function: &'static str| pb::RecordSignOffRequest {
        initiative: key.clone(),
        decision_id: decision.clone(),
        function: function.into(),
        verdict: pb::Verdict::Approve.into(),
        ..Default::default()
    };
    println!("4. engineering and design approve; business objects");
    commands.record_sign_off(as_(eng, sign("engineering"))).await?;
    commands.record_sign_off(as_(des, sign("design"))).await?;
    let objection = commands
        .record_feedback(as_(
            biz,
            pb::RecordFeedbackRequest {
                initiative: key.clone(),
                decision_id: decision.clone(),
                function: "business".into(),
                kind: pb::FeedbackKind::Objection.into(),
                source: pb::FeedbackSource::Customer.into(),
                body: "Stripe's fees are above our negotiated rate.".into(),
                ..Default::default()
            },
        ))
        .await?
        .into_inner()
        .created_id;
    board(&mut queries, &key).await?;

    println!("5. {driver} revises the decision materially: the two approvals go stale, the objection stays");
    commands
        .revise_decision(as_(
            driver,
            pb::ReviseDecisionRequest {
                initiative: key.clone(),
                decision_id: decision.clone(),
                kind: pb::RevisionKind::Material.into(),
                content: Some(pb::DecisionContent {
                    title: "Use Stripe for payments".into(),
                    context: "Checkout needs a payment provider.".into(),
                    options: vec!["Stripe".into(), "Adyen".into(), "Build in-house".into()],
                    proposal: "Integrate Stripe at the negotiated enterprise rate.".into(),
                    rationale: "Fastest to integrate; fees now match Adyen.".into(),
                }),
                note: "Negotiated enterprise pricing.".into(),
                ..Default::default()
            },
        ))
        .await?;
    board(&mut queries, &key).await?;

    println!("6. business resolves its objection; all three approve revision 2; the driver accepts");
    commands
        .resolve_feedback(as_(
            biz,
            pb::ResolveFeedbackRequest {
                initiative: key.clone(),
                feedback_id: objection,
                resolution: "The enterprise rate matches Adyen's.".into(),
                ..Default::default()
            },
        ))
        .await?;
    commands.record_sign_off(as_(eng, sign("engineering"))).await?;
    commands.record_sign_off(as_(des, sign("design"))).await?;
    commands.record_sign_off(as_(biz, sign("business"))).await?;
    board(&mut queries, &key).await?;
    commands
        .accept_decision(as_(
            driver,
            pb::AcceptDecisionRequest { initiative: key.clone(), decision_id: decision.clone(), ..Default::default() },
        ))
        .await?;
    let detail = queries
        .get_decision(pb::GetDecisionRequest { initiative: key.clone(), decision_id: decision })
        .await?
        .into_inner();
    println!(
        "   ┗ decision {:?}: {:?} at revision {}, {} verdicts on record, closed by {}",
        detail.content.as_ref().map(|c| c.title.as_str()).unwrap_or_default(),
        detail.status(),
        detail.revision,
        detail.sign_off_history.len(),
        detail.closed_by
    );
    board(&mut queries, &key).await?;
    Ok(())
}
