//! A scripted "browser" over reqwest: no automatic redirects, our own cookie
//! jar, `*.workspaces.test` resolved to 127.0.0.1, trusting only the test CA.
//! It follows redirects and submits forms the way a browser (and a user
//! clicking "Sign in" / "Continue" on the provider's pages) would, and
//! records every hop and every secret it handled (cookie values, tokens,
//! codes) so tests can assert where requests went and scan logs.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};

use super::jar::Jar;

/// Resolves every `*.<domain>` and `<domain>` to 127.0.0.1, nothing else.
struct LoopbackResolver {
    domain: String,
}

impl reqwest::dns::Resolve for LoopbackResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let ok = host == self.domain || host.ends_with(&format!(".{}", self.domain));
        Box::pin(async move {
            if ok {
                let addrs: reqwest::dns::Addrs =
                    Box::new(std::iter::once(SocketAddr::from(([127, 0, 0, 1], 0))));
                Ok(addrs)
            } else {
                Err(format!("test resolver: {host} is not under the test domain").into())
            }
        })
    }
}

#[derive(Debug, Clone)]
pub struct Hop {
    pub method: String,
    pub url: String,
    pub status: u16,
}

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    /// The HTTP version the controller answered with.
    pub version: reqwest::Version,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    pub fn location(&self) -> Option<String> {
        self.header("location")
    }
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    }
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.body)
            .with_context(|| format!("not JSON ({}): {}", self.status, self.describe()))
    }
    /// One line for assertion messages.
    pub fn describe(&self) -> String {
        let body: String = self.body.chars().take(600).collect();
        format!(
            "{} {} headers={:?} body={body:?}",
            self.status, self.url, self.headers
        )
    }
}

/// How a request presents itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Top-level navigation: Accept text/html, Sec-Fetch-Mode: navigate.
    Navigate,
    /// `fetch()` from a page: Accept application/json, Sec-Fetch-Mode: cors.
    Fetch,
}

pub struct Browser {
    http: reqwest::Client,
    pub jar: Arc<Mutex<Jar>>,
    pub hops: Arc<Mutex<Vec<Hop>>>,
    /// Every cookie value, token, code and state this client saw.
    pub secrets: Arc<Mutex<BTreeSet<String>>>,
    /// Login name typed into the provider's login form when asked.
    pub user: Option<String>,
}

impl Browser {
    /// `ca_der`: the only root trusted (None: plain http use only).
    pub fn new(ca_der: Option<&[u8]>, domain: &str) -> anyhow::Result<Browser> {
        super::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        if let Some(der) = ca_der {
            builder = builder.tls_certs_only([reqwest::Certificate::from_der(der)?]);
        }
        let http = builder
            .dns_resolver(Arc::new(LoopbackResolver {
                domain: domain.to_string(),
            }))
            .timeout(Duration::from_secs(90))
            .build()?;
        Ok(Browser {
            http,
            jar: Default::default(),
            hops: Default::default(),
            secrets: Default::default(),
            user: None,
        })
    }

    pub fn with_user(mut self, user: &str) -> Browser {
        self.user = Some(user.to_string());
        self
    }

