//! The initiative: creation, update, stage, archive and who may manage it.

use super::*;

fn update_title(title: &str) -> Command {
    Command::UpdateInitiative { title: Some(title.into()), summary: None, owner: None, required_functions: None }
}

fn update_summary(summary: &str) -> Command {
    Command::UpdateInitiative { title: None, summary: Some(summary.into()), owner: None, required_functions: None }
}

fn update_owner(owner: &str) -> Command {
    Command::UpdateInitiative { title: None, summary: None, owner: Some(who(owner)), required_functions: None }
}

#[test]
fn create_defaults_owner_to_the_actor_stage_to_discovery_and_functions_to_engineering_design_business() {
    let events = decide(None, &create(), &who(OWNER)).unwrap();
    assert_eq!(
        events,
        vec![Event::InitiativeCreated {
            initiative_id: INITIATIVE,
            key: InitiativeKey::parse("key", "CHECKOUT-42").unwrap(),
            title: "Checkout".into(),
            summary: "A faster checkout".into(),
            owner: who(OWNER),
            stage: Stage::Discovery,
            required_functions: funcs(&["engineering", "design", "business"]),
        }]
    );
}

#[test]
fn create_keeps_an_explicit_owner_stage_and_required_functions() {
    let command = Command::CreateInitiative {
        id: INITIATIVE,
        key: InitiativeKey::parse("key", "sec-7").unwrap(),
        title: "Security review".into(),
        summary: String::new(),
        owner: Some(who(DRIVER)),
        stage: Some(Stage::Delivery),
        required_functions: Some(funcs(&["security", "legal"])),
    };
    let history = History::new().given(OWNER, command);
    let state = history.state();
    assert_eq!(state.owner, who(DRIVER));
    assert_eq!(state.created_by, who(OWNER));
    assert_eq!(state.stage, Stage::Delivery);
    assert_eq!(state.key.as_str(), "SEC-7");
    assert_eq!(state.required_functions, funcs(&["legal", "security"]));
}

#[test]
fn create_folds_into_version_one_with_no_people_decisions_or_feedback() {
    let history = History::new().given(OWNER, create());
    let state = history.state();
    assert_eq!(state.id, INITIATIVE);
    assert_eq!(state.version, 1);
    assert_eq!(state.created_at, at(1));
    assert_eq!(state.last_activity, at(1));
    assert!(state.archived.is_none());
    assert!(state.stakeholders.is_empty() && state.decisions.is_empty() && state.feedback.is_empty());
}

#[test]
fn create_on_an_existing_stream_is_already_exists_naming_the_key() {
    let history = History::new().given(OWNER, create());
    assert_already_exists(history.refuse(OWNER, create()), &["CHECKOUT-42", "exists already"]);
}

#[test]
fn create_on_an_archived_stream_is_still_already_exists() {
    let history = team().given(OWNER, Command::ArchiveInitiative { reason: "done".into() });
    assert_already_exists(history.refuse(OWNER, create()), &["CHECKOUT-42"]);
}

#[test]
fn any_other_command_on_a_missing_stream_is_not_found() {
    let history = History::new();
    for command in [
        update(),
        Command::ChangeStage { stage: Stage::Delivery },
        propose(dec(1)),
        assign(ENG, "engineering", Role::Approver),
    ] {
        assert_not_found(history.refuse(OWNER, command), &["initiative not found"]);
    }
}

// --- Update -------------------------------------------------------------------------

#[test]
fn update_records_only_the_fields_that_change() {
    let mut history = team();
    let events = history.run(
        OWNER,
        Command::UpdateInitiative {
            title: Some("Checkout v2".into()),
            summary: Some("A faster checkout".into()), // unchanged
            owner: Some(who(OWNER)),                   // unchanged
            required_functions: Some(funcs(&["engineering", "design", "business", "legal"])),
        },
    );
    assert_eq!(
        events,
        vec![Event::InitiativeUpdated {
            title: Some("Checkout v2".into()),
            summary: None,
            owner: None,
            required_functions: Some(funcs(&["business", "design", "engineering", "legal"])),
        }]
    );
    assert_eq!(history.state().title, "Checkout v2");
    assert_eq!(history.state().summary, "A faster checkout");
    assert!(history.state().required_functions.contains(&func("legal")));
}

