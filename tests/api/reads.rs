//! Reads served from the live feed's views: they are the feed's (not the alignment
//! table's), a write is read back at once through the server that acknowledged it, a
//! write through one server is read through another with `x-accord-min-position`, a
//! position past the log's head is refused at once, a server that has just started
//! answers from the database until its feed has read the log, and the text filter
//! matches what the database's does.

use std::time::Duration;

use accord::grpc::queries::MIN_POSITION_HEADER;
use accord::proto as pb;
use accord::store::{ListFilter, Store};
use tonic::{Code, Request};

use crate::on_both_stores;
use crate::support::*;

/// A request carrying `x-accord-min-position`.
fn at_least<T>(message: T, position: u64) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(MIN_POSITION_HEADER, position.to_string().parse().expect("ASCII digits"));
    request
}

fn get(initiative: &str) -> pb::GetAlignmentRequest {
    pb::GetAlignmentRequest { initiative: initiative.to_owned() }
}

fn text(text: &str) -> pb::ListAlignmentsRequest {
    pb::ListAlignmentsRequest { text: text.to_owned(), include_archived: true, ..Default::default() }
}

async fn keys(app: &TestApp, request: Request<pb::ListAlignmentsRequest>) -> Vec<String> {
    let response = app.queries().list_alignments(request).await.expect("list").into_inner();
    response.initiatives.into_iter().map(|view| view.key).collect()
}

/// Changes the stored projection of CHECKOUT-42 behind the service's back: title
/// "Tampered", in the column the text filter reads and in the stored view.
async fn tamper_with_the_alignment_table(store: &Store) {
    match dialect(store) {
        Dialect::Postgres(pg) => sqlx::query(
            "UPDATE alignment SET title = 'Tampered', view = jsonb_set(view, '{title}', '\"Tampered\"')
                  WHERE key = 'CHECKOUT-42'",
        )
        .execute(pg.pool())
        .await
        .map(drop),
        Dialect::Sqlite(lite) => sqlx::query(
            "UPDATE alignment SET title = 'Tampered', view = json_set(view, '$.title', 'Tampered')
                  WHERE key = 'CHECKOUT-42'",
        )
        .execute(lite.pool())
        .await
        .map(drop),
    }
    .expect("tamper with the alignment table");
}

async fn reads_are_answered_from_the_feed_not_from_the_alignment_table(app: TestApp) {
    checkout(&app).await;
    let before = app.alignment("CHECKOUT-42").await;
    tamper_with_the_alignment_table(&app.store).await;
    let stored =
        app.store.alignment(&accord::domain::values::InitiativeRef::parse("k", "CHECKOUT-42").expect("key")).await;
    assert_eq!(stored.expect("read the table").expect("a row").title, "Tampered", "the table was changed");

    // The database answers while the feed cannot vouch for its views (on PostgreSQL, a
    // transaction open elsewhere on the server holds its gap-free read back): the feed's
    // view must come, and can only come from the feed.
    let inbox_titles = || async {
        let inbox = app.queries().get_inbox(pb::GetInboxRequest { principal: ENGINEER.into() }).await;
        inbox.expect("inbox").into_inner().items.into_iter().map(|item| item.initiative_title).collect::<Vec<_>>()
    };
    eventually("the reads answer from the feed", || async {
        app.alignment("CHECKOUT-42").await == before
            && keys(&app, Request::new(text("tampered"))).await.is_empty()
            && keys(&app, Request::new(text("new checkout"))).await == ["CHECKOUT-42"]
            && inbox_titles().await == ["New checkout"]
    })
    .await;
}

/// Waits until `check` holds, for at most 30 s (asked every 50 ms): a liveness bound,
/// not a figure.
async fn eventually<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if check().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn every_write_is_read_back_at_once_through_the_server_that_acknowledged_it(app: TestApp) {
    let ids = checkout(&app).await;
    for n in 0..25 {
        let body = format!("Question {n}?");
        let question = feedback_request("CHECKOUT-42", &ids.decision_id, "design", pb::FeedbackKind::Question, &body);
        let ack = app.as_(DESIGNER).record_feedback(question).await.expect("question").into_inner();
        let view = app.alignment("CHECKOUT-42").await;
        assert_eq!(view.version, ack.stream_version, "GetAlignment right after write {n}");
        let listed = app.queries().list_alignments(text("checkout")).await.expect("list").into_inner();
        assert_eq!(listed.initiatives[0].version, ack.stream_version, "ListAlignments right after write {n}");
    }
    // A new initiative, listed and in its approver's inbox as soon as it is acknowledged.
    for n in 0..10 {
        let key = format!("FRESH-{n}");
        create_initiative(&app, OWNER, &key, "Fresh").await;
        assign_role(&app, OWNER, &key, ENGINEER, "engineering", pb::Role::Approver).await;
        let decision = propose_decision(&app, OWNER, &key, "Go").await.created_id;
        let listed = keys(&app, Request::new(text(&key))).await;
        assert_eq!(listed, vec![key.clone()], "the new initiative is listed");
        let inbox = app
            .queries()
            .get_inbox(pb::GetInboxRequest { principal: ENGINEER.into() })
            .await
            .expect("inbox")
            .into_inner();
        assert!(inbox.items.iter().any(|item| item.decision_id == decision), "{key}'s decision waits on the engineer");
    }
}

