//! Envoy `ext_authz` over gRPC (`envoy.service.auth.v3.Authorization/Check`),
//! used by plain Envoy and by Envoy Gateway's `SecurityPolicy.extAuth.grpc`.
//!
//! Reads the request attributes Envoy fills in (method, host, path with
//! query, headers). An allow sets the identity headers with
//! `OVERWRITE_IF_EXISTS_OR_ADD` (the default action would append to a
//! client-sent copy) and replaces or removes `cookie` and `authorization`.
//! Everything else is a `denied_response` that Envoy relays to the browser:
//! 302 with `Set-Cookie` for navigations and reserved paths, 401/403 with a
//! page otherwise.

use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest as PbCheckRequest, CheckResponse,
    HeaderAppendAction, HttpStatusCode,
};
use envoy_types::ext_authz::v3::{
    CheckResponseExt, DeniedHttpResponseBuilder, OkHttpResponseBuilder,
};
use tonic::{Request, Response, Status};

use super::{identity_headers, relayed};
use crate::core::{CheckRequest, Decision};
use crate::server::{AppState, check};

pub struct Service {
    state: AppState,
}

impl Service {
    pub fn new(state: AppState) -> Self {
        Service { state }
    }
}

pub fn service(state: AppState) -> AuthorizationServer<Service> {
    AuthorizationServer::new(Service::new(state))
}

#[tonic::async_trait]
impl Authorization for Service {
    async fn check(
        &self,
        request: Request<PbCheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let req = request.into_inner();
        let http = req
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref());
        let Some(http) = http else {
            // Fail closed on a request we cannot read.
            return Ok(Response::new(deny_plain(403)));
        };
        let get = |name: &str| http.headers.get(name).map(String::as_str);
        let check_req = CheckRequest {
            method: &http.method,
            host: &http.host,
            path: &http.path,
            cookie: get("cookie"),
            authorization: get("authorization"),
            accept: get("accept"),
            sec_fetch_mode: get("sec-fetch-mode"),
            upgrade: http.headers.contains_key("upgrade"),
        };
        let decision = check::run(&self.state, "envoy_grpc", &check_req).await;
        let json = get("accept")
            .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"));
        let request_id = get("x-request-id").unwrap_or(&http.id);
        Ok(Response::new(answer(
            decision,
            check_req.cookie.is_some(),
            check_req.authorization.is_some(),
            request_id,
            json,
        )))
    }
}

fn answer(
    decision: Decision,
    had_cookie: bool,
    had_authorization: bool,
    request_id: &str,
    json: bool,
) -> CheckResponse {
    let overwrite = Some(HeaderAppendAction::OverwriteIfExistsOrAdd);
    if let Decision::Allow(allow) = &decision {
        let mut ok = OkHttpResponseBuilder::new();
        for (name, value) in identity_headers(allow) {
            ok.add_header(name.as_str(), value.into_owned(), overwrite, true);
        }
        match &allow.upstream_cookie {
            Some(c) => {
                ok.add_header("cookie", c.clone(), overwrite, false);
            }
            None if had_cookie => {
                ok.remove_header("cookie");
            }
            None => {}
        }
        match &allow.upstream_authorization {
            Some(a) => {
                ok.add_header("authorization", a.clone(), overwrite, false);
            }
            None if had_authorization => {
                ok.remove_header("authorization");
            }
            None => {}
        }
        let mut resp = CheckResponse::with_status(Status::ok(""));
        resp.set_http_response(ok);
        return resp;
    }
    match relayed(&decision, request_id, json) {
        Some(r) => {
            let mut denied = DeniedHttpResponseBuilder::new();
            denied.set_http_status(status_code(r.status));
            for (name, value) in r.headers {
                // Several Set-Cookie headers must stay separate.
                denied.add_header(
                    name,
                    value,
                    Some(HeaderAppendAction::AppendIfExistsOrAdd),
                    false,
                );
            }
            denied.set_body(r.body);
            let grpc = if r.status == 401 {
                Status::unauthenticated("")
            } else {
                Status::permission_denied("")
            };
            let mut resp = CheckResponse::with_status(grpc);
            resp.set_http_response(denied);
            resp
        }
        None => deny_plain(403),
    }
}

fn deny_plain(status: u16) -> CheckResponse {
    let mut denied = DeniedHttpResponseBuilder::new();
    denied.set_http_status(status_code(status));
    let mut resp = CheckResponse::with_status(Status::permission_denied(""));
    resp.set_http_response(denied);
    resp
}

fn status_code(status: u16) -> HttpStatusCode {
    match status {
        200 => HttpStatusCode::Ok,
        302 => HttpStatusCode::Found,
        303 => HttpStatusCode::SeeOther,
        400 => HttpStatusCode::BadRequest,
        401 => HttpStatusCode::Unauthorized,
        404 => HttpStatusCode::NotFound,
        503 => HttpStatusCode::ServiceUnavailable,
        _ => HttpStatusCode::Forbidden,
    }
}
