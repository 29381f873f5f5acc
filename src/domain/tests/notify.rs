//! Notifications derived from the log (`notify::notifications`) and the daily digest
//! (`notify::digest`): given a history, when one more command runs, then who is asked
//! to do what — and every "nothing" case of each rule.

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use super::properties::{run, scenario};
use super::*;
use crate::domain::alignment::bounds;
use crate::domain::notify::{DIGEST_ITEMS, Digest, Notification, NotificationKind, digest, notifications};

/// A driver for engineering, beside the `product` driver of `team()`.
const ENG_DRIVER: &str = "drew@example.com";
/// Someone assigned as an approver after a decision was proposed.
const LATECOMER: &str = "nora@example.com";

/// Every event's notifications, from folding the history one event at a time.
fn replay(events: &[Recorded]) -> Vec<Vec<Notification>> {
    let mut state: Option<Initiative> = None;
    let mut all = Vec::new();
    for recorded in events {
        let after = evolve(state.clone(), recorded).expect("the history folds");
        all.push(notifications(state.as_ref(), recorded, &after));
        state = Some(after);
    }
    all
}

/// when: runs a command; then: the notifications of the events it recorded.
#[track_caller]
fn notified(history: &mut History, actor: &str, command: Command) -> Vec<Notification> {
    let start = history.events.len();
    history.run(actor, command);
    replay(&history.events).into_iter().skip(start).flatten().collect()
}

fn people(names: &[&str]) -> Vec<Principal> {
    let mut people: Vec<Principal> = names.iter().map(|n| who(n)).collect();
    people.sort();
    people
}

fn functions(names: &[&str]) -> Vec<Function> {
    funcs(names).into_iter().collect()
}

#[track_caller]
fn only(notifications: Vec<Notification>, kind: NotificationKind) -> Notification {
    assert_eq!(notifications.len(), 1, "exactly one notification: {notifications:#?}");
    let notification = notifications.into_iter().next().expect("one notification");
    assert_eq!(notification.kind, kind, "{notification:#?}");
    notification
}

// ---------------------------------------------------------------------------------
// The kinds.
// ---------------------------------------------------------------------------------

#[test]
fn kinds_have_stable_names_that_parse_back() {
    let names: Vec<&str> = NotificationKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(names, ["sign_off_requested", "blocked_by_objection", "aligned", "accepted_with_override"]);
    for kind in NotificationKind::ALL {
        assert_eq!(NotificationKind::parse(kind.as_str()), Some(kind));
        assert_eq!(serde_json::to_value(kind).unwrap(), serde_json::json!(kind.as_str()));
    }
    assert_eq!(NotificationKind::parse("Aligned"), None);
    assert_eq!(NotificationKind::parse(""), None);
}

// ---------------------------------------------------------------------------------
// sign_off_requested
// ---------------------------------------------------------------------------------

#[test]
fn a_proposal_asks_every_approver_of_the_pending_functions_in_one_notification() {
    let mut history = team();
    let asked = only(notified(&mut history, DRIVER, propose(dec(1))), NotificationKind::SignOffRequested);
    assert_eq!(asked.initiative_id, INITIATIVE);
    assert_eq!(asked.initiative_key.as_str(), "CHECKOUT-42");
    assert_eq!(asked.initiative_title, "Checkout");
    assert_eq!(asked.decision_id, Some(dec(1)));
    assert_eq!(asked.decision_title, "Use Stripe for payments");
    assert_eq!(asked.revision, 1);
    assert_eq!(asked.functions, functions(&["business", "design", "engineering"]));
    assert_eq!(asked.who_must_act, people(&[BIZ, DES, ENG]));
    assert_eq!(
        asked.action,
        "bianca@example.com, desmond@example.com and erin@example.com must sign off on “Use Stripe for payments” \
         (revision 1) for business, design, engineering."
    );
    assert_eq!(asked.reason, "");
}

#[test]
fn a_proposal_nobody_can_sign_asks_nobody_and_a_function_without_approver_is_left_out() {
    let mut bare = History::new().given(OWNER, create());
    assert_eq!(notified(&mut bare, OWNER, propose(dec(1))), vec![]);

    let mut history = team();
    let asked = only(
        notified(&mut history, DRIVER, propose_for(dec(1), &["engineering", "legal"])),
        NotificationKind::SignOffRequested,
    );
    assert_eq!(asked.functions, functions(&["engineering"]));
    assert_eq!(asked.who_must_act, people(&[ENG]));
}

