//! The `ssh` section and `listen.ssh`: the SSH gateway to the workspaces'
//! own sshd.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::reader::Reader;

/// The SSH gateway's settings; `None` in [`super::Config::ssh`] when
/// `listen.ssh` is empty.
#[derive(Debug, Clone)]
pub struct SshConfig {
    pub listen: SocketAddr,
    /// Host private keys (OpenSSH, PKCS#8 or PKCS#1 PEM), all offered.
    pub host_keys: Vec<PathBuf>,
    /// The user the gate logs in as on the workspace's sshd.
    pub backend_user: String,
    /// The key the gate offers the workspace's sshd; `None`: `none` and an
    /// empty password, as GitLab's workspace image expects.
    pub backend_key: Option<PathBuf>,
    /// Host keys accepted for every workspace's sshd (known_hosts lines);
    /// `None`: each workspace's key is pinned on first use.
    pub backend_known_hosts: Option<PathBuf>,
    pub idle_timeout: Duration,
    pub max_session: Duration,
    pub recheck_interval: Duration,
    pub key_cache_ttl: Duration,
    pub allow_agent_forwarding: bool,
    pub allow_remote_forwarding: bool,
}

fn flag(r: &mut Reader, key: &str, default: bool) -> bool {
    r.one_of(key, &[("true", true), ("false", false)], default)
}

pub(super) fn read(r: &mut Reader) -> Option<SshConfig> {
    let listen = r.addr("listen.ssh", true);
    let given = !r.string("listen.ssh").is_empty();
    let files = r.list("ssh.host_key_files");
    let mut host_keys = Vec::new();
    for f in &files {
        let p = r.path(f);
        match crate::files::read_text(&p, crate::files::SMALL) {
            Ok(text) => {
                if let Err(e) = russh::keys::decode_secret_key(&text, None) {
                    r.problem(
                        "ssh.host_key_files",
                        format!("{}: not a private key without passphrase: {e}", p.display()),
                    );
                }
            }
            Err(e) => r.problem(
                "ssh.host_key_files",
                format!("cannot read {}: {e}", p.display()),
            ),
        }
        host_keys.push(p);
    }
    let backend_user = r.string("ssh.backend_user");
    let backend_key = r.optional("ssh.backend_key_file").map(|f| r.path(&f));
    if let Some(p) = &backend_key {
        match crate::files::read_text(p, crate::files::SMALL) {
            Ok(text) => {
                if let Err(e) = russh::keys::decode_secret_key(&text, None) {
                    r.problem(
                        "ssh.backend_key_file",
                        format!("{}: not a private key without passphrase: {e}", p.display()),
                    );
                }
            }
            Err(e) => r.problem(
                "ssh.backend_key_file",
                format!("cannot read {}: {e}", p.display()),
            ),
        }
    }
    let backend_known_hosts = r
        .optional("ssh.backend_known_hosts_file")
        .map(|f| r.path(&f));
    if let Some(p) = &backend_known_hosts
        && let Err(e) = crate::files::read_text(p, crate::files::LARGE)
    {
        r.problem(
            "ssh.backend_known_hosts_file",
            format!("cannot read {}: {e}", p.display()),
        );
    }
    let idle_timeout = r.duration("ssh.idle_timeout", Duration::from_secs(1));
    let max_session = r.duration("ssh.max_session", Duration::from_secs(1));
    let recheck_interval = r.duration("ssh.recheck_interval", Duration::from_secs(1));
    let key_cache_ttl = r.duration("ssh.key_cache_ttl", Duration::from_secs(1));
    let allow_agent_forwarding = flag(r, "ssh.allow_agent_forwarding", true);
    let allow_remote_forwarding = flag(r, "ssh.allow_remote_forwarding", false);
    if backend_user.is_empty() {
        r.problem("ssh.backend_user", "must not be empty");
    }
    let listen = listen?;
    if given && files.is_empty() {
        r.problem(
            "ssh.host_key_files",
            "at least one host key is required with listen.ssh (create one with `workspace-gate keygen --ssh`)",
        );
    }
    Some(SshConfig {
        listen,
        host_keys,
        backend_user,
        backend_key,
        backend_known_hosts,
        idle_timeout,
        max_session,
        recheck_interval,
        key_cache_ttl,
        allow_agent_forwarding,
        allow_remote_forwarding,
    })
}
