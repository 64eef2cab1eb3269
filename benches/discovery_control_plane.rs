//! Discovery at scale against the real API server (etcd, kube-apiserver
//! with RBAC, kube-controller-manager: tests/support/control_plane.rs).
//!
//! Creates N workspace Services (default 10,000; 100 per namespace, one
//! port each), then starts the real `workspace-gate serve` binary as its own
//! process (`workspaces.source: kubernetes`, `routing.mode: ingress-nginx`,
//! 4 objects per workspace), running as the ServiceAccount of
//! deploy/rbac.yaml through `KUBECONFIG`, and measures:
//! - time from the gate's start to a complete index (its admin listener's
//!   `workspace_gate_discovery_index_workspaces` = N) and to every object
//!   applied (`workspace_gate_discovery_objects_applied_total` = 4N; the
//!   objects are then counted by listing them);
//! - the gate's peak resident memory (`VmHWM` of its process);
//! - API requests made by the gate: the API server's own count of requests
//!   dispatched for a FlowSchema that matches only the gate's
//!   ServiceAccount (`apiserver_flowcontrol_dispatched_requests_total`);
//! - latency from a Service change (a port added) to its Ingress carrying
//!   the new rule, read from the API server, one change at a time.
//!
//! Run: `cargo bench --bench discovery_control_plane -- [--services N] [--changes M]`
//! (or bench/discovery-control-plane.sh).

#[path = "../tests/support/control_plane.rs"]
mod control_plane;
#[path = "../tests/support/discovery_env.rs"]
mod env;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use control_plane::ControlPlane;
use env::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::Value;

const NET: &str = "networking.k8s.io/v1";
const GATE_NS: &str = "workspace-gate";

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A field of `/proc/<pid>/status` in KiB.
fn proc_status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// User plus system CPU time of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after ')'.
    (ticks(11) + ticks(12)) / 100.0
}

fn ns_of(i: usize) -> String {
    format!("team-{}", i / 100)
}

fn name_of(i: usize) -> String {
    format!("ws-{i}")
}