#[test]
fn a_material_revision_asks_again_and_an_editorial_one_asks_nobody() {
    let mut history = aligned();
    assert_eq!(notified(&mut history, DRIVER, revise(dec(1), RevisionKind::Editorial, "Stripe, typo fixed")), vec![]);
    let asked = only(
        notified(&mut history, DRIVER, revise(dec(1), RevisionKind::Material, "Adyen")),
        NotificationKind::SignOffRequested,
    );
    assert_eq!(asked.revision, 3);
    assert_eq!(asked.who_must_act, people(&[BIZ, DES, ENG]));
    assert!(asked.action.contains("(revision 3)"), "{}", asked.action);
}

#[test]
fn a_material_revision_leaves_out_a_function_that_stays_rejected() {
    let mut history = proposed().given(BIZ, reject(dec(1), "business", "too expensive"));
    let asked = only(
        notified(&mut history, DRIVER, revise(dec(1), RevisionKind::Material, "Adyen")),
        NotificationKind::SignOffRequested,
    );
    assert_eq!(
        asked.functions,
        functions(&["design", "engineering"]),
        "a rejection stands until its signer changes it"
    );
    assert_eq!(asked.who_must_act, people(&[DES, ENG]));
}

#[test]
fn an_approver_assigned_to_a_pending_function_is_asked_alone_once_per_open_decision() {
    let mut history = proposed().given(DRIVER, propose_for(dec(2), &["engineering"]));
    let asked = notified(&mut history, DRIVER, assign(LATECOMER, "engineering", Role::Approver));
    assert_eq!(asked.len(), 2, "{asked:#?}");
    for (notification, decision) in asked.iter().zip([dec(1), dec(2)]) {
        assert_eq!(notification.kind, NotificationKind::SignOffRequested);
        assert_eq!(notification.decision_id, Some(decision));
        assert_eq!(notification.functions, functions(&["engineering"]));
        assert_eq!(notification.who_must_act, people(&[LATECOMER]));
    }
}

#[test]
fn an_assignment_asks_nobody_when_nothing_is_pending_for_it() {
    // No decision yet.
    let mut history = team();
    assert_eq!(notified(&mut history, DRIVER, assign(LATECOMER, "engineering", Role::Approver)), vec![]);
    // Already approved by another approver.
    let mut history = proposed().given(ENG, approve(dec(1), "engineering"));
    assert_eq!(notified(&mut history, DRIVER, assign(LATECOMER, "engineering", Role::Approver)), vec![]);
    // A function no open decision needs, and roles that sign nothing.
    let mut history = proposed();
    assert_eq!(notified(&mut history, DRIVER, assign(LATECOMER, "legal", Role::Approver)), vec![]);
    assert_eq!(notified(&mut history, DRIVER, assign(LATECOMER, "engineering", Role::Contributor)), vec![]);
    assert_eq!(notified(&mut history, DRIVER, assign(LATECOMER, "design", Role::Informed)), vec![]);
    // The decision was closed.
    let mut history = proposed().given(DRIVER, withdraw(dec(1)));
    assert_eq!(notified(&mut history, DRIVER, assign(LATECOMER, "engineering", Role::Approver)), vec![]);
    // Blocked by an objection: a signature would not move it.
    let mut history = proposed().given(CONTRIB, objection(fb(1), Some(dec(1)), "engineering"));
    assert_eq!(notified(&mut history, DRIVER, assign(LATECOMER, "engineering", Role::Approver)), vec![]);
}

#[test]
fn other_ways_a_function_becomes_pending_ask_nobody() {
    let mut history = proposed().given(ENG, approve(dec(1), "engineering"));
    assert_eq!(notified(&mut history, ENG, revoke(dec(1), "engineering")), vec![]);
    let mut history = proposed().given(CONTRIB, objection(fb(1), Some(dec(1)), "engineering"));
    assert_eq!(notified(&mut history, CONTRIB, resolve(fb(1))), vec![]);
}

