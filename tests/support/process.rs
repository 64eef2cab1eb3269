//! Child processes that die with the test: killed (and reaped) on drop, their
//! output captured to files under the test directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub struct Proc {
    pub name: String,
    child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdout/stderr to `<dir>/<name>.stdout|.stderr` and
    /// stdin a pipe we hold (a child that watches stdin stops when we die).
    pub fn spawn(name: &str, dir: &Path, mut cmd: Command) -> anyhow::Result<Proc> {
        let stdout = dir.join(format!("{name}.stdout"));
        let stderr = dir.join(format!("{name}.stderr"));
        cmd.stdin(Stdio::piped())
            .stdout(std::fs::File::create(&stdout)?)
            .stderr(std::fs::File::create(&stderr)?);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(Proc {
            name: name.to_string(),
            child,
            stdout,
            stderr,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails when the process has exited, with its output.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}).\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.name,
                tail(&self.stdout),
                tail(&self.stderr)
            );
        }
        Ok(())
    }

    pub fn output(&self) -> String {
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.name,
            tail(&self.stdout),
            self.name,
            tail(&self.stderr)
        )
    }

    /// Waits (polling, bounded only to avoid hangs) for a line of stdout
    /// starting with `prefix`; returns the line.
    pub fn wait_for_line(&mut self, prefix: &str, limit: Duration) -> anyhow::Result<String> {
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&self.stdout).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.starts_with(prefix)) {
                return Ok(line.to_string());
            }
            self.ensure_running()?;
            if start.elapsed() > limit {
                bail!(
                    "{} printed no `{prefix}` line.\n{}",
                    self.name,
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the process: SIGTERM first (nginx's master then stops its
    /// workers; a SIGKILLed master would leave them running and holding the
    /// port), SIGKILL if it is still there after 5 s.
    pub fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let termed = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if termed {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if termed {
            eprintln!("{} did not exit within 5 s of SIGTERM: SIGKILL", self.name);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last 8 KiB of a file, for error messages.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(8192);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

/// A free TCP port on 127.0.0.1 (bind 0, read, release).
/// A port nothing listens on, for a child process to bind.
///
/// Ports are drawn at random below Linux's ephemeral range (32768+): a port
/// the kernel hands out for `bind(0)` or an outgoing connection is released
/// and reused quickly, so another test could take it before our child
/// binds; ports drawn here only collide when two tests draw the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Spread processes (test binaries run one after another, tests in one
    // binary in parallel) over the range, then walk it.
    if NEXT.load(Ordering::Relaxed) == 0 {
        let seed = (std::process::id() as u64).wrapping_mul(2_654_435_761) ^ rand::random::<u64>();
        let _ = NEXT.compare_exchange(
            0,
            20_000 + (seed % 12_000) as u16,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
    for _ in 0..12_000 {
        let p = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (p.wrapping_sub(20_000) % 12_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000..32000 on 127.0.0.1")
}

/// A per-test directory under the system temp dir, removed on drop unless
/// `WORKSPACE_GATE_KEEP_TEST_DIRS` is set (its path is printed either way).
pub struct TestDir {
    pub path: PathBuf,
}

impl TestDir {
    pub fn new(label: &str) -> anyhow::Result<TestDir> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "workspace-gate-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        eprintln!("test dir: {}", path.display());
        Ok(TestDir { path })
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::env::var_os("WORKSPACE_GATE_KEEP_TEST_DIRS").is_none() && !std::thread::panicking()
        {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
