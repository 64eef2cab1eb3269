//! The part of the configuration the core needs, precomputed once.

use crate::scheme::Scheme;

/// The most a `Set-Cookie` or `Location` the gate sends may hold.
/// ingress-nginx reads an upstream's whole answer head into its 4 KiB
/// `proxy_buffer_size` (a larger one is a 502); this leaves room for the
/// status line and the other headers of the same answer.
pub(crate) const ANSWER_HEADER_BUDGET: usize = 3072;

#[derive(Debug, Clone)]
pub struct Settings {
    pub auth_host: String,
    pub workspace_domain: String,
    pub scheme: Scheme,
    /// Port browsers use, when not the scheme's default.
    pub public_port: Option<u16>,
    pub pass_ttl: u64,
    pub transfer_ttl: u64,
    /// Every gate cookie starts with this; it is stripped before upstreams.
    pub cookie_prefix: &'static str,
    pub pass_cookie: String,
    pub login_cookie: String,
    pub csrf_cookie: String,
    /// Name prefix of the bind cookies on workspace hosts (one per login
    /// under way, named after its digest; see `session::binding`).
    pub bind_cookie: String,
    /// The cookie the hand-over page on a workspace host puts the transfer
    /// token in, for the one request that redeems it.
    pub transfer_cookie: String,
    /// GitLab's list of the user's workspaces, which the "Workspace not
    /// found" page links as the way on; `None` links nothing.
    pub workspace_list: Option<String>,
}

impl Settings {
    pub fn new(
        auth_host: &str,
        workspace_domain: &str,
        scheme: Scheme,
        public_port: Option<u16>,
        pass_ttl: u64,
        transfer_ttl: u64,
    ) -> Self {
        // `__Host-` makes browsers refuse the cookie unless it is Secure,
        // host-only and Path=/, so a sibling workspace cannot plant or
        // shadow it. Plain http (loopback only) cannot use the prefix.
        let cookie_prefix = match scheme {
            Scheme::Https => "__Host-workspace-gate-",
            Scheme::Http => "workspace-gate-",
        };
        Settings {
            auth_host: auth_host.to_ascii_lowercase(),
            workspace_domain: workspace_domain.to_ascii_lowercase(),
            scheme,
            public_port: public_port
                .filter(|p| !matches!((scheme, p), (Scheme::Https, 443) | (Scheme::Http, 80))),
            pass_ttl,
            transfer_ttl,
            cookie_prefix,
            pass_cookie: format!("{cookie_prefix}pass"),
            login_cookie: format!("{cookie_prefix}login"),
            csrf_cookie: format!("{cookie_prefix}csrf"),
            bind_cookie: format!("{cookie_prefix}bind"),
            transfer_cookie: format!("{cookie_prefix}transfer"),
            workspace_list: None,
        }
    }

    /// `scheme://host[:port]` as browsers see it.
    pub fn origin(&self, host: &str) -> String {
        crate::scheme::origin(self.scheme, host, self.public_port)
    }

    pub fn auth_origin(&self) -> String {
        self.origin(&self.auth_host)
    }

    /// True for `<one label>.<workspace_domain>`.
    pub fn is_workspace_host(&self, host: &str) -> bool {
        match host.strip_suffix(&self.workspace_domain) {
            Some(label) => match label.strip_suffix('.') {
                Some(label) => {
                    !label.is_empty()
                        && !label.contains('.')
                        && crate::workspaces::template::is_dns_name(label)
                }
                None => false,
            },
            None => false,
        }
    }

    /// Lower-cases `raw` (a Host header or authority) and removes the port,
    /// refusing ports other than the public one.
    pub fn normalize_host<'a>(&self, raw: &'a str) -> Option<std::borrow::Cow<'a, str>> {
        let (host, port) = match raw.rsplit_once(':') {
            Some((h, p)) if !h.contains(']') || h.ends_with(']') => (h, Some(p)),
            _ => (raw, None),
        };
        if let Some(p) = port {
            let p: u16 = p.parse().ok()?;
            let default = match self.scheme {
                Scheme::Https => 443,
                Scheme::Http => 80,
            };
            if Some(p) != self.public_port && p != default {
                return None;
            }
        }
        // One trailing dot names the same host (nginx and browsers drop it).
        let host = host.strip_suffix('.').unwrap_or(host);
        // Borrowed in the common case: hosts arrive lower-case.
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(host.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(host)
        };
        // Nothing but a DNS name: a comma (two Host headers joined), `&`,
        // `%`, `?`, `/` or a space would let one text name two hosts to two
        // readers.
        crate::workspaces::template::is_dns_name(&host).then_some(host)
    }

    /// Attributes of a gate cookie: host-only, Secure on https, HttpOnly, Lax.
    pub fn cookie(&self, name: &str, value: &str, max_age: u64) -> String {
        let secure = if self.scheme == Scheme::Https {
            "; Secure"
        } else {
            ""
        };
        format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
    }

    pub fn clear_cookie(&self, name: &str) -> String {
        self.cookie(name, "", 0)
    }
}

/// The settings unit tests share: https, auth host and workspace domain
/// `workspaces.test`, no public port, a one-hour pass, 60 s transfers.
#[cfg(test)]
pub(crate) fn test_settings() -> Settings {
    Settings::new(
        "workspaces.test",
        "workspaces.test",
        crate::scheme::Scheme::Https,
        None,
        3600,
        60,
    )
}