#[test]
fn the_people_asked_are_bounded_and_the_sentence_counts_the_rest() {
    let mut history = team();
    for n in 0..15 {
        history = history.given(DRIVER, assign(&format!("approver{n:02}@example.com"), "legal", Role::Approver));
    }
    let asked = only(
        notified(&mut history, DRIVER, propose_for(dec(1), &["engineering", "legal"])),
        NotificationKind::SignOffRequested,
    );
    assert_eq!(asked.who_must_act.len(), bounds::NAMES);
    let mut sorted = asked.who_must_act.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, asked.who_must_act, "sorted and unique");
    assert_eq!(asked.who_must_act[0], who("approver00@example.com"));
    assert!(asked.action.contains("approver09@example.com and 6 others must sign off"), "{}", asked.action);
    assert!(!asked.action.contains("approver10@"), "{}", asked.action);
}

// ---------------------------------------------------------------------------------
// blocked_by_objection
// ---------------------------------------------------------------------------------

#[test]
fn an_objection_asks_the_owner_and_the_drivers_of_its_function_naming_the_objector() {
    let mut history = proposed().given(OWNER, assign(ENG_DRIVER, "engineering", Role::Driver));
    let blocked = only(
        notified(&mut history, CONTRIB, objection(fb(1), Some(dec(1)), "engineering")),
        NotificationKind::BlockedByObjection,
    );
    assert_eq!(blocked.decision_id, Some(dec(1)));
    assert_eq!(blocked.revision, 1);
    assert_eq!(blocked.functions, functions(&["engineering"]));
    assert_eq!(blocked.who_must_act, people(&[ENG_DRIVER, OWNER]), "not the product driver");
    assert_eq!(
        blocked.action,
        "drew@example.com and olivia@example.com must resolve the engineering objection by carl@example.com on \
         “Use Stripe for payments” (revision 1)."
    );
    assert_eq!(blocked.reason, "a objection from engineering");
}

#[test]
fn every_new_objection_notifies_even_on_a_function_blocked_already() {
    let mut history = proposed().given(CONTRIB, objection(fb(1), Some(dec(1)), "engineering"));
    let second = only(
        notified(&mut history, ENG, objection(fb(2), Some(dec(1)), "engineering")),
        NotificationKind::BlockedByObjection,
    );
    assert!(second.action.contains("objection by erin@example.com"), "{}", second.action);
    assert_eq!(second.who_must_act, people(&[OWNER]));
}

#[test]
fn a_reopened_objection_notifies_again_and_a_resolution_does_not() {
    let mut history = proposed().given(CONTRIB, objection(fb(1), Some(dec(1)), "engineering"));
    assert_eq!(notified(&mut history, CONTRIB, resolve(fb(1))), vec![]);
    let reopened = only(notified(&mut history, CONTRIB, reopen(fb(1))), NotificationKind::BlockedByObjection);
    assert_eq!(reopened.reason, "a objection from engineering", "the objection's body, not the reopening's reason");
}

#[test]
fn unrelated_events_on_a_blocked_decision_and_other_feedback_notify_nobody() {
    let mut history = proposed().given(CONTRIB, objection(fb(1), Some(dec(1)), "engineering"));
    assert_eq!(notified(&mut history, DES, approve(dec(1), "design")), vec![]);
    assert_eq!(
        notified(
            &mut history,
            CONTRIB,
            feedback(fb(2), Some(dec(1)), "engineering", FeedbackKind::Concern, FeedbackSource::Customer)
        ),
        vec![]
    );
    assert_eq!(
        notified(
            &mut history,
            CONTRIB,
            feedback(fb(3), Some(dec(1)), "engineering", FeedbackKind::Comment, FeedbackSource::Internal)
        ),
        vec![]
    );
    assert_eq!(notified(&mut history, OWNER, Command::ChangeStage { stage: Stage::Delivery }), vec![]);
}

#[test]
fn an_objection_against_the_initiative_has_no_decision() {
    let mut history = team();
    let blocked = only(
        notified(&mut history, CONTRIB, objection(fb(1), None, "engineering")),
        NotificationKind::BlockedByObjection,
    );
    assert_eq!(blocked.decision_id, None);
    assert_eq!(blocked.decision_title, "");
    assert_eq!(blocked.revision, 0);
    assert!(blocked.action.ends_with("on the initiative CHECKOUT-42."), "{}", blocked.action);
}

