//! The feed's read model: every initiative's alignment view as the feed last published
//! it, by id and in key order, with what the list filters and the inbox need worked out
//! once per change rather than once per query (the case-folded key and title, everyone
//! a sign-off waits on), the feed's place in the log, and the writes this process
//! acknowledged that the feed has not applied yet. Queries read it under a read lock
//! instead of asking the database (see `reads`); the feed writes it once per page of the
//! log it applies.
//!
//! It holds nothing the feed does not already keep: the views are the feed's own
//! (shared, not copied), and the acknowledgements are one entry per initiative at most.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use std::time::Instant;

use uuid::Uuid;

use super::feed::Published;
use super::filter::list_matches;
use crate::domain::AlignmentView;
use crate::domain::values::InitiativeRef;
use crate::store::{GlobalCursor, ListFilter};

/// One initiative in the read model.
#[derive(Debug)]
pub(super) struct Entry {
    pub published: Arc<Published>,
    /// The key and the title, case-folded, joined by NUL (which neither may contain, nor
    /// a text filter): what a text filter is looked for in.
    searchable: String,
    /// Everyone a sign-off waits on, however many the bounded view lists.
    awaiting: Vec<String>,
}

/// A write this process acknowledged whose initiative the feed has not yet published
/// at (or past) its position.
#[derive(Clone, Copy, Debug)]
struct Pending {
    /// The highest position acknowledged for the initiative.
    position: u64,
    /// When the oldest of those acknowledgements was made, and its ticket: acknowledged
    /// writes are numbered, so a read knows which ones came before it.
    ticket: u64,
    since: Instant,
}

#[derive(Debug, Default)]
pub(super) struct Index {
    by_id: HashMap<Uuid, Arc<Entry>>,
    by_key: BTreeMap<String, Arc<Entry>>,
    /// The last event applied to these entries, in commit order: every event at or
    /// before it is reflected, every later one is not.
    pub cursor: GlobalCursor,
    pending: HashMap<Uuid, Pending>,
    /// The pending acknowledgements by ticket: the oldest first.
    tickets: BTreeMap<u64, Uuid>,
    next_ticket: u64,
}

/// Folds letter case as PostgreSQL's `ILIKE` does under a Unicode locale: each
/// character to its lower case.
pub(super) fn fold_case(text: &str) -> String {
    text.chars().flat_map(char::to_lowercase).collect()
}

impl Index {
    /// Publishes one initiative's new view, and settles the acknowledgement it covers.
    pub fn publish(&mut self, published: Arc<Published>, awaiting: Vec<String>) {
        let view = &published.view;
        let id = view.initiative_id.0;
        let searchable = format!("{}\0{}", fold_case(view.key.as_str()), fold_case(&view.title));
        let key = view.key.as_str().to_owned();
        let position = published.position;
        let entry = Arc::new(Entry { published, searchable, awaiting });
        if let Some(previous) = self.by_id.insert(id, entry.clone())
            && previous.published.view.key.as_str() != key
        {
            // Keys do not change today; if one ever does, the old one must not stay listed.
            self.by_key.remove(previous.published.view.key.as_str());
        }
        self.by_key.insert(key, entry);
        if self.pending.get(&id).is_some_and(|pending| pending.position <= position)
            && let Some(settled) = self.pending.remove(&id)
        {
            self.tickets.remove(&settled.ticket);
        }
    }

    /// Notes that this process acknowledged a write to `initiative` at `position`, unless
    /// the feed has already published it. Returns whether it is now pending.
    pub fn acknowledge(&mut self, initiative: Uuid, position: u64, now: Instant) -> bool {
        if self.by_id.get(&initiative).is_some_and(|entry| entry.published.position >= position) {
            return false;
        }
        match self.pending.get_mut(&initiative) {
            // The earlier ticket stays: a read that came after it waits for both.
            Some(pending) => pending.position = pending.position.max(position),
            None => {
                let ticket = self.next_ticket;
                self.next_ticket += 1;
                self.pending.insert(initiative, Pending { position, ticket, since: now });
                self.tickets.insert(ticket, initiative);
            }
        }
        true
    }

    /// The ticket the next acknowledgement will get: a read that notes it on arrival waits
    /// for every acknowledgement below it.
    pub fn arrival(&self) -> u64 {
        self.next_ticket
    }

    /// When the oldest acknowledgement made before `arrival` (of `initiative` only, when
    /// given) that the feed has not applied was made; `None` when there is none.
    pub fn oldest_pending(&self, arrival: u64, initiative: Option<Uuid>) -> Option<Instant> {
        let pending = match initiative {
            Some(id) => self.pending.get(&id)?,
            None => self.tickets.first_key_value().and_then(|(_, id)| self.pending.get(id))?,
        };
        (pending.ticket < arrival).then_some(pending.since)
    }

    pub fn get(&self, target: &InitiativeRef) -> Option<&Arc<Entry>> {
        match target {
            InitiativeRef::Id(id) => self.by_id.get(&id.0),
            InitiativeRef::Key(key) => self.by_key.get(key.as_str()),
        }
    }

