//! The few custom resources the gate writes, typed so field names are
//! checked at compile time. Defined here rather than taken from the
//! `gateway-api` crate, whose releases pin an older kube / k8s-openapi than
//! the project uses (see docs/discovery.md). Only the fields the gate sets
//! are modelled; the objects are written with server-side apply, so fields
//! another manager (or an admission default) sets are left alone.

use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// Traefik `Middleware` with only the `forwardAuth` variant.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "traefik.io",
    version = "v1alpha1",
    kind = "Middleware",
    plural = "middlewares",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MiddlewareSpec {
    pub forward_auth: ForwardAuth,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ForwardAuth {
    pub address: String,
    pub trust_forward_header: bool,
    pub auth_response_headers: Vec<String>,
    pub add_auth_cookies_to_response: Vec<String>,
    /// Only when the address is https and a CA Secret is configured;
    /// without it Traefik verifies the gate against its system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ForwardAuthTls>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ForwardAuthTls {
    /// Secret in the Middleware's namespace holding `ca.crt` or `tls.ca`.
    pub ca_secret: String,
}

/// Gateway API `HTTPRoute` (standard channel, v1).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "HTTPRoute",
    root = "HttpRoute",
    plural = "httproutes",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HttpRouteSpec {
    pub parent_refs: Vec<ParentReference>,
    pub hostnames: Vec<String>,
    pub rules: Vec<HttpRouteRule>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ParentReference {
    pub group: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HttpRouteRule {
    pub matches: Vec<HttpRouteMatch>,
    pub backend_refs: Vec<HttpBackendRef>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub(crate) struct HttpRouteMatch {
    pub path: HttpPathMatch,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub(crate) struct HttpPathMatch {
    #[serde(rename = "type")]
    pub type_: String,
    pub value: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub(crate) struct HttpBackendRef {
    pub group: String,
    pub kind: String,
    pub name: String,
    pub port: i32,
    pub weight: i32,
}

/// Gateway API `ReferenceGrant` (v1beta1: the version every Gateway API
/// release since 0.6 serves).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1beta1",
    kind = "ReferenceGrant",
    plural = "referencegrants",
    namespaced,
    schema = "disabled"
)]
pub(crate) struct ReferenceGrantSpec {
    pub from: Vec<ReferenceGrantFrom>,
    pub to: Vec<ReferenceGrantTo>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub(crate) struct ReferenceGrantFrom {
    pub group: String,
    pub kind: String,
    pub namespace: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub(crate) struct ReferenceGrantTo {
    pub group: String,
    pub kind: String,
    pub name: String,
}

/// Envoy Gateway `SecurityPolicy` with only `extAuth` (gRPC).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gateway.envoyproxy.io",
    version = "v1alpha1",
    kind = "SecurityPolicy",
    plural = "securitypolicies",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SecurityPolicySpec {
    pub target_refs: Vec<PolicyTargetReference>,
    pub ext_auth: ExtAuth,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub(crate) struct PolicyTargetReference {
    pub group: String,
    pub kind: String,
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExtAuth {
    pub grpc: GrpcExtAuth,
    /// The client headers Envoy sends to the check; all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers_to_ext_auth: Vec<String>,
    /// Explicit even though false is the default: fail closed is a security
    /// property, not something to inherit.
    pub fail_open: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GrpcExtAuth {
    pub backend_refs: Vec<BackendObjectReference>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub(crate) struct BackendObjectReference {
    pub group: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub port: i32,
}