#[test]
fn an_objection_from_a_function_the_decision_does_not_need_still_notifies() {
    let mut history = team().given(DRIVER, propose_for(dec(1), &["engineering"]));
    let blocked = only(
        notified(&mut history, DRIVER, objection(fb(1), Some(dec(1)), "product")),
        NotificationKind::BlockedByObjection,
    );
    assert_eq!(blocked.functions, functions(&["product"]));
    assert_eq!(blocked.who_must_act, people(&[DRIVER, OWNER]), "the product driver drives that function");
}

#[test]
fn an_objection_reopened_on_a_closed_decision_notifies_nobody() {
    let mut history = proposed()
        .given(CONTRIB, objection(fb(1), Some(dec(1)), "engineering"))
        .given(CONTRIB, resolve(fb(1)))
        .given(DRIVER, withdraw(dec(1)));
    // The rules refuse it; a log that holds it anyway (an import) still notifies nobody.
    history.refuse(CONTRIB, reopen(fb(1)));
    history.record(CONTRIB, Event::FeedbackReopened { feedback_id: fb(1), reason: "again".into() });
    assert_eq!(replay(&history.events).last(), Some(&vec![]));
}

#[test]
fn the_reason_quotes_a_preview_of_a_long_objection() {
    let mut history = proposed();
    let body = "ü".repeat(5_000);
    let command = Command::RecordFeedback {
        feedback_id: fb(1),
        decision_id: Some(dec(1)),
        function: func("engineering"),
        kind: FeedbackKind::Objection,
        source: FeedbackSource::Internal,
        body,
    };
    let blocked = only(notified(&mut history, CONTRIB, command), NotificationKind::BlockedByObjection);
    assert_eq!(blocked.reason.chars().count(), bounds::PREVIEW_CHARS + 1);
    assert!(blocked.reason.ends_with('…'));
}

// ---------------------------------------------------------------------------------
// aligned
// ---------------------------------------------------------------------------------

#[test]
fn the_last_approval_tells_the_owner_and_every_driver_they_may_accept() {
    let mut history = proposed().given(ENG, approve(dec(1), "engineering"));
    assert_eq!(notified(&mut history, DES, approve(dec(1), "design")), vec![], "still pending");
    let aligned = only(notified(&mut history, BIZ, approve(dec(1), "business")), NotificationKind::Aligned);
    assert_eq!(aligned.decision_id, Some(dec(1)));
    assert_eq!(aligned.functions, functions(&["business", "design", "engineering"]));
    assert_eq!(aligned.who_must_act, people(&[DRIVER, OWNER]));
    assert_eq!(
        aligned.action,
        "dana@example.com and olivia@example.com may accept “Use Stripe for payments” (revision 1): every required \
         function approved."
    );
}

#[test]
fn an_aligned_decision_does_not_notify_again_until_it_falls_back_and_realigns() {
    let mut history = aligned();
    assert_eq!(
        notified(
            &mut history,
            CONTRIB,
            feedback(fb(1), Some(dec(1)), "engineering", FeedbackKind::Comment, FeedbackSource::Internal)
        ),
        vec![]
    );
    assert_eq!(notified(&mut history, DRIVER, revise(dec(1), RevisionKind::Editorial, "Stripe, typo fixed")), vec![]);
    assert_eq!(notified(&mut history, ENG, revoke(dec(1), "engineering")), vec![]);
    only(notified(&mut history, ENG, approve(dec(1), "engineering")), NotificationKind::Aligned);
}

#[test]
fn resolving_the_last_objection_aligns_an_approved_decision() {
    let mut history = aligned().given(CONTRIB, objection(fb(1), Some(dec(1)), "engineering"));
    let aligned = only(notified(&mut history, CONTRIB, resolve(fb(1))), NotificationKind::Aligned);
    assert_eq!(aligned.decision_id, Some(dec(1)));
}

#[test]
fn an_editorial_revision_that_drops_the_last_pending_function_aligns_the_decision() {
    let mut history = proposed().given(ENG, approve(dec(1), "engineering")).given(DES, approve(dec(1), "design"));
    let command = Command::ReviseDecision {
        decision_id: dec(1),
        kind: RevisionKind::Editorial,
        content: content("Use Stripe for payments", "Stripe, without business"),
        required_functions: Some(funcs(&["engineering", "design"])),
        note: "business is not needed".into(),
    };
    only(notified(&mut history, DRIVER, command), NotificationKind::Aligned);
}