    /// One request, cookies from and to the jar, nothing followed.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        mode: Mode,
        extra: &[(&str, &str)],
        form: Option<&[(String, String)]>,
    ) -> anyhow::Result<Resp> {
        let url = Url::parse(url).with_context(|| format!("bad url {url}"))?;
        let host = url.host_str().unwrap_or_default().to_string();
        let secure = url.scheme() == "https";
        let mut headers = HeaderMap::new();
        match mode {
            Mode::Navigate => {
                headers.insert(
                    "accept",
                    HeaderValue::from_static(
                        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                    ),
                );
                headers.insert("sec-fetch-mode", HeaderValue::from_static("navigate"));
                headers.insert("sec-fetch-dest", HeaderValue::from_static("document"));
            }
            Mode::Fetch => {
                headers.insert("accept", HeaderValue::from_static("application/json"));
                headers.insert("sec-fetch-mode", HeaderValue::from_static("cors"));
                headers.insert("sec-fetch-dest", HeaderValue::from_static("empty"));
            }
        }
        headers.insert("user-agent", HeaderValue::from_static("workspace-gate-e2e"));
        if let Some(c) = self
            .jar
            .lock()
            .unwrap()
            .header_for(&host, url.path(), secure)
        {
            headers.insert("cookie", HeaderValue::from_str(&c)?);
        }
        // A `cookie` in `extra` replaces the jar's; several are sent as
        // several header fields, as browsers send each cookie over HTTP/2.
        let mut own_cookie = false;
        for (k, v) in extra {
            let name = HeaderName::from_bytes(k.as_bytes())?;
            if k.eq_ignore_ascii_case("cookie") {
                if !own_cookie {
                    headers.remove("cookie");
                    own_cookie = true;
                }
                headers.append(name, HeaderValue::from_str(v)?);
                continue;
            }
            headers.insert(name, HeaderValue::from_str(v)?);
        }
        self.note_url_secrets(&url);
        let mut req = self
            .http
            .request(method.clone(), url.clone())
            .headers(headers);
        if let Some(form) = form {
            for (_, v) in form {
                self.secret(v);
            }
            req = req.form(form);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let version = resp.version();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        {
            let mut jar = self.jar.lock().unwrap();
            for sc in headers.get_all("set-cookie") {
                if let Ok(sc) = sc.to_str() {
                    jar.store(&host, url.path(), secure, sc);
                    if let Some((_, v)) = sc.split(';').next().and_then(|nv| nv.split_once('=')) {
                        self.secret(v.trim());
                    }
                }
            }
        }
        self.hops.lock().unwrap().push(Hop {
            method: method.to_string(),
            url: url.to_string(),
            status,
        });
        let r = Resp {
            status,
            version,
            url,
            headers,
            body,
        };
        if let Some(loc) = r.location()
            && let Ok(u) = r.url.join(&loc)
        {
            self.note_url_secrets(&u);
        }
        Ok(r)
    }

    pub async fn get(&self, url: &str, mode: Mode, extra: &[(&str, &str)]) -> anyhow::Result<Resp> {
        self.send(Method::GET, url, mode, extra, None).await
    }

    /// Navigates like a browser: follows redirects, submits the gate's
    /// auto-submitting forms and, when `user` is set, fills in the provider's
    /// login and consent forms. Returns the last response.
    pub async fn navigate(&self, url: &str) -> anyhow::Result<Resp> {
        self.follow(Method::GET, url, Mode::Navigate, None).await
    }

    /// A `fetch()` from page script: follows redirects, never submits forms.
    pub async fn fetch(&self, url: &str) -> anyhow::Result<Resp> {
        self.follow(Method::GET, url, Mode::Fetch, None).await
    }

    /// Submits a form (`POST`, `Sec-Fetch-Mode: navigate`) and follows
    /// what comes back as a browser does: after a 302 or 303 the form is
    /// gone and the next request is a `GET`.
    pub async fn submit(&self, url: &str, fields: &[(&str, &str)]) -> anyhow::Result<Resp> {
        let form = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.follow(Method::POST, url, Mode::Navigate, Some(form))
            .await
    }

    async fn follow(
        &self,
        mut method: Method,
        url: &str,
        mode: Mode,
        mut form: Option<Vec<(String, String)>>,
    ) -> anyhow::Result<Resp> {
        let mut url = url.to_string();
        for _ in 0..40 {
            let resp = self
                .send(method.clone(), &url, mode, &[], form.as_deref())
                .await?;
            if (300..400).contains(&resp.status) {
                let Some(loc) = resp.location() else {
                    return Ok(resp);
                };
                url = resp.url.join(&loc)?.to_string();
                if resp.status != 307 && resp.status != 308 {
                    method = Method::GET;
                    form = None;
                }
                continue;
            }
            if mode == Mode::Navigate
                && let Some(h) = Handover::parse(&resp.body)
            {
                // What the page's script does: the token from the fragment
                // into the named cookie, then on to the next address.
                let Some(token) = resp
                    .url
                    .fragment()
                    .and_then(|f| f.strip_prefix("t="))
                    .filter(|t| {
                        !t.is_empty()
                            && t.bytes().all(|b| {
                                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-')
                            })
                    })
                else {
                    return Ok(resp);
                };
                self.secret(token);
                let host = resp.url.host_str().unwrap_or_default().to_string();
                self.jar.lock().unwrap().plant(&host, &h.cookie, token);
                url = resp.url.join(&h.next)?.to_string();
                method = Method::GET;
                form = None;
                continue;
            }
            if mode == Mode::Navigate
                && resp.status == 200
                && let Some(f) = Form::parse(&resp.body)
                && let Some(fields) = self.fill(&f)
            {
                url = resp.url.join(&f.action)?.to_string();
                method = if f.method.eq_ignore_ascii_case("post") {
                    Method::POST
                } else {
                    Method::GET
                };
                if method == Method::GET {
                    let mut u = Url::parse(&url)?;
                    u.query_pairs_mut().extend_pairs(fields.iter());
                    url = u.to_string();
                    form = None;
                } else {
                    form = Some(fields);
                }
                continue;
            }
            return Ok(resp);
        }
        bail!("more than 40 hops: {:#?}", self.hops.lock().unwrap())
    }

    /// The fields to submit, or None when this form is not one a script
    /// should submit (a visible form we have no answer for).
    fn fill(&self, f: &Form) -> Option<Vec<(String, String)>> {
        let mut fields = f.hidden.clone();
        if f.visible.iter().any(|n| n == "login") {
            let user = self.user.clone()?;
            fields.push(("login".into(), user));
            if f.visible.iter().any(|n| n == "password") {
                fields.push(("password".into(), "x".into()));
            }
            return Some(fields);
        }
        if f.visible.is_empty() {
            return Some(fields);
        }
        None
    }

    fn secret(&self, v: &str) {
        // Short values (e.g. "1", "login") are not secrets and would match anywhere.
        if v.len() >= 16 {
            self.secrets.lock().unwrap().insert(v.to_string());
        }
    }

    fn note_url_secrets(&self, url: &Url) {
        for (k, v) in url.query_pairs() {
            if matches!(
                k.as_ref(),
                "token" | "code" | "state" | "access_token" | "id_token"
            ) {
                self.secret(&v);
            }
        }
    }

    pub fn hops(&self) -> Vec<Hop> {
        self.hops.lock().unwrap().clone()
    }

    pub fn clear_hops(&self) {
        self.hops.lock().unwrap().clear();
    }

    pub fn secrets(&self) -> Vec<String> {
        self.secrets.lock().unwrap().iter().cloned().collect()
    }

    pub fn cookie(&self, host: &str, name: &str) -> Option<String> {
        self.jar
            .lock()
            .unwrap()
            .get(host, name)
            .map(|c| c.value.clone())
    }
}

