//! Discovery at scale, against the Kubernetes API server double.
//!
//! Measures, for N workspace Services (default 10,000) in routing mode
//! ingress-nginx (3 objects per workspace):
//! - time from start to a complete index, and to every object applied;
//! - peak memory (resident set) of the process running discovery;
//! - API requests made;
//! - latency from a Service change (a port added) to the updated index and
//!   to the updated objects, and from a deletion to the index entry gone;
//! - a restart with every object already in place (nothing to write).
//!
//! The API server double runs in a child process (this binary with
//! `--api-server`), which also creates the Services, so the parent's memory
//! is discovery's own.
//!
//! Run: `cargo bench --bench discovery -- [--services N] [--changes M]`

#[path = "../tests/support/discovery_env.rs"]
mod env;
#[path = "../tests/support/kube_api.rs"]
mod kube_api;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use env::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn proc_status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn ns_of(i: usize) -> String {
    format!("team-{}", i / 100)
}

fn name_of(i: usize) -> String {
    format!("ws-{i}")
}

/// Child: serve the double, create the Services, print the address.
fn api_server(services: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let api = kube_api::KubeApi::start_with(Duration::from_secs(1)).await;
        let client = api.client("seed");
        futures::stream::iter(0..services)
            .map(|i| {
                let client = client.clone();
                async move {
                    let svc =
                        workspace_service(&ns_of(i), &name_of(i), i as u64 + 1, &[60001], "1001");
                    create_service(&client, &svc).await;
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<()>>()
            .await;
        println!("{}", api.addr);
        std::future::pending::<()>().await;
    });
}

async fn stats(http: &reqwest::Client, addr: &str) -> serde_json::Value {
    http.get(format!("http://{addr}/_stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats json")
}

async fn reset(http: &reqwest::Client, addr: &str) {
    http.post(format!("http://{addr}/_reset"))
        .send()
        .await
        .expect("reset");
}

fn client(addr: &str, name: &str) -> kube::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cfg = kube::Config::new(format!("http://{addr}/client/{name}").parse().expect("url"));
    kube::Client::try_from(cfg).expect("client")
}

async fn wait(mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "benchmark step did not finish in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn main() {
    let services = arg("--services", 10_000);
    if std::env::args().any(|a| a == "--api-server") {
        api_server(services);
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let changes = arg("--changes", 50);
    let exe = std::env::current_exe().expect("exe");
    let seed_start = Instant::now();
    let mut child = Command::new(exe)
        .args(["--api-server", "--services", &services.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the API server double");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("address");
    let addr = line.trim().to_string();
    // Stop the double however this process ends (a panic included).
    let _child = KillOnDrop(child);
    eprintln!(
        "double at {addr}: {services} Services created in {:?}",
        seed_start.elapsed()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let http = reqwest::Client::new();
        let dir = TempDir::new("bench");
        let cfg = gate_config(
            &dir,
            "discovery:\n  identity: bench\n  lease_namespace: gate\n  lease_duration: 15s\n\
             routing:\n  mode: ingress-nginx\n  tls_secret: wildcard-tls\n\
             \x20 gate_service: {name: workspace-gate, namespace: gate}\n",
        );
        let objects = services as u64 * 3;
        let rss_before = proc_status("VmRSS:");
        // Reset the peak so it measures from the start of discovery.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        reset(&http, &addr).await;

        // Cold start: nothing written yet.
        let t0 = Instant::now();
        let gate = Gate::start(client(&addr, "gate"), &cfg);
        wait(|| gate.reader.current().len() == services).await;
        let t_index = t0.elapsed();
        wait(|| gate.metrics.applied_total() >= objects && gate.metrics.full_syncs_total() >= 1).await;
        let t_applied = t0.elapsed();
        let cold = stats(&http, &addr).await;
        let peak_cold = proc_status("VmHWM:");
        let rss_after = proc_status("VmRSS:");

        // Steady state: one change at a time.
        let tester = client(&addr, "tester");
        let mut to_index = Vec::new();
        let mut to_objects = Vec::new();
        for c in 0..changes {
            let i = (c * 7919) % services;
            let api: Api<Service> = Api::namespaced(tester.clone(), &ns_of(i));
            let applied = gate.metrics.applied_total();
            let host = format!("3000-{}.{DOMAIN}", name_of(i));
            let patch = serde_json::json!({"spec": {"ports": [
                {"name": "p0", "port": 60001, "targetPort": 60001, "protocol": "TCP"},
                {"name": "p1", "port": 3000, "targetPort": 3000, "protocol": "TCP"}]}});
            let t = Instant::now();
            api.patch(&name_of(i), &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .expect("patch");
            wait(|| gate.has_host(&host)).await;
            to_index.push(t.elapsed());
            // Both Ingresses gain a rule; the ExternalName Service is unchanged.
            wait(|| gate.metrics.applied_total() >= applied + 2).await;
            to_objects.push(t.elapsed());
        }
        let mut deletes = Vec::new();
        for c in 0..changes.min(20) {
            let i = (c * 104_729 + 1) % services;
            let api: Api<Service> = Api::namespaced(tester.clone(), &ns_of(i));
            let host = format!("60001-{}.{DOMAIN}", name_of(i));
            let t = Instant::now();
            api.delete(&name_of(i), &DeleteParams::default()).await.expect("delete");
            wait(|| !gate.has_host(&host)).await;
            deletes.push(t.elapsed());
        }
        let remaining = gate.reader.current().len();
        // Let the leader finish deleting those workspaces' objects.
        let deleted_objects = deletes.len() as u64 * 3;
        wait(|| gate.metrics.deleted_total() >= deleted_objects).await;
        gate.stop().await;

        // Restart with everything in place.
        reset(&http, &addr).await;
        let t1 = Instant::now();
        // This time with back-to-back resyncs, to measure changes during them.
        let cfg_resync = gate_config(
            &dir,
            "discovery:\n  identity: bench\n  lease_namespace: gate\n  lease_duration: 15s\n  resync_interval: 1s\n\
             routing:\n  mode: ingress-nginx\n  tls_secret: wildcard-tls\n\
             \x20 gate_service: {name: workspace-gate, namespace: gate}\n",
        );
        let again = Gate::start(client(&addr, "gate"), &cfg_resync);
        wait(|| again.reader.current().len() == remaining).await;
        let r_index = t1.elapsed();
        wait(|| again.metrics.full_syncs_total() >= 1).await;
        let r_synced = t1.elapsed();
        let restart = stats(&http, &addr).await;
        let restart_writes = again.metrics.applied_total() + again.metrics.deleted_total();
        // Changes while full comparisons run back to back (interval 1 s).
        let mut during_sweep = Vec::new();
        for c in 0..changes.min(20) {
            let i = (c * 15_485_863 + 3) % services;
            let api: Api<Service> = Api::namespaced(tester.clone(), &ns_of(i));
            if api.get_opt(&name_of(i)).await.ok().flatten().is_none() {
                continue;
            }
            let applied = again.metrics.applied_total();
            let patch = serde_json::json!({"metadata": {"annotations": {
                "workspaces.gitlab.com/host-template": format!("{{{{.port}}}}-moved-{i}.{DOMAIN}")}}});
            let t = Instant::now();
            api.patch(&name_of(i), &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .expect("patch");
            wait(|| again.metrics.applied_total() >= applied + 2).await;
            during_sweep.push(t.elapsed());
        }
        let sweeps_during = again.metrics.full_syncs_total();
        again.stop().await;
        let peak_all = proc_status("VmHWM:");

        let verbs = |s: &serde_json::Value| {
            s["by_verb"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        };
        println!("## discovery benchmark: {services} workspace Services, routing.mode ingress-nginx\n");
        println!("| measure | value |");
        println!("|---|---|");
        println!("| start -> complete index ({services} workspaces) | {} |", ms(t_index));
        println!("| start -> all {objects} objects applied | {} |", ms(t_applied));
        println!("| API requests during cold start | {} ({}) |", cold["total"], verbs(&cold));
        println!("| resident memory before start | {:.1} MiB |", rss_before as f64 / 1024.0);
        println!("| peak resident memory, cold start | {:.1} MiB |", peak_cold as f64 / 1024.0);
        println!("| resident memory after cold start | {:.1} MiB |", rss_after as f64 / 1024.0);
        println!("| peak resident memory, whole run | {:.1} MiB |", peak_all as f64 / 1024.0);
        println!(
            "| change (port added) -> index updated, median / p95 / max of {changes} | {} / {} / {} |",
            ms(percentile(&mut to_index, 0.5)),
            ms(percentile(&mut to_index, 0.95)),
            ms(*to_index.iter().max().unwrap())
        );
        println!(
            "| change (port added) -> objects applied, median / p95 / max | {} / {} / {} |",
            ms(percentile(&mut to_objects, 0.5)),
            ms(percentile(&mut to_objects, 0.95)),
            ms(*to_objects.iter().max().unwrap())
        );
        println!(
            "| Service deleted -> index entry gone, median / max of {} | {} / {} |",
            deletes.len(),
            ms(percentile(&mut deletes, 0.5)),
            ms(*deletes.iter().max().unwrap())
        );
        println!("| restart, objects in place: start -> complete index | {} |", ms(r_index));
        println!("| restart: start -> full comparison done | {} |", ms(r_synced));
        println!("| restart: API requests / objects written | {} ({}) / {} |", restart["total"], verbs(&restart), restart_writes);
        println!(
            "| change -> objects applied while resyncs run back to back, median / max of {} ({} full comparisons done) | {} / {} |",
            during_sweep.len(),
            sweeps_during,
            ms(percentile(&mut during_sweep, 0.5)),
            ms(*during_sweep.iter().max().unwrap())
        );
    });
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