/// Sum of the samples of `metric` (every label set) in a Prometheus text
/// exposition; `labels` must all appear in a sample's label set.
fn sample_sum(text: &str, metric: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let name = series.split('{').next()?;
            (name == metric && labels.iter().all(|x| series.contains(x)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// The API server's requests dispatched for the gate's FlowSchema.
async fn gate_requests(admin: &kube::Client) -> u64 {
    let text = admin
        .request_text(http::Request::get("/metrics").body(Vec::new()).unwrap())
        .await
        .expect("API server metrics");
    sample_sum(
        &text,
        "apiserver_flowcontrol_dispatched_requests_total",
        &["flow_schema=\"workspace-gate-bench\""],
    ) as u64
}

/// The gate's own `/metrics`.
async fn gate_metrics(http: &reqwest::Client, admin_port: u16) -> String {
    match http
        .get(format!("http://127.0.0.1:{admin_port}/metrics"))
        .send()
        .await
    {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Objects of a kind in all namespaces, counted by listing 500 at a time.
async fn count(admin: &kube::Client, api_version: &str, plural: &str, selector: &str) -> usize {
    let prefix = if api_version == "v1" {
        "/api/v1".to_string()
    } else {
        format!("/apis/{api_version}")
    };
    let mut n = 0;
    let mut cont = String::new();
    loop {
        let url = format!(
            "{prefix}/{plural}?limit=500&labelSelector={selector}&continue={cont}",
            selector = urlencode(selector),
            cont = urlencode(&cont),
        );
        let page: Value = admin
            .request(http::Request::get(url).body(Vec::new()).unwrap())
            .await
            .expect("list");
        n += page["items"].as_array().map_or(0, Vec::len);
        match page["metadata"]["continue"].as_str() {
            Some(c) if !c.is_empty() => cont = c.to_string(),
            _ => return n,
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `cond`, polling every `every`; panics after 10 minutes (only
/// there to avoid hanging).
async fn until<F, Fut>(what: &str, every: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(600);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(every).await;
    }
}

/// The `workspace-gate` process under a wrapper started as `parent`.
fn gate_child(parent: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut frontier = vec![parent];
    loop {
        let mut next = Vec::new();
        for p in &frontier {
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            if comm.trim() == "workspace-gate" {
                return *p;
            }
            let children =
                std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
            next.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
        frontier = if next.is_empty() { vec![parent] } else { next };
        assert!(
            Instant::now() < deadline,
            "no workspace-gate process under {parent}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn main() {
    let services = arg("--services", 10_000);
    let changes = arg("--changes", 20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(bench(services, changes));
}

async fn bench(services: usize, changes: usize) {
    let t_cp = Instant::now();
    let cp = ControlPlane::start()
        .await
        .unwrap_or_else(|e| panic!("control plane: {e:#}"));
    eprintln!("control plane up in {:.1} s", t_cp.elapsed().as_secs_f64());
    let admin = cp.admin().await;

    // The gate's ServiceAccount and roles exactly as deploy/rbac.yaml has
    // them, and a FlowSchema matching that ServiceAccount alone, so the API
    // server counts the gate's requests apart from everyone else's.
    cp.namespace(GATE_NS).await;
    let rbac = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/rbac.yaml"),
    )
    .expect("deploy/rbac.yaml");
    cp.apply_yaml(&rbac).await.expect("apply deploy/rbac.yaml");
    cp.apply_yaml(&format!(
        "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: FlowSchema\n\
         metadata: {{name: workspace-gate-bench}}\n\
         spec:\n  matchingPrecedence: 500\n  priorityLevelConfiguration: {{name: workload-low}}\n\
         \x20 distinguisherMethod: {{type: ByUser}}\n  rules:\n\
         \x20 - subjects: [{{kind: ServiceAccount, serviceAccount: {{name: workspace-gate, namespace: {GATE_NS}}}}}]\n\
         \x20   resourceRules: [{{verbs: ['*'], apiGroups: ['*'], resources: ['*'], namespaces: ['*'], clusterScope: true}}]\n\
         \x20   nonResourceRules: [{{verbs: ['*'], nonResourceURLs: ['*']}}]\n"
    ))
    .await
    .expect("FlowSchema");
    let token = cp.service_account_token(GATE_NS, "workspace-gate").await;

    // The workspaces, created concurrently.
    let t_seed = Instant::now();
    for t in 0..services.div_ceil(100) {
        cp.namespace(&format!("team-{t}")).await;
    }
    futures::stream::iter(0..services)
        .map(|i| {
            let admin = admin.clone();
            async move {
                let svc = workspace_service(&ns_of(i), &name_of(i), i as u64 + 1, &[60001], "1001");
                create_service(&admin, &svc).await;
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    eprintln!(
        "{services} Services created in {:.1} s",
        t_seed.elapsed().as_secs_f64()
    );
    // Let the controller-manager's endpoint controllers finish with them.
    tokio::time::sleep(Duration::from_secs(5)).await;

    // The gate, as its own process.
    let dir = TempDir::new("bench-cp");
    let kubeconfig = dir.0.join("kubeconfig");
    std::fs::write(&kubeconfig, cp.kubeconfig(&token)).expect("kubeconfig");
    std::fs::write(
        dir.0.join("key"),
        workspace_gate::session::keyring::generate_key(),
    )
    .expect("key");
    std::fs::write(dir.0.join("secret"), "s3cret").expect("secret");
    let (http_port, admin_port) = (free_port(), free_port());
    std::fs::write(
        dir.0.join("gate.yaml"),
        format!(
            "auth_host: {DOMAIN}\nworkspace_domain: {DOMAIN}\n\
             listen: {{http: '127.0.0.1:{http_port}', admin: '127.0.0.1:{admin_port}'}}\n\
             oidc: {{issuer: 'https://idp.invalid', client_id: gate, client_secret_file: secret}}\n\
             keys: {{files: [key]}}\nworkspaces: {{source: kubernetes}}\nauthorization: {{mode: owner-annotation}}\n\
             log: {{format: text, level: warn}}\n\
             discovery: {{identity: bench, lease_namespace: {GATE_NS}}}\n\
             routing:\n  mode: ingress-nginx\n  tls_secret: wildcard-tls\n  ingress_class: nginx\n\
             \x20 gate_service: {{name: workspace-gate, namespace: {GATE_NS}}}\n"
        ),
    )
    .expect("gate.yaml");
    let log = std::fs::File::create(dir.0.join("gate.log")).expect("log");
    // WORKSPACE_GATE_BENCH_HEAPTRACK=<file prefix>: the gate runs under
    // heaptrack, to see where its memory goes (the run's figures then
    // include heaptrack's own cost).
    let heaptrack = std::env::var_os("WORKSPACE_GATE_BENCH_HEAPTRACK");
    let mut cmd = match &heaptrack {
        Some(out) => {
            let mut c = Command::new("heaptrack");
            c.arg("-o")
                .arg(out)
                .arg(env!("CARGO_BIN_EXE_workspace-gate"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_workspace-gate")),
    };
    cmd.arg("serve")
        .arg("--config")
        .arg(dir.0.join("gate.yaml"))
        .current_dir(&dir.0)
        .env("KUBECONFIG", &kubeconfig)
        .stdout(Stdio::null())
        .stderr(log);
    for (k, _) in std::env::vars() {
        if k.starts_with("WORKSPACE_GATE_") {
            cmd.env_remove(k);
        }
    }
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let requests_before = gate_requests(&admin).await;
    let objects = services as f64 * 4.0;

    let t0 = Instant::now();
    let gate = KillOnDrop(cmd.spawn().expect("start the gate"));
    let pid = match heaptrack {
        Some(_) => gate_child(gate.0.id()),
        None => gate.0.id(),
    };
    let mut t_index = None;
    let mut peak_at_index = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    let last = loop {
        let m = gate_metrics(&http, admin_port).await;
        let indexed = sample_sum(&m, "workspace_gate_discovery_index_workspaces", &[]);
        if t_index.is_none() && indexed as usize == services {
            t_index = Some(t0.elapsed());
            peak_at_index = proc_status(pid, "VmHWM:");
        }
        if sample_sum(&m, "workspace_gate_discovery_objects_applied_total", &[]) >= objects {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "not every object applied in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let t_applied = t0.elapsed();
    let t_index = t_index.expect("index complete");
    let requests_cold = gate_requests(&admin).await - requests_before;
    let peak_cold = proc_status(pid, "VmHWM:");
    let rss_cold = proc_status(pid, "VmRSS:");
    let cpu_cold = cpu_seconds(pid);
    let errors = sample_sum(
        &last,
        "workspace_gate_discovery_reconcile_errors_total",
        &[],
    );

    // What the API server holds.
    let sel = "app.kubernetes.io/managed-by=workspace-gate";
    let ingresses = count(&admin, NET, "ingresses", sel).await;
    let policies = count(&admin, NET, "networkpolicies", sel).await;
    let gate_services = count(&admin, "v1", "services", sel).await;

    // Steady state: one change at a time, until its Ingress has the rule.
    let mut latencies = Vec::new();
    for c in 0..changes {
        let i = (c * 7919) % services;
        let api: Api<Service> = Api::namespaced(admin.clone(), &ns_of(i));
        let patch = serde_json::json!({"spec": {"ports": [
            {"name": "p0", "port": 60001, "targetPort": 60001, "protocol": "TCP"},
            {"name": "p1", "port": 3000, "targetPort": 3000, "protocol": "TCP"}]}});
        let name = format!("{}-wg", name_of(i));
        let t = Instant::now();
        api.patch(&name_of(i), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("patch");
        let ingresses: Api<Ingress> = Api::namespaced(admin.clone(), &ns_of(i));
        until(
            "the Ingress has the new port's rule",
            Duration::from_millis(5),
            || {
                let (ingresses, name) = (&ingresses, &name);
                async move {
                    ingresses
                        .get_opt(name)
                        .await
                        .ok()
                        .flatten()
                        .is_some_and(|i| i.spec.and_then(|s| s.rules).is_some_and(|r| r.len() == 2))
                }
            },
        )
        .await;
        latencies.push(t.elapsed());
    }
    let requests_all = gate_requests(&admin).await - requests_before;
    let peak_all = proc_status(pid, "VmHWM:");
    let m = gate_metrics(&http, admin_port).await;
    let errors_all = sample_sum(&m, "workspace_gate_discovery_reconcile_errors_total", &[]);
    drop(gate);

    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    println!(
        "## discovery against the real API server: {services} workspace Services, routing.mode ingress-nginx\n"
    );
    println!("| measure | value | goal |");
    println!("|---|---|---|");
    println!(
        "| gate start -> complete index ({services} workspaces) | {} | <= 10 s |",
        secs(t_index)
    );
    println!(
        "| gate start -> all {} objects applied | {} | |",
        objects as u64,
        secs(t_applied)
    );
    println!(
        "| objects listed afterwards (Ingresses / NetworkPolicies / Services) | {ingresses} / {policies} / {gate_services} | |"
    );
    println!(
        "| gate peak resident memory: at complete index / all applied / whole run | {} / {} / {} | <= 128 MiB |",
        mib(peak_at_index),
        mib(peak_cold),
        mib(peak_all)
    );
    println!(
        "| gate resident memory after the cold start | {} | |",
        mib(rss_cold)
    );
    println!("| gate CPU time, cold start | {cpu_cold:.1} s | |");
    println!(
        "| API requests by the gate (API server's count for its ServiceAccount): cold start / whole run | {requests_cold} / {requests_all} | |"
    );
    println!("| reconcile errors: cold start / whole run | {errors} / {errors_all} | |");
    println!(
        "| change (port added) -> Ingress has the rule, median / p90 / max of {changes} | {} / {} / {} | <= 1 s |",
        ms(percentile(&mut latencies, 0.5)),
        ms(percentile(&mut latencies, 0.9)),
        ms(*latencies.iter().max().unwrap())
    );
}
