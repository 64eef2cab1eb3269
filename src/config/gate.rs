//! The gate's own sections: hosts, listeners, TLS, the identity provider,
//! keys, session lifetimes, the workspace source, authorization and logs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::reader::Reader;
use super::{
    Authorization, AuthzMode, Config, Listen, LogFormat, Oidc, Scheme, Session, TlsFiles,
    TransferMethod, WorkspaceSource,
};

/// Reads every section into a [`Config`]; `discovery` is read in the same
/// pass, so one message names every problem.
pub(super) fn read(r: &mut Reader, env: &dyn Fn(&str) -> Option<String>) -> Config {
    let auth_host = r.host("auth_host");
    let workspace_domain = r.host("workspace_domain");
    if !auth_host.is_empty() && auth_host.ends_with(&format!(".{workspace_domain}")) {
        let label = &auth_host[..auth_host.len() - workspace_domain.len() - 1];
        if !label.contains('.') {
            r.problem(
                "auth_host",
                "must not itself be a workspace host (<label>.<workspace_domain>); use the domain itself or another host",
            );
        }
    }
    let public_scheme = r.one_of(
        "public_scheme",
        &[("https", Scheme::Https), ("http", Scheme::Http)],
        Scheme::Https,
    );
    let public_port = match r.string("public_port").as_str() {
        "" => None,
        p => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                r.problem("public_port", format!("'{p}' is not a port number"));
                None
            }
        },
    };
    let (listen, tls) = listen(r, public_scheme);
    let oidc = oidc(r);
    let keys = keys(r);
    let session = session(r);
    let workspaces = match r.one_of(
        "workspaces.source",
        &[("file", true), ("kubernetes", false)],
        false,
    ) {
        true => {
            let f = r.required("workspaces.file");
            WorkspaceSource::File(r.path(&f))
        }
        false => WorkspaceSource::Kubernetes,
    };
    let authorization = authorization(r, &oidc.issuer);
    let log_format = r.one_of(
        "log.format",
        &[("json", LogFormat::Json), ("text", LogFormat::Text)],
        LogFormat::Json,
    );
    let log_level = r.string("log.level");
    let discovery = super::discovery::read(r, env);
    let ssh = super::ssh::read(r);
    if public_scheme == Scheme::Http
        && let Some(s) = &ssh
        && !s.listen.ip().is_loopback()
    {
        r.problem(
            "public_scheme",
            "http is allowed only when every listener is on loopback; use https",
        );
    }
    Config {
        auth_host,
        workspace_domain,
        public_scheme,
        public_port,
        listen,
        tls,
        oidc,
        keys,
        session,
        workspaces,
        authorization,
        log_format,
        log_level,
        discovery,
        ssh,
    }
}

fn listen(r: &mut Reader, scheme: Scheme) -> (Listen, Option<TlsFiles>) {
    let http = r.addr("listen.http", false);
    let admin = r.addr("listen.admin", false);
    let grpc = r.addr("listen.grpc", true);
    let https = r.addr("listen.https", true);
    // Given but unparsable is reported once, by `addr`.
    let https_given = !r.string("listen.https").is_empty();
    let tls = tls_files(r, https_given);
    let https_max_connection_age = r.duration("listen.https_max_connection_age", Duration::ZERO);
    let header_read_timeout = r.duration("listen.header_read_timeout", Duration::ZERO);
    let idle_timeout = r.duration("listen.idle_timeout", Duration::ZERO);
    let shutdown_grace = r.duration("listen.shutdown_grace", Duration::ZERO);
    if scheme == Scheme::Http {
        let all_loopback = [http, admin, grpc, https]
            .iter()
            .flatten()
            .all(|a| a.ip().is_loopback());
        if !all_loopback {
            r.problem(
                "public_scheme",
                "http is allowed only when every listener is on loopback; use https",
            );
        }
    }
    let unbound = || SocketAddr::from(([127, 0, 0, 1], 0));
    let listen = Listen {
        http: http.unwrap_or_else(unbound),
        admin: admin.unwrap_or_else(unbound),
        grpc,
        https: https.filter(|_| tls.is_some()),
        https_max_connection_age,
        header_read_timeout,
        idle_timeout,
        shutdown_grace,
    };
    (listen, tls)
}

