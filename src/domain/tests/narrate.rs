//! The sentence of each event (`narrate`): what it says, and how it reads, for a reader
//! that names decisions and feedback by the start of their ids.

use super::*;
use crate::domain::narrate::{Narration, Reader, Tone, narrate};

/// Names by the first 8 characters of an id; titles in straight quotes; text as it is.
struct ByIds;

impl Reader for ByIds {
    fn decision(&self, id: &DecisionId) -> String {
        format!("decision {}", &id.to_string()[..8])
    }

    fn feedback(&self, id: &FeedbackId) -> Option<String> {
        Some(id.to_string()[28..].to_owned())
    }

    fn title(&self, title: &str) -> String {
        format!("{title:?}")
    }

    fn brief(&self, text: &str) -> String {
        text.replace('\n', " ")
    }
}

/// The reader of the board: titles only, feedback items not told apart.
struct ByTitles;

impl Reader for ByTitles {
    fn decision(&self, _id: &DecisionId) -> String {
        "“Use Stripe”".to_owned()
    }

    fn proposal(&self, id: &DecisionId, _title: &str) -> String {
        self.decision(id)
    }

    fn feedback(&self, _id: &FeedbackId) -> Option<String> {
        None
    }

    fn title(&self, title: &str) -> String {
        format!("“{title}”")
    }

    fn brief(&self, text: &str) -> String {
        text.to_owned()
    }
}

fn told(history: &History, version: usize) -> Narration {
    narrate(&history.events[version - 1].event, &ByIds)
}

#[test]
fn every_event_of_a_stream_gets_a_sentence_and_a_tone() {
    let mut history = accepted()
        .given(DRIVER, propose_superseding(dec(2), dec(1)))
        .given(DES, objection(fb(1), Some(dec(2)), "design"))
        .given(DES, resolve(fb(1)))
        .given(DES, reopen(fb(1)))
        .given(ENG, reject(dec(2), "engineering", "Fees\nare high."))
        .given(ENG, revoke(dec(2), "engineering"));
    let told: Vec<Narration> = history.events.iter().map(|r| narrate(&r.event, &ByIds)).collect();
    assert!(told.iter().all(|n| !n.text.is_empty()));
    let last = told.len();
    assert_eq!(
        told[0].text,
        "created CHECKOUT-42 \"Checkout\" — owner olivia@example.com, stage discovery, needs business, design, engineering"
    );
    assert_eq!(told[1].text, "assigned dana@example.com as product driver");
    assert_eq!(
        told[7].text,
        "proposed decision 01900000 \"Use Stripe for payments\" (needs business, design, engineering)"
    );
    assert_eq!(
        (told[8].text.as_str(), told[8].tone),
        ("approved decision 01900000 (revision 1) for engineering", Tone::Good)
    );
    assert_eq!(
        (told[11].text.as_str(), told[11].tone),
        ("accepted decision 01900000 (revision 1), aligned", Tone::Good)
    );
    assert!(told[12].text.ends_with(", to supersede decision 01900000"), "{}", told[12].text);
    assert_eq!(
        (told[13].text.as_str(), told[13].tone),
        ("objection 0000f001 from design (internal) on decision 01900000: a objection from design", Tone::Bad)
    );
    assert_eq!((told[14].text.as_str(), told[14].tone), ("resolved feedback 0000f001: addressed", Tone::Good));
    assert_eq!(told[15].tone, Tone::Warn);
    assert_eq!(
        (told[last - 2].text.as_str(), told[last - 2].tone),
        ("rejected decision 01900000 (revision 1) for engineering: Fees are high.", Tone::Bad)
    );
    assert_eq!(
        (told[last - 1].text.as_str(), told[last - 1].tone),
        ("revoked the engineering verdict on decision 01900000", Tone::Warn)
    );
    // An update that changes nothing says so.
    history
        .record(OWNER, Event::InitiativeUpdated { title: None, summary: None, owner: None, required_functions: None });
    assert_eq!(self::told(&history, history.events.len()).text, "updated nothing");
}

#[test]
fn a_material_revision_names_the_approvals_it_made_stale() {
    let history = aligned().given(DRIVER, revise(dec(1), RevisionKind::Material, "Stripe, negotiated"));
    let revised = told(&history, history.events.len());
    assert_eq!(
        revised.text,
        "revised decision 01900000 to revision 2 (material); stale now: erin@example.com for engineering, \
         desmond@example.com for design, bianca@example.com for business — material change"
    );
    assert_eq!(revised.tone, Tone::Warn);
    let editorial = aligned().given(DRIVER, revise(dec(1), RevisionKind::Editorial, "Stripe, reworded"));
    let revised = told(&editorial, editorial.events.len());
    assert_eq!(
        (revised.text.as_str(), revised.tone),
        ("revised decision 01900000 to revision 2 (editorial) — editorial change", Tone::Plain)
    );
}

#[test]
fn an_override_says_what_was_not_aligned_and_why() {
    let history = proposed()
        .given(ENG, approve(dec(1), "engineering"))
        .given(BIZ, objection(fb(1), Some(dec(1)), "business"))
        .given(DRIVER, accept_overriding(dec(1), "Launch is fixed."));
    let accepted = told(&history, history.events.len());
    assert_eq!(
        accepted.text,
        "accepted decision 01900000 (revision 1) by OVERRIDE although business blocked, design pending: Launch is fixed."
    );
    assert_eq!(accepted.tone, Tone::Bad);
}

#[test]
fn a_reader_names_things_its_own_way() {
    let history =
        aligned().given(DES, feedback(fb(1), None, "design", FeedbackKind::Concern, FeedbackSource::UserResearch));
    let proposal = narrate(&history.events[7].event, &ByTitles);
    assert_eq!(proposal.text, "proposed “Use Stripe” (needs business, design, engineering)");
    let concern = narrate(&history.events[history.events.len() - 1].event, &ByTitles);
    assert_eq!(
        (concern.text.as_str(), concern.tone),
        ("concern from design (user research) on the initiative: a concern from design", Tone::Warn)
    );
    assert_eq!(
        narrate(&history.events[0].event, &ByTitles).text.split(" — ").next(),
        Some("created CHECKOUT-42 “Checkout”")
    );
}
