//! gRPC load client: calls the gate's ext_authz `Check` with a valid pass,
//! or the trivial `grpc.health.v1.Health/Check` that `bench_server --grpc`
//! serves on the same gRPC server, so both are measured in one run. Used
//! by `bench/run.sh`.
//!
//! `grpc_bench --addr A --rpc check|health --conns N --secs S --host H --cookie C`
//! prints `{"rps": .., "p50_us": .., "p99_us": .., "errors": ..}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[path = "support/envoy_request.rs"]
mod envoy_request;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--dump") {
        return dump();
    }
    load().await
}

/// Writes the two request bodies as gRPC frames (flag byte, big-endian
/// length, protobuf) for an external HTTP/2 load generator (h2load), so
/// the client's own cost does not cap the measured rate:
/// `<dir>/check.bin` and `<dir>/health.bin`.
fn dump() -> anyhow::Result<()> {
    use prost::Message;
    let dir = std::path::PathBuf::from(arg("--dump", "."));
    let frame = |msg: Vec<u8>| {
        let mut out = vec![0u8];
        out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        out.extend_from_slice(&msg);
        out
    };
    let check = check_request();
    std::fs::write(dir.join("check.bin"), frame(check.encode_to_vec()))?;
    let health = HealthCheckRequest {
        service: String::new(),
    };
    std::fs::write(dir.join("health.bin"), frame(health.encode_to_vec()))?;
    Ok(())
}

/// The Envoy-shaped `Check` for `--host`, with `--cookie` among others.
fn check_request() -> envoy_types::pb::envoy::service::auth::v3::CheckRequest {
    let cookie = format!("theme=dark; {}", arg("--cookie", ""));
    envoy_request::envoy_check_request(&arg("--host", "ws-1.workspaces.test"), &cookie)
}

async fn load() -> anyhow::Result<()> {
    let addr = format!("http://{}", arg("--addr", "127.0.0.1:9091"));
    let rpc = arg("--rpc", "check");
    let conns: usize = arg("--conns", "64").parse()?;
    let secs: u64 = arg("--secs", "10").parse()?;
    let req = Arc::new(check_request());
    // One HTTP/2 connection per 8 concurrent callers, as Envoy pools them.
    let mut channels = Vec::new();
    for _ in 0..conns.div_ceil(8) {
        channels.push(
            tonic::transport::Endpoint::from_shared(addr.clone())?
                .connect()
                .await?,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for i in 0..conns {
        let ch = channels[i % channels.len()].clone();
        let rpc = rpc.clone();
        let req = req.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut authz = AuthorizationClient::new(ch.clone());
            let mut health = HealthClient::new(ch);
            while Instant::now() < deadline {
                let t = Instant::now();
                let ok = if rpc == "check" {
                    match authz.check((*req).clone()).await {
                        Ok(r) => r.into_inner().status.is_some_and(|s| s.code == 0),
                        Err(_) => false,
                    }
                } else {
                    health
                        .check(HealthCheckRequest {
                            service: String::new(),
                        })
                        .await
                        .is_ok()
                };
                lat.push(t.elapsed().as_micros() as u64);
                if !ok {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        all.extend(l);
        errors += e;
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{}",
        serde_json::json!({
            "rps": all.len() as f64 / secs as f64,
            "p50_us": pct(0.50),
            "p99_us": pct(0.99),
            "errors": errors,
        })
    );
    Ok(())
}
