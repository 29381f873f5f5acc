//! Injection and encoding: text that looks like SQL, LIKE wildcards, control characters,
//! bidi marks and overrides, zero-width joiners, combining marks and 4-byte emoji is
//! stored verbatim and returned byte for byte through every field that is echoed back —
//! `GetAlignment`, `GetDecision`, `ListAlignments`, `GetInbox` and the audit
//! `ReadEvents` payloads — and the hash chain verifies afterwards. Limits count
//! characters, not bytes; one character over is INVALID_ARGUMENT naming the field; NUL,
//! which PostgreSQL cannot store, is refused naming the field. The `ListAlignments` text
//! filter matches `%`, `_` and `\` literally.

use std::collections::BTreeSet;

use accord::proto::{self as pb, read_events_response::Item};
use futures::StreamExt;

use crate::support::*;

/// Legal text that a careless store, query or encoder would alter. None is a substring
/// of another (up to ASCII case), so each finds exactly its own initiative by title.
const HOSTILE: [&str; 16] = [
    "'; DROP TABLE events; --",
    "Robert' OR '1'='1",
    "$$ LANGUAGE plpgsql; SELECT pg_sleep(5); $$",
    "back\\slash \\\\ \\' \\n \\x00 \\u0000",
    "100% of _all_ %% __ [a-z]* ?",
    "tab\tCRLF\r\nLF\nESC\u{1b}[31mred\u{1b}[0m DEL\u{7f} SOH\u{1} BEL\u{7} US\u{1f}",
    "\u{200f}RLM \u{202e}evil override\u{202c} \u{2066}isolate\u{2069} \u{200e}",
    "zero\u{200d}width\u{200b}joiner\u{200c}\u{feff}bom\u{2060}",
    "combining e\u{301} a\u{30a} q\u{323}\u{307} Z\u{351}\u{34e}\u{36f}",
    "👩🏽‍💻 🏳️‍🌈 👨‍👩‍👧‍👦 🇺🇦 𝕬𝖈𝖈𝖔𝖗𝖉 \u{10ffff}",
    "{\"json\": [1, 2], \"key\": null} <script>alert(1)</script> ${HOME} `id`",
    "   leading and trailing spaces   ",
    "\u{fffd}\u{fffe} non-characters \u{fdd0} and line\u{2028}para\u{2029}",
    "Ωмега ☃ Ünïcödé ß ǅ ﬃ İı",
    "single ' double \" backtick ` semicolon ; hash # dash --",
    "\u{3000}ideographic space and \u{a0}nbsp",
];

fn audit(app: &TestApp) -> Audit {
    app.audit()
}

/// Every event of one initiative, with its payload parsed from the JSON text the audit
/// API returned.
async fn payloads(app: &TestApp, initiative: &str) -> Vec<(String, serde_json::Value)> {
    let request = pb::ReadEventsRequest { initiative: initiative.to_owned(), ..Default::default() };
    let mut stream = audit(app).read_events(request).await.expect("read events").into_inner();
    let mut events = Vec::new();
    while let Some(item) = stream.next().await {
        match item.expect("stream item").item {
            Some(Item::Event(event)) => {
                let payload = serde_json::from_str(&event.payload_json).expect("payload is JSON");
                events.push((event.event_type, payload));
            }
            Some(Item::CaughtUp(_)) => return events,
            None => panic!("empty stream item"),
        }
    }
    panic!("the read ended without reporting caught-up");
}

/// The string at `pointer` in the first payload of `event_type` that has one.
fn payload_text<'a>(events: &'a [(String, serde_json::Value)], event_type: &str, pointer: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|(t, _)| t == event_type)
        .filter_map(|(_, payload)| payload.pointer(pointer).and_then(|v| v.as_str()))
        .collect()
}

async fn assert_chain_verifies(app: &TestApp) {
    let report = audit(app).verify(pb::VerifyRequest::default()).await.expect("verify").into_inner();
    assert!(report.ok && report.first_break.is_none(), "the hash chain verifies: {report:?}");
    assert_eq!(report.events_checked, app.log().await.len() as u64, "every event is checked");
}

async fn get_decision(app: &TestApp, initiative: &str, decision_id: &str) -> pb::DecisionDetail {
    app.queries()
        .get_decision(pb::GetDecisionRequest { initiative: initiative.to_owned(), decision_id: decision_id.to_owned() })
        .await
        .expect("get decision")
        .into_inner()
}

async fn list(app: &TestApp, request: pb::ListAlignmentsRequest) -> Vec<pb::InitiativeAlignment> {
    let request = pb::ListAlignmentsRequest { page_size: 500, ..request };
    app.queries().list_alignments(request).await.expect("list alignments").into_inner().initiatives
}

async fn list_keys(app: &TestApp, text: &str) -> BTreeSet<String> {
    let request = pb::ListAlignmentsRequest { text: text.to_owned(), include_archived: true, ..Default::default() };
    list(app, request).await.into_iter().map(|view| view.key).collect()
}

