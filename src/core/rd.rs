//! Validation of the `rd` (return-to) URL that starts a login.
//!
//! `rd` is attacker-controlled: nginx builds it from the client's `Host`
//! header, and anyone can link to `/auth/start?rd=...`. Only an absolute URL
//! on a workspace host (`<label>.<workspace_domain>`) with the public scheme
//! and port is accepted. The authority is checked on the raw text before
//! any parser can reinterpret it, so percent-encoding, Unicode dots,
//! backslashes and userinfo never get a chance to change the host.

use super::settings::Settings;

/// A validated target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// Lower-case host without port.
    pub host: String,
    /// Path and query (always starts with a single `/`).
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RdError {
    #[error("missing")]
    Missing,
    #[error("too long")]
    TooLong,
    #[error("contains characters that are not allowed")]
    BadCharacters,
    #[error("not an absolute URL with the public scheme")]
    Scheme,
    #[error("the host is not a workspace host")]
    Host,
    #[error("the port is not the public port")]
    Port,
    #[error("the path is not a plain absolute path")]
    Path,
}

const MAX_RD: usize = 4096;

pub(crate) fn validate(settings: &Settings, raw: &str) -> Result<Target, RdError> {
    if raw.is_empty() {
        return Err(RdError::Missing);
    }
    if raw.len() > MAX_RD {
        return Err(RdError::TooLong);
    }
    // Only printable ASCII without spaces or backslashes, anywhere.
    if !raw.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
        return Err(RdError::BadCharacters);
    }
    let prefix = format!("{}://", settings.scheme.as_str());
    if raw.len() < prefix.len() || !raw[..prefix.len()].eq_ignore_ascii_case(&prefix) {
        return Err(RdError::Scheme);
    }
    let rest = &raw[prefix.len()..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let tail = &rest[end..];
    // Host names and an optional port: nothing else may appear here (no
    // userinfo, no percent-encoding, no brackets).
    if !authority
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':')
    {
        return Err(RdError::Host);
    }
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let host = host.to_ascii_lowercase();
    if !settings.is_workspace_host(&host) {
        return Err(RdError::Host);
    }
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RdError::Port);
        }
        let p: u16 = p.parse().map_err(|_| RdError::Port)?;
        let default = match settings.scheme {
            crate::scheme::Scheme::Https => 443,
            crate::scheme::Scheme::Http => 80,
        };
        if p != default && Some(p) != settings.public_port {
            return Err(RdError::Port);
        }
    }
    // The fragment never reaches a server; drop it.
    let tail = tail.split('#').next().unwrap_or("");
    let path = if tail.is_empty() || tail.starts_with('?') {
        format!("/{tail}")
    } else {
        tail.to_string()
    };
    // `//x` would be read as another host if ever used as a relative URL.
    if path.starts_with("//") {
        return Err(RdError::Path);
    }
    Ok(Target { host, path })
}

impl Target {
    pub(crate) fn url(&self, settings: &Settings) -> String {
        format!("{}{}", settings.origin(&self.host), self.path)
    }
}