/// The gate's hand-over page (`session.transfer: fragment`): the cookie
/// its script puts the fragment's token in and where it goes next, read
/// from the `data-` attributes the script itself reads.
#[derive(Debug, Clone)]
pub struct Handover {
    pub cookie: String,
    pub next: String,
}

impl Handover {
    pub fn parse(html: &str) -> Option<Handover> {
        let start = html.find("<html")?;
        let tag = &html[start..start + html[start..].find('>')?];
        if !tag.contains("data-workspace-gate-handover") {
            return None;
        }
        Some(Handover {
            cookie: attr(tag, "data-cookie")?,
            next: attr(tag, "data-next")?,
        })
    }
}

/// The first `<form>` of a page, as far as the tests need it.
#[derive(Debug, Clone)]
pub struct Form {
    pub action: String,
    pub method: String,
    pub hidden: Vec<(String, String)>,
    /// Names of non-hidden inputs (text, password...).
    pub visible: Vec<String>,
}

impl Form {
    pub fn parse(html: &str) -> Option<Form> {
        let start = html.to_ascii_lowercase().find("<form")?;
        let rest = &html[start..];
        let tag_end = rest.find('>')?;
        let tag = &rest[..tag_end];
        let end = rest
            .to_ascii_lowercase()
            .find("</form>")
            .unwrap_or(rest.len());
        let inner = &rest[tag_end..end];
        let action = attr(tag, "action").unwrap_or_default();
        let method = attr(tag, "method").unwrap_or_else(|| "get".into());
        let mut hidden = Vec::new();
        let mut visible = Vec::new();
        let lower = inner.to_ascii_lowercase();
        let mut pos = 0;
        while let Some(i) = lower[pos..].find("<input") {
            let s = pos + i;
            let e = s + inner[s..].find('>').unwrap_or(inner.len() - s);
            let t = &inner[s..e];
            let ty = attr(t, "type")
                .unwrap_or_else(|| "text".into())
                .to_ascii_lowercase();
            if let Some(name) = attr(t, "name") {
                match ty.as_str() {
                    "hidden" => hidden.push((name, attr(t, "value").unwrap_or_default())),
                    "submit" | "button" | "checkbox" => {}
                    _ => visible.push(name),
                }
            }
            pos = e;
        }
        Some(Form {
            action,
            method,
            hidden,
            visible,
        })
    }
}

/// Attribute value from a tag (double, single or no quotes), entities decoded.
fn attr(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name) {
        let i = from + i;
        from = i + name.len();
        let before_ok = i == 0 || lower.as_bytes()[i - 1].is_ascii_whitespace();
        let after = lower[from..].trim_start();
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let off = tag.len() - after.len() + 1;
        let v = tag[off..].trim_start();
        let val = if let Some(r) = v.strip_prefix('"') {
            r.split('"').next().unwrap_or("")
        } else if let Some(r) = v.strip_prefix('\'') {
            r.split('\'').next().unwrap_or("")
        } else {
            v.split(|c: char| c.is_whitespace() || c == '>' || c == '/')
                .next()
                .unwrap_or("")
        };
        return Some(decode_entities(val));
    }
    None
}

pub fn decode_entities(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        let f = Form::parse(r#"<form method="post" action="https://a.test/.workspace-gate/callback?x=1&amp;y=2"><input type="hidden" name="token" value="abc"/><noscript><button>Go</button></noscript></form>"#).unwrap();
        assert_eq!(f.action, "https://a.test/.workspace-gate/callback?x=1&y=2");
        assert_eq!(f.hidden, vec![("token".into(), "abc".into())]);
        let f = Form::parse(r#"<form autocomplete="off" action="/interaction/u1" method="post"><input type="hidden" name="prompt" value="login"/><input required type="text" name="login" placeholder="x" autofocus="on"><input required type="password" name="password"></form>"#).unwrap();
        assert_eq!(f.visible, vec!["login", "password"]);
    }
}
