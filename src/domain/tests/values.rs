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

// --- Quoting inputs in errors -----------------------------------------------------------

#[test]
fn quote_gives_a_short_input_whole_in_string_syntax() {
    assert_eq!(quote("CHECKOUT 42").to_string(), "\"CHECKOUT 42\"");
    assert_eq!(quote("tab\there").to_string(), "\"tab\\there\"");
    let forty = "x".repeat(QUOTED_CHARS);
    assert_eq!(quote(&forty).to_string(), format!("\"{forty}\""));
}

#[test]
fn quote_gives_only_the_first_40_characters_of_a_long_input_and_its_length() {
    let long = "x".repeat(100_000);
    assert_eq!(quote(&long).to_string(), format!("\"{}\"… (100000 characters)", "x".repeat(40)));
    let one_over = "y".repeat(QUOTED_CHARS + 1);
    assert_eq!(quote(&one_over).to_string(), format!("\"{}\"… (41 characters)", "y".repeat(40)));
}

#[test]
fn quote_cuts_multibyte_input_at_a_character_boundary_and_counts_characters() {
    let long = "é".repeat(100_000);
    assert_eq!(quote(&long).to_string(), format!("\"{}\"… (100000 characters)", "é".repeat(40)));
    let emoji = "🙂".repeat(50);
    assert_eq!(quote(&emoji).to_string(), format!("\"{}\"… (50 characters)", "🙂".repeat(40)));
}

#[test]
fn quote_escapes_control_characters_of_the_prefix_only() {
    let long = "\u{1b}".repeat(100_000);
    let quoted = quote(&long).to_string();
    assert_eq!(quoted, format!("\"{}\"… (100000 characters)", "\\u{1b}".repeat(40)));
    assert!(quoted.len() < 300, "{} bytes", quoted.len());
}

#[test]
fn refusals_of_100000_character_inputs_quote_at_most_a_short_prefix() {
    let long = "Q".repeat(100_000);
    let spaced = format!("a {}", "b".repeat(200));
    let errors = [
        InitiativeKey::parse("key", &long).unwrap_err(),
        Function::parse("function", &long.to_ascii_lowercase()).unwrap_err(),
        Function::parse_set("required_functions", &["legal".into(), "legal".into()]).unwrap_err(),
        DecisionId::parse("decision_id", &long).unwrap_err(),
        Principal::parse("principal", &long).unwrap_err(),
        Principal::parse("principal", &spaced).unwrap_err(),
        parse_text("body", &long, MAX_TEXT, true).unwrap_err(),
    ];
    for error in errors {
        let message = error.to_string();
        assert!(message.len() < 300, "a {}-byte message: {}", message.len(), &message[..80]);
    }
    assert_mentions(&InitiativeKey::parse("key", &long).unwrap_err(), &["(100000 characters)", "2-32"]);
}

#[test]
fn clip_cuts_text_to_the_byte_limit_at_a_character_boundary_with_an_ellipsis() {
    assert_eq!(clip("short", 512), "short");
    assert_eq!(clip(&"a".repeat(512), 512).len(), 512);
    let (ascii, two_byte) = ("a".repeat(513), "é".repeat(1_000));
    let clipped = clip(&ascii, 512);
    assert!(clipped.len() <= 512 && clipped.ends_with('…'), "{clipped}");
    let clipped = clip(&two_byte, 512);
    assert!(clipped.len() <= 512 && clipped.ends_with('…'));
    assert!(clipped.trim_end_matches('…').chars().all(|c| c == 'é'));
}

#[test]
fn parser_messages_are_kept_whole_when_short_and_cut_when_they_quote_a_long_value() {
    let short = "unknown field `extra`, expected one of `position`, `stream_id`";
    assert_eq!(parser_message(short), short);
    let long = format!("invalid type: string {:?}, expected u64", "x".repeat(100_000));
    let cut = parser_message(&long);
    assert!(cut.len() <= 120 && cut.starts_with("invalid type: string \"xxx"), "{cut}");
}
