//! Prometheus metrics of the service (placeholder in this branch: the real renderer is
//! written elsewhere and replaces this file at merge; the board's `/metrics` route calls
//! `render`).

/// The metrics in Prometheus text format.
pub fn render(_store: &crate::store::Store) -> String {
    String::new()
}