#[test]
fn update_that_changes_nothing_is_invalid_argument() {
    let history = team();
    let same = Command::UpdateInitiative {
        title: Some("Checkout".into()),
        summary: Some("A faster checkout".into()),
        owner: Some(who(OWNER)),
        required_functions: Some(Function::default_set()),
    };
    assert_invalid(history.refuse(OWNER, same), "initiative", &["changes nothing"]);
    assert_invalid(history.refuse(OWNER, update()), "initiative", &["changes nothing"]);
}

#[test]
fn update_of_the_summary_alone_changes_only_the_summary() {
    let mut history = team();
    let events = history.run(DRIVER, update_summary("New summary"));
    assert_eq!(
        events,
        vec![Event::InitiativeUpdated {
            title: None,
            summary: Some("New summary".into()),
            owner: None,
            required_functions: None
        }]
    );
    assert_eq!(history.state().title, "Checkout");
    assert_eq!(history.state().summary, "New summary");
}

#[test]
fn update_transferring_ownership_moves_the_right_to_manage() {
    let history = team().given(OWNER, update_owner(ENG));
    assert_eq!(history.state().owner, who(ENG));
    assert!(history.try_run(ENG, Command::ChangeStage { stage: Stage::Definition }).is_ok());
    assert_denied(history.refuse(OWNER, Command::ChangeStage { stage: Stage::Definition }), &[OWNER, "neither"]);
}

// --- Stage --------------------------------------------------------------------------

#[test]
fn change_stage_records_from_and_to() {
    let mut history = team();
    let events = history.run(OWNER, Command::ChangeStage { stage: Stage::Delivery });
    assert_eq!(events, vec![Event::StageChanged { from: Stage::Discovery, to: Stage::Delivery }]);
    assert_eq!(history.state().stage, Stage::Delivery);
    let events = history.run(DRIVER, Command::ChangeStage { stage: Stage::Discovery });
    assert_eq!(events, vec![Event::StageChanged { from: Stage::Delivery, to: Stage::Discovery }]);
}

#[test]
fn change_stage_to_the_current_stage_is_failed_precondition() {
    let history = team();
    assert_precondition(
        history.refuse(OWNER, Command::ChangeStage { stage: Stage::Discovery }),
        &["already in stage discovery"],
    );
}

// --- Archive ------------------------------------------------------------------------

#[test]
fn archive_records_who_when_and_why() {
    let mut history = team();
    let events = history.run(DRIVER, Command::ArchiveInitiative { reason: "cancelled".into() });
    assert_eq!(events, vec![Event::InitiativeArchived { reason: "cancelled".into() }]);
    let archived = history.state().archived.clone().unwrap();
    assert_eq!((archived.by, archived.at, archived.reason.as_str()), (who(DRIVER), at(history.version()), "cancelled"));
    assert!(history.view().archived);
}

#[test]
fn after_archive_every_command_is_failed_precondition_even_for_the_owner() {
    let history = proposed()
        .given(ENG, approve(dec(1), "engineering"))
        .given(CONTRIB, feedback(fb(1), Some(dec(1)), "engineering", FeedbackKind::Comment, FeedbackSource::Internal))
        .given(OWNER, Command::ArchiveInitiative { reason: "cancelled".into() });
    let commands = vec![
        (OWNER, update_title("New")),
        (OWNER, Command::ChangeStage { stage: Stage::Sunset }),
        (OWNER, Command::ArchiveInitiative { reason: "again".into() }),
        (OWNER, assign(STRANGER, "design", Role::Approver)),
        (OWNER, remove(ENG, "engineering", Role::Approver)),
        (DRIVER, propose(dec(2))),
        (DRIVER, revise(dec(1), RevisionKind::Editorial, "Stripe.")),
        (DRIVER, accept_overriding(dec(1), "ship it")),
        (DRIVER, reject_decision(dec(1))),
        (DRIVER, withdraw(dec(1))),
        (DRIVER, supersede(dec(1), dec(2))),
        (CONTRIB, feedback(fb(2), None, "engineering", FeedbackKind::Comment, FeedbackSource::Internal)),
        (CONTRIB, resolve(fb(1))),
        (CONTRIB, reopen(fb(1))),
        (DES, approve(dec(1), "design")),
        (ENG, revoke(dec(1), "engineering")),
    ];
    for (actor, command) in commands {
        assert_precondition(history.refuse(actor, command), &["archived by olivia@example.com", "no more commands"]);
    }
}

