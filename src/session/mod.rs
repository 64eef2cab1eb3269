//! Token formats and keys: pass, transfer, login, state and sign-out tokens.
pub mod keyring;