#[test]
fn accepting_an_aligned_decision_notifies_nobody() {
    let mut history = aligned();
    assert_eq!(notified(&mut history, DRIVER, accept(dec(1))), vec![]);
}

// ---------------------------------------------------------------------------------
// accepted_with_override
// ---------------------------------------------------------------------------------

#[test]
fn an_override_tells_the_approvers_of_unaligned_functions_and_the_objectors() {
    let mut history = proposed()
        .given(ENG, approve(dec(1), "engineering"))
        .given(CONTRIB, objection(fb(1), Some(dec(1)), "engineering"));
    let overridden = only(
        notified(&mut history, DRIVER, accept_overriding(dec(1), "deadline")),
        NotificationKind::AcceptedWithOverride,
    );
    assert_eq!(overridden.decision_id, Some(dec(1)));
    assert_eq!(overridden.functions, functions(&["business", "design", "engineering"]));
    assert_eq!(overridden.who_must_act, people(&[BIZ, CONTRIB, DES, ENG]));
    assert_eq!(overridden.reason, "deadline");
    assert!(
        overridden.action.contains("was accepted by dana@example.com by override although"),
        "{}",
        overridden.action
    );
    assert!(overridden.action.contains("1 objection stood"), "{}", overridden.action);
}

#[test]
fn an_override_of_functions_nobody_approves_for_and_without_objections_tells_nobody() {
    let mut history = History::new()
        .given(OWNER, create())
        .given(OWNER, assign(DRIVER, "product", Role::Driver))
        .given(OWNER, propose(dec(1)));
    assert_eq!(notified(&mut history, DRIVER, accept_overriding(dec(1), "deadline")), vec![]);
}

// ---------------------------------------------------------------------------------
// Nothing at all.
// ---------------------------------------------------------------------------------

#[test]
fn the_first_event_and_an_archived_initiative_notify_nobody() {
    let history = History::new().given(OWNER, create());
    assert_eq!(replay(&history.events), vec![vec![]]);
    let mut history = aligned().given(ENG, revoke(dec(1), "engineering"));
    assert_eq!(notified(&mut history, OWNER, Command::ArchiveInitiative { reason: "stopped".into() }), vec![]);
}

#[test]
fn replaying_a_history_twice_gives_the_same_notifications() {
    let history =
        accepted().given(DRIVER, propose(dec(2))).given(CONTRIB, objection(fb(1), Some(dec(2)), "engineering"));
    let first = replay(&history.events);
    assert_eq!(first, replay(&history.events));
    assert!(first.iter().flatten().count() >= 4, "{first:#?}");
}

// ---------------------------------------------------------------------------------
// The digest.
// ---------------------------------------------------------------------------------

fn digest_of(person: &str, histories: &[&History]) -> Digest {
    digest(&who(person), histories.iter().map(|h| h.state()))
}

#[test]
fn the_digest_lists_the_pending_sign_offs_of_a_person_since_the_proposal() {
    let history = proposed();
    let digest = digest_of(ENG, &[&history]);
    assert_eq!(digest.person, who(ENG));
    assert_eq!(digest.total, 1);
    let item = &digest.items[0];
    assert_eq!(item.initiative_id, INITIATIVE);
    assert_eq!(item.initiative_key.as_str(), "CHECKOUT-42");
    assert_eq!(item.initiative_title, "Checkout");
    assert_eq!(item.decision_id, dec(1));
    assert_eq!(item.decision_title, "Use Stripe for payments");
    assert_eq!(item.revision, 1);
    assert_eq!(item.function, func("engineering"));
    assert_eq!(item.waiting_since, at(8), "the proposal is version 8");
    for nobody in [STRANGER, CONTRIB, INFORMED, OWNER, DRIVER] {
        assert_eq!(digest_of(nobody, &[&history]), Digest { person: who(nobody), items: vec![], total: 0 });
    }
}

