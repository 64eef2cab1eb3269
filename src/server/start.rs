//! Start-up: bind every listener (so a taken port fails before anything
//! runs), start the workspace source and OIDC discovery, serve until
//! shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{AppState, admin, app, serve};
use crate::config::{Config, WorkspaceSource};
use crate::discovery::DiscoveryMetrics;
use crate::metrics::Metrics;
use crate::oidc::Provider;
use crate::session::Keyring;
use crate::workspaces;

/// Addresses actually bound (ports chosen by the OS when 0 was asked).
#[derive(Debug, Clone)]
pub struct Bound {
    pub http: SocketAddr,
    pub admin: SocketAddr,
    pub grpc: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    pub ssh: Option<SocketAddr>,
}

pub fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("workspace-gate/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the HTTP client")
}

/// Binds `addr`; the error names the configuration key.
async fn bind(key: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("{key}: cannot bind {addr}"))
}

/// Runs the gate until `shutdown` resolves. `on_bound` learns the bound
/// addresses (tests and logs).
pub async fn run(
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_bound: impl FnOnce(&Bound),
) -> anyhow::Result<()> {
    let http_listener = bind("listen.http", cfg.listen.http).await?;
    let admin_listener = bind("listen.admin", cfg.listen.admin).await?;
    let grpc_listener = match cfg.listen.grpc {
        Some(a) => Some(bind("listen.grpc", a).await?),
        None => None,
    };
    let https_listener = match cfg.listen.https {
        Some(a) => Some(bind("listen.https", a).await?),
        None => None,
    };
    let ssh_listener = match &cfg.ssh {
        Some(s) => Some(bind("listen.ssh", s.listen).await?),
        None => None,
    };
    // Loaded again here (the configuration only checked the files): they
    // may have changed since.
    let https_tls = match &cfg.tls {
        Some(files) if https_listener.is_some() => {
            let certs = Arc::new(
                super::tls::ReloadingCert::new(files.cert.clone(), files.key.clone())
                    .map_err(|e| anyhow::anyhow!("tls: {e}"))?,
            );
            Some((certs.clone(), super::tls::server_config(certs)?))
        }
        _ => None,
    };
    let bound = Bound {
        http: http_listener.local_addr()?,
        admin: admin_listener.local_addr()?,
        grpc: grpc_listener.as_ref().map(|l| l.local_addr()).transpose()?,
        https: https_listener
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?,
        ssh: ssh_listener.as_ref().map(|l| l.local_addr()).transpose()?,
    };
    on_bound(&bound);

    let keyring = Keyring::new(&cfg.keys).map_err(anyhow::Error::msg)?;
    let http = http_client()?;
    let metrics = Arc::new(Metrics::default());
    let mut registry = Registry::default();
    let (publisher, reader) = workspaces::index();
    let provider = Arc::new(Provider::new(
        http.clone(),
        cfg.oidc.clone(),
        cfg.redirect_uri(),
    ));
    tokio::spawn(provider.clone().discover_until_ready());

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    // The workspace source. Discovery failing for good ends the process
    // (its error is logged), so the orchestrator restarts it.
    let is_discovery = cfg.workspaces == WorkspaceSource::Kubernetes;
    let source: tokio::task::JoinHandle<anyhow::Result<()>> = match &cfg.workspaces {
        WorkspaceSource::File(path) => {
            let watch = workspaces::file::watch(path.clone(), publisher, metrics.clone());
            tokio::spawn(async move {
                watch.await;
                Ok(())
            })
        }
        WorkspaceSource::Kubernetes => {
            let dcfg = cfg.discovery.clone();
            let client = crate::discovery::client()
                .await
                .context("workspaces.source is kubernetes, but no Kubernetes API is reachable")?;
            let dm = DiscoveryMetrics::default();
            dm.register(&mut registry);
            let gate_cfg = cfg.clone();
            let stop = stopped();
            tokio::spawn(async move {
                crate::discovery::run(dcfg, &gate_cfg, client, publisher, dm, stop).await
            })
        }
    };

    let ssh_metrics = Arc::new(crate::ssh::SshMetrics::default());
    if ssh_listener.is_some() {
        ssh_metrics.register(&mut registry);
    }
    let state = AppState::new(cfg, keyring, reader, provider, http, metrics, registry);
    let ssh = match (ssh_listener, &state.cfg.ssh) {
        (Some(l), Some(settings)) => {
            let (gate, config) = ssh_gateway(&state, settings.clone(), ssh_metrics)?;
            Some(tokio::spawn(crate::ssh::serve(
                l,
                Arc::new(gate),
                Arc::new(config),
                stopped(),
            )))
        }
        _ => None,
    };
    let limits = super::limits(&state.cfg.listen, None);
    let public = tokio::spawn(serve(
        "listen.http",
        http_listener,
        app(state.clone()),
        limits,
        stopped(),
    ));
    let admin = tokio::spawn(serve(
        "listen.admin",
        admin_listener,
        admin::router(state.clone()),
        limits,
        stopped(),
    ));
    let grpc = grpc_listener.map(|l| {
        let state = state.clone();
        let stop = stopped();
        tokio::spawn(async move { crate::adapters::serve_grpc(l, state, limits, stop).await })
    });
    let https = match (https_listener, https_tls) {
        (Some(l), Some((certs, tls))) => {
            tokio::spawn(certs.watch(
                super::tls::RELOAD_INTERVAL,
                state.metrics.clone(),
                stopped(),
            ));
            let metrics = state.metrics.clone();
            Some(tokio::spawn(super::tls::serve(
                l,
                tls,
                app(state.clone()),
                super::limits(
                    &state.cfg.listen,
                    Some(state.cfg.listen.https_max_connection_age),
                ),
                move || metrics.https_connection(),
                stopped(),
            )))
        }
        _ => None,
    };
    tracing::info!(http = %bound.http, admin = %bound.admin, grpc = ?bound.grpc, https = ?bound.https, ssh = ?bound.ssh, "workspace-gate listening");
    let mut source = source;
    let failed = tokio::select! {
        _ = shutdown => None,
        r = &mut source => Some(r),
    };
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    public.await??;
    admin.await??;
    if let Some(g) = grpc {
        g.await??;
    }
    if let Some(h) = https {
        h.await??;
    }
    if let Some(s) = ssh {
        s.await??;
    }
    match failed {
        Some(Ok(Ok(()))) => anyhow::bail!("the workspace source stopped"),
        Some(Ok(Err(e))) => Err(e.context("workspace discovery failed")),
        Some(Err(e)) => Err(anyhow::anyhow!("workspace source task: {e}")),
        None => {
            // Discovery steps down and releases its Lease on shutdown: give
            // it a moment. The file source never ends by itself: stop it.
            if !is_discovery
                || tokio::time::timeout(Duration::from_secs(5), &mut source)
                    .await
                    .is_err()
            {
                source.abort();
            }
            Ok(())
        }
    }
}

