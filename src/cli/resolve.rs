//! Addressing: initiatives by key or id (the server accepts both), decisions and
//! feedback by a short prefix of their id. Ids are UUID v7, whose first 12 hex digits
//! are a millisecond timestamp, so prefixes are shown at least 8 (decisions: the whole
//! set is always known) or 12 (feedback: some of it is only visible in decision threads)
//! hex digits long, and longer when a sibling shares them. A full UUID always works;
//! an ambiguous prefix lists its candidates.

use uuid::Uuid;

use super::client::Client;
use super::output::{ExitClass, Failure};
use super::views::{decision_status_name, feedback_kind_name};
use crate::domain::values::{clip, quote};
use crate::proto as pb;

/// The fewest hex digits a typed prefix may have.
pub const MIN_PREFIX: usize = 4;
const DECISION_DISPLAY_DIGITS: usize = 8;
const WIDE_DISPLAY_DIGITS: usize = 12;

fn hex_digits(id: &str) -> String {
    id.chars().filter(|c| *c != '-').map(|c| c.to_ascii_lowercase()).collect()
}

/// The shortest prefix of `id` (at least `min_digits` hex digits) that no sibling shares,
/// written as the id is (with its dashes).
fn short_id<'a>(id: &str, siblings: impl Iterator<Item = &'a str> + Clone, min_digits: usize) -> String {
    let digits = hex_digits(id);
    let others: Vec<String> = siblings.filter(|s| *s != id).map(hex_digits).collect();
    let mut length = min_digits.min(digits.len());
    while length < digits.len() && others.iter().any(|o| o.starts_with(&digits[..length])) {
        length += 1;
    }
    let mut taken = 0;
    let mut shown = String::new();
    for c in id.chars() {
        if taken == length {
            break;
        }
        if c != '-' {
            taken += 1;
        }
        shown.push(c);
    }
    shown
}

/// A decision's id as shown: unambiguous among the initiative's decisions.
pub fn short_decision_id(id: &str, view: &pb::InitiativeAlignment) -> String {
    if id.is_empty() {
        return "-".to_owned();
    }
    short_id(id, view.decisions.iter().map(|d| d.decision_id.as_str()), DECISION_DISPLAY_DIGITS)
}

/// An id whose siblings are only partly known (feedback, inbox items) as shown: at
/// least 12 hex digits, unambiguous among the ids given.
pub fn short_id_wide<'a>(id: &str, siblings: impl Iterator<Item = &'a str> + Clone) -> String {
    short_id(id, siblings, WIDE_DISPLAY_DIGITS)
}

/// Something an id prefix may name, with how to describe it in an ambiguity message.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub id: String,
    pub label: String,
}