/// `tls.cert_file` and `tls.key_file`: both or neither, and both only with
/// `listen.https`; the pair must load.
fn tls_files(r: &mut Reader, https: bool) -> Option<TlsFiles> {
    let cert = r.string("tls.cert_file");
    let key = r.string("tls.key_file");
    if cert.is_empty() && key.is_empty() {
        if https {
            for k in ["tls.cert_file", "tls.key_file"] {
                r.problem(k, "is required when listen.https is set");
            }
        }
        return None;
    }
    if !https {
        r.problem(
            "listen.https",
            "is required when tls.cert_file or tls.key_file is set (they are used by it alone)",
        );
        return None;
    }
    for (k, v) in [("tls.cert_file", &cert), ("tls.key_file", &key)] {
        if v.is_empty() {
            r.problem(k, "is required when listen.https is set");
        }
    }
    if cert.is_empty() || key.is_empty() {
        return None;
    }
    let files = TlsFiles {
        cert: r.path(&cert),
        key: r.path(&key),
    };
    match crate::material::load(&files.cert, &files.key) {
        Ok(_) => Some(files),
        Err(crate::material::TlsFileError::Cert(reason)) => {
            r.problem("tls.cert_file", reason);
            None
        }
        Err(crate::material::TlsFileError::Key(reason)) => {
            r.problem("tls.key_file", reason);
            None
        }
    }
}

fn oidc(r: &mut Reader) -> Oidc {
    let issuer = r.required("oidc.issuer");
    if !issuer.is_empty() {
        match url::Url::parse(&issuer) {
            Ok(u) if u.scheme() == "https" => {}
            Ok(u)
                if u.scheme() == "http"
                    && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")) => {}
            Ok(_) => r.problem(
                "oidc.issuer",
                "must be an https URL (http only for a provider on loopback)",
            ),
            Err(e) => r.problem("oidc.issuer", format!("'{issuer}' is not a URL: {e}")),
        }
    }
    let client_id = r.required("oidc.client_id");
    let client_secret = r.secret_file("oidc.client_secret_file");
    let scopes = r.list("oidc.scopes");
    if !scopes.iter().any(|s| s == "openid") {
        r.problem("oidc.scopes", "must include openid");
    }
    let username_claim = r.string("oidc.username_claim");
    Oidc {
        issuer: issuer.trim_end_matches('/').to_string(),
        client_id,
        client_secret,
        scopes,
        username_claim,
    }
}

fn keys(r: &mut Reader) -> Vec<Vec<u8>> {
    let files = r.list("keys.files");
    if files.is_empty() {
        r.problem(
            "keys.files",
            "at least one key file is required (create one with `workspace-gate keygen`)",
        );
    }
    let mut keys = Vec::new();
    for f in files {
        let p: PathBuf = r.path(&f);
        match crate::files::read_text(&p, crate::files::SMALL) {
            Ok(text) => match crate::material::parse_key(&text) {
                Ok(k) => keys.push(k),
                Err(e) => r.problem("keys.files", format!("{}: {e}", p.display())),
            },
            Err(e) => r.problem("keys.files", format!("cannot read {}: {e}", p.display())),
        }
    }
    keys
}

fn session(r: &mut Reader) -> Session {
    let pass_ttl = r.duration("session.pass_ttl", Duration::ZERO);
    let login_ttl = r.duration("session.login_ttl", Duration::ZERO);
    let transfer_ttl = r.duration_at_most("session.transfer_ttl", Duration::from_secs(60));
    let transfer = r.one_of(
        "session.transfer",
        &[
            ("fragment", TransferMethod::Fragment),
            ("form_post", TransferMethod::FormPost),
            ("query", TransferMethod::Query),
        ],
        TransferMethod::Fragment,
    );
    Session {
        pass_ttl,
        login_ttl,
        transfer_ttl,
        transfer,
    }
}

fn authorization(r: &mut Reader, issuer: &str) -> Authorization {
    let mode = r.one_of(
        "authorization.mode",
        &[
            ("gitlab", AuthzMode::Gitlab),
            ("owner-annotation", AuthzMode::OwnerAnnotation),
        ],
        AuthzMode::Gitlab,
    );
    let mut gitlab_url = r.string("authorization.gitlab_url");
    if gitlab_url.is_empty() {
        gitlab_url = issuer.to_string();
    }
    if mode == AuthzMode::Gitlab && url::Url::parse(&gitlab_url).is_err() && !issuer.is_empty() {
        r.problem(
            "authorization.gitlab_url",
            format!("'{gitlab_url}' is not a URL"),
        );
    }
    let cache_ttl = r.duration_at_most("authorization.cache_ttl", Duration::from_secs(60));
    Authorization {
        mode,
        gitlab_url: gitlab_url.trim_end_matches('/').to_string(),
        cache_ttl,
    }
}
