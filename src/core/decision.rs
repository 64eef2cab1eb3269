//! The answer of the core, before any controller's wire format.

use std::sync::Arc;

use crate::session::Identity;
use crate::workspaces::Workspace;

/// Identity and upstream headers for an allowed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    pub who: Arc<Identity>,
    pub workspace: Arc<Workspace>,
    /// The client's `Cookie` header without the gate's cookies; `None`
    /// removes the header.
    pub upstream_cookie: Option<String>,
    /// `Authorization` to pass on; `None` removes it (always the case when
    /// the header carried the credential the gate checked).
    pub upstream_authorization: Option<String>,
    /// A fresh pass (`Set-Cookie`) for the browser, when the one it sent
    /// is past half its life: a tab in use never meets an expired pass.
    /// Controllers relay it on the allowed answer (ingress-nginx's
    /// `auth-url` locations, Traefik's `addAuthCookiesToResponse`, Envoy's
    /// `response_headers_to_add`).
    pub renewed_pass: Option<Arc<str>>,
}

/// Friendly pages the gate can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// Not signed in (401).
    SignInRequired,
    /// A form was sent without a valid pass (one that expired while the
    /// tab sat unused): it was not delivered, and the page says so (401).
    FormNotSent,
    /// Signed in, but this workspace belongs to someone else (403).
    NotAllowed,
    /// No workspace serves this host (403 at the check, 404 on the auth host).
    WorkspaceNotFound,
    /// The login or hand-over failed; shows a correlation id.
    SignInFailed,
    /// Signed out.
    SignedOut,
    /// A reserved path that does not exist.
    NotFound,
    /// The identity provider or GitLab cannot be reached (503).
    Unavailable,
    /// The workspace index has not been loaded yet: a gate that just
    /// started, before its first complete list of workspaces (503).
    NotReady,
}

impl Page {
    pub fn status(self) -> u16 {
        match self {
            Page::SignInRequired | Page::FormNotSent => 401,
            Page::NotAllowed | Page::WorkspaceNotFound => 403,
            Page::SignInFailed => 400,
            Page::SignedOut => 200,
            Page::NotFound => 404,
            Page::Unavailable | Page::NotReady => 503,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Page::SignInRequired => "unauthorized",
            Page::FormNotSent => "form_not_sent",
            Page::NotAllowed => "forbidden",
            Page::WorkspaceNotFound => "unknown_host",
            Page::SignInFailed => "sign_in_failed",
            Page::SignedOut => "signed_out",
            Page::NotFound => "not_found",
            Page::Unavailable => "unavailable",
            Page::NotReady => "not_ready",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Decision {
    /// Let the request through with these upstream headers.
    Allow(Allow),
    /// A bearer/basic credential must be checked by the authorizer (async)
    /// before the request is allowed; carries what the allow will need.
    Bearer {
        token: String,
        workspace: Arc<Workspace>,
        upstream_cookie: Option<String>,
    },
    /// A browser navigation without a pass: go to the login start.
    SignIn { location: String },
    /// Refused with a page (401, 403, 400, 404).
    Deny(Page),
    /// An answer to a reserved `/.workspace-gate/` path: redirect, setting
    /// or clearing cookies.
    Redirect {
        location: String,
        set_cookies: Vec<String>,
        /// The transfer token id this answer redeems; the caller refuses it
        /// if this replica has redeemed it before.
        redeems: Option<String>,
    },
    /// The hand-over page of `session.transfer: fragment`: its script moves
    /// the transfer token from the URL's fragment (which no server sees) to
    /// the cookie `cookie` and asks again, so the token never appears in a
    /// URL a controller logs.
    Handover { cookie: String },
}

impl Decision {
    /// Label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Allow(_) => "allow",
            Decision::Bearer { .. } => "bearer",
            Decision::SignIn { .. } => "sign_in",
            Decision::Deny(p) => p.label(),
            Decision::Redirect { .. } => "redirect",
            Decision::Handover { .. } => "handover",
        }
    }
}
