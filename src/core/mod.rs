//! The decision core: pure, synchronous, no I/O.
//!
//! Every controller adapter turns its wire format into a [`CheckRequest`],
//! calls [`decide`] with the current workspace [`Snapshot`](crate::workspaces::Snapshot),
//! the [`Keyring`](crate::session::Keyring) and the time, and turns the
//! [`Decision`] back into its wire format.

pub(crate) mod cookies;
pub mod decide;
pub(crate) mod decision;
pub(crate) mod rd;
pub(crate) mod request;
pub(crate) mod reserved;
pub(crate) mod settings;

pub use decide::decide;
pub use decision::{Allow, Decision, Page};
pub use request::CheckRequest;
pub use settings::Settings;
#[cfg(test)]
mod tests;
