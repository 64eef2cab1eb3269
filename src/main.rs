//! The `workspace-gate` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use workspace_gate::config::{Config, LogFormat};
use workspace_gate::log_output;

#[derive(Parser)]
#[command(
    name = "workspace-gate",
    version,
    about = "Login and authorization for cloud development workspaces"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the login pages, the checks and the admin endpoints.
    Serve {
        /// YAML configuration (every key can also be set as WORKSPACE_GATE_<KEY>).
        #[arg(long, env = "WORKSPACE_GATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Validate the configuration and exit (non-zero with every problem).
    CheckConfig {
        #[arg(long, env = "WORKSPACE_GATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print a new random signing key (base64, 32 bytes), or with `--ssh`
    /// a new Ed25519 SSH host key (OpenSSH format) for `ssh.host_key_files`.
    Keygen {
        #[arg(long)]
        ssh: bool,
    },
    /// Print the routing objects discovery would write for a workspace Service.
    Render {
        #[arg(long, env = "WORKSPACE_GATE_CONFIG")]
        config: Option<PathBuf>,
        /// A Service manifest (YAML) as GitLab's agent creates it.
        #[arg(long)]
        service: PathBuf,
    },
}

fn load(path: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    Config::load(path, &|k| std::env::var(k).ok()).map_err(|e| {
        eprint!("{e}");
        ExitCode::from(2)
    })
}

/// Logs go to stdout through a bounded queue (`log_output`): a blocked
/// stdout drops lines, never requests. The guard writes out the queue at
/// exit. `None` when the writer thread cannot start (logs then go straight
/// to stdout).
fn init_logging(cfg: &Config) -> Option<log_output::Flush> {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, flush) = match log_output::spawn(std::io::stdout(), log_output::QUEUED_LINES) {
        Ok((w, f)) => (BoxMakeWriter::new(w), Some(f)),
        Err(e) => {
            eprintln!("cannot start the log writer, logging to stdout directly: {e}");
            (BoxMakeWriter::new(std::io::stdout), None)
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match cfg.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Text => builder.init(),
    }
    flush
}

/// SIGHUP (a closed terminal, or a habit of sending it for "reload") is
/// logged and ignored, from before any port is bound: the files that may
/// change while the gate runs (the workspaces file, TLS certificates) are
/// picked up by polling, and keys or configuration take a restart.
fn ignore_sighup() {
    #[cfg(unix)]
    if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!(
                    "SIGHUP ignored: changed workspaces and certificate files are picked up \
                     without it; restart for new keys or configuration"
                );
            }
        });
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Keygen { ssh: false } => {
            println!("{}", workspace_gate::session::keyring::generate_key());
            ExitCode::SUCCESS
        }
        Command::Keygen { ssh: true } => match workspace_gate::ssh::generate_host_key() {
            Ok(key) => {
                print!("{key}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("workspace-gate: cannot make an SSH host key: {e}");
                ExitCode::FAILURE
            }
        },
        Command::CheckConfig { config } => match load(config.as_deref()) {
            Ok(_) => {
                println!("configuration is valid");
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Render { config, service } => {
            let cfg = match load(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let yaml =
                match workspace_gate::files::read_text(&service, workspace_gate::files::SMALL)
                    .and_then(|y| workspace_gate::files::check_yaml_nesting(&y).map(|()| y))
                {
                    Ok(y) => y,
                    Err(e) => {
                        eprintln!("cannot read {}: {e}", service.display());
                        return ExitCode::from(2);
                    }
                };
            match workspace_gate::discovery::render_cli(&cfg, &yaml) {
                Ok(out) => {
                    print!("{out}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("workspace-gate render: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Serve { config } => {
            let cfg = match load(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            // Only ring is compiled in; install it before any TLS client.
            let _ = rustls::crypto::ring::default_provider().install_default();
            // Dropped last: writes out the queued log lines.
            let _flush = init_logging(&cfg);
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            rt.block_on(async { ignore_sighup() });
            let result = rt.block_on(workspace_gate::server::start::run(
                cfg,
                shutdown_signal(),
                |_| {},
            ));
            // Connections are closed by now; blocking work still running
            // (a name lookup, a file read) must not delay the exit.
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "workspace-gate stopped");
                    eprintln!("workspace-gate: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
