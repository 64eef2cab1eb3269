//! The decision core: pure, synchronous, no I/O.
//!
//! Every controller adapter turns its wire format into a [`CheckRequest`],
//! calls [`decide`] with the current workspace [`Snapshot`](crate::workspaces::Snapshot),
//! the [`Keyring`](crate::session::Keyring) and the time, and turns the
//! [`Decision`] back into its wire format.

pub mod cookies;
pub mod decide;
pub mod decision;
pub mod rd;
pub mod request;
pub mod reserved;
pub mod settings;

pub use decide::decide;
pub use decision::{Allow, Decision, Page};
pub use request::CheckRequest;
pub use settings::Settings;
#[cfg(test)]
mod tests;
