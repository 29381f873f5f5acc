//! `GET /api/initiatives/{initiative}/decisions/{decision}/diff?from=A&to=B`: a decision's
//! revisions, and between two of them (by default the latest material revision and the one
//! before it) a word diff of each content field, saying whether the revisions in between
//! were material (approvals before them went stale) or only editorial.
//!
//! The diff is computed here, with the `similar` crate, rather than in the board's script:
//! the board has no build step and loads nothing from elsewhere, so a diff in JavaScript
//! would be our own algorithm to keep; here it is one well-kept crate, unit-tested, bounded
//! in time (`DIFF_TIMEOUT`) over inputs the domain already bounds in size.

use std::time::Duration;

use axum::{
    extract::{Path, Query, State, rejection::QueryRejection},
    http::StatusCode,
    response::Response,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use similar::{Algorithm, ChangeTag, TextDiff};

use super::{bounded_json, domain_response, error_response, field_error, store_response};
use crate::domain::{
    DomainError,
    state::{Decision, Revision},
    values::{DecisionId, InitiativeRef, Principal, RevisionKind, parser_message, quote},
};
use crate::http::App;

/// The longest a diff of one field may take; past it `similar` answers a coarser diff.
const DIFF_TIMEOUT: Duration = Duration::from_millis(100);

#[derive(Debug, Default, Deserialize)]
pub(crate) struct DiffQuery {
    from: Option<String>,
    to: Option<String>,
}

#[derive(Debug, Serialize)]
struct RevisionDiff {
    decision_id: DecisionId,
    title: String,
    /// The revision approvals must be of to count (the latest material one).
    material_base: u32,
    /// Every revision, oldest first (what can be compared).
    revisions: Vec<RevisionSummary>,
    from: u32,
    to: u32,
    /// Whether a revision after the older one, up to the newer, was material.
    material: bool,
    fields: Vec<FieldDiff>,
}

#[derive(Debug, Serialize)]
struct RevisionSummary {
    number: u32,
    kind: RevisionKind,
    by: Principal,
    at: DateTime<Utc>,
    note: String,
}

#[derive(Debug, PartialEq, Serialize)]
struct FieldDiff {
    field: &'static str,
    changed: bool,
    /// The newer text as runs kept, inserted and deleted, in order.
    ops: Vec<DiffOp>,
}

#[derive(Debug, PartialEq, Serialize)]
struct DiffOp {
    op: &'static str,
    text: String,
}

/// A revision number from the query: 1 to the decision's latest (none: `default`).
fn revision_number(field: &str, given: Option<&str>, latest: u32, default: u32) -> Result<u32, DomainError> {
    let Some(text) = given.map(str::trim).filter(|t| !t.is_empty()) else { return Ok(default) };
    match text.parse::<u32>() {
        Ok(number) if (1..=latest).contains(&number) => Ok(number),
        _ => Err(DomainError::invalid(
            field,
            format!("{} is not a revision of this decision: use a whole number from 1 to {latest}", quote(text)),
        )),
    }
}

/// The default pair: the latest material revision and the one before; with no material
/// revision after the proposal, the latest and the one before (the proposal alone: itself).
fn default_pair(decision: &Decision) -> (u32, u32) {
    let to = if decision.material_base >= 2 { decision.material_base } else { decision.revision() };
    (to.saturating_sub(1).max(1), to)
}

/// A word diff of `old` to `new`, runs of the same kind merged.
fn diff_text(field: &'static str, old: &str, new: &str) -> FieldDiff {
    let diff = TextDiff::configure().algorithm(Algorithm::Myers).timeout(DIFF_TIMEOUT).diff_words(old, new);
    let mut ops: Vec<DiffOp> = Vec::new();
    for change in diff.iter_all_changes() {
        let op = match change.tag() {
            ChangeTag::Equal => "equal",
            ChangeTag::Insert => "insert",
            ChangeTag::Delete => "delete",
        };
        match ops.last_mut() {
            Some(last) if last.op == op => last.text.push_str(change.value()),
            _ => ops.push(DiffOp { op, text: change.value().to_owned() }),
        }
    }
    FieldDiff { field, changed: old != new, ops: hunks(ops) }
}

/// The runs with the changes next to each other made one: the spaces between two changed
/// words go to both sides, so "starting next sprint." reads as one deletion followed by one
/// insertion rather than word by word, interleaved. Equal runs and inserted runs still
/// make the newer text, equal and deleted the older.
fn hunks(runs: Vec<DiffOp>) -> Vec<DiffOp> {
    let mut out: Vec<DiffOp> = Vec::new();
    let (mut deleted, mut inserted, mut pending_space) = (String::new(), String::new(), String::new());
    let mut in_hunk = false;
    let flush = |out: &mut Vec<DiffOp>, deleted: &mut String, inserted: &mut String| {
        if !deleted.is_empty() {
            out.push(DiffOp { op: "delete", text: std::mem::take(deleted) });
        }
        if !inserted.is_empty() {
            out.push(DiffOp { op: "insert", text: std::mem::take(inserted) });
        }
    };
    for run in runs {
        match run.op {
            "equal" if in_hunk && run.text.chars().all(char::is_whitespace) && pending_space.is_empty() => {
                pending_space = run.text;
            }
            "equal" => {
                flush(&mut out, &mut deleted, &mut inserted);
                let mut text = std::mem::take(&mut pending_space);
                text.push_str(&run.text);
                match out.last_mut() {
                    Some(last) if last.op == "equal" => last.text.push_str(&text),
                    _ => out.push(DiffOp { op: "equal", text }),
                }
                in_hunk = false;
            }
            change => {
                if !pending_space.is_empty() {
                    // Whitespace between two changes belongs to both sides of the hunk.
                    deleted.push_str(&pending_space);
                    inserted.push_str(&pending_space);
                    pending_space.clear();
                }
                if change == "delete" {
                    deleted.push_str(&run.text)
                } else {
                    inserted.push_str(&run.text)
                }
                in_hunk = true;
            }
        }
    }
    flush(&mut out, &mut deleted, &mut inserted);
    if !pending_space.is_empty() {
        out.push(DiffOp { op: "equal", text: pending_space });
    }
    out
}

/// Each content field of two revisions, diffed (lists one item a line).
fn diff_revisions(old: &Revision, new: &Revision) -> Vec<FieldDiff> {
    let lines = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>().join("\n");
    let (a, b) = (&old.content, &new.content);
    vec![
        diff_text("title", &a.title, &b.title),
        diff_text("context", &a.context, &b.context),
        diff_text("options", &a.options.join("\n"), &b.options.join("\n")),
        diff_text("proposal", &a.proposal, &b.proposal),
        diff_text("rationale", &a.rationale, &b.rationale),
        diff_text(
            "required_functions",
            &lines(&mut old.required_functions.iter().map(ToString::to_string)),
            &lines(&mut new.required_functions.iter().map(ToString::to_string)),
        ),
    ]
}

fn revision_diff(decision: &Decision, from: u32, to: u32) -> Option<RevisionDiff> {
    let find = |number: u32| decision.revisions.iter().find(|r| r.number == number);
    let (old, new) = (find(from)?, find(to)?);
    let (low, high) = (from.min(to), from.max(to));
    let material =
        decision.revisions.iter().any(|r| r.number > low && r.number <= high && r.kind == RevisionKind::Material);
    Some(RevisionDiff {
        decision_id: decision.id,
        title: decision.title().to_owned(),
        material_base: decision.material_base,
        revisions: decision
            .revisions
            .iter()
            .map(|r| RevisionSummary {
                number: r.number,
                kind: r.kind,
                by: r.by.clone(),
                at: r.at,
                note: r.note.clone(),
            })
            .collect(),
        from,
        to,
        material,
        fields: diff_revisions(old, new),
    })
}

pub(crate) async fn diff(
    State(app): State<App>,
    Path((initiative, decision)): Path<(String, String)>,
    query: Result<Query<DiffQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => return field_error("query", &format!("query: {}", parser_message(&rejection.body_text()))),
    };
    let target = match InitiativeRef::parse("initiative", &initiative) {
        Ok(target) => target,
        Err(error) => return domain_response(error),
    };
    let decision_id = match DecisionId::parse("decision", &decision) {
        Ok(id) => id,
        Err(error) => return domain_response(error),
    };
    let state = match app.state.store.initiative(&target).await {
        Ok(Some(state)) => state,
        Ok(None) => return error_response(StatusCode::NOT_FOUND, &format!("initiative {target} not found")),
        Err(error) => return store_response(error),
    };
    let Some(decision) = state.decisions.get(&decision_id) else {
        return error_response(
            StatusCode::NOT_FOUND,
            &format!("decision {decision_id} not found on initiative {}", state.key),
        );
    };
    let latest = decision.revision();
    let (default_from, default_to) = default_pair(decision);
    let picked = revision_number("from", query.from.as_deref(), latest, default_from)
        .and_then(|from| Ok((from, revision_number("to", query.to.as_deref(), latest, default_to)?)));
    let (from, to) = match picked {
        Ok(pair) => pair,
        Err(error) => return domain_response(error),
    };
    match revision_diff(decision, from, to) {
        Some(diff) => bounded_json(&diff),
        None => {
            error_response(StatusCode::NOT_FOUND, &format!("decision {decision_id} has no revision {from} or {to}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(ops: &[DiffOp], op: &str) -> String {
        ops.iter().filter(|o| o.op == op).map(|o| o.text.as_str()).collect()
    }

    #[test]
    fn a_word_diff_marks_what_changed_and_keeps_the_rest() {
        let diff = diff_text("proposal", "Use Stripe for payments", "Use Adyen for all payments");
        assert!(diff.changed);
        assert_eq!(text(&diff.ops, "delete"), "Stripe");
        let inserted = text(&diff.ops, "insert");
        assert!(inserted.contains("Adyen") && inserted.contains("all"), "{inserted:?}");
        let joined: String = diff.ops.iter().filter(|o| o.op != "delete").map(|o| o.text.as_str()).collect();
        assert_eq!(joined, "Use Adyen for all payments", "equal and inserted runs make the newer text");
        let old: String = diff.ops.iter().filter(|o| o.op != "insert").map(|o| o.text.as_str()).collect();
        assert_eq!(old, "Use Stripe for payments", "equal and deleted runs make the older text");
        let hunk = diff_text("proposal", "Pay now, starting next sprint.", "Pay now, and PayPal later.");
        let ops: Vec<(&str, &str)> = hunk.ops.iter().map(|o| (o.op, o.text.as_str())).collect();
        assert_eq!(
            ops,
            [("equal", "Pay now, "), ("delete", "starting next sprint."), ("insert", "and PayPal later.")],
            "changed words next to each other read as one deletion and one insertion"
        );
        let same = diff_text("title", "Same", "Same");
        assert!(!same.changed);
        assert_eq!(same.ops, vec![DiffOp { op: "equal", text: "Same".into() }]);
    }

    #[test]
    fn revision_numbers_are_within_the_decision_and_quoted_when_not() {
        assert_eq!(revision_number("from", None, 3, 2).expect("default"), 2);
        assert_eq!(revision_number("to", Some("3"), 3, 2).expect("three"), 3);
        for bad in ["0", "4", "x", &"7".repeat(300)] {
            match revision_number("to", Some(bad), 3, 2) {
                Err(DomainError::InvalidArgument { field, message }) => {
                    assert_eq!(field, "to");
                    assert!(message.len() < 200, "a short quote: {message}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
