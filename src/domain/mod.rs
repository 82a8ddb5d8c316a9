//! The domain: ids, statuses, the reminder and its attempts, outcomes, events
//! and the decisions they lead to, and the value types that are only built by
//! parsing (so the inside never re-checks).
//!
//! Nothing here knows about HTTP, SQL or the clock: callers hand in `now`.

mod action;
mod calling;
mod create;
mod notice;
mod payment;
mod promise;
mod reminder;
mod suppression;
mod transition;
mod values;

pub use action::*;
pub use calling::*;
pub use create::*;
pub use notice::*;
pub use payment::*;
pub use promise::*;
pub use reminder::*;
pub use suppression::*;
pub use transition::*;
pub use values::*;

#[cfg(test)]
mod tests;
