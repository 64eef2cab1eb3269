//! A real Kubernetes control plane for the discovery tests: etcd,
//! kube-apiserver (RBAC on, static admin token, service-account tokens) and
//! kube-controller-manager (garbage collector and the service-account
//! controllers), all on loopback, built by `scripts/build-control-plane.sh`
//! at the versions in `tests/support/controlplane/versions.env`.
//!
//! [`ControlPlane::shared`] starts one per test binary; every test works in
//! namespaces of its own. Each process runs under a small watchdog that
//! ends it when the test binary's end closes the watchdog's stdin, so
//! nothing outlives the tests. A test that stops or restarts the API server
//! starts a private one with [`ControlPlane::start`].

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

/// The cache directory of the built binaries and released CRD files.
fn built() -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("scripts/build-control-plane.sh"))
        .stderr(Stdio::inherit())
        .output()
        .context("running scripts/build-control-plane.sh")?;
    if !out.status.success() {
        bail!(
            "scripts/build-control-plane.sh failed ({}); it needs Go 1.26+ and the Go module proxy (see its message above)",
            out.status
        );
    }
    let dir = String::from_utf8(out.stdout)?.trim().to_string();
    Ok(PathBuf::from(dir))
}

/// Runs its arguments; ends them when its stdin reaches its end (TERM, and
/// KILL 10 s later: kube-apiserver's graceful shutdown can hang once etcd is
/// gone), and ends itself when they exit (so an exit shows as the
/// watchdog's).
const WATCHDOG: &str = r#"exec 3<&0; "$@" 3<&- & c=$!; { read -r _ <&3; kill -TERM "$c" 2>/dev/null; sleep 10; kill -KILL "$c" 2>/dev/null; } & wait "$c""#;

/// One supervised process: a watchdog shell holds it and ends it (TERM,
/// then waits) when its stdin closes, which also happens when the test
/// binary exits.
pub(super) struct Supervised {
    name: String,
    child: Child,
    stderr: PathBuf,
}

impl Supervised {
    pub(super) fn spawn(
        name: &str,
        dir: &Path,
        program: &Path,
        args: &[String],
    ) -> anyhow::Result<Self> {
        let stdout = dir.join(format!("{name}.stdout"));
        let stderr = dir.join(format!("{name}.stderr"));
        let child = Command::new("bash")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("watchdog")
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(&stdout)?)
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Supervised {
            name: name.to_string(),
            child,
            stderr,
        })
    }

    pub(super) fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!(
                "{} exited ({status}):\n{}",
                self.name,
                tail(&self.stderr)
            )),
            _ => None,
        }
    }

    /// Ends the process and waits for it.
    fn stop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Procs {
    etcd: Supervised,
    apiserver: Option<Supervised>,
    controller_manager: Option<Supervised>,
}

/// A running control plane.
pub struct ControlPlane {
    dir: PathBuf,
    bin: PathBuf,
    pub url: String,
    api_port: u16,
    etcd_url: String,
    admin_token: String,
    procs: Mutex<Procs>,
}

static SHARED: tokio::sync::OnceCell<ControlPlane> = tokio::sync::OnceCell::const_new();

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

