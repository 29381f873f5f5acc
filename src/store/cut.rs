//! The stored projection at one consistent cut: every initiative's alignment row as it
//! was when the log ended at one point, with that point. What the live feed starts from,
//! so that a start reads one row per initiative instead of folding the whole log.

use uuid::Uuid;

use super::GlobalCursor;
use crate::domain::AlignmentView;

/// The projection as of one point of the log: every row reflects exactly the events up
/// to `cursor` (read in one snapshot with it).
#[derive(Debug, Default)]
pub struct ProjectionCut {
    /// The last event of the log at the cut, in commit order, and its position.
    pub cursor: GlobalCursor,
    pub position: u64,
    pub rows: Vec<CutRow>,
}

/// One initiative at the cut.
#[derive(Debug)]
pub struct CutRow {
    pub initiative_id: Uuid,
    /// The stream's head: its version, and the cursor and position of its last event.
    pub version: i64,
    pub cursor: GlobalCursor,
    pub position: u64,
    /// The stored view, when it can be served as it is: written by this code's
    /// projection version for the head's version, and decodable. `None`: the caller
    /// folds the initiative itself.
    pub view: Option<StoredView>,
}

/// An alignment row as stored.
#[derive(Debug)]
pub struct StoredView {
    pub view: AlignmentView,
    /// Everyone a sign-off waits on (the inbox index column).
    pub awaiting: Vec<String>,
}

/// Whether a stored row can stand for the head: the same version, written by this
/// code's projection, and its view decodes.
pub(super) fn usable(
    head_version: i64,
    row_version: Option<i64>,
    projection_version: Option<i32>,
    view: Option<Result<AlignmentView, String>>,
    awaiting: Option<Vec<String>>,
) -> Option<StoredView> {
    if row_version != Some(head_version) || projection_version != Some(crate::domain::alignment::PROJECTION_VERSION) {
        return None;
    }
    Some(StoredView { view: view?.ok()?, awaiting: awaiting? })
}