async fn a_write_through_one_server_is_read_through_another_with_min_position(app: TestApp) {
    let ids = checkout(&app).await;
    // A second server on the same store: its own feed, which hears nothing of the
    // first server's commands (on SQLite it only polls).
    let other = app.reserve(harness_options()).await;
    for n in 0..20 {
        let body = format!("Question {n}?");
        let question = feedback_request("CHECKOUT-42", &ids.decision_id, "design", pb::FeedbackKind::Question, &body);
        let ack = app.as_(DESIGNER).record_feedback(question).await.expect("question").into_inner();
        let position = ack.global_position;
        let view = other.queries().get_alignment(at_least(get("CHECKOUT-42"), position)).await.expect("get");
        assert_eq!(view.into_inner().version, ack.stream_version, "GetAlignment on the other server, write {n}");
        let listed = other.queries().list_alignments(at_least(text("checkout"), position)).await.expect("list");
        assert_eq!(listed.into_inner().initiatives[0].version, ack.stream_version, "ListAlignments, write {n}");
    }
    // A write to one initiative, read as a bound on a list of others.
    let created = create_initiative(&app, OWNER, "LATER-1", "Later").await;
    let listed = keys(&other, at_least(text("later"), created.global_position)).await;
    assert_eq!(listed, vec!["LATER-1".to_owned()]);
    let inbox = other
        .queries()
        .get_inbox(at_least(pb::GetInboxRequest { principal: ENGINEER.into() }, created.global_position))
        .await
        .expect("inbox");
    assert_eq!(inbox.into_inner().items.len(), 1, "CHECKOUT-42's engineering sign-off");
}

async fn a_min_position_past_the_head_is_out_of_range_at_once_and_a_malformed_one_invalid(app: TestApp) {
    let ids = checkout(&app).await;
    let head = app.log().await.last().map(|event| event.0).expect("events");
    let future = u64::try_from(head).expect("a position") + 1_000_000;
    // Generous: this says "answers rather than hangs", not how fast.
    let patience = Duration::from_secs(20);
    let queries = app.queries();
    let calls = async {
        let get = queries.clone().get_alignment(at_least(get("CHECKOUT-42"), future)).await;
        let list = queries.clone().list_alignments(at_least(text(""), future)).await;
        let inbox =
            queries.clone().get_inbox(at_least(pb::GetInboxRequest { principal: ENGINEER.into() }, future)).await;
        (get.map(drop), list.map(drop), inbox.map(drop))
    };
    let (got, listed, inbox) = tokio::time::timeout(patience, calls).await.expect("the reads answer");
    for (rpc, outcome) in [("GetAlignment", got), ("ListAlignments", listed), ("GetInbox", inbox)] {
        let status = outcome.expect_err("a position no event has");
        assert_status(&status, Code::OutOfRange, &[MIN_POSITION_HEADER, &future.to_string(), "past the log's head"]);
        assert!(status.message().contains(&head.to_string()), "{rpc} names the head: {status:?}");
    }

    // The head itself, and 0, are fine.
    let at_head = u64::try_from(head).expect("a position");
    let view = queries.clone().get_alignment(at_least(get(&ids.initiative_id), at_head)).await.expect("head");
    assert_eq!(view.into_inner().key, "CHECKOUT-42");
    queries.clone().get_alignment(at_least(get("CHECKOUT-42"), 0)).await.expect("no bound");

    for bad in ["-1", "12x", "", "99999999999999999999999"] {
        let mut request = Request::new(get("CHECKOUT-42"));
        request.metadata_mut().insert(MIN_POSITION_HEADER, bad.parse().expect("ASCII"));
        let status = queries.clone().get_alignment(request).await.expect_err("not a position");
        assert_invalid(&status, MIN_POSITION_HEADER, "is not a global position");
    }
}

async fn a_server_that_has_just_started_answers_in_full_before_its_feed_has_read_the_log(app: TestApp) {
    const INITIATIVES: usize = 120;
    for n in 0..INITIATIVES {
        app.as_(OWNER).create_initiative(new_initiative(&format!("START-{n:03}"), "Started")).await.expect("create");
    }
    // A new server: until its feed has read the log once, the database answers.
    let fresh = app.reserve(harness_options()).await;
    let page = fresh
        .queries()
        .list_alignments(pb::ListAlignmentsRequest { page_size: 500, ..Default::default() })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(page.initiatives.len(), INITIATIVES, "every initiative, at once");
    assert_eq!(fresh.alignment("START-119").await.key, "START-119");
}