impl ControlPlane {
    /// The control plane shared by every test of this binary.
    pub async fn shared() -> &'static ControlPlane {
        SHARED
            .get_or_init(|| async {
                ControlPlane::start()
                    .await
                    .unwrap_or_else(|e| panic!("test control plane: {e:#}"))
            })
            .await
    }

    /// A control plane of the caller's own, stopped on drop.
    pub async fn start() -> anyhow::Result<ControlPlane> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cache = built()?;
        let bin = cache.join("bin");
        let dir = std::env::temp_dir().join(format!(
            "wg-control-plane-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(dir.join("pki"))?;

        // The service-account signing key; kube-apiserver verifies with its
        // public half.
        let sa_key = dir.join("pki/sa.key");
        let sa_pub = dir.join("pki/sa.pub");
        run(Command::new("openssl")
            .args([
                "ecparam",
                "-genkey",
                "-name",
                "prime256v1",
                "-noout",
                "-out",
            ])
            .arg(&sa_key))?;
        run(Command::new("openssl")
            .args(["ec", "-pubout", "-in"])
            .arg(&sa_key)
            .arg("-out")
            .arg(&sa_pub))?;
        let admin_token = uuid::Uuid::new_v4().simple().to_string();
        std::fs::write(
            dir.join("pki/tokens.csv"),
            format!("{admin_token},test-admin,test-admin,system:masters\n"),
        )?;

        let etcd_port = free_port();
        let peer_port = free_port();
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd = Supervised::spawn(
            "etcd",
            &dir,
            &bin.join("etcd"),
            &[
                "--name=test".into(),
                format!("--data-dir={}", dir.join("etcd").display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=test={peer_url}"),
                "--log-level=warn".into(),
            ],
        )?;
        let api_port = free_port();
        let cp_port = free_port();
        let url = format!("https://127.0.0.1:{api_port}");
        // The controller-manager talks to the API server as the admin.
        let cm_config = dir.join("controller-manager.kubeconfig");

        let plane = ControlPlane {
            dir: dir.clone(),
            bin: bin.clone(),
            url,
            api_port,
            etcd_url,
            admin_token,
            procs: Mutex::new(Procs {
                etcd,
                apiserver: None,
                controller_manager: None,
            }),
        };
        plane.start_apiserver()?;
        plane.wait_ready().await?;
        std::fs::write(&cm_config, plane.kubeconfig(&plane.admin_token))?;
        let cm = Supervised::spawn(
            "kube-controller-manager",
            &dir,
            &bin.join("kube-controller-manager"),
            &[
                format!("--kubeconfig={}", cm_config.display()),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={cp_port}"),
                "--leader-elect=false".into(),
                // Without a kubelet no pod is ever ready, so the slice
                // controller's EndpointSlices are always empty; the tests
                // write the slices that stand for a workspace's endpoints
                // (FQDN ones, see traefik_kubernetes.rs), and Envoy Gateway
                // refuses a Service whose slices mix address types.
                "--controllers=*,-endpointslice-controller,-endpointslice-mirroring-controller"
                    .into(),
                format!("--service-account-private-key-file={}", sa_key.display()),
                format!("--root-ca-file={}", dir.join("pki/apiserver.crt").display()),
                "--v=1".into(),
            ],
        )?;
        plane.procs.lock().unwrap().controller_manager = Some(cm);
        plane.install_crds(&cache.join("crds")).await?;
        Ok(plane)
    }

    fn start_apiserver(&self) -> anyhow::Result<()> {
        let pki = self.dir.join("pki");
        let p = Supervised::spawn(
            "kube-apiserver",
            &self.dir,
            &self.bin.join("kube-apiserver"),
            &[
                format!("--etcd-servers={}", self.etcd_url),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                // No `kubernetes` Service endpoints: a loopback address may
                // not be one, and nothing in the tests reaches the API
                // server through that Service.
                "--endpoint-reconciler-type=none".into(),
                format!("--secure-port={}", self.api_port),
                format!("--cert-dir={}", pki.display()),
                format!("--token-auth-file={}", pki.join("tokens.csv").display()),
                "--authorization-mode=RBAC".into(),
                "--service-account-issuer=https://kubernetes.default.svc".into(),
                format!(
                    "--service-account-key-file={}",
                    pki.join("sa.pub").display()
                ),
                format!(
                    "--service-account-signing-key-file={}",
                    pki.join("sa.key").display()
                ),
                "--api-audiences=https://kubernetes.default.svc".into(),
                "--service-cluster-ip-range=10.96.0.0/16".into(),
                "--v=1".into(),
            ],
        )?;
        self.procs.lock().unwrap().apiserver = Some(p);
        Ok(())
    }

    /// Waits until the API server answers `/readyz` (and its default RBAC
    /// roles exist).
    async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            {
                let mut procs = self.procs.lock().unwrap();
                if let Some(why) = procs.etcd.exited() {
                    bail!("{why}");
                }
                if let Some(why) = procs.apiserver.as_mut().and_then(|a| a.exited()) {
                    bail!("{why}");
                }
            }
            if self.dir.join("pki/apiserver.crt").exists()
                && let Ok(client) = self.try_client(&self.admin_token).await
                && let Ok(text) = client
                    .request_text(http::Request::get("/readyz").body(Vec::new()).unwrap())
                    .await
                && text.trim() == "ok"
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "kube-apiserver not ready after 120 s:\n{}",
                    tail(&self.dir.join("kube-apiserver.stderr"))
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Writes one key outside the API server's prefix straight into etcd
    /// (through its HTTP gateway) and compacts etcd's history up to that
    /// revision: every resource version before it is gone, as after
    /// etcd's periodic compaction on a busy cluster. Returns the revision.
    pub async fn etcd_write_and_compact(&self) -> anyhow::Result<i64> {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let http = reqwest::Client::new();
        let put: Value = http
            .post(format!("{}/v3/kv/put", self.etcd_url))
            .json(&json!({"key": b64("/workspace-gate-tests/compaction"), "value": b64("x")}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let revision: i64 = put["header"]["revision"]
            .as_str()
            .context("etcd put: no revision")?
            .parse()?;
        http.post(format!("{}/v3/kv/compaction", self.etcd_url))
            .json(&json!({"revision": revision.to_string(), "physical": true}))
            .send()
            .await?
            .error_for_status()
            .context("etcd compaction")?;
        Ok(revision)
    }

    /// Stops the API server (etcd and the controller-manager keep running).
    pub fn stop_apiserver(&self) {
        if let Some(mut p) = self.procs.lock().unwrap().apiserver.take() {
            p.stop();
        }
    }

    /// Starts the API server again on the same port and data.
    pub async fn restart_apiserver(&self) -> anyhow::Result<()> {
        self.start_apiserver()?;
        self.wait_ready().await
    }

    /// A kubeconfig for a bearer token.
    pub fn kubeconfig(&self, token: &str) -> String {
        use base64::Engine;
        let ca = std::fs::read(self.dir.join("pki/apiserver.crt")).unwrap_or_default();
        let ca = base64::engine::general_purpose::STANDARD.encode(ca);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster: {{server: '{}', certificate-authority-data: {ca}}}\n\
             users:\n- name: test\n  user: {{token: '{token}'}}\n\
             contexts:\n- name: test\n  context: {{cluster: test, user: test}}\ncurrent-context: test\n",
            self.url
        )
    }

    async fn try_client(&self, token: &str) -> anyhow::Result<kube::Client> {
        let kc: kube::config::Kubeconfig = serde_yaml::from_str(&self.kubeconfig(token))?;
        let mut cfg =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await?;
        cfg.read_timeout = Some(Duration::from_secs(600));
        Ok(kube::Client::try_from(cfg)?)
    }

    /// The CA file the API server's certificate chains to.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("pki/apiserver.crt")
    }

    /// The bearer token with every right (`system:masters`).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// A client with every right (`system:masters`).
    pub async fn admin(&self) -> kube::Client {
        self.try_client(&self.admin_token)
            .await
            .expect("admin client")
    }

    /// A client for a bearer token, such as a ServiceAccount's.
    pub async fn client_with_token(&self, token: &str) -> kube::Client {
        self.try_client(token).await.expect("client")
    }

    /// Creates the namespace `name` (a no-op when it exists).
    pub async fn namespace(&self, name: &str) {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        match Api::<Namespace>::all(self.admin().await)
            .create(&PostParams::default(), &ns)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("create namespace {name}: {e}"),
        }
    }

    /// A fresh namespace name for one test, created.
    pub async fn new_namespace(&self, tag: &str) -> String {
        let name = format!("{tag}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        self.namespace(&name).await;
        name
    }

    /// A token of ServiceAccount `ns/name` (created when missing), from the
    /// TokenRequest API, as a pod would get it.
    pub async fn service_account_token(&self, ns: &str, name: &str) -> String {
        let admin = self.admin().await;
        let sa: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}})).unwrap();
        match Api::<ServiceAccount>::namespaced(admin.clone(), ns)
            .create(&PostParams::default(), &sa)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("create ServiceAccount: {e}"),
        }
        let body = json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600}
        });
        let req = http::Request::post(format!(
            "/api/v1/namespaces/{ns}/serviceaccounts/{name}/token"
        ))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
        let v: Value = admin.request(req).await.expect("TokenRequest");
        v["status"]["token"].as_str().expect("token").to_string()
    }

    /// Applies every object of a multi-document YAML text as the admin
    /// (server-side apply), in order.
    pub async fn apply_yaml(&self, text: &str) -> anyhow::Result<()> {
        let admin = self.admin().await;
        for doc in serde_yaml::Deserializer::from_str(text) {
            let v: Value = serde::Deserialize::deserialize(doc)?;
            if v.is_null() {
                continue;
            }
            let path = object_path(&v)?;
            let req = http::Request::patch(format!("{path}?fieldManager=test-admin&force=true"))
                .header("content-type", "application/apply-patch+yaml")
                .body(serde_json::to_vec(&v)?)
                .unwrap();
            admin
                .request::<Value>(req)
                .await
                .with_context(|| format!("applying {path}"))?;
        }
        Ok(())
    }

    async fn install_crds(&self, dir: &Path) -> anyhow::Result<()> {
        let mut names = Vec::new();
        let mut files: Vec<_> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        for f in &files {
            let text = std::fs::read_to_string(f)?;
            // Only the CRDs (the release files also carry admission
            // policies for upgrades and kustomizations).
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let v: Value = serde::Deserialize::deserialize(doc)?;
                if v["kind"] != "CustomResourceDefinition" {
                    continue;
                }
                names.push(v["metadata"]["name"].as_str().unwrap_or("").to_string());
                self.apply_yaml(&serde_json::to_string(&v)?)
                    .await
                    .with_context(|| format!("CRDs of {}", f.display()))?;
            }
        }
        let crds = Api::<CustomResourceDefinition>::all(self.admin().await);
        for name in names {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                let crd = crds.get(&name).await?;
                let established = crd.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .flatten()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
                if established {
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    bail!("CRD {name} not established");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// The object at `api_version` (`v1`, `networking.k8s.io/v1`), if any.
    pub async fn get(
        &self,
        api_version: &str,
        plural: &str,
        ns: &str,
        name: &str,
    ) -> Option<Value> {
        let prefix = api_prefix(api_version);
        let req = http::Request::get(format!("{prefix}/namespaces/{ns}/{plural}/{name}"))
            .body(Vec::new())
            .unwrap();
        match self.admin().await.request::<Value>(req).await {
            Ok(v) => Some(v),
            Err(kube::Error::Api(e)) if e.code == 404 => None,
            Err(e) => panic!("get {plural} {ns}/{name}: {e}"),
        }
    }

    /// The objects of `plural` in `ns` that match `selector` (a label
    /// selector; empty for all).
    pub async fn list(
        &self,
        api_version: &str,
        plural: &str,
        ns: &str,
        selector: &str,
    ) -> anyhow::Result<Vec<Value>> {
        let prefix = api_prefix(api_version);
        let mut url = url::Url::parse("http://x/").expect("static URL");
        url.set_path(&format!("{prefix}/namespaces/{ns}/{plural}"));
        if !selector.is_empty() {
            url.query_pairs_mut().append_pair("labelSelector", selector);
        }
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let req = http::Request::get(path).body(Vec::new()).unwrap();
        let v: Value = self
            .admin()
            .await
            .request(req)
            .await
            .with_context(|| format!("list {plural} in {ns}"))?;
        Ok(v["items"].as_array().cloned().unwrap_or_default())
    }

    /// Deletes the object at `api_version` (as a user would, in the
    /// background: the garbage collector removes what it owns); `ns`
    /// empty for a cluster-scoped object.
    pub async fn delete(
        &self,
        api_version: &str,
        plural: &str,
        ns: &str,
        name: &str,
    ) -> anyhow::Result<()> {
        let prefix = api_prefix(api_version);
        let path = if ns.is_empty() {
            format!("{prefix}/{plural}/{name}")
        } else {
            format!("{prefix}/namespaces/{ns}/{plural}/{name}")
        };
        let req = http::Request::delete(path).body(Vec::new()).unwrap();
        self.admin()
            .await
            .request::<Value>(req)
            .await
            .with_context(|| format!("delete {plural} {ns}/{name}"))?;
        Ok(())
    }

    /// How many of `objects` (api version, plural, name) exist in `ns`.
    pub async fn count_present(&self, ns: &str, objects: &[(&str, &str, &str)]) -> usize {
        let mut n = 0;
        for (v, plural, name) in objects {
            if self.get(v, plural, ns, name).await.is_some() {
                n += 1;
            }
        }
        n
    }

    /// The field managers of an object.
    pub async fn managers(
        &self,
        api_version: &str,
        plural: &str,
        ns: &str,
        name: &str,
    ) -> Vec<String> {
        let mut m: Vec<String> = self
            .get(api_version, plural, ns, name)
            .await
            .and_then(|v| v["metadata"]["managedFields"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|f| f["manager"].as_str().map(str::to_string))
            .collect();
        m.sort();
        m.dedup();
        m
    }

    /// The last lines of one component's log, for failure messages.
    pub fn log_of(&self, component: &str) -> String {
        tail(&self.dir.join(format!("{component}.stderr")))
    }
}

/// `/api/v1` for the core group, `/apis/<group>/<version>` for the others.
fn api_prefix(api_version: &str) -> String {
    if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    }
}

/// The REST path of an object for server-side apply.
fn object_path(v: &Value) -> anyhow::Result<String> {
    let api_version = v["apiVersion"].as_str().context("apiVersion")?;
    let kind = v["kind"].as_str().context("kind")?;
    let name = v["metadata"]["name"].as_str().context("metadata.name")?;
    // Every kind the tests apply follows English's regular plural
    // (policy: policies, gateway: gateways).
    let lower = kind.to_ascii_lowercase();
    let plural = if lower.ends_with('s') {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'o', 'u'])
    {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    };
    let prefix = api_prefix(api_version);
    Ok(match v["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{prefix}/namespaces/{ns}/{plural}/{name}"),
        None => format!("{prefix}/{plural}/{name}"),
    })
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Ok(mut p) = self.procs.lock() {
            if let Some(mut c) = p.controller_manager.take() {
                c.stop();
            }
            if let Some(mut a) = p.apiserver.take() {
                a.stop();
            }
            p.etcd.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The last 60 lines of a log file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}
