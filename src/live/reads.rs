//! Queries answered from the feed's views (`GetAlignment`, `ListAlignments`,
//! `GetInbox`) rather than by the database: the feed already holds every initiative's
//! current view, so a read is a map lookup or a scan in key order, with no round trip.
//!
//! What a read reflects:
//! - **this process's own writes**, always: a command acknowledged here is noted
//!   (`Feed::acknowledged`), and a read waits until the feed has applied every write
//!   acknowledged before it arrived (for `GetAlignment`, those to its initiative);
//! - **a given position**, on request (`Wanted::min_position`): a caller that had a
//!   command acknowledged at global position P, by any replica, passes P and gets a
//!   view of the log at least as it stood when that write committed. A position past
//!   the log's head is refused (`ReadError::PastHead`) rather than waited for;
//! - otherwise the feed's views as they are: what other replicas wrote arrives within
//!   the time a notification and one read of the log take.
//!
//! The database answers instead whenever the feed cannot vouch for its views: before its
//! first read of the log has finished, once a read has failed or it has not finished one
//! within a few seconds (`Feed::is_current`), while its PostgreSQL listener is not
//! connected (another replica's writes would go unnoticed), when a wait above runs out
//! (`Wanted::patience`, and at most `OWN_WRITE_WAIT` after the write: a feed that far
//! behind is stuck), and for an initiative the feed does not know (created by another
//! process moments ago, or not at all). Reads then cost what they cost before, and are
//! never stale or empty because of the feed.
//!
//! With a read-only standby (`store::standby`) the feed tails the standby's log, and a
//! database read goes to the standby too (`Store::reader`) — for a read naming a
//! position, once the standby has replayed it (waited for, bounded), else to the
//! primary. A position the standby holds is not past the head, so that check needs no
//! read of the primary either.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use super::feed::Feed;
use crate::domain::AlignmentView;
use crate::domain::Member;
use crate::domain::alignment::{InboxItem, inbox_of};
use crate::domain::values::{InitiativeRef, Principal};
use crate::store::{ListFilter, StandbyStatus, Store, StoreError};

/// How long after this process acknowledged a write a read still waits for the feed to
/// apply it; past that the feed is behind (the gap-free read waits for every older
/// transaction on the PostgreSQL server), and the read asks the database.
const OWN_WRITE_WAIT: Duration = Duration::from_millis(250);

/// What a read must reflect, beyond this process's own writes.
#[derive(Clone, Copy, Debug)]
pub struct Wanted {
    /// A global position the answer must be at least as new as (0: none).
    pub min_position: u64,
    /// How long the read may wait for the feed to get there before it asks the database.
    pub patience: Duration,
}

impl Wanted {
    /// The most a read waits for the feed.
    pub const MAX_PATIENCE: Duration = Duration::from_secs(1);

    /// Nothing beyond this process's own writes, with the longest patience.
    pub fn own_writes() -> Wanted {
        Wanted { min_position: 0, patience: Wanted::MAX_PATIENCE }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `min_position` names a position no event has yet.
    #[error(
        "min_position: {min_position} is past the log's head ({head}); pass the global_position of an acknowledged command"
    )]
    PastHead { min_position: u64, head: u64 },
}

/// Where one read is answered from.
enum Source {
    Feed,
    /// `head_checked`: `min_position` is already known not to be past the head;
    /// `reader`: the store already chosen for it (`Store::reader`), if one was.
    Database {
        head_checked: bool,
        reader: Option<Store>,
    },
}

/// The query side of the feed. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Reads {
    feed: Feed,
}

impl Reads {
    pub fn new(feed: Feed) -> Reads {
        Reads { feed }
    }

    fn store(&self) -> &Store {
        self.feed.store()
    }

    /// One initiative's alignment view (`None`: no such initiative).
    pub async fn alignment(
        &self,
        target: &InitiativeRef,
        wanted: Wanted,
    ) -> Result<Option<Arc<AlignmentView>>, ReadError> {
        let arrival = self.feed.index().arrival();
        let read = |store: Store| async move { store.alignment(target).await };
        if let Source::Database { head_checked, reader } = self.source(arrival, Some(target), wanted).await? {
            return self.read_store(head_checked, reader, wanted, read).await.map(|v| v.map(Arc::new));
        }
        let view = self.feed.index().get(target).map(|entry| entry.published.view.clone());
        match view {
            Some(view) => Ok(Some(view)),
            // Entries are never removed; were one missing, the database still knows.
            None => Ok(self.read_store(true, None, wanted, read).await?.map(Arc::new)),
        }
    }

    /// The views that match `filter`, in key order, after `after_key`, at most `limit`.
    pub async fn list(
        &self,
        filter: &ListFilter,
        after_key: Option<&str>,
        limit: usize,
        wanted: Wanted,
    ) -> Result<Vec<Arc<AlignmentView>>, ReadError> {
        let arrival = self.feed.index().arrival();
        match self.source(arrival, None, wanted).await? {
            Source::Feed => Ok(self.feed.index().list(filter, after_key, limit)),
            Source::Database { head_checked, reader } => {
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                let read = |store: Store| async move { store.list(filter, after_key, limit).await };
                let views = self.read_store(head_checked, reader, wanted, read).await?;
                Ok(views.into_iter().map(Arc::new).collect())
            }
        }
    }

