//! Which initiatives a watcher follows, and the one parser of that filter. gRPC
//! `WatchAlignments` and the board's `/api/watch` ask for the same filter in two shapes
//! (enumerations as numbers or as names; a list of initiatives or one): each edge reads
//! its own shape into [`WatchFields`], and [`WatchFilter::parse`] does the rest, naming
//! each bad field as the request named it.

use crate::domain::values::InitiativeRef;
use crate::domain::{
    DomainError,
    alignment::{AlignmentView, InitiativeStatus},
    values::{Function, Principal, Stage},
};
use crate::store::ListFilter;

/// Which initiatives a watcher follows.
#[derive(Clone, Debug, Default)]
pub struct WatchFilter {
    /// Only these initiatives (by id or key); empty: all that match `list`.
    pub initiatives: Vec<InitiativeRef>,
    /// The `ListAlignments` filters (status, pending function, stage, owner, archived);
    /// `text` is ignored.
    pub list: ListFilter,
}

/// A watch request's fields as its edge read them from the wire: the enumerations
/// already typed, the rest as the text that came (empty: any).
#[derive(Clone, Debug, Default)]
pub struct WatchFields<'a> {
    /// Each initiative named, with the field it came in (`initiatives[2]`, `initiative`).
    pub initiatives: Vec<(String, &'a str)>,
    pub status: Option<InitiativeStatus>,
    pub stage: Option<Stage>,
    /// A function whose sign-off is still outstanding (`pending_function`).
    pub pending_function: &'a str,
    /// The initiatives' owner (`owner`).
    pub owner: &'a str,
    pub include_archived: bool,
}

impl WatchFilter {
    /// The filter the fields ask for; a bad one is refused with the field it came in.
    pub fn parse(fields: &WatchFields<'_>) -> Result<WatchFilter, DomainError> {
        let initiatives = fields
            .initiatives
            .iter()
            .map(|(field, value)| InitiativeRef::parse(field, value))
            .collect::<Result<Vec<_>, _>>()?;
        let pending_function =
            given(fields.pending_function).map(|function| Function::parse("pending_function", function)).transpose()?;
        let owner = given(fields.owner).map(|owner| Principal::parse("owner", owner)).transpose()?;
        Ok(WatchFilter {
            initiatives,
            list: ListFilter {
                status: fields.status.map(|status| status.as_str().to_owned()),
                pending_function: pending_function.map(|function| function.to_string()),
                stage: fields.stage.map(|stage| stage.as_str().to_owned()),
                owner: owner.map(|owner| owner.to_string()),
                text: None,
                include_archived: fields.include_archived,
            },
        })
    }

    /// Whether an initiative's alignment belongs to this watcher.
    pub fn matches(&self, view: &AlignmentView) -> bool {
        let named = self.initiatives.is_empty()
            || self.initiatives.iter().any(|target| match target {
                InitiativeRef::Id(id) => *id == view.initiative_id,
                InitiativeRef::Key(key) => *key == view.key,
            });
        named && list_matches(&self.list, view)
    }
}

/// Whether a view passes the `ListAlignments` filters other than `text` (which needs
/// the case-folded key and title: see `index`): the same conditions as the store's
/// list query.
pub(crate) fn list_matches(list: &ListFilter, view: &AlignmentView) -> bool {
    (list.include_archived || !view.archived)
        && list.status.as_deref().is_none_or(|status| status == view.status.as_str())
        && list.stage.as_deref().is_none_or(|stage| stage == view.stage.as_str())
        && list.owner.as_deref().is_none_or(|owner| owner == view.owner.as_str())
        && list
            .pending_function
            .as_deref()
            .is_none_or(|function| view.outstanding_functions().iter().any(|outstanding| outstanding == function))
}

/// A text field that was given: not empty.
fn given(value: &str) -> Option<&str> {
    Some(value).filter(|value| !value.is_empty())
}