/// The one candidate `given` names: a full UUID as is, else a unique prefix of at least
/// `MIN_PREFIX` hex digits (dashes optional).
pub fn pick(what: &str, given: &str, scope: &str, candidates: &[Candidate]) -> Result<String, Failure> {
    let given = given.trim();
    if let Ok(id) = Uuid::try_parse(given) {
        return Ok(id.to_string());
    }
    let digits = hex_digits(given);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Failure::invalid(format!(
            "{what} {} is not an id: give the id or a prefix of at least {MIN_PREFIX} hex digits",
            quote(given)
        )));
    }
    if digits.len() < MIN_PREFIX {
        return Err(Failure::invalid(format!(
            "{what} prefix {} is too short: give at least {MIN_PREFIX} hex digits",
            quote(given)
        )));
    }
    let matches: Vec<&Candidate> = candidates.iter().filter(|c| hex_digits(&c.id).starts_with(&digits)).collect();
    match matches.as_slice() {
        [] => Err(Failure::not_found(format!("no {what} on {scope} has an id starting with {}", clip(given, 64)))),
        [one] => Ok(one.id.clone()),
        many => Err(Failure::invalid(format!(
            "{what} prefix {} is ambiguous on {scope}: it matches {}; give more digits",
            clip(given, 64),
            many.iter().map(|c| c.label.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The alignment of an initiative named by key or id; "not found" says where the keys are.
pub async fn alignment(client: &Client, initiative: &str) -> Result<pb::InitiativeAlignment, Failure> {
    let request = pb::GetAlignmentRequest { initiative: initiative.to_owned() };
    client.reply(client.queries().get_alignment(request).await).map_err(|failure| match failure.class {
        ExitClass::NotFound => {
            Failure::not_found(format!("{} (`accord initiative list` shows the keys)", failure.message))
        }
        _ => failure,
    })
}

/// The full id of the decision `given` names on the initiative.
pub fn decision_id(view: &pb::InitiativeAlignment, given: &str) -> Result<String, Failure> {
    let candidates: Vec<Candidate> = view
        .decisions
        .iter()
        .map(|d| Candidate {
            id: d.decision_id.clone(),
            label: format!("{} {:?} ({})", d.decision_id, d.title, decision_status_name(d.status())),
        })
        .collect();
    pick("decision", given, &view.key, &candidates)
}

/// The full id of the feedback `given` names, among all the initiative's feedback.
pub async fn feedback_id(client: &Client, view: &pb::InitiativeAlignment, given: &str) -> Result<String, Failure> {
    if let Ok(id) = Uuid::try_parse(given.trim()) {
        return Ok(id.to_string());
    }
    let items = all_feedback(client, &view.initiative_id, pb::ListFeedbackRequest::default()).await?;
    let candidates: Vec<Candidate> = items
        .iter()
        .map(|f| Candidate {
            id: f.feedback_id.clone(),
            label: format!("{} ({} by {})", f.feedback_id, feedback_kind_name(f.kind()), f.author),
        })
        .collect();
    pick("feedback", given, &view.key, &candidates)
}

/// Every feedback item of an initiative that `filters` select, in recorded order, page
/// by page (an alignment view lists only the most recent open ones).
pub async fn all_feedback(
    client: &Client,
    initiative_id: &str,
    filters: pb::ListFeedbackRequest,
) -> Result<Vec<pb::FeedbackItem>, Failure> {
    let mut items = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListFeedbackRequest {
            initiative: initiative_id.to_owned(),
            page_size: 500,
            page_token,
            ..filters.clone()
        };
        let page = client.reply(client.queries().list_feedback(request).await)?;
        items.extend(page.items);
        if page.next_page_token.is_empty() {
            return Ok(items);
        }
        page_token = page.next_page_token;
    }
}

/// The function to act for when `--function` is not given: the one function among
/// `preferred` (or, failing that, among all) in which the caller holds one of `roles`.
pub fn caller_function(
    view: &pb::InitiativeAlignment,
    actor: &str,
    roles: &[pb::Role],
    preferred: &[String],
    what: &str,
) -> Result<String, Failure> {
    let mut held: Vec<String> = view
        .stakeholders
        .iter()
        .filter(|s| s.principal == actor && roles.contains(&s.role()))
        .map(|s| s.function.clone())
        .collect();
    held.sort();
    held.dedup();
    let among_preferred: Vec<&String> = held.iter().filter(|f| preferred.contains(f)).collect();
    match (among_preferred.as_slice(), held.as_slice()) {
        ([one], _) => Ok((*one).clone()),
        ([], [one]) => Ok(one.clone()),
        (_, []) => Err(Failure::new(
            ExitClass::Denied,
            format!("{actor} holds no role on {} that may {what}; give --function, or --as someone who does", view.key),
        )),
        _ => Err(Failure::invalid(format!(
            "{actor} may {what} for several functions on {} ({}): give --function",
            view.key,
            held.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: &str) -> Candidate {
        Candidate { id: id.to_owned(), label: id.to_owned() }
    }

    #[test]
    fn short_ids_grow_until_unambiguous() {
        let a = "0198a1b2-c3d4-7000-8000-000000000001";
        let b = "0198a1b2-c3d5-7000-8000-000000000002";
        assert_eq!(short_id(a, [a].into_iter(), 8), "0198a1b2");
        assert_eq!(short_id(a, [a, b].into_iter(), 8), "0198a1b2-c3d4");
    }

    #[test]
    fn prefixes_pick_one_or_say_what_is_wrong() {
        let candidates =
            [candidate("0198a1b2-c3d4-7000-8000-000000000001"), candidate("0198a1b2-c3d5-7000-8000-000000000002")];
        assert_eq!(pick("decision", "0198a1b2c3d4", "K", &candidates).as_deref(), Ok(candidates[0].id.as_str()));
        assert_eq!(pick("decision", "0198A1B2-C3D5", "K", &candidates).as_deref(), Ok(candidates[1].id.as_str()));
        assert_eq!(pick("decision", "0198", "K", &candidates).map_err(|f| f.class), Err(ExitClass::InvalidInput));
        assert_eq!(pick("decision", "019", "K", &candidates).map_err(|f| f.class), Err(ExitClass::InvalidInput));
        assert_eq!(pick("decision", "zzzz", "K", &candidates).map_err(|f| f.class), Err(ExitClass::InvalidInput));
        assert_eq!(pick("decision", "ffff", "K", &candidates).map_err(|f| f.class), Err(ExitClass::NotFound));
    }
}