    /// The views of every initiative with a sign-off waiting on `principal`, in key order.
    pub async fn awaiting(&self, principal: &Principal, wanted: Wanted) -> Result<Vec<Arc<AlignmentView>>, ReadError> {
        let arrival = self.feed.index().arrival();
        match self.source(arrival, None, wanted).await? {
            Source::Feed => Ok(self.feed.index().awaiting(principal.as_str())),
            Source::Database { head_checked, reader } => {
                let read = |store: Store| async move { store.awaiting(principal).await };
                let views = self.read_store(head_checked, reader, wanted, read).await?;
                Ok(views.into_iter().map(Arc::new).collect())
            }
        }
    }

    /// The sign-offs waiting on a member — on them, and on each of their teams —,
    /// initiative by initiative in key order: what gRPC `GetInbox` and the board's `GET
    /// /api/inbox` answer. A view lists only its most recent outstanding items; past
    /// that, the inbox comes from the initiative itself, read from `store` (the request's
    /// reader for `wanted`).
    pub async fn inbox(
        &self,
        store: &Store,
        member: Member<'_>,
        wanted: Wanted,
    ) -> Result<Vec<(Arc<AlignmentView>, Vec<InboxItem>)>, ReadError> {
        let mut views = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for identity in std::iter::once(member.person).chain(member.teams.iter()) {
            for view in self.awaiting(identity, wanted).await? {
                if seen.insert(view.initiative_id) {
                    views.push(view);
                }
            }
        }
        if !member.teams.is_empty() {
            views.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
        }
        let store = store.reader(wanted.min_position).await;
        let mut inboxes = Vec::with_capacity(views.len());
        for view in views {
            let items = if view.outstanding_is_complete() {
                view.inbox_of(member)
            } else {
                match store.initiative(&InitiativeRef::Id(view.initiative_id)).await? {
                    Some(initiative) => inbox_of(&initiative, member),
                    None => continue,
                }
            };
            inboxes.push((view, items));
        }
        Ok(inboxes)
    }

    /// Whether a read that arrived at `arrival` (the index's next acknowledgement ticket
    /// then) can be answered from the feed, waiting for it if need be; `target` narrows
    /// the writes waited for to one initiative's.
    async fn source(&self, arrival: u64, target: Option<&InitiativeRef>, wanted: Wanted) -> Result<Source, ReadError> {
        let database = Source::Database { head_checked: false, reader: None };
        if !self.feed.is_current() {
            return Ok(database);
        }
        let deadline = Instant::now() + wanted.patience;
        let initiative = match target {
            None => None,
            Some(target) => match self.feed.index().get(target) {
                Some(entry) => Some(entry.published.view.initiative_id.0),
                None => return Ok(database),
            },
        };
        if !self.own_writes_applied(arrival, initiative, deadline).await {
            return Ok(database);
        }
        let position = wanted.min_position;
        if position == 0 {
            return Ok(Source::Feed);
        }
        // The initiative's view is at or past the position: every event of its stream up
        // to there is in it (a stream's events take positions in version order).
        if let Some(target) = target
            && self.feed.index().get(target).is_some_and(|entry| entry.published.position >= position)
        {
            return Ok(Source::Feed);
        }
        // The store that knows the position: the standby once it has replayed it (then
        // it is not past the head), else the primary.
        let reader = self.store().reader(position).await;
        if !reader.reads_on_standby() {
            self.check_head(position).await?;
            if self.store().standby_status() != StandbyStatus::None {
                // The feed tails the standby, which did not get there in time (or is
                // down, and the feed on the primary is behind): the primary answers now
                // rather than after a second wait.
                return Ok(Source::Database { head_checked: true, reader: Some(reader) });
            }
        }
        // The write's place in commit order: once the feed has applied it, it has applied
        // everything committed before it too.
        let cursor = reader.cursor_after_position(position).await?;
        if self.feed.wait_until(deadline, |index| index.cursor >= cursor).await {
            Ok(Source::Feed)
        } else {
            Ok(Source::Database { head_checked: true, reader: None })
        }
    }

    /// Waits until the feed has applied every write this process acknowledged before
    /// `arrival` (to `initiative` only, when given); `false` if it has not by `deadline`
    /// or `OWN_WRITE_WAIT` after the oldest of them.
    async fn own_writes_applied(&self, arrival: u64, initiative: Option<Uuid>, deadline: Instant) -> bool {
        let Some(since) = self.feed.index().oldest_pending(arrival, initiative) else { return true };
        let until = deadline.min(Instant::from_std(since) + OWN_WRITE_WAIT);
        self.feed.wait_until(until, |index| index.oldest_pending(arrival, initiative).is_none()).await
    }

    async fn check_head(&self, min_position: u64) -> Result<(), ReadError> {
        let head = self.store().head_position().await?;
        if min_position > head {
            return Err(ReadError::PastHead { min_position, head });
        }
        Ok(())
    }

    /// A read of the database — the standby once it reflects `min_position`, else the
    /// primary, which reflects every committed write (`reader`, when already chosen);
    /// a `min_position` past the head is refused all the same.
    async fn read_store<T, F, Fut>(
        &self,
        head_checked: bool,
        reader: Option<Store>,
        wanted: Wanted,
        read: F,
    ) -> Result<T, ReadError>
    where
        F: FnOnce(Store) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let store = match reader {
            Some(store) => store,
            None => self.store().reader(wanted.min_position).await,
        };
        if wanted.min_position > 0 && !head_checked && !store.reads_on_standby() {
            self.check_head(wanted.min_position).await?;
        }
        Ok(read(store).await?)
    }
}