/// The SSH gateway from its settings: host keys, the backend login and
/// host-key policy, the owner's keys from GitLab in `gitlab` mode.
fn ssh_gateway(
    state: &AppState,
    settings: crate::config::SshConfig,
    metrics: Arc<crate::ssh::SshMetrics>,
) -> anyhow::Result<(crate::ssh::Gateway, russh::server::Config)> {
    let host_keys = settings
        .host_keys
        .iter()
        .map(|p| crate::ssh::read_key(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("ssh.host_key_files: {e}"))?;
    let key = match &settings.backend_key {
        Some(p) => Some(Arc::new(
            crate::ssh::read_key(p).map_err(|e| anyhow::anyhow!("ssh.backend_key_file: {e}"))?,
        )),
        None => None,
    };
    let policy = match &settings.backend_known_hosts {
        Some(p) => {
            let text = crate::files::read_text(p, crate::files::LARGE)
                .map_err(|e| anyhow::anyhow!("ssh.backend_known_hosts_file: {e}"))?;
            crate::ssh::HostKeyPolicy::known_hosts(&text)
                .map_err(|e| anyhow::anyhow!("ssh.backend_known_hosts_file: {e}"))?
        }
        None => crate::ssh::HostKeyPolicy::PinOnFirstUse(Default::default()),
    };
    let gitlab = (state.cfg.authorization.mode == crate::config::AuthzMode::Gitlab)
        .then_some(state.cfg.authorization.gitlab_url.as_str());
    let keys = crate::ssh::OwnerKeys::new(
        gitlab,
        crate::oidc::transport::reqwest(http_client()?),
        settings.key_cache_ttl,
    );
    let gate = crate::ssh::Gateway {
        login: crate::ssh::BackendLogin {
            user: settings.backend_user.clone(),
            key,
        },
        settings,
        index: state.index.clone(),
        authz: state.authz.clone(),
        keys,
        host_keys: Arc::new(policy),
        metrics,
        workspace_domain: state.cfg.workspace_domain.clone(),
    };
    Ok((gate, crate::ssh::server_config(host_keys)))
}
