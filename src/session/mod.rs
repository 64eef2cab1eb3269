//! Token formats and keys.
//!
//! | token | form | lives | bound to |
//! |---|---|---|---|
//! | pass | signed | cookie on one workspace host | that host (`aud`) |
//! | transfer | signed | one redirect, <= 60 s | the target host and the browser that started the login (`b`, see [`binding`]) |
//! | login | sealed | cookie on the auth host | the auth host (host-only cookie) |
//! | state | sealed | OAuth `state` | the browser's CSRF cookie |
//! | sign-out | signed | one redirect chain | the hosts it lists |
pub(crate) mod binding;
pub(crate) mod claims;
pub mod keyring;
pub(crate) mod memo;
pub(crate) mod sealed;
pub mod signed;

pub use claims::{
    Identity, LoginClaims, PassClaims, SignOutClaims, StateClaims, TransferClaims, is_blank,
};
pub use keyring::{Keyring, TokenKind};
pub use memo::VerifiedPass;
pub use signed::TokenError;
#[cfg(test)]
mod tests;