async fn the_text_filter_folds_case_beyond_ascii_and_matches_the_key_or_the_title_only(app: TestApp) {
    for (key, title) in [("ECOLE-1", "ÉCOLE des données"), ("UBER-2", "Über alles"), ("PLAIN-3", "Plain")] {
        create_initiative(&app, OWNER, key, title).await;
    }
    let mut request = new_initiative("SUMMARY-4", "Neutral");
    request.summary = "école über plain".into();
    app.as_(OWNER).create_initiative(request).await.expect("create");
    assert_eq!(keys(&app, Request::new(text("école"))).await, vec!["ECOLE-1".to_owned()], "É folds to é");
    assert_eq!(keys(&app, Request::new(text("ÜBER"))).await, vec!["UBER-2".to_owned()], "ü folds to Ü");
    assert_eq!(keys(&app, Request::new(text("lain-3"))).await, vec!["PLAIN-3".to_owned()], "the key");
    assert_eq!(keys(&app, Request::new(text("plain"))).await, vec!["PLAIN-3".to_owned()], "not the summary");
    let status = app.queries().list_alignments(text("1\u{0}école")).await.expect_err("NUL");
    assert_invalid(&status, "text", "NUL");
}

/// On PostgreSQL, whose `ILIKE` folds every letter as the feed does, the feed answers
/// exactly what the alignment table does, page by page.
#[sqlx::test(migrator = "accord::store::postgres::MIGRATOR")]
async fn pages_from_the_feed_equal_the_databases_for_every_filter(pool: sqlx::PgPool) {
    let app = TestApp::postgres(pool).await;
    let titles = ["Payments", "PAYMENTS v2", "Checkout", "Señal", "SEÑAL fuerte", "search", "Ünder", "under"];
    for n in 0..40 {
        let mut request = new_initiative(&format!("K{}-{n:02}", n % 3), &format!("{} {n}", titles[n % titles.len()]));
        request.stage = [pb::Stage::Discovery, pb::Stage::Delivery][n % 2].into();
        request.owner = [OWNER, DRIVER][n % 2].into();
        app.as_(OWNER).create_initiative(request).await.expect("create");
        if n % 4 == 0 {
            assign_role(&app, OWNER, &format!("K{}-{n:02}", n % 3), ENGINEER, "engineering", pb::Role::Approver).await;
            propose_decision(&app, OWNER, &format!("K{}-{n:02}", n % 3), "Go").await;
        }
        if n % 9 == 0 {
            app.as_(OWNER)
                .archive_initiative(pb::ArchiveInitiativeRequest {
                    options: None,
                    initiative: format!("K{}-{n:02}", n % 3),
                    reason: "Done.".into(),
                })
                .await
                .expect("archive");
        }
    }
    let filters = [
        ("", None, None, false),
        ("payments", None, None, false),
        ("señal", Some("delivery"), None, true),
        ("ÜNDER", None, Some(OWNER), false),
        ("k1-", None, None, true),
        ("", Some("discovery"), Some(OWNER), true),
    ];
    for (text, stage, owner, include_archived) in filters {
        let request = pb::ListAlignmentsRequest {
            text: text.into(),
            stage: match stage {
                Some("delivery") => pb::Stage::Delivery.into(),
                Some(_) => pb::Stage::Discovery.into(),
                None => pb::Stage::Unspecified.into(),
            },
            owner: owner.unwrap_or_default().into(),
            include_archived,
            page_size: 4,
            ..Default::default()
        };
        let filter = ListFilter {
            text: (!text.is_empty()).then(|| text.to_owned()),
            stage: stage.map(str::to_owned),
            owner: owner.map(str::to_owned),
            include_archived,
            ..ListFilter::default()
        };
        let database: Vec<String> =
            app.store.list(&filter, None, 1000).await.expect("list").into_iter().map(|v| v.key.to_string()).collect();
        let mut served = Vec::new();
        let mut token = String::new();
        loop {
            let page = pb::ListAlignmentsRequest { page_token: token.clone(), ..request.clone() };
            let page = app.queries().list_alignments(page).await.expect("page").into_inner();
            served.extend(page.initiatives.into_iter().map(|view| view.key));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert!(!database.is_empty(), "filter {text:?} finds something");
        assert_eq!(served, database, "filter {text:?}, stage {stage:?}, owner {owner:?}, archived {include_archived}");
    }
}

on_both_stores!(
    reads_are_answered_from_the_feed_not_from_the_alignment_table,
    every_write_is_read_back_at_once_through_the_server_that_acknowledged_it,
    a_write_through_one_server_is_read_through_another_with_min_position,
    a_min_position_past_the_head_is_out_of_range_at_once_and_a_malformed_one_invalid,
    a_server_that_has_just_started_answers_in_full_before_its_feed_has_read_the_log,
    the_text_filter_folds_case_beyond_ascii_and_matches_the_key_or_the_title_only,
);