    /// The views that match `filter`, in key order, after `after_key`, at most `limit`:
    /// what `store::Store::list` answers from the alignment table.
    pub fn list(&self, filter: &ListFilter, after_key: Option<&str>, limit: usize) -> Vec<Arc<AlignmentView>> {
        let text = filter.text.as_deref().map(fold_case);
        let start = after_key.map_or(Bound::Unbounded, Bound::Excluded);
        self.by_key
            .range::<str, _>((start, Bound::Unbounded))
            .map(|(_, entry)| entry)
            .filter(|entry| {
                list_matches(filter, &entry.published.view)
                    && text.as_deref().is_none_or(|text| entry.searchable.contains(text))
            })
            .take(limit)
            .map(|entry| entry.published.view.clone())
            .collect()
    }

    /// The views of every initiative with a sign-off waiting on `principal`, in key order.
    pub fn awaiting(&self, principal: &str) -> Vec<Arc<AlignmentView>> {
        self.by_key
            .values()
            .filter(|entry| entry.awaiting.iter().any(|waiting| waiting == principal))
            .map(|entry| entry.published.view.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::domain::alignment::project_indexed;
    use crate::domain::values::{InitiativeId, InitiativeKey, Principal, Stage};
    use crate::domain::{Event, Recorded, evolve};

    fn published(n: u128, key: &str, title: &str, position: u64) -> (Arc<Published>, Vec<String>) {
        let owner = Principal::parse("owner", "pm@example.com").expect("principal");
        let created = Recorded {
            version: 1,
            actor: owner.clone(),
            recorded_at: chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("a time"),
            event: Event::InitiativeCreated {
                initiative_id: InitiativeId(Uuid::from_u128(n)),
                key: InitiativeKey::parse("key", key).expect("key"),
                title: title.to_owned(),
                summary: String::new(),
                owner,
                stage: Stage::Discovery,
                required_functions: BTreeSet::new(),
            },
        };
        let (view, awaiting) = project_indexed(&evolve(None, &created).expect("fold"));
        let cursor = GlobalCursor { tx_id: 0, position: i64::try_from(position).expect("position") };
        (Arc::new(Published::new(cursor, position, view)), awaiting)
    }

    #[test]
    fn an_acknowledged_write_is_pending_until_its_initiative_is_published_at_or_past_it() {
        let mut index = Index::default();
        let now = Instant::now();
        let before = index.arrival();
        assert!(index.acknowledge(Uuid::from_u128(1), 5, now));
        let after = index.arrival();
        assert_eq!(index.oldest_pending(before, None), None, "a read that came first does not wait for it");
        assert_eq!(index.oldest_pending(after, None), Some(now));
        assert_eq!(index.oldest_pending(after, Some(Uuid::from_u128(2))), None, "nor does a read of another");

        let (view, awaiting) = published(1, "ONE-1", "One", 4);
        index.publish(view, awaiting);
        assert_eq!(index.oldest_pending(after, Some(Uuid::from_u128(1))), Some(now), "position 4 is not 5");
        let (view, awaiting) = published(1, "ONE-1", "One", 5);
        index.publish(view, awaiting);
        assert_eq!(index.oldest_pending(after, None), None, "settled at its position");

        assert!(!index.acknowledge(Uuid::from_u128(1), 3, now), "already published");
        assert_eq!(index.oldest_pending(index.arrival(), None), None);
    }

    #[test]
    fn a_later_acknowledgement_keeps_the_earlier_ones_place() {
        let mut index = Index::default();
        let (first, second) = (Instant::now(), Instant::now() + std::time::Duration::from_millis(5));
        index.acknowledge(Uuid::from_u128(1), 5, first);
        let between = index.arrival();
        index.acknowledge(Uuid::from_u128(1), 9, second);
        // The read that came between the two still waits for the first (and, until the
        // feed is at 9, for the second too: one entry per initiative).
        assert_eq!(index.oldest_pending(between, None), Some(first));
        let (view, awaiting) = published(1, "ONE-1", "One", 9);
        index.publish(view, awaiting);
        assert_eq!(index.oldest_pending(index.arrival(), None), None);
    }

    #[test]
    fn lists_go_in_key_order_after_the_token_and_match_the_key_or_the_title_in_any_case() {
        let mut index = Index::default();
        for (n, key, title) in [(1, "BETA-2", "École"), (2, "ALPHA-1", "Payments"), (3, "GAMMA-3", "Über PAYMENTS")] {
            let (view, awaiting) = published(n, key, title, n as u64);
            index.publish(view, awaiting);
        }
        let keys = |filter: &ListFilter, after: Option<&str>, limit| -> Vec<String> {
            index.list(filter, after, limit).iter().map(|view| view.key.to_string()).collect()
        };
        let text = |text: &str| ListFilter { text: Some(text.to_owned()), ..ListFilter::default() };
        assert_eq!(keys(&ListFilter::default(), None, 10), ["ALPHA-1", "BETA-2", "GAMMA-3"]);
        assert_eq!(keys(&ListFilter::default(), Some("ALPHA-1"), 1), ["BETA-2"]);
        assert_eq!(keys(&text("payments"), None, 10), ["ALPHA-1", "GAMMA-3"]);
        assert_eq!(keys(&text("ÉCOLE"), None, 10), ["BETA-2"]);
        assert_eq!(keys(&text("über"), None, 10), ["GAMMA-3"]);
        assert_eq!(keys(&text("a-1"), None, 10), ["ALPHA-1"], "the key");
        assert_eq!(keys(&text("2école"), None, 10), Vec::<String>::new(), "not across the key and the title");
    }
}
