//! Feedback: kinds and sources, who may give it, and resolving / reopening it.

use super::*;

#[test]
fn feedback_of_every_kind_and_source_is_recorded_as_given_with_the_actor_as_author() {
    let mut history = proposed();
    let mut n = 0;
    for kind in FeedbackKind::ALL {
        for source in FeedbackSource::ALL {
            n += 1;
            let events = history.run(CONTRIB, feedback(fb(n), Some(dec(1)), "engineering", *kind, *source));
            assert_eq!(
                events,
                vec![Event::FeedbackRecorded {
                    feedback_id: fb(n),
                    decision_id: Some(dec(1)),
                    function: func("engineering"),
                    kind: *kind,
                    source: *source,
                    body: format!("a {kind} from engineering"),
                }]
            );
            let recorded = history.feedback(fb(n));
            assert_eq!((recorded.kind, recorded.source), (*kind, *source));
            assert_eq!(recorded.author, who(CONTRIB));
            assert_eq!(recorded.recorded_at, at(history.version()));
            assert!(recorded.is_open());
        }
    }
    assert_eq!(history.state().feedback.len(), 12);
}

#[test]
fn feedback_without_a_decision_is_about_the_initiative() {
    let history =
        team().given(BIZ, feedback(fb(1), None, "business", FeedbackKind::Question, FeedbackSource::Customer));
    assert_eq!(history.feedback(fb(1)).decision_id, None);
}

#[test]
fn feedback_may_be_given_by_a_driver_approver_or_contributor_of_the_named_function() {
    let history = proposed();
    for (actor, function) in [(DRIVER, "product"), (ENG, "engineering"), (CONTRIB, "engineering"), (BIZ, "business")] {
        let command = feedback(fb(1), Some(dec(1)), function, FeedbackKind::Comment, FeedbackSource::Internal);
        assert!(history.try_run(actor, command).is_ok(), "{actor} for {function}");
    }
}

#[test]
fn feedback_for_a_function_the_author_holds_no_role_in_is_permission_denied_naming_the_function() {
    let history = proposed();
    // A contributor for engineering speaking for design; the driver (of product) for business.
    for (actor, function) in [(CONTRIB, "design"), (DRIVER, "business"), (ENG, "business")] {
        let command = feedback(fb(1), Some(dec(1)), function, FeedbackKind::Concern, FeedbackSource::Internal);
        assert_denied(history.refuse(actor, command), &[actor, function, "may not give feedback"]);
    }
}

#[test]
fn feedback_by_an_informed_stakeholder_or_a_stranger_is_permission_denied() {
    let history = proposed();
    for actor in [INFORMED, STRANGER] {
        let command = feedback(fb(1), None, "design", FeedbackKind::Comment, FeedbackSource::Internal);
        assert_denied(history.refuse(actor, command), &[actor, "design"]);
    }
}

#[test]
fn feedback_by_the_owner_who_holds_no_role_is_permission_denied() {
    let history = proposed();
    let command = feedback(fb(1), None, "engineering", FeedbackKind::Comment, FeedbackSource::Internal);
    assert_denied(history.refuse(OWNER, command), &[OWNER]);
}

#[test]
fn feedback_on_an_unknown_decision_is_not_found() {
    let command = feedback(fb(1), Some(dec(4)), "engineering", FeedbackKind::Comment, FeedbackSource::Internal);
    assert_not_found(proposed().refuse(CONTRIB, command), &["decision_id", &dec(4).to_string()]);
}

#[test]
fn feedback_with_an_id_already_used_is_already_exists() {
    let history = proposed().given(CONTRIB, objection(fb(1), Some(dec(1)), "engineering"));
    let command = feedback(fb(1), None, "engineering", FeedbackKind::Comment, FeedbackSource::Internal);
    assert_already_exists(history.refuse(CONTRIB, command), &[&fb(1).to_string()]);
}

#[test]
fn objection_against_a_closed_decision_is_failed_precondition() {
    for (history, status) in [(accepted(), "accepted"), (proposed().given(DRIVER, withdraw(dec(1))), "withdrawn")] {
        assert_precondition(
            history.refuse(CONTRIB, objection(fb(1), Some(dec(1)), "engineering")),
            &[&format!("is {status}"), "objections can only be raised against proposed decisions"],
        );
    }
}

