//! The scheme browsers use to reach the gate and the workspaces, and the
//! origin built from it. A leaf: configuration parses it, the core and the
//! answers use it, so it lives below both.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// `scheme://host[:port]`, without the port when it is the scheme's default.
pub(crate) fn origin(scheme: Scheme, host: &str, port: Option<u16>) -> String {
    match port.filter(|p| !matches!((scheme, p), (Scheme::Https, 443) | (Scheme::Http, 80))) {
        Some(p) => format!("{}://{host}:{p}", scheme.as_str()),
        None => format!("{}://{host}", scheme.as_str()),
    }
}