/// Creates `key` as `OWNER` with a driver and one approver per default function.
async fn team(app: &TestApp, key: &str, title: &str, summary: &str) {
    let mut request = new_initiative(key, title);
    request.summary = summary.to_owned();
    app.as_(OWNER).create_initiative(request).await.expect("create initiative");
    for (principal, function, role) in [
        (DRIVER, "product", pb::Role::Driver),
        (ENGINEER, "engineering", pb::Role::Approver),
        (DESIGNER, "design", pb::Role::Approver),
        (BUSINESS, "business", pb::Role::Approver),
    ] {
        assign_role(app, OWNER, key, principal, function, role).await;
    }
}

fn every_field(text: &str) -> pb::DecisionContent {
    pb::DecisionContent {
        title: text.to_owned(),
        context: text.to_owned(),
        options: vec![text.to_owned(), format!("{text} (the other one)")],
        proposal: text.to_owned(),
        rationale: text.to_owned(),
    }
}

async fn propose(app: &TestApp, key: &str, content: pb::DecisionContent) -> String {
    let request = pb::ProposeDecisionRequest {
        options: None,
        initiative: key.to_owned(),
        content: Some(content),
        required_functions: vec![],
        supersedes: String::new(),
    };
    app.as_(DRIVER).propose_decision(request).await.expect("propose").into_inner().created_id
}

async fn record_feedback(app: &TestApp, actor: &str, request: pb::RecordFeedbackRequest) -> String {
    app.as_(actor).record_feedback(request).await.expect("record feedback").into_inner().created_id
}

async fn resolve(app: &TestApp, actor: &str, key: &str, feedback_id: &str, resolution: &str) {
    let request = pb::ResolveFeedbackRequest {
        options: None,
        initiative: key.to_owned(),
        feedback_id: feedback_id.to_owned(),
        resolution: resolution.to_owned(),
    };
    app.as_(actor).resolve_feedback(request).await.expect("resolve feedback");
}

