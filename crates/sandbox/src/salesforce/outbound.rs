//! Outbound Messages.

use super::State;

/// Hands the changes of the last request to outbound messaging.
pub(crate) fn flush(state: &State) {
    state.write().events.clear();
}