/// `target`'s URL, then without its query, then the host's root: the
/// state travels in the Location to the provider, and a return address
/// too long for the answer to fit ingress-nginx's buffer is shortened.
pub(crate) fn return_addresses(settings: &Settings, target: &Target) -> Vec<String> {
    let full = target.url(settings);
    let path = target.path.split('?').next().unwrap_or("/");
    let mut out = vec![full];
    for p in [path, "/"] {
        let url = format!("{}{p}", settings.origin(&target.host));
        if !out.contains(&url) {
            out.push(url);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheme::Scheme;

    fn settings() -> Settings {
        crate::core::settings::test_settings()
    }

    #[test]
    fn hostile_rd_values_are_refused() {
        let s = settings();
        let hostile = [
            "",
            "https://evil.test/",
            "https://evil.test",
            "//evil.test",
            "//ws-1.workspaces.test/",
            "https:evil.test",
            "https:/evil.test",
            "https:///evil.test",
            "https:\\\\evil.test",
            "https://ws-1.workspaces.test\\@evil.test/",
            "https://evil.test\\.ws-1.workspaces.test/",
            "https://ws-1.workspaces.test@evil.test/",
            "https://user:pw@ws-1.workspaces.test/",
            "https://evil.test#@ws-1.workspaces.test/",
            "https://evil.test?@ws-1.workspaces.test/",
            "https://evil.test%2f.workspaces.test/",
            "https://evil.test%2F@ws-1.workspaces.test/",
            "https://ws-1%2eworkspaces.test/",
            "https://ws-1.workspaces.test%2f@evil.test/",
            "https://%77s-1.workspaces.test/",
            "https://ws-1。workspaces.test/",
            "https://ws-1．workspaces.test/",
            "https://evil.test。ws-1.workspaces.test/",
            "https://ws-1.workspaces.test:8443/",
            "https://ws-1.workspaces.test:0/",
            "https://ws-1.workspaces.test:99999/",
            "https://ws-1.workspaces.test:/",
            "https://ws-1.workspaces.test:443x/",
            "javascript:alert(1)",
            "JavaScript://ws-1.workspaces.test/%0aalert(1)",
            "data:text/html,hi",
            "ws-1.workspaces.test/src",
            "/src",
            "http://ws-1.workspaces.test/",
            "ftp://ws-1.workspaces.test/",
            "https://workspaces.test/",
            "https://workspaces.test/auth/start",
            "https://a.b.workspaces.test/",
            "https://ws-1.workspaces.test.evil.test/",
            "https://ws-1workspaces.test/",
            "https://.workspaces.test/",
            "https://-x.workspaces.test/",
            "https://[::1]/",
            "https://127.0.0.1/",
            "https://ws-1.workspaces.test//evil.test/",
            "https://ws-1.workspaces.test/ path",
            "https://ws-1.workspaces.test/\tx",
            "https://ws-1.workspaces.test/\r\nSet-Cookie:x=1",
            // `xn--` labels that are not valid IDNA A-labels.
            "https://XN--C.workspaces.test/",
            "https://xn--c.workspaces.test/",
            "https://xn--.workspaces.test/",
            "https://xn--ws-1.workspaces.test/",
            "https://xn--zz-zzzz.workspaces.test/",
        ];
        assert!(hostile.len() >= 40);
        for rd in hostile {
            assert!(validate(&s, rd).is_err(), "accepted hostile rd {rd:?}");
        }
        let long = format!("https://ws-1.workspaces.test/{}", "a".repeat(5000));
        assert_eq!(validate(&s, &long), Err(RdError::TooLong));
    }

    #[test]
    fn workspace_urls_are_accepted_and_normalised() {
        let s = settings();
        let t = validate(&s, "https://WS-1.Workspaces.Test/src?x=1#frag").unwrap();
        assert_eq!(t.host, "ws-1.workspaces.test");
        assert_eq!(t.path, "/src?x=1");
        let t = validate(&s, "https://60001-ws-1.workspaces.test").unwrap();
        assert_eq!(t.path, "/");
        let t = validate(&s, "https://ws-1.workspaces.test?a=b").unwrap();
        assert_eq!(t.path, "/?a=b");
        // A valid A-label (bücher) is a host like any other.
        let t = validate(&s, "https://XN--BCHER-KVA.workspaces.test/").unwrap();
        assert_eq!(t.host, "xn--bcher-kva.workspaces.test");
        let t = validate(&s, "https://ws-1.workspaces.test:443/x/%2e%2e/y").unwrap();
        assert_eq!(t.url(&s), "https://ws-1.workspaces.test/x/%2e%2e/y");
    }

    #[test]
    fn the_public_port_is_accepted_when_configured() {
        let s = Settings::new(
            "workspaces.test",
            "workspaces.test",
            Scheme::Https,
            Some(8443),
            1,
            1,
        );
        let t = validate(&s, "https://ws-1.workspaces.test:8443/a").unwrap();
        assert_eq!(t.url(&s), "https://ws-1.workspaces.test:8443/a");
        assert!(validate(&s, "https://ws-1.workspaces.test:8444/a").is_err());
    }

    #[test]
    fn return_addresses_shorten_to_the_path_then_the_root() {
        let s = crate::core::settings::test_settings();
        let t = |path: &str| Target {
            host: "ws-1.workspaces.test".into(),
            path: path.into(),
        };
        let o = "https://ws-1.workspaces.test";
        assert_eq!(
            return_addresses(&s, &t("/a/b?q=1")),
            [format!("{o}/a/b?q=1"), format!("{o}/a/b"), format!("{o}/")]
        );
        assert_eq!(
            return_addresses(&s, &t("/a")),
            [format!("{o}/a"), format!("{o}/")]
        );
        assert_eq!(return_addresses(&s, &t("/")), [format!("{o}/")]);
    }
}