/// Every hostile text through every field that is echoed back, one initiative per text.
async fn hostile_text_is_stored_and_returned_byte_for_byte_through_every_echoed_field(app: TestApp) {
    for (i, s) in HOSTILE.iter().copied().enumerate() {
        let key = format!("TEXT-{i}");
        let k = key.as_str();
        team(&app, k, s, s).await;

        // Decision 1: every content field, an editorial revision with a note, a sign-off
        // with a comment and a rejection with a reason, a resolved objection, and an
        // acceptance by override.
        let d1 = propose(&app, k, every_field(s)).await;
        let mut revised = every_field(s);
        revised.context = format!("{s}\n(edited)");
        let revision = pb::ReviseDecisionRequest {
            options: None,
            initiative: key.clone(),
            decision_id: d1.clone(),
            kind: pb::RevisionKind::Editorial.into(),
            content: Some(revised),
            required_functions: vec![],
            note: s.to_owned(),
        };
        app.as_(DRIVER).revise_decision(revision).await.expect("revise");
        let mut approval = sign_off_request(k, &d1, "engineering", pb::Verdict::Approve);
        approval.comment = s.to_owned();
        app.as_(ENGINEER).record_sign_off(approval).await.expect("approve");
        let mut rejection = sign_off_request(k, &d1, "design", pb::Verdict::Reject);
        rejection.reason = s.to_owned();
        rejection.comment = s.to_owned();
        app.as_(DESIGNER).record_sign_off(rejection).await.expect("reject");
        let objection = feedback_request(k, &d1, "business", pb::FeedbackKind::Objection, s);
        let objection = record_feedback(&app, BUSINESS, objection).await;
        resolve(&app, BUSINESS, k, &objection, s).await;
        app.as_(DRIVER).accept_decision(acceptance(k, &d1, s)).await.expect("accept by override");

        // Decision 2, withdrawn with a reason; an initiative-level concern, resolved and
        // reopened (so it stays open and shown).
        let d2 = propose(&app, k, every_field(s)).await;
        let withdrawal = pb::WithdrawDecisionRequest {
            options: None,
            initiative: key.clone(),
            decision_id: d2.clone(),
            reason: s.into(),
        };
        app.as_(DRIVER).withdraw_decision(withdrawal).await.expect("withdraw");
        let mut concern = feedback_request(k, "", "design", pb::FeedbackKind::Concern, s);
        concern.source = pb::FeedbackSource::UserResearch.into();
        let concern = record_feedback(&app, DESIGNER, concern).await;
        resolve(&app, DESIGNER, k, &concern, s).await;
        let reopening = pb::ReopenFeedbackRequest {
            options: None,
            initiative: key.clone(),
            feedback_id: concern,
            reason: s.into(),
        };
        app.as_(DESIGNER).reopen_feedback(reopening).await.expect("reopen");

        // GetAlignment.
        let view = app.alignment(k).await;
        assert_eq!(view.title, s, "{k}: title");
        assert_eq!(view.summary, s, "{k}: summary");
        assert_eq!(view.overrides.len(), 1, "{k}");
        assert_eq!(view.overrides[0].reason, s, "{k}: override reason");
        assert_eq!(view.overrides[0].decision_title, s, "{k}: override decision title");
        assert!(!view.decisions.is_empty() && view.decisions.iter().all(|d| d.title == s), "{k}: decision titles");
        assert_eq!(view.open_concerns.iter().map(|f| f.body.as_str()).collect::<Vec<_>>(), [s], "{k}: concern body");

        // GetDecision.
        let detail = get_decision(&app, k, &d1).await;
        let content = detail.content.as_ref().expect("content");
        assert_eq!(content.title, s, "{k}: decision title");
        assert_eq!(content.context, format!("{s}\n(edited)"), "{k}: context");
        assert_eq!(content.options, [s.to_owned(), format!("{s} (the other one)")], "{k}: options");
        assert_eq!((content.proposal.as_str(), content.rationale.as_str()), (s, s), "{k}: proposal, rationale");
        assert_eq!(detail.revisions.len(), 2, "{k}");
        assert_eq!(detail.revisions[0].content.as_ref(), Some(&every_field(s)), "{k}: revision 1 as proposed");
        assert_eq!(detail.revisions[1].note, s, "{k}: revision note");
        let comments: Vec<&str> = detail.sign_offs.iter().map(|s| s.comment.as_str()).collect();
        assert_eq!(comments, [s, s], "{k}: sign-off comments");
        let reasons: Vec<&str> = detail.sign_offs.iter().map(|s| s.reason.as_str()).filter(|r| !r.is_empty()).collect();
        assert_eq!(reasons, [s], "{k}: rejection reason");
        assert_eq!(detail.sign_off_history.len(), 2, "{k}");
        assert!(detail.sign_off_history.iter().all(|h| h.comment == s), "{k}: sign-off history comments");
        assert_eq!(detail.feedback.len(), 1, "{k}");
        assert_eq!((detail.feedback[0].body.as_str(), detail.feedback[0].resolution.as_str()), (s, s), "{k}: thread");
        assert_eq!(detail.r#override.as_ref().map(|o| o.reason.as_str()), Some(s), "{k}: override");
        assert_eq!(detail.close_reason, s, "{k}: close reason of the override");
        let withdrawn = get_decision(&app, k, &d2).await;
        assert_eq!(withdrawn.close_reason, s, "{k}: withdrawal reason");
        assert_eq!(withdrawn.content.as_ref().map(|c| c.title.as_str()), Some(s), "{k}");

        // Archived with a hostile reason, after which the audit payloads hold it too.
        let archive = pb::ArchiveInitiativeRequest { options: None, initiative: key.clone(), reason: s.into() };
        app.as_(OWNER).archive_initiative(archive).await.expect("archive");

        // ReadEvents: every text in the stored payloads, exactly.
        let events = payloads(&app, k).await;
        let expected: [(&str, &str, usize); 18] = [
            ("InitiativeCreated", "/title", 1),
            ("InitiativeCreated", "/summary", 1),
            ("DecisionProposed", "/content/title", 2),
            ("DecisionProposed", "/content/context", 2),
            ("DecisionProposed", "/content/options/0", 2),
            ("DecisionProposed", "/content/proposal", 2),
            ("DecisionProposed", "/content/rationale", 2),
            ("DecisionRevised", "/content/title", 1),
            ("DecisionRevised", "/note", 1),
            ("SignOffRecorded", "/comment", 2),
            ("SignOffRecorded", "/reason", 1),
            ("FeedbackRecorded", "/body", 2),
            ("FeedbackResolved", "/resolution", 2),
            ("FeedbackReopened", "/reason", 1),
            ("DecisionAccepted", "/override/reason", 1),
            ("DecisionWithdrawn", "/reason", 1),
            ("InitiativeArchived", "/reason", 1),
            ("DecisionRevised", "/content/proposal", 1),
        ];
        for (event_type, pointer, count) in expected {
            let texts = payload_text(&events, event_type, pointer);
            let verbatim = texts.iter().filter(|t| **t == s).count();
            assert_eq!(verbatim, count, "{k}: {event_type}{pointer} verbatim in the payload, got {texts:?}");
        }
        assert_eq!(
            payload_text(&events, "DecisionRevised", "/content/context"),
            [format!("{s}\n(edited)").as_str()],
            "{k}"
        );
        let other = format!("{s} (the other one)");
        assert_eq!(payload_text(&events, "DecisionProposed", "/content/options/1"), [other.as_str(), other.as_str()]);
    }

    // ListAlignments: each text, as a filter, finds exactly the initiatives whose title
    // contains it, literally (LIKE is case-insensitive for ASCII letters).
    let titles: Vec<(String, &str)> = HOSTILE.iter().enumerate().map(|(i, s)| (format!("TEXT-{i}"), *s)).collect();
    for s in HOSTILE {
        let expected: BTreeSet<String> = titles
            .iter()
            .filter(|(key, title)| {
                title.to_ascii_lowercase().contains(&s.to_ascii_lowercase()) || key.contains(&s.to_ascii_uppercase())
            })
            .map(|(key, _)| key.clone())
            .collect();
        assert_eq!(list_keys(&app, s).await, expected, "text filter {s:?}");
        let request = pb::ListAlignmentsRequest { text: s.to_owned(), include_archived: true, ..Default::default() };
        for view in list(&app, request).await {
            assert_eq!(view.title, titles.iter().find(|(key, _)| *key == view.key).expect("a created key").1);
        }
    }
    assert_chain_verifies(&app).await;
}

/// Changes one field of a decision's content (to a given text).
type Edit = fn(&mut pb::DecisionContent);
type EditWith = fn(&mut pb::DecisionContent, &str);

/// A single word of exactly `chars` characters, every one of them multi-byte, cycling
/// through 2-, 3- and 4-byte characters, combining marks, bidi controls and a ZWJ.
fn word(chars: usize) -> String {
    const UNITS: [char; 8] = ['é', '🙂', '\u{202e}', 'ж', '€', '\u{301}', '\u{1f3fd}', '\u{200d}'];
    let text: String = (0..chars).map(|i| UNITS[i % UNITS.len()]).collect();
    assert_eq!(text.chars().count(), chars);
    assert!(text.len() > 2 * chars, "the word is multi-byte");
    text
}

#[track_caller]
fn assert_refused_naming(
    result: Result<tonic::Response<pb::CommandResponse>, tonic::Status>,
    field: &str,
    limit: usize,
) {
    let status = result.expect_err(field);
    let says = format!("is {} characters long; at most {limit} are allowed", limit + 1);
    assert_invalid(&status, field, &says);
}

/// Every length-limited text field: a single word of exactly its limit in multi-byte
/// characters is accepted and returned verbatim; one character more is refused naming
/// the field, and writes nothing.
async fn text_at_its_limit_in_characters_is_returned_verbatim_and_one_more_is_invalid_naming_the_field(app: TestApp) {
    team(&app, "LIMIT-1", "Limits", "").await;
    let (title, text, reason, option) = (word(200), word(20_000), word(4_000), word(1_000));
    let (title_over, text_over, reason_over) = (word(201), word(20_001), word(4_001));

    // Initiative title and summary.
    let mut create = new_initiative("LIMIT-2", &title);
    create.summary = text.clone();
    app.as_(OWNER).create_initiative(create).await.expect("a title and summary at their limits");
    let view = app.alignment("LIMIT-2").await;
    assert_eq!((view.title.as_str(), view.summary.as_str()), (title.as_str(), text.as_str()));
    let before = app.log().await;
    assert_refused_naming(app.as_(OWNER).create_initiative(new_initiative("LIMIT-3", &title_over)).await, "title", 200);
    let mut create = new_initiative("LIMIT-3", "Fine");
    create.summary = text_over.clone();
    assert_refused_naming(app.as_(OWNER).create_initiative(create).await, "summary", 20_000);
    let update = |title: Option<String>, summary: Option<String>| pb::UpdateInitiativeRequest {
        options: None,
        initiative: "LIMIT-1".into(),
        title,
        summary,
        owner: None,
        required_functions: vec![],
    };
    assert_refused_naming(app.as_(OWNER).update_initiative(update(Some(title_over.clone()), None)).await, "title", 200);
    let result = app.as_(OWNER).update_initiative(update(None, Some(text_over.clone()))).await;
    assert_refused_naming(result, "summary", 20_000);
    assert_eq!(app.log().await, before);
    app.as_(OWNER).update_initiative(update(Some(title.clone()), Some(text.clone()))).await.expect("update at limits");
    let view = app.alignment("LIMIT-1").await;
    assert_eq!((view.title.as_str(), view.summary.as_str()), (title.as_str(), text.as_str()));

    // Decision content: every field at its limit at once, then each one over.
    let at_limit = pb::DecisionContent {
        title: title.clone(),
        context: text.clone(),
        options: vec![option.clone(), option.clone()],
        proposal: text.clone(),
        rationale: text.clone(),
    };
    let decision = propose(&app, "LIMIT-1", at_limit.clone()).await;
    let detail = get_decision(&app, "LIMIT-1", &decision).await;
    assert_eq!(detail.content.as_ref(), Some(&at_limit), "decision content at its limits comes back verbatim");
    let before = app.log().await;
    let overs: [(&str, usize, EditWith); 5] = [
        ("content.title", 200, |c, w| c.title = w.into()),
        ("content.context", 20_000, |c, w| c.context = w.into()),
        ("content.proposal", 20_000, |c, w| c.proposal = w.into()),
        ("content.rationale", 20_000, |c, w| c.rationale = w.into()),
        ("content.options[1]", 1_000, |c, w| c.options[1] = w.into()),
    ];
    for (field, limit, edit) in overs {
        let mut content = at_limit.clone();
        edit(&mut content, &word(limit + 1));
        let request = pb::ProposeDecisionRequest {
            options: None,
            initiative: "LIMIT-1".into(),
            content: Some(content),
            required_functions: vec![],
            supersedes: String::new(),
        };
        assert_refused_naming(app.as_(DRIVER).propose_decision(request).await, field, limit);
    }
    assert_eq!(app.log().await, before);

    // Revision note.
    let revise = |note: &str| pb::ReviseDecisionRequest {
        options: None,
        initiative: "LIMIT-1".into(),
        decision_id: decision.clone(),
        kind: pb::RevisionKind::Editorial.into(),
        content: Some(pb::DecisionContent { title: "Shorter".into(), ..at_limit.clone() }),
        required_functions: vec![],
        note: note.to_owned(),
    };
    assert_refused_naming(app.as_(DRIVER).revise_decision(revise(&reason_over)).await, "note", 4_000);
    app.as_(DRIVER).revise_decision(revise(&reason)).await.expect("a note at its limit");

    // Sign-off reason and comment.
    let mut rejection = sign_off_request("LIMIT-1", &decision, "design", pb::Verdict::Reject);
    rejection.reason = reason_over.clone();
    assert_refused_naming(app.as_(DESIGNER).record_sign_off(rejection.clone()).await, "reason", 4_000);
    rejection.reason = reason.clone();
    rejection.comment = reason_over.clone();
    assert_refused_naming(app.as_(DESIGNER).record_sign_off(rejection.clone()).await, "comment", 4_000);
    rejection.comment = reason.clone();
    app.as_(DESIGNER).record_sign_off(rejection).await.expect("a reason and a comment at their limits");

    // Feedback body and resolution.
    let body = |text: &str| feedback_request("LIMIT-1", &decision, "engineering", pb::FeedbackKind::Objection, text);
    assert_refused_naming(app.as_(ENGINEER).record_feedback(body(&text_over)).await, "body", 20_000);
    let feedback = record_feedback(&app, ENGINEER, body(&text)).await;
    let resolution = |text: &str| pb::ResolveFeedbackRequest {
        options: None,
        initiative: "LIMIT-1".into(),
        feedback_id: feedback.clone(),
        resolution: text.to_owned(),
    };
    assert_refused_naming(app.as_(ENGINEER).resolve_feedback(resolution(&reason_over)).await, "resolution", 4_000);
    app.as_(ENGINEER).resolve_feedback(resolution(&reason)).await.expect("a resolution at its limit");

    // Override reason.
    let result = app.as_(DRIVER).accept_decision(acceptance("LIMIT-1", &decision, &reason_over)).await;
    assert_refused_naming(result, "override_reason", 4_000);
    app.as_(DRIVER).accept_decision(acceptance("LIMIT-1", &decision, &reason)).await.expect("an override at its limit");

    let detail = get_decision(&app, "LIMIT-1", &decision).await;
    assert_eq!(detail.revisions[1].note, reason, "revision note");
    assert_eq!((detail.sign_offs[0].reason.as_str(), detail.sign_offs[0].comment.as_str()), (&*reason, &*reason));
    assert_eq!((detail.feedback[0].body.as_str(), detail.feedback[0].resolution.as_str()), (&*text, &*reason));
    assert_eq!(detail.close_reason, reason, "override reason");
    // The view quotes a preview of it (the detail above has it whole).
    let preview: String = reason.chars().take(280).chain(['…']).collect();
    assert_eq!(app.alignment("LIMIT-1").await.overrides[0].reason, preview);

    // Decision rejection and withdrawal reasons.
    let second = propose(&app, "LIMIT-1", every_field("Second")).await;
    let reject = |reason: &str| pb::RejectDecisionRequest {
        options: None,
        initiative: "LIMIT-1".into(),
        decision_id: second.clone(),
        reason: reason.to_owned(),
    };
    assert_refused_naming(app.as_(DRIVER).reject_decision(reject(&reason_over)).await, "reason", 4_000);
    app.as_(DRIVER).reject_decision(reject(&reason)).await.expect("a rejection reason at its limit");
    assert_eq!(get_decision(&app, "LIMIT-1", &second).await.close_reason, reason);
    let third = propose(&app, "LIMIT-1", every_field("Third")).await;
    let withdraw = |reason: &str| pb::WithdrawDecisionRequest {
        options: None,
        initiative: "LIMIT-1".into(),
        decision_id: third.clone(),
        reason: reason.to_owned(),
    };
    assert_refused_naming(app.as_(DRIVER).withdraw_decision(withdraw(&reason_over)).await, "reason", 4_000);
    app.as_(DRIVER).withdraw_decision(withdraw(&reason)).await.expect("a withdrawal reason at its limit");
    assert_eq!(get_decision(&app, "LIMIT-1", &third).await.close_reason, reason);

    // The list filter takes a title's worth of text: the 200-character title finds itself.
    assert_eq!(list_keys(&app, &title).await, BTreeSet::from(["LIMIT-1".to_owned(), "LIMIT-2".to_owned()]));
    let status = app
        .queries()
        .list_alignments(pb::ListAlignmentsRequest { text: title_over.clone(), ..Default::default() })
        .await
        .expect_err("201-character filter");
    assert_invalid(&status, "text", "is 201 characters long; at most 200 are allowed");

    // The audit payloads hold the long words verbatim, and the chain verifies.
    let events = payloads(&app, "LIMIT-1").await;
    assert_eq!(payload_text(&events, "DecisionProposed", "/content/context")[0], text);
    assert_eq!(payload_text(&events, "DecisionAccepted", "/override/reason"), [reason.as_str()]);
    assert_eq!(payload_text(&events, "InitiativeUpdated", "/title"), [title.as_str()]);
    assert_chain_verifies(&app).await;
}

/// Limits count Unicode scalar values, not bytes and not graphemes: 50 four-character
/// ZWJ emoji (`👩🏽‍💻`, 15 bytes each) are a 200-character title.
async fn limits_count_characters_not_bytes_or_graphemes(app: TestApp) {
    let emoji = "👩🏽‍💻";
    assert_eq!((emoji.chars().count(), emoji.len()), (4, 15));
    let title = emoji.repeat(50);
    app.as_(OWNER).create_initiative(new_initiative("EMOJI-1", &title)).await.expect("200 characters, 750 bytes");
    assert_eq!(app.alignment("EMOJI-1").await.title.as_bytes(), title.as_bytes());
    let before = app.log().await;
    let result = app.as_(OWNER).create_initiative(new_initiative("EMOJI-2", &format!("{title}\u{200d}"))).await;
    assert_refused_naming(result, "title", 200);
    assert_eq!(app.log().await, before);
}

/// NUL in any text field is refused naming the field, and nothing is written.
async fn nul_in_any_text_field_is_invalid_argument_naming_the_field(app: TestApp) {
    team(&app, "NUL-1", "Nul", "").await;
    let decision = propose(&app, "NUL-1", every_field("Fine")).await;
    let feedback =
        record_feedback(&app, ENGINEER, feedback_request("NUL-1", "", "engineering", pb::FeedbackKind::Comment, "Ok"))
            .await;
    let before = app.log().await;
    let nul = "before\0after";
    let says = "must not contain NUL characters";
    let owner = app.as_(OWNER);
    let driver = app.as_(DRIVER);

    let mut create = new_initiative("NUL-2", nul);
    assert_invalid(&owner.clone().create_initiative(create.clone()).await.expect_err("title"), "title", says);
    create.title = "Fine".into();
    create.summary = nul.into();
    assert_invalid(&owner.clone().create_initiative(create).await.expect_err("summary"), "summary", says);
    let update = pb::UpdateInitiativeRequest {
        options: None,
        initiative: "NUL-1".into(),
        title: Some("\0".into()),
        summary: None,
        owner: None,
        required_functions: vec![],
    };
    assert_invalid(&owner.clone().update_initiative(update).await.expect_err("update title"), "title", says);
    let archive = pb::ArchiveInitiativeRequest { options: None, initiative: "NUL-1".into(), reason: nul.into() };
    assert_invalid(&owner.clone().archive_initiative(archive).await.expect_err("archive reason"), "reason", says);

    let fields: [(&str, Edit); 5] = [
        ("content.title", |c| c.title = "\0".into()),
        ("content.context", |c| c.context = "a\0".into()),
        ("content.options[0]", |c| c.options[0] = "\0b".into()),
        ("content.proposal", |c| c.proposal = "x\0y".into()),
        ("content.rationale", |c| c.rationale = "\0\0".into()),
    ];
    for (field, edit) in fields {
        let mut content = every_field("Fine");
        edit(&mut content);
        let mut request = proposal("NUL-1", "unused");
        request.content = Some(content);
        assert_invalid(&driver.clone().propose_decision(request).await.expect_err(field), field, says);
    }
    let revision = pb::ReviseDecisionRequest {
        options: None,
        initiative: "NUL-1".into(),
        decision_id: decision.clone(),
        kind: pb::RevisionKind::Material.into(),
        content: Some(every_field("Changed")),
        required_functions: vec![],
        note: nul.into(),
    };
    assert_invalid(&driver.clone().revise_decision(revision).await.expect_err("note"), "note", says);
    let result = driver.clone().accept_decision(acceptance("NUL-1", &decision, nul)).await;
    assert_invalid(&result.expect_err("override"), "override_reason", says);
    let reject = pb::RejectDecisionRequest {
        options: None,
        initiative: "NUL-1".into(),
        decision_id: decision.clone(),
        reason: nul.into(),
    };
    assert_invalid(&driver.clone().reject_decision(reject).await.expect_err("reject reason"), "reason", says);
    let withdraw = pb::WithdrawDecisionRequest {
        options: None,
        initiative: "NUL-1".into(),
        decision_id: decision.clone(),
        reason: nul.into(),
    };
    assert_invalid(&driver.clone().withdraw_decision(withdraw).await.expect_err("withdraw reason"), "reason", says);

    let mut signoff = sign_off_request("NUL-1", &decision, "design", pb::Verdict::Reject);
    signoff.reason = nul.into();
    assert_invalid(&app.as_(DESIGNER).record_sign_off(signoff.clone()).await.expect_err("reason"), "reason", says);
    signoff.reason = "Fine".into();
    signoff.comment = nul.into();
    assert_invalid(&app.as_(DESIGNER).record_sign_off(signoff).await.expect_err("comment"), "comment", says);

    let body = feedback_request("NUL-1", "", "engineering", pb::FeedbackKind::Comment, nul);
    assert_invalid(&app.as_(ENGINEER).record_feedback(body).await.expect_err("body"), "body", says);
    let resolution = pb::ResolveFeedbackRequest {
        options: None,
        initiative: "NUL-1".into(),
        feedback_id: feedback.clone(),
        resolution: nul.into(),
    };
    assert_invalid(&app.as_(ENGINEER).resolve_feedback(resolution).await.expect_err("resolution"), "resolution", says);

    // Ids and keys with a NUL are malformed like any other.
    let status = owner.clone().assign_stakeholder(assignment("NUL-1", "a\0b", "legal", pb::Role::Approver)).await;
    assert_invalid(&status.expect_err("principal"), "principal", "must not contain whitespace or control characters");
    let status = owner.clone().create_initiative(new_initiative("NUL\0-3", "Fine")).await.expect_err("key");
    assert_invalid(&status, "key", "must be 2-32 upper-case letters");
    let request = assignment("NUL-1", "ann@example.com", "le\0gal", pb::Role::Approver);
    let status = owner.clone().assign_stakeholder(request).await.expect_err("function");
    assert_invalid(&status, "function", "is not a function");
    assert_eq!(app.log().await, before, "no refusal wrote anything");

    let status = app
        .queries()
        .list_alignments(pb::ListAlignmentsRequest { text: "a\0".into(), ..Default::default() })
        .await
        .expect_err("NUL in the filter");
    assert_invalid(&status, "text", says);
    assert_chain_verifies(&app).await;
}

/// The text filter is a substring match in which `%`, `_` and `\` are plain characters,
/// and SQL in it is only text.
async fn list_text_filter_matches_wildcards_backslashes_and_quotes_literally(app: TestApp) {
    let titles = [
        ("PCT-1", "100% done"),
        ("PCT-2", "100 done"),
        ("UND-1", "snake_case"),
        ("UND-2", "snakeXcase"),
        ("BSL-1", "back\\slash"),
        ("BSL-2", "backslash"),
        ("QUO-1", "O'Brien's plan"),
        ("PLAIN-1", "plain"),
    ];
    for (key, title) in titles {
        create_initiative(&app, OWNER, key, title).await;
    }
    let keys = |keys: &[&str]| keys.iter().map(|k| (*k).to_owned()).collect::<BTreeSet<_>>();
    let cases: [(&str, &[&str]); 22] = [
        ("%", &["PCT-1"]),
        ("100%", &["PCT-1"]),
        ("0% d", &["PCT-1"]),
        ("%%", &[]),
        ("1%0", &[]),
        ("_", &["UND-1"]),
        ("e_c", &["UND-1"]),
        ("snake_case", &["UND-1"]),
        ("snake%case", &[]),
        ("s_a_e", &[]),
        ("\\", &["BSL-1"]),
        ("k\\s", &["BSL-1"]),
        ("\\%", &[]),
        ("\\_", &[]),
        ("\\\\", &[]),
        ("'", &["QUO-1"]),
        ("' OR '1'='1", &[]),
        ("'; DROP TABLE alignment; --", &[]),
        ("plan' --", &[]),
        ("PCT", &["PCT-1", "PCT-2"]),
        ("DONE", &["PCT-1", "PCT-2"]),
        ("", &["BSL-1", "BSL-2", "PCT-1", "PCT-2", "PLAIN-1", "QUO-1", "UND-1", "UND-2"]),
    ];
    for (text, expected) in cases {
        assert_eq!(list_keys(&app, text).await, keys(expected), "text filter {text:?}");
    }
    // Nothing was dropped or altered on the way.
    let all = list(&app, pb::ListAlignmentsRequest::default()).await;
    let found: Vec<(&str, &str)> = all.iter().map(|v| (v.key.as_str(), v.title.as_str())).collect();
    let mut sorted = titles.to_vec();
    sorted.sort();
    assert_eq!(found, sorted);
    assert_chain_verifies(&app).await;
}

/// Principals with quotes, wildcards, backslashes and emoji are matched exactly by the
/// inbox and the owner filter, and shown verbatim.
async fn principals_with_quotes_wildcards_and_emoji_are_matched_exactly(app: TestApp) {
    let quoted = "o'brien+%_\\x@example.com";
    let emoji = "👩🏽‍💻@example.com";
    create_initiative(&app, OWNER, "PEOPLE-1", "People").await;
    assign_role(&app, OWNER, "PEOPLE-1", DRIVER, "product", pb::Role::Driver).await;
    assign_role(&app, OWNER, "PEOPLE-1", quoted, "engineering", pb::Role::Approver).await;
    assign_role(&app, OWNER, "PEOPLE-1", emoji, "design", pb::Role::Approver).await;
    propose_decision(&app, DRIVER, "PEOPLE-1", "Decide").await;
    let mut create = new_initiative("PEOPLE-2", "Owned by a quoted principal");
    create.owner = quoted.into();
    app.as_(OWNER).create_initiative(create).await.expect("create with a quoted owner");

    let view = app.alignment("PEOPLE-1").await;
    let stakeholders: BTreeSet<&str> = view.stakeholders.iter().map(|s| s.principal.as_str()).collect();
    assert!(stakeholders.contains(quoted) && stakeholders.contains(emoji), "{stakeholders:?}");
    let can_sign: BTreeSet<&str> =
        view.outstanding.iter().flat_map(|o| o.can_sign.iter().map(String::as_str)).collect();
    assert!(can_sign.contains(quoted) && can_sign.contains(emoji), "{can_sign:?}");

    let inbox = |principal: &str| {
        let principal = principal.to_owned();
        let mut queries = app.queries();
        async move { queries.get_inbox(pb::GetInboxRequest { principal }).await.expect("inbox").into_inner().items }
    };
    let items = inbox(quoted).await;
    assert_eq!(items.iter().map(|i| i.function.as_str()).collect::<Vec<_>>(), ["engineering"]);
    let items = inbox(emoji).await;
    assert_eq!(items.iter().map(|i| i.function.as_str()).collect::<Vec<_>>(), ["design"]);
    for pattern in ["%", "_", "o'brien%", "%@example.com", "\\", "'"] {
        assert!(inbox(pattern).await.is_empty(), "inbox of {pattern:?} matches nobody");
    }

    let owned = |owner: &str| list(&app, pb::ListAlignmentsRequest { owner: owner.to_owned(), ..Default::default() });
    let owned_by_quoted = owned(quoted).await;
    assert_eq!(
        owned_by_quoted.iter().map(|v| (v.key.as_str(), v.owner.as_str())).collect::<Vec<_>>(),
        [("PEOPLE-2", quoted)]
    );
    for pattern in ["%", "o'brien+%", "_%"] {
        assert!(owned(pattern).await.is_empty(), "owner filter {pattern:?} matches nobody");
    }
    let events = payloads(&app, "PEOPLE-2").await;
    assert_eq!(payload_text(&events, "InitiativeCreated", "/owner"), [quoted]);
    let events = payloads(&app, "PEOPLE-1").await;
    assert_eq!(payload_text(&events, "StakeholderAssigned", "/principal"), [DRIVER, quoted, emoji]);
    assert_chain_verifies(&app).await;
}

/// The score is returned exactly as approved pairs over all pairs (1/11 is one of the
/// values a fast, inexact JSON float parser gets wrong in the last place).
async fn alignment_score_comes_back_exactly_approved_over_total(app: TestApp) {
    let functions: Vec<String> = (1..=11).map(|i| format!("f{i}")).collect();
    let mut create = new_initiative("SCORE-1", "Eleven functions");
    create.required_functions = functions.clone();
    app.as_(OWNER).create_initiative(create).await.expect("create");
    assign_role(&app, OWNER, "SCORE-1", DRIVER, "product", pb::Role::Driver).await;
    for (function, approver) in [("f1", ENGINEER), ("f2", DESIGNER), ("f3", BUSINESS)] {
        assign_role(&app, OWNER, "SCORE-1", approver, function, pb::Role::Approver).await;
    }
    let decision = propose_decision(&app, DRIVER, "SCORE-1", "Eleven sign-offs").await.created_id;
    for (approved, (function, approver)) in [("f1", ENGINEER), ("f2", DESIGNER), ("f3", BUSINESS)].iter().enumerate() {
        app.as_(approver)
            .record_sign_off(sign_off_request("SCORE-1", &decision, function, pb::Verdict::Approve))
            .await
            .expect("approve");
        let exact = (approved + 1) as f64 / 11.0;
        let view = app.alignment("SCORE-1").await;
        assert_eq!((view.approved_pairs, view.total_pairs), (approved as u32 + 1, 11));
        assert_eq!(view.score.to_bits(), exact.to_bits(), "GetAlignment score {} is not {exact}", view.score);
        let listed = list(&app, pb::ListAlignmentsRequest { text: "SCORE".into(), ..Default::default() }).await;
        assert_eq!(listed[0].score.to_bits(), exact.to_bits(), "ListAlignments score {}", listed[0].score);
    }
    app.store.rebuild_projections().await.expect("rebuild");
    assert_eq!(app.alignment("SCORE-1").await.score.to_bits(), (3.0f64 / 11.0).to_bits(), "after a rebuild");
}

crate::on_both_stores!(
    hostile_text_is_stored_and_returned_byte_for_byte_through_every_echoed_field,
    text_at_its_limit_in_characters_is_returned_verbatim_and_one_more_is_invalid_naming_the_field,
    limits_count_characters_not_bytes_or_graphemes,
    nul_in_any_text_field_is_invalid_argument_naming_the_field,
    list_text_filter_matches_wildcards_backslashes_and_quotes_literally,
    principals_with_quotes_wildcards_and_emoji_are_matched_exactly,
    alignment_score_comes_back_exactly_approved_over_total,
);
