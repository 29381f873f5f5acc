//! The value types: every parser refuses bad input and names the field.

use super::*;

#[track_caller]
fn invalid_field(error: DomainError) -> String {
    match error {
        DomainError::InvalidArgument { field, .. } => field,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

// --- InitiativeKey ------------------------------------------------------------------

#[test]
fn initiative_key_upper_cases_lower_case_input() {
    assert_eq!(InitiativeKey::parse("key", "checkout-42").unwrap().as_str(), "CHECKOUT-42");
    assert_eq!(
        InitiativeKey::parse("key", "Checkout-42").unwrap(),
        InitiativeKey::parse("key", "CHECKOUT-42").unwrap()
    );
}

#[test]
fn initiative_key_trims_surrounding_whitespace() {
    assert_eq!(InitiativeKey::parse("key", "  CHECKOUT-42 ").unwrap().as_str(), "CHECKOUT-42");
}

#[test]
fn initiative_key_accepts_two_to_thirty_two_characters() {
    assert_eq!(InitiativeKey::parse("key", "AB").unwrap().as_str(), "AB");
    let longest = format!("A{}", "1".repeat(31));
    assert_eq!(InitiativeKey::parse("key", &longest).unwrap().as_str(), longest);
}

#[test]
fn initiative_key_refuses_one_or_thirty_three_characters() {
    assert_invalid(InitiativeKey::parse("key", "A").unwrap_err(), "key", &["\"A\"", "2-32"]);
    let too_long = format!("A{}", "1".repeat(32));
    assert_invalid(InitiativeKey::parse("key", &too_long).unwrap_err(), "key", &["2-32"]);
}

#[test]
fn initiative_key_refuses_bad_shapes_naming_the_field() {
    for bad in ["42-CHECKOUT", "-CHECKOUT", "CHECKOUT-", "CHECK--OUT", "CHECK_OUT", "CHECK OUT", "CHÉCKOUT", "CHECK.42"]
    {
        let error = InitiativeKey::parse("initiative.key", bad).unwrap_err();
        assert_eq!(invalid_field(error.clone()), "initiative.key", "{bad:?}");
        assert_mentions(&error, &["initiative.key", "starting with a letter"]);
    }
}

#[test]
fn initiative_key_refuses_empty_as_required() {
    assert_invalid(InitiativeKey::parse("key", "").unwrap_err(), "key", &["is required"]);
}

#[test]
fn initiative_key_refuses_blank_input() {
    assert_invalid(InitiativeKey::parse("key", "   ").unwrap_err(), "key", &["2-32"]);
}

// --- Function -----------------------------------------------------------------------

#[test]
fn function_accepts_lower_case_slugs_with_digits_dashes_and_underscores() {
    for good in ["engineering", "legal", "data-science", "ux_research", "team2", "a"] {
        assert_eq!(Function::parse("function", good).unwrap().as_str(), good);
    }
    let longest = "a".repeat(32);
    assert_eq!(Function::parse("function", &longest).unwrap().as_str(), longest);
}

#[test]
fn function_refuses_upper_case_leading_digit_spaces_and_overlong_slugs() {
    for bad in ["Engineering", "ENGINEERING", "2team", "-legal", "data science", "légal", "legal!", &"a".repeat(33)] {
        let error = Function::parse("required_functions", bad).unwrap_err();
        assert_invalid(error, "required_functions", &["is not a function", "lower-case slug"]);
    }
}

#[test]
fn function_is_not_upper_cased_silently() {
    // Unlike keys, functions are not normalised: "Design" is refused, not turned into "design".
    assert!(Function::parse("function", "Design").is_err());
}

#[test]
fn function_refuses_empty_as_required() {
    assert_invalid(Function::parse("function", "").unwrap_err(), "function", &["is required"]);
}

#[test]
fn function_default_set_is_engineering_design_business() {
    assert_eq!(Function::default_set(), funcs(&["engineering", "design", "business"]));
}

#[test]
fn function_parse_set_of_an_empty_list_is_none_meaning_the_default() {
    assert_eq!(Function::parse_set("required_functions", &[]).unwrap(), None);
}

#[test]
fn function_parse_set_collects_valid_functions() {
    let set = Function::parse_set("required_functions", &["legal".into(), "design".into()]).unwrap();
    assert_eq!(set, Some(funcs(&["design", "legal"])));
}

#[test]
fn function_parse_set_refuses_duplicates_naming_the_duplicate() {
    let values = vec!["legal".to_owned(), "design".to_owned(), "legal".to_owned()];
    assert_invalid(
        Function::parse_set("required_functions", &values).unwrap_err(),
        "required_functions",
        &["\"legal\" twice"],
    );
}

#[test]
fn function_parse_set_refuses_more_than_the_limit() {
    let at_limit: Vec<String> = (0..MAX_FUNCTIONS).map(|i| format!("f{i}")).collect();
    assert_eq!(Function::parse_set("required_functions", &at_limit).unwrap().unwrap().len(), MAX_FUNCTIONS);
    let over: Vec<String> = (0..=MAX_FUNCTIONS).map(|i| format!("f{i}")).collect();
    assert_invalid(
        Function::parse_set("required_functions", &over).unwrap_err(),
        "required_functions",
        &["33 functions", "at most 32"],
    );
}

#[test]
fn function_parse_set_refuses_an_invalid_member_naming_the_field() {
    let values = vec!["legal".to_owned(), "Legal Team".to_owned()];
    assert_invalid(
        Function::parse_set("required_functions", &values).unwrap_err(),
        "required_functions",
        &["Legal Team"],
    );
}

// --- Principal ----------------------------------------------------------------------

#[test]
fn principal_accepts_an_email_address() {
    assert_eq!(Principal::parse("principal", "erin@example.com").unwrap().as_str(), "erin@example.com");
}

#[test]
fn principal_accepts_254_characters_and_refuses_255() {
    let longest = "p".repeat(MAX_PRINCIPAL);
    assert_eq!(Principal::parse("principal", &longest).unwrap().as_str(), longest);
    let too_long = "p".repeat(MAX_PRINCIPAL + 1);
    assert_invalid(Principal::parse("principal", &too_long).unwrap_err(), "principal", &["longer than 254"]);
}

#[test]
fn principal_limit_counts_characters_not_bytes() {
    let accented = "é".repeat(MAX_PRINCIPAL);
    assert!(Principal::parse("principal", &accented).is_ok());
}

#[test]
fn principal_refuses_empty_as_required() {
    assert_invalid(Principal::parse("owner", "").unwrap_err(), "owner", &["is required"]);
}

#[test]
fn principal_refuses_whitespace_and_control_characters() {
    for bad in ["erin @example.com", " erin@example.com", "erin@example.com\n", "erin\t", "erin\u{7}", "erin\u{a0}x"] {
        assert_invalid(Principal::parse("owner", bad).unwrap_err(), "owner", &["whitespace or control"]);
    }
}

// --- Free text ----------------------------------------------------------------------

#[test]
fn parse_text_accepts_exactly_the_limit_counted_in_characters() {
    let text = "é".repeat(MAX_TITLE);
    assert_eq!(parse_text("title", &text, MAX_TITLE, true).unwrap(), text);
}

#[test]
fn parse_text_refuses_one_character_over_the_limit_naming_both_lengths() {
    let text = "x".repeat(MAX_TITLE + 1);
    assert_invalid(
        parse_text("title", &text, MAX_TITLE, true).unwrap_err(),
        "title",
        &["201 characters", "at most 200"],
    );
}

#[test]
fn parse_text_refuses_empty_or_blank_required_text() {
    assert_invalid(parse_text("title", "", MAX_TITLE, true).unwrap_err(), "title", &["must not be empty"]);
    assert_invalid(parse_text("title", " \t\n", MAX_TITLE, true).unwrap_err(), "title", &["must not be empty"]);
}

#[test]
fn parse_text_accepts_empty_optional_text() {
    assert_eq!(parse_text("comment", "", MAX_REASON, false).unwrap(), "");
}

#[test]
fn parse_text_keeps_the_text_unchanged() {
    assert_eq!(parse_text("summary", "  two\nlines  ", MAX_TEXT, true).unwrap(), "  two\nlines  ");
}

#[test]
fn parse_text_refuses_nul_characters_even_when_optional() {
    assert_invalid(parse_text("body", "a\0b", MAX_TEXT, false).unwrap_err(), "body", &["NUL"]);
    assert_invalid(parse_text("body", "\0", MAX_TEXT, false).unwrap_err(), "body", &["NUL"]);
}

// --- Ids ----------------------------------------------------------------------------

#[test]
fn ids_parse_a_uuid_and_refuse_empty_or_malformed_input_naming_the_field() {
    let uuid = Uuid::from_u128(42);
    assert_eq!(DecisionId::parse("decision_id", &uuid.to_string()).unwrap(), DecisionId(uuid));
    assert_invalid(DecisionId::parse("decision_id", "").unwrap_err(), "decision_id", &["is required"]);
    assert_invalid(
        FeedbackId::parse("feedback_id", "nope").unwrap_err(),
        "feedback_id",
        &["\"nope\"", "not a valid UUID"],
    );
}

#[test]
fn new_v7_ids_are_version_7_and_distinct() {
    let (a, b) = (DecisionId::new_v7(), DecisionId::new_v7());
    assert_eq!(a.0.get_version_num(), 7);
    assert_ne!(a, b);
}

// --- Named enums --------------------------------------------------------------------

#[test]
fn named_enums_round_trip_through_their_names_and_refuse_unknown_names() {
    for stage in Stage::ALL {
        assert_eq!(Stage::from_name(stage.as_str()), Some(*stage));
        assert_eq!(serde_json::to_value(stage).unwrap(), serde_json::json!(stage.as_str()));
    }
    for role in Role::ALL {
        assert_eq!(Role::from_name(role.as_str()), Some(*role));
    }
    for source in FeedbackSource::ALL {
        assert_eq!(FeedbackSource::from_name(source.as_str()), Some(*source));
        assert_eq!(serde_json::to_value(source).unwrap(), serde_json::json!(source.as_str()));
    }
    for kind in FeedbackKind::ALL {
        assert_eq!(FeedbackKind::from_name(kind.as_str()), Some(*kind));
    }
    assert_eq!(Stage::ALL.len(), 6);
    assert_eq!(FeedbackSource::from_name("user_research"), Some(FeedbackSource::UserResearch));
    assert_eq!(Role::from_name("Driver"), None);
    assert_eq!(Verdict::from_name("approved"), None);
    assert_eq!(RevisionKind::from_name(""), None);
}
