//! The SSH user name names the workspace, as with GitLab's workspaces
//! proxy: the workspace's name (`ssh ws-1@gate`), one of its hosts
//! (`ssh ws-1.workspaces.example.dev@gate`), or a host's first label
//! (`ssh 60001-ws-1@gate`). Pure: parsing, then a lookup in a snapshot.

use std::sync::Arc;

use crate::workspaces::{Snapshot, Workspace};

/// Longest user name looked at; DNS names are at most 253 bytes.
const MAX_LEN: usize = 253;

/// What a user name asks for, before any lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// Contains a dot: a full workspace host, lower-cased.
    Host(String),
    /// One label: a host label under the workspace domain, or a name.
    Label(String),
}

/// Why a user name names no workspace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("the user name is empty; use the workspace's name, e.g. ssh ws-1@<gate>")]
    Empty,
    #[error("the user name is longer than {MAX_LEN} characters")]
    TooLong,
    #[error("the user name may hold only letters, digits, '-' and '.' (a workspace name or host)")]
    Characters,
    #[error("no workspace is named {0}")]
    Unknown(String),
    #[error("{0} names workspaces in more than one namespace; use one of its hosts instead")]
    Ambiguous(String),
}

impl UserError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            UserError::Empty | UserError::TooLong | UserError::Characters => "bad_user",
            UserError::Unknown(_) => "unknown_workspace",
            UserError::Ambiguous(_) => "ambiguous_workspace",
        }
    }
}

/// Parses a user name. Never panics, whatever the bytes.
pub fn parse(user: &str) -> Result<Wanted, UserError> {
    if user.is_empty() {
        return Err(UserError::Empty);
    }
    if user.len() > MAX_LEN {
        return Err(UserError::TooLong);
    }
    if !user
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(UserError::Characters);
    }
    let lower = user.to_ascii_lowercase();
    if lower.starts_with('.') || lower.ends_with('.') || lower.contains("..") {
        return Err(UserError::Characters);
    }
    if lower.contains('.') {
        Ok(Wanted::Host(lower))
    } else {
        Ok(Wanted::Label(lower))
    }
}

/// The workspace a user name names in `snapshot`: by host, then a label
/// under `workspace_domain`, then by workspace name (refused when two
/// namespaces hold that name).
pub fn resolve(
    user: &str,
    snapshot: &Snapshot,
    workspace_domain: &str,
) -> Result<Arc<Workspace>, UserError> {
    match parse(user)? {
        Wanted::Host(h) => snapshot.by_host(&h).cloned().ok_or(UserError::Unknown(h)),
        Wanted::Label(label) => {
            if let Some(ws) = snapshot.by_host(&format!("{label}.{workspace_domain}")) {
                return Ok(ws.clone());
            }
            let mut found = snapshot.workspaces().filter(|w| w.name == label);
            match (found.next(), found.next()) {
                (Some(ws), None) => Ok(ws.clone()),
                (Some(_), Some(_)) => Err(UserError::Ambiguous(label)),
                (None, _) => Err(UserError::Unknown(label)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::workspaces::HostPort;

    fn ws(id: &str, name: &str, namespace: &str, hosts: &[&str]) -> Workspace {
        Workspace {
            id: id.into(),
            name: name.into(),
            namespace: namespace.into(),
            owner: None,
            hosts: hosts
                .iter()
                .map(|h| HostPort {
                    host: h.to_string(),
                    service_port: None,
                })
                .collect(),
            service: None,
            ssh: None,
        }
    }

    fn snapshot() -> Snapshot {
        Snapshot::build(vec![
            ws("1", "ws-1", "a", &["60001-ws-1.w.test", "ws-1.w.test"]),
            ws("2", "twin", "a", &["twin-a.w.test"]),
            ws("3", "twin", "b", &["twin-b.w.test"]),
        ])
        .unwrap()
    }

    #[test]
    fn names_hosts_and_labels_find_the_workspace() {
        let s = snapshot();
        for user in [
            "ws-1",
            "WS-1",
            "60001-ws-1",
            "60001-ws-1.w.test",
            "ws-1.w.test",
        ] {
            assert_eq!(resolve(user, &s, "w.test").unwrap().id, "1", "{user}");
        }
        assert_eq!(resolve("twin-b", &s, "w.test").unwrap().id, "3");
        assert_eq!(
            resolve("twin", &s, "w.test").unwrap_err(),
            UserError::Ambiguous("twin".into())
        );
        assert_eq!(
            resolve("ws-2", &s, "w.test").unwrap_err(),
            UserError::Unknown("ws-2".into())
        );
        // A host outside the index, even one of the gate's own, is unknown.
        assert!(matches!(
            resolve("auth.w.test", &s, "w.test"),
            Err(UserError::Unknown(_))
        ));
    }

    #[test]
    fn hostile_names_are_refused_by_syntax() {
        for user in [
            "",
            "ws-1@evil",
            "ws-1 ",
            "ws-1\0",
            "../ws-1",
            ".ws-1",
            "ws-1.",
            "ws..1",
            "ws-1/x",
            "ws-1%2e",
            "wś-1",
            "ws-1\r\nx",
        ] {
            assert!(parse(user).is_err(), "{user:?}");
        }
        assert_eq!(parse(&"a".repeat(254)), Err(UserError::TooLong));
    }

    /// Property: for any string, parsing never panics; what it accepts is
    /// lower-case, made of `[a-z0-9.-]`, without empty labels, at most 253
    /// bytes, and parsing it again gives the same answer.
    #[test]
    fn parsing_any_string_is_total_and_accepts_only_clean_names() {
        let alphabet: Vec<char> = "aZ09-._@/ \t\n\0%:ś\u{202e}é".chars().collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(19);
        for _ in 0..20_000 {
            let len = rng.random_range(0..40);
            let s: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            if let Ok(w) = parse(&s) {
                let text = match &w {
                    Wanted::Host(h) => h,
                    Wanted::Label(l) => l,
                };
                assert!(text.len() <= MAX_LEN);
                assert!(
                    text.bytes().all(|b| b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || b == b'-'
                        || b == b'.'),
                    "{s:?} -> {text:?}"
                );
                assert!(!text.split('.').any(str::is_empty), "{s:?}");
                assert_eq!(matches!(w, Wanted::Host(_)), text.contains('.'));
                assert_eq!(parse(text), Ok(w.clone()));
            }
        }
    }
}