#[test]
fn comments_and_concerns_against_a_closed_decision_are_allowed() {
    let history = accepted();
    for kind in [FeedbackKind::Comment, FeedbackKind::Question, FeedbackKind::Concern] {
        let command = feedback(fb(1), Some(dec(1)), "engineering", kind, FeedbackSource::Customer);
        assert!(history.try_run(CONTRIB, command).is_ok(), "{kind}");
    }
}

// --- Resolve and reopen -------------------------------------------------------------

#[test]
fn resolve_by_the_author_records_the_resolution_with_who_and_when() {
    let mut history = proposed().given(CONTRIB, objection(fb(1), Some(dec(1)), "engineering"));
    let events = history.run(CONTRIB, resolve(fb(1)));
    assert_eq!(events, vec![Event::FeedbackResolved { feedback_id: fb(1), resolution: "addressed".into() }]);
    let resolution = history.feedback(fb(1)).resolution.clone().unwrap();
    assert_eq!(
        (resolution.by, resolution.at, resolution.text.as_str()),
        (who(CONTRIB), at(history.version()), "addressed")
    );
    assert!(!history.feedback(fb(1)).is_open());
}

#[test]
fn resolve_by_a_driver_who_is_not_the_author_is_allowed() {
    let history =
        proposed().given(CONTRIB, objection(fb(1), Some(dec(1)), "engineering")).given(DRIVER, resolve(fb(1)));
    assert_eq!(history.feedback(fb(1)).resolution.as_ref().unwrap().by, who(DRIVER));
}

#[test]
fn resolve_by_anyone_but_the_author_or_a_driver_is_permission_denied() {
    let history = proposed().given(CONTRIB, objection(fb(1), Some(dec(1)), "engineering"));
    for actor in [OWNER, ENG, STRANGER] {
        assert_denied(
            history.refuse(actor, resolve(fb(1))),
            &["only the author (carl@example.com) or a driver", "resolve feedback"],
        );
    }
}

#[test]
fn resolve_of_resolved_feedback_is_failed_precondition() {
    let history =
        proposed().given(CONTRIB, objection(fb(1), Some(dec(1)), "engineering")).given(CONTRIB, resolve(fb(1)));
    assert_precondition(history.refuse(CONTRIB, resolve(fb(1))), &[&fb(1).to_string(), "already resolved"]);
}

#[test]
fn resolve_of_unknown_feedback_is_not_found() {
    assert_not_found(proposed().refuse(DRIVER, resolve(fb(8))), &["feedback_id", &fb(8).to_string()]);
}

#[test]
fn reopen_by_the_author_or_a_driver_clears_the_resolution() {
    let history =
        proposed().given(CONTRIB, objection(fb(1), Some(dec(1)), "engineering")).given(DRIVER, resolve(fb(1)));
    for actor in [CONTRIB, DRIVER] {
        let mut history = history.clone();
        let events = history.run(actor, reopen(fb(1)));
        assert_eq!(
            events,
            vec![Event::FeedbackReopened { feedback_id: fb(1), reason: "not addressed after all".into() }]
        );
        assert!(history.feedback(fb(1)).is_open_objection());
    }
}

#[test]
fn reopen_by_anyone_but_the_author_or_a_driver_is_permission_denied() {
    let history =
        proposed().given(CONTRIB, objection(fb(1), Some(dec(1)), "engineering")).given(CONTRIB, resolve(fb(1)));
    assert_denied(
        history.refuse(ENG, reopen(fb(1))),
        &["only the author (carl@example.com) or a driver", "reopen feedback"],
    );
}

#[test]
fn reopen_of_open_feedback_is_failed_precondition() {
    let history = proposed().given(CONTRIB, objection(fb(1), Some(dec(1)), "engineering"));
    assert_precondition(history.refuse(CONTRIB, reopen(fb(1))), &[&fb(1).to_string(), "is not resolved"]);
}

#[test]
fn reopen_of_unknown_feedback_is_not_found() {
    assert_not_found(proposed().refuse(DRIVER, reopen(fb(8))), &[&fb(8).to_string()]);
}

#[test]
fn feedback_on_a_closed_decision_may_still_be_resolved() {
    let history = proposed()
        .given(CONTRIB, objection(fb(1), Some(dec(1)), "engineering"))
        .given(DRIVER, withdraw(dec(1)))
        .given(CONTRIB, resolve(fb(1)));
    assert!(!history.feedback(fb(1)).is_open());
}
