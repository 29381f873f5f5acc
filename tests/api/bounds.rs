//! One alignment view is bounded in size (exact counts, the most recent items, previews
//! of long texts), and what it leaves out is still reachable: `ListFeedback` pages
//! through the full feedback, `GetInbox` lists every sign-off waiting on someone, and
//! `GetDecision` gives a decision's thread in full.

use accord::proto as pb;
use prost::Message;
use tonic::Code;

use crate::on_both_stores;
use crate::support::*;

const CONCERNS: usize = 30;
const BODY_CHARS: usize = 5_000;

fn concern(decision_id: &str, n: usize) -> pb::RecordFeedbackRequest {
    let body = format!("{n:03} {}", "c".repeat(BODY_CHARS - 4));
    feedback_request(
        "CHECKOUT-42",
        if n.is_multiple_of(2) { decision_id } else { "" },
        "engineering",
        pb::FeedbackKind::Concern,
        &body,
    )
}

async fn with_concerns(app: &TestApp) -> Checkout {
    let checkout = checkout(app).await;
    for n in 0..CONCERNS {
        app.as_(ENGINEER).record_feedback(concern(&checkout.decision_id, n)).await.expect("concern");
    }
    checkout
}

async fn a_view_lists_the_most_recent_concerns_as_previews_and_counts_them_all(app: TestApp) {
    with_concerns(&app).await;
    let view = app.alignment("CHECKOUT-42").await;
    let counts = view.counts.expect("counts");
    assert_eq!(counts.open_concerns as usize, CONCERNS);
    assert_eq!(view.open_concerns.len(), 20);
    let first: Vec<String> = view.open_concerns.iter().map(|f| f.body[..3].to_owned()).collect();
    assert_eq!(first, (CONCERNS - 20..CONCERNS).map(|n| format!("{n:03}")).collect::<Vec<_>>(), "the most recent");
    assert!(view.open_concerns.iter().all(|f| f.body.chars().count() == 281 && f.body.ends_with('…')));
    assert!(view.encoded_len() < 32 * 1024, "a view of {} bytes", view.encoded_len());
}

async fn list_feedback_pages_through_every_item_in_full_in_recorded_order(app: TestApp) {
    let checkout = with_concerns(&app).await;
    app.as_(DESIGNER)
        .record_feedback(feedback_request("CHECKOUT-42", "", "design", pb::FeedbackKind::Comment, "A comment."))
        .await
        .expect("comment");
    let request = |page_token: String| pb::ListFeedbackRequest {
        initiative: "CHECKOUT-42".into(),
        kinds: vec![pb::FeedbackKind::Concern.into()],
        open_only: true,
        page_size: 7,
        page_token,
        ..Default::default()
    };
    let (mut bodies, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let page = app.queries().list_feedback(request(token)).await.expect("a page").into_inner();
        assert_eq!(page.total as usize, CONCERNS);
        bodies.extend(page.items.into_iter().map(|item| item.body));
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, CONCERNS.div_ceil(7));
    assert_eq!(bodies.len(), CONCERNS);
    for (n, body) in bodies.iter().enumerate() {
        assert_eq!(body.chars().count(), BODY_CHARS, "in full");
        assert!(body.starts_with(&format!("{n:03} ")), "in recorded order: {n}");
    }
    // One decision's feedback only; every kind.
    let on_decision = app
        .queries()
        .list_feedback(pb::ListFeedbackRequest {
            initiative: "CHECKOUT-42".into(),
            decision_id: checkout.decision_id.clone(),
            page_size: 500,
            ..Default::default()
        })
        .await
        .expect("the decision's feedback")
        .into_inner();
    assert_eq!(on_decision.items.len(), CONCERNS / 2);
    assert!(on_decision.items.iter().all(|item| item.decision_id == checkout.decision_id));
}

async fn list_feedback_refuses_bad_input_naming_the_field(app: TestApp) {
    with_concerns(&app).await;
    let list = |request: pb::ListFeedbackRequest| {
        let mut queries = app.queries();
        async move { queries.list_feedback(request).await.expect_err("refused") }
    };
    let base = || pb::ListFeedbackRequest { initiative: "CHECKOUT-42".into(), ..Default::default() };
    assert_invalid(
        &list(pb::ListFeedbackRequest { initiative: String::new(), ..base() }).await,
        "initiative",
        "required",
    );
    assert_invalid(&list(pb::ListFeedbackRequest { decision_id: "nope".into(), ..base() }).await, "decision_id", "");
    assert_invalid(&list(pb::ListFeedbackRequest { kinds: vec![99], ..base() }).await, "kinds", "");
    assert_invalid(&list(pb::ListFeedbackRequest { page_size: 501, ..base() }).await, "page_size", "500");
    assert_invalid(&list(pb::ListFeedbackRequest { page_token: "garbage".into(), ..base() }).await, "page_token", "");
    let first = app
        .queries()
        .list_feedback(pb::ListFeedbackRequest { page_size: 2, ..base() })
        .await
        .expect("a page")
        .into_inner();
    let other_filters = pb::ListFeedbackRequest { open_only: true, page_token: first.next_page_token, ..base() };
    assert_invalid(&list(other_filters).await, "page_token", "different filters");
    let unknown = list(pb::ListFeedbackRequest { initiative: "NOPE-1".into(), ..base() }).await;
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    let decision = uuid::Uuid::now_v7().to_string();
    let unknown = list(pb::ListFeedbackRequest { decision_id: decision, ..base() }).await;
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
}

async fn the_inbox_lists_every_waiting_sign_off_past_what_the_view_lists(app: TestApp) {
    checkout(&app).await;
    const DECISIONS: usize = 60;
    for n in 1..DECISIONS {
        propose_decision(&app, DRIVER, "CHECKOUT-42", &format!("Decision {n}")).await;
    }
    let view = app.alignment("CHECKOUT-42").await;
    let counts = view.counts.expect("counts");
    assert_eq!((counts.decisions as usize, counts.open_decisions as usize), (DECISIONS, DECISIONS));
    assert_eq!(counts.outstanding as usize, DECISIONS * 3);
    assert_eq!((view.decisions.len(), view.outstanding.len()), (50, 50));
    let inbox =
        app.queries().get_inbox(pb::GetInboxRequest { principal: DESIGNER.into() }).await.expect("inbox").into_inner();
    assert_eq!(inbox.items.len(), DECISIONS, "every decision waits on design");
    let listed = app
        .queries()
        .list_alignments(pb::ListAlignmentsRequest { pending_function: "design".into(), ..Default::default() })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.initiatives.len(), 1);
}

on_both_stores!(
    a_view_lists_the_most_recent_concerns_as_previews_and_counts_them_all,
    list_feedback_pages_through_every_item_in_full_in_recorded_order,
    list_feedback_refuses_bad_input_naming_the_field,
    the_inbox_lists_every_waiting_sign_off_past_what_the_view_lists,
);
