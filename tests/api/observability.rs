//! What operators see: the Prometheus metrics after real calls (counted by RPC and gRPC
//! code, refusals of the guard included; durations; appends; the pools) and the
//! initiative in the per-call span of the JSON log. The tests of one process share the
//! metrics recorder and run in parallel, so counts are checked as lower bounds.

use accord::proto as pb;
use futures::StreamExt;
use tonic::Code;

use crate::support::*;

/// The value of the sample whose name and labels are exactly `series` (`name{labels}`).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[track_caller]
fn at_least(text: &str, series: &str, least: f64) {
    match sample(text, series) {
        Some(value) => assert!(value >= least, "{series} is {value}, expected at least {least}"),
        None => panic!("no sample {series} in\n{text}"),
    }
}

fn requests(service: &str, rpc: &str, code: &str) -> String {
    format!(r#"accord_rpc_requests_total{{service="accord.v1.{service}",rpc="{rpc}",code="{code}"}}"#)
}

async fn calls_are_counted_by_rpc_and_code_with_durations_appends_and_pool_gauges(app: TestApp) {
    checkout(&app).await;
    app.alignment("CHECKOUT-42").await;
    let missing = app.queries().get_alignment(pb::GetAlignmentRequest { initiative: "NOPE-9".into() }).await;
    assert_eq!(missing.expect_err("no such initiative").code(), Code::NotFound);
    let reader_commands = app.commands_with(Some(token(DASHBOARD, &[Role::Reader])));
    let refused = reader_commands.clone().create_initiative(new_initiative("NOPE-9", "Not for readers")).await;
    assert_eq!(refused.expect_err("readers do not create").code(), Code::PermissionDenied);
    let anonymous = app.anonymous().create_initiative(new_initiative("NOPE-9", "Nobody")).await;
    assert_eq!(anonymous.expect_err("no token").code(), Code::Unauthenticated);
    // A server stream whose status comes in the trailers after its messages.
    let mut events = app
        .audit()
        .read_events(pb::ReadEventsRequest { initiative: "CHECKOUT-42".into(), ..Default::default() })
        .await
        .expect("read events")
        .into_inner();
    let mut read = 0;
    while let Some(item) = events.next().await {
        item.expect("an event or caught-up");
        read += 1;
    }
    assert!(read > 1);

    let text = accord::metrics::render(&app.store);
    at_least(&text, &requests("AlignmentService", "GetAlignment", "OK"), 1.0);
    at_least(&text, &requests("AlignmentService", "GetAlignment", "NOT_FOUND"), 1.0);
    at_least(&text, &requests("CommandService", "CreateInitiative", "OK"), 1.0);
    at_least(&text, &requests("CommandService", "CreateInitiative", "PERMISSION_DENIED"), 1.0);
    at_least(&text, &requests("CommandService", "CreateInitiative", "UNAUTHENTICATED"), 1.0);
    at_least(&text, &requests("CommandService", "AssignStakeholder", "OK"), 4.0);
    at_least(&text, &requests("AuditService", "ReadEvents", "OK"), 1.0);
    at_least(
        &text,
        r#"accord_rpc_duration_seconds_count{service="accord.v1.AlignmentService",rpc="GetAlignment"}"#,
        2.0,
    );
    at_least(
        &text,
        r#"accord_rpc_duration_seconds_bucket{service="accord.v1.AlignmentService",rpc="GetAlignment",le="+Inf"}"#,
        2.0,
    );
    // Creation, four assignments and a proposal: at least six events, six appends.
    at_least(&text, "accord_events_appended_total", 6.0);
    at_least(&text, "accord_append_duration_seconds_count", 6.0);
    at_least(&text, r#"accord_db_pool_max_connections"#, 1.0);
    assert!(sample(&text, r#"accord_db_pool_connections{state="idle"}"#).is_some(), "{text}");
    assert!(sample(&text, r#"accord_db_pool_connections{state="in_use"}"#).is_some(), "{text}");
    for help in [
        "# HELP accord_rpc_requests_total ",
        "# HELP accord_rpc_duration_seconds ",
        "# HELP accord_events_appended_total ",
        "# HELP accord_db_pool_connections ",
        "# TYPE accord_rpc_duration_seconds histogram",
    ] {
        assert!(text.contains(help), "{help} in\n{text}");
    }
}

// ---- the initiative in the call span -----------------------------------------------------

async fn the_json_log_of_a_command_names_its_initiative_in_the_call_span(app: TestApp) {
    let log = JsonLog::capture("accord=info");
    let ids = checkout(&app).await;
    sign(&app, ENGINEER, &ids.decision_id, "engineering", pb::Verdict::Approve, "").await.expect("sign");

    let log = log.text();
    let lines: Vec<serde_json::Value> =
        log.lines().map(|line| serde_json::from_str(line).expect("one JSON object per line")).collect();
    let call_of = |rpc: &str| {
        lines
            .iter()
            .filter(|line| line["fields"]["message"] == "command done")
            .flat_map(|line| line["spans"].as_array().cloned().unwrap_or_default())
            .find(|span| span["name"] == "call" && span["rpc"] == rpc)
            .unwrap_or_else(|| panic!("no `command done` line in a {rpc} call span in\n{log}"))
    };
    let signed = call_of("RecordSignOff");
    assert_eq!(signed["initiative"], "CHECKOUT-42", "{signed}");
    assert_eq!(signed["principal"], ENGINEER);
    // A creation names the initiative by the key it creates.
    assert_eq!(call_of("CreateInitiative")["initiative"], "CHECKOUT-42");
}

crate::on_both_stores!(
    calls_are_counted_by_rpc_and_code_with_durations_appends_and_pool_gauges,
    the_json_log_of_a_command_names_its_initiative_in_the_call_span,
);
