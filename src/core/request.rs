//! What the core needs to know about a request, whatever controller asked.

/// A request as described by a controller. Adapters fill it only from
/// values their controller sets or overwrites (never from a client-sent
/// `X-Forwarded-Host`), plus the client's own credentials.
#[derive(Debug, Clone, Default)]
pub struct CheckRequest<'a> {
    pub method: &'a str,
    /// Host as the browser addressed it, possibly with a port.
    pub host: &'a str,
    /// Path and query, as the browser sent them.
    pub path: &'a str,
    pub cookie: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub accept: Option<&'a str>,
    pub sec_fetch_mode: Option<&'a str>,
    /// The request asks for a protocol upgrade (WebSocket).
    pub upgrade: bool,
}

impl CheckRequest<'_> {
    /// A top-level browser navigation: the only kind of request that may be
    /// sent to the login pages. Everything else gets a plain 401.
    pub fn is_navigation(&self) -> bool {
        is_navigation(self.method, self.accept, self.sec_fetch_mode, self.upgrade)
    }

    /// A form submitted by a browser: a top-level navigation with another
    /// method than GET or HEAD. `fetch()` and XHR send another
    /// `Sec-Fetch-Mode`; without one, only a client that asks for HTML.
    pub fn is_form_submission(&self) -> bool {
        is_navigation("GET", self.accept, self.sec_fetch_mode, self.upgrade)
            && !self.method.eq_ignore_ascii_case("GET")
            && !self.method.eq_ignore_ascii_case("HEAD")
    }
}

pub(crate) fn is_navigation(
    method: &str,
    accept: Option<&str>,
    sec_fetch_mode: Option<&str>,
    upgrade: bool,
) -> bool {
    if upgrade || !(method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD")) {
        return false;
    }
    if let Some(mode) = sec_fetch_mode {
        return mode.eq_ignore_ascii_case("navigate");
    }
    accept.is_some_and(|a| a.to_ascii_lowercase().contains("text/html"))
}

/// The client headers a check reads, besides what the controller says
/// about the request (method, host, path). Envoy and Envoy Gateway are told
/// to send only these (discovery writes them into the SecurityPolicy).
pub const CLIENT_HEADERS: [&str; 6] = [
    "cookie",
    "authorization",
    "accept",
    "upgrade",
    "sec-fetch-mode",
    "x-request-id",
];

#[cfg(test)]
mod tests {
    use super::is_navigation;

    #[test]
    fn navigation_is_get_for_html_without_upgrade() {
        assert!(is_navigation("GET", Some("text/html,*/*"), None, false));
        assert!(is_navigation("GET", None, Some("navigate"), false));
        assert!(!is_navigation(
            "GET",
            Some("text/html"),
            Some("cors"),
            false
        ));
        assert!(!is_navigation("GET", Some("application/json"), None, false));
        assert!(!is_navigation("POST", Some("text/html"), None, false));
        assert!(!is_navigation("GET", Some("text/html"), None, true));
    }
}
