//! A small cookie jar that behaves like a browser's for what the tests need:
//! host-only and Domain cookies, Path matching, Secure, Max-Age/Expires
//! deletion and the `__Host-` prefix rules. Written here (not reqwest's jar)
//! so tests can read, copy and plant cookie values.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    /// Host the cookie was set by (host-only) or the Domain attribute.
    pub host: String,
    pub domain_attr: bool,
    pub path: String,
    pub secure: bool,
    pub http_only: bool,
    pub same_site: Option<String>,
    pub expires: Option<SystemTime>,
    /// The Set-Cookie header it came from, for assertions.
    pub raw: String,
}

#[derive(Debug, Default, Clone)]
pub struct Jar {
    pub cookies: Vec<Cookie>,
    /// Set-Cookie headers a browser would have refused, with the reason.
    pub rejected: Vec<(String, String)>,
}

impl Jar {
    /// Stores one Set-Cookie header received from `host` for `path` over `secure`.
    pub fn store(&mut self, host: &str, request_path: &str, secure: bool, header: &str) {
        let mut parts = header.split(';');
        let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
            self.rejected
                .push((header.to_string(), "no name=value".into()));
            return;
        };
        let name = name.trim().to_string();
        let value = value.trim().trim_matches('"').to_string();
        let mut c = Cookie {
            name: name.clone(),
            value,
            host: host.to_ascii_lowercase(),
            domain_attr: false,
            path: default_path(request_path),
            secure: false,
            http_only: false,
            same_site: None,
            expires: None,
            raw: header.to_string(),
        };
        let mut max_age: Option<i64> = None;
        for attr in parts {
            let (k, v) = match attr.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim().to_string()),
                None => (attr.trim().to_ascii_lowercase(), String::new()),
            };
            match k.as_str() {
                "path" if v.starts_with('/') => c.path = v,
                "domain" if !v.is_empty() => {
                    c.domain_attr = true;
                    c.host = v.trim_start_matches('.').to_ascii_lowercase();
                }
                "secure" => c.secure = true,
                "httponly" => c.http_only = true,
                "samesite" => c.same_site = Some(v),
                "max-age" => max_age = v.parse().ok(),
                "expires" => c.expires = parse_http_date(&v),
                _ => {}
            }
        }
        if let Some(ma) = max_age {
            c.expires = Some(if ma <= 0 {
                UNIX_EPOCH
            } else {
                SystemTime::now() + Duration::from_secs(ma as u64)
            });
        }
        if c.secure && !secure {
            self.rejected
                .push((header.to_string(), "Secure cookie over http".into()));
            return;
        }
        if name.starts_with("__Host-") && (!c.secure || c.domain_attr || c.path != "/") {
            self.rejected.push((
                header.to_string(),
                "__Host- cookie needs Secure, Path=/ and no Domain".into(),
            ));
            return;
        }
        if name.starts_with("__Secure-") && !c.secure {
            self.rejected
                .push((header.to_string(), "__Secure- cookie needs Secure".into()));
            return;
        }
        self.cookies
            .retain(|o| !(o.name == c.name && o.host == c.host && o.path == c.path));
        if c.expires.is_none_or(|e| e > SystemTime::now()) {
            self.cookies.push(c);
        }
    }

    /// The Cookie header value a browser would send to `host` + `path`.
    pub fn header_for(&self, host: &str, path: &str, secure: bool) -> Option<String> {
        let host = host.to_ascii_lowercase();
        let now = SystemTime::now();
        let mut matching: Vec<&Cookie> = self
            .cookies
            .iter()
            .filter(|c| c.expires.is_none_or(|e| e > now))
            .filter(|c| !c.secure || secure)
            .filter(|c| {
                c.host == host || (c.domain_attr && host.ends_with(&format!(".{}", c.host)))
            })
            .filter(|c| path_matches(&c.path, path))
            .collect();
        // Longer paths first, as browsers do.
        matching.sort_by_key(|c| std::cmp::Reverse(c.path.len()));
        if matching.is_empty() {
            return None;
        }
        Some(
            matching
                .iter()
                .map(|c| format!("{}={}", c.name, c.value))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    pub fn get(&self, host: &str, name: &str) -> Option<&Cookie> {
        self.cookies
            .iter()
            .find(|c| c.host == host.to_ascii_lowercase() && c.name == name)
    }

    /// Plants a host-only cookie (e.g. one copied from another host).
    pub fn plant(&mut self, host: &str, name: &str, value: &str) {
        let header = format!("{name}={value}; Path=/; Secure; HttpOnly");
        self.store(host, "/", true, &header);
    }

    pub fn remove(&mut self, host: &str, name: &str) {
        self.cookies
            .retain(|c| !(c.host == host.to_ascii_lowercase() && c.name == name));
    }
}

fn default_path(request_path: &str) -> String {
    match request_path.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => request_path[..i].to_string(),
    }
}

fn path_matches(cookie_path: &str, path: &str) -> bool {
    path == cookie_path
        || (path.starts_with(cookie_path)
            && (cookie_path.ends_with('/') || path[cookie_path.len()..].starts_with('/')))
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) and the dash variant.
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let s = s.replace('-', " ");
    let mut it = s.split_whitespace().skip(1);
    let day: u64 = it.next()?.parse().ok()?;
    let month = match &it.next()?.to_ascii_lowercase()[..3] {
        "jan" => 1,
        "feb" => 2,
        "mar" => 3,
        "apr" => 4,
        "may" => 5,
        "jun" => 6,
        "jul" => 7,
        "aug" => 8,
        "sep" => 9,
        "oct" => 10,
        "nov" => 11,
        "dec" => 12,
        _ => return None,
    };
    let mut year: i64 = it.next()?.parse().ok()?;
    if year < 100 {
        year += if year < 70 { 2000 } else { 1900 };
    }
    let mut hms = it.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    // days from civil (Howard Hinnant)
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp as i64 + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + (h * 3600 + m * 60 + sec) as i64;
    if secs < 0 {
        return Some(UNIX_EPOCH);
    }
    Some(UNIX_EPOCH + Duration::from_secs(secs as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_cookie_rules_and_deletion() {
        let mut jar = Jar::default();
        jar.store(
            "a.test",
            "/x/y",
            true,
            "__Host-p=1; Path=/; Secure; HttpOnly",
        );
        jar.store(
            "a.test",
            "/",
            true,
            "__Host-bad=1; Path=/; Domain=a.test; Secure",
        );
        assert_eq!(
            jar.header_for("a.test", "/z", true).as_deref(),
            Some("__Host-p=1")
        );
        assert_eq!(jar.rejected.len(), 1);
        assert!(jar.header_for("b.test", "/", true).is_none());
        jar.store(
            "a.test",
            "/",
            true,
            "__Host-p=; Path=/; Secure; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
        );
        assert!(jar.header_for("a.test", "/", true).is_none());
    }
}