#[test]
fn the_digest_leaves_out_what_is_signed_blocked_closed_or_archived() {
    let signed = proposed().given(ENG, approve(dec(1), "engineering"));
    assert_eq!(digest_of(ENG, &[&signed]).total, 0);
    let rejected = proposed().given(ENG, reject(dec(1), "engineering", "no"));
    assert_eq!(digest_of(ENG, &[&rejected]).total, 0);
    let blocked = proposed().given(CONTRIB, objection(fb(1), Some(dec(1)), "engineering"));
    assert_eq!(digest_of(ENG, &[&blocked]).total, 0);
    let withdrawn = proposed().given(DRIVER, withdraw(dec(1)));
    assert_eq!(digest_of(ENG, &[&withdrawn]).total, 0);
    let archived = proposed().given(OWNER, Command::ArchiveInitiative { reason: "stopped".into() });
    assert_eq!(digest_of(ENG, &[&archived]).total, 0);
    assert_eq!(digest_of(DES, &[&signed]).total, 1, "others still owe theirs");
}

#[test]
fn a_material_revision_restarts_the_wait_and_an_editorial_one_does_not() {
    let history = proposed().given(DRIVER, revise(dec(1), RevisionKind::Material, "Adyen"));
    let material_at = history.events.last().unwrap().recorded_at;
    let history = history.given(DRIVER, revise(dec(1), RevisionKind::Editorial, "Adyen, typo fixed"));
    let item = &digest_of(ENG, &[&history]).items[0];
    assert_eq!(item.waiting_since, material_at);
    assert_eq!(item.revision, 3);
}

fn other_initiative() -> History {
    let create = Command::CreateInitiative {
        id: InitiativeId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002)),
        key: InitiativeKey::parse("key", "SEARCH-7").unwrap(),
        title: "Search".into(),
        summary: "Better search".into(),
        owner: None,
        stage: None,
        required_functions: None,
    };
    History::new()
        .given(OWNER, create)
        .given(OWNER, assign(ENG, "engineering", Role::Approver))
        .given(OWNER, propose(dec(9)))
}

#[test]
fn the_digest_puts_the_longest_waiting_first_whatever_order_initiatives_come_in() {
    let checkout = proposed(); // proposed at version 8
    let search = other_initiative(); // proposed at version 3
    let digest = digest_of(ENG, &[&checkout, &search]);
    assert_eq!(digest, digest_of(ENG, &[&search, &checkout]));
    let keys: Vec<&str> = digest.items.iter().map(|i| i.initiative_key.as_str()).collect();
    assert_eq!(keys, ["SEARCH-7", "CHECKOUT-42"]);
}

#[test]
fn the_digest_lists_at_most_its_bound_and_counts_everything() {
    let mut history = team();
    for n in 1..=25 {
        history = history.given(DRIVER, propose_for(dec(n), &["engineering"]));
    }
    let digest = digest_of(ENG, &[&history]);
    assert_eq!(digest.total, 25);
    assert_eq!(digest.items.len(), DIGEST_ITEMS);
    let decisions: Vec<DecisionId> = digest.items.iter().map(|i| i.decision_id).collect();
    assert_eq!(decisions, (1..=20).map(dec).collect::<Vec<_>>(), "the oldest twenty");
}

// ---------------------------------------------------------------------------------
// Properties over arbitrary histories.
// ---------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    /// Notifications name only the owner, stakeholders and feedback authors of the
    /// initiative, at most `bounds::NAMES` of them, sorted and unique; they never come
    /// from an archived initiative; and replaying the history gives them again.
    #[test]
    fn notifications_name_only_people_of_the_initiative_and_replay_identically((start, steps) in scenario()) {
        let run = run(start, &steps)?;
        let first = replay(&run.events);
        prop_assert_eq!(&first, &replay(&run.events));
        for (i, found) in first.iter().enumerate() {
            let after = &run.states[i];
            for notification in found {
                prop_assert!(after.archived.is_none());
                prop_assert!(!notification.who_must_act.is_empty());
                prop_assert!(notification.who_must_act.len() <= bounds::NAMES);
                prop_assert!(notification.who_must_act.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
                for person in &notification.who_must_act {
                    let known = &after.owner == person
                        || after.stakeholders.iter().any(|s| &s.principal == person)
                        || after.feedback.values().any(|f| &f.author == person);
                    prop_assert!(known, "{} is no one on the initiative: {:?}", person, notification);
                }
                prop_assert_eq!(notification.decision_id.is_none(), notification.revision == 0);
            }
        }
    }
}