#[test]
fn archive_by_a_non_manager_is_permission_denied() {
    let history = team();
    assert_denied(history.refuse(ENG, Command::ArchiveInitiative { reason: "no".into() }), &[ENG, "archive"]);
}

// --- Manager rights -----------------------------------------------------------------

#[test]
fn owner_and_driver_may_manage_the_initiative() {
    let history = team();
    for actor in [OWNER, DRIVER] {
        assert!(history.try_run(actor, Command::ChangeStage { stage: Stage::Definition }).is_ok(), "{actor}");
        assert!(history.try_run(actor, assign(STRANGER, "legal", Role::Approver)).is_ok(), "{actor}");
        assert!(history.try_run(actor, remove(CONTRIB, "engineering", Role::Contributor)).is_ok(), "{actor}");
        assert!(history.try_run(actor, update_title("T")).is_ok());
        assert!(history.try_run(actor, Command::ArchiveInitiative { reason: "r".into() }).is_ok(), "{actor}");
    }
}

#[test]
fn approvers_contributors_informed_and_strangers_may_not_manage_the_initiative() {
    let history = team();
    for actor in [ENG, CONTRIB, INFORMED, STRANGER] {
        let commands: Vec<(Command, &str)> = vec![
            (Command::ChangeStage { stage: Stage::Definition }, "change the stage of"),
            (assign(STRANGER, "legal", Role::Approver), "assign stakeholders to"),
            (remove(CONTRIB, "engineering", Role::Contributor), "remove stakeholders from"),
            (update_title("T"), "update"),
            (Command::ArchiveInitiative { reason: "r".into() }, "archive"),
        ];
        for (command, what) in commands {
            assert_denied(
                history.refuse(actor, command),
                &[actor, what, "only the owner (olivia@example.com) or a driver"],
            );
        }
    }
}

#[test]
fn a_driver_of_any_function_may_manage_the_initiative() {
    // The driver in `team()` is assigned for `product`, a function no decision needs.
    let history = team();
    assert!(history.state().is_driver(&who(DRIVER)));
    assert!(history.state().can_manage(&who(DRIVER)));
    assert!(!history.state().can_manage(&who(ENG)));
}

#[test]
fn a_removed_driver_loses_the_right_to_manage() {
    let history = team().given(OWNER, remove(DRIVER, "product", Role::Driver));
    assert_denied(history.refuse(DRIVER, Command::ChangeStage { stage: Stage::Delivery }), &[DRIVER]);
}

// --- Administrators -------------------------------------------------------------------

#[test]
fn an_administrator_manages_any_initiative_but_holds_no_decision_right() {
    use crate::domain::{Authority, decide_as};
    let history = proposed();
    let state = Some(history.state());
    let admin = who("setup-bot@example.com");
    for command in [
        Command::ChangeStage { stage: Stage::Definition },
        assign(STRANGER, "legal", Role::Approver),
        Command::ArchiveInitiative { reason: "Cancelled".into() },
        update_title("Renamed"),
    ] {
        assert!(decide_as(state, &command, &admin, Authority::Administrator).is_ok(), "{command:?}");
        let refused = decide_as(state, &command, &admin, Authority::Member).expect_err("a member who is neither");
        assert_denied(refused, &["setup-bot@example.com is neither"]);
    }
    for command in [approve(dec(1), "engineering"), accept_overriding(dec(1), "Ship it"), withdraw(dec(1))] {
        let refused = decide_as(state, &command, &admin, Authority::Administrator).expect_err("no decision right");
        assert!(matches!(refused, DomainError::PermissionDenied(_)), "{command:?}: {refused:?}");
    }
}
