//! Fail-closed behaviour: with the gate down (process gone) or hung
//! (SIGSTOP: connections accepted, never answered), every controller must
//! refuse the request; when the gate is back, the same pass works again
//! without restarting the controller.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};

use super::controller::ControllerKind;
use super::stack::{Stack, StackOptions, WS1};

fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()?
        .success();
    ensure!(ok, "kill -{sig} {pid} failed");
    Ok(())
}

/// SIGSTOP is not instantaneous for a multi-threaded process: the kernel
/// wakes one thread, which then stops the others; on a loaded machine the
/// rest keep running (and answering checks) for milliseconds. Wait until
/// every thread of `pid` is in state T (stopped).
async fn wait_all_threads_stopped(pid: u32) -> anyhow::Result<()> {
    let task_dir = format!("/proc/{pid}/task");
    for _ in 0..500 {
        let mut all = true;
        for entry in std::fs::read_dir(&task_dir)? {
            let stat = std::fs::read_to_string(entry?.path().join("stat")).unwrap_or_default();
            // `pid (comm) S ...`: the state follows the last ')'.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            if !matches!(state, Some("T") | Some("t")) {
                all = false;
            }
        }
        if all {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::bail!("gate pid {pid} did not stop within 5 s of SIGSTOP")
}

/// The status a browser with a valid pass gets for `url` (no redirects followed).
async fn status(s: &Stack, b: &super::client::Browser, url: &str) -> anyhow::Result<u16> {
    let r = tokio::time::timeout(
        Duration::from_secs(90),
        b.get(url, super::client::Mode::Fetch, &[]),
    )
    .await
    .with_context(|| format!("{url} hung for 90 s\n{}", s.diagnostics()))??;
    ensure!(
        s.echo.seen().iter().all(|seen| seen.uri != "/while-down"),
        "a request reached the workspace while the gate was unavailable: {:#?}\n{}",
        s.echo.seen(),
        s.diagnostics()
    );
    Ok(r.status)
}

pub async fn gate_down_or_hung_refuses_then_recovers(kind: ControllerKind) -> anyhow::Result<()> {
    let s = Stack::start(StackOptions::new(kind, "fail-closed")).await?;
    let b = s.browser("alice");
    let home = s.url(WS1, "/");
    let r = b.navigate(&home).await?;
    ensure!(r.status == 200, "login: {}", r.describe());
    let probe = s.url(WS1, "/while-down");
    let ok_url = s.url(WS1, "/after");
    ensure!(status(&s, &b, &ok_url).await? == 200, "pass works before");

    // Hung: the process is stopped; its sockets accept but never answer.
    let pid = s.gate.proc.lock().unwrap().pid();
    signal(pid, "STOP")?;
    wait_all_threads_stopped(pid).await?;
    let hung = status(&s, &b, &probe).await;
    signal(pid, "CONT")?;
    let hung = hung?;
    ensure!(
        hung >= 400,
        "{}: a hung gate must refuse, got {hung}",
        kind.name()
    );
    ensure!(
        status(&s, &b, &ok_url).await? == 200,
        "pass works after resume"
    );

    // Down: the process is gone, connections are refused.
    s.gate.stop();
    let down = status(&s, &b, &probe).await?;
    ensure!(
        down >= 400,
        "{}: an absent gate must refuse, got {down}",
        kind.name()
    );

    // Back on the same ports with the same keys: the old pass works again,
    // the controller was never restarted.
    s.gate.restart().await?;
    let back = status(&s, &b, &ok_url).await?;
    ensure!(
        back == 200,
        "{}: after the gate returned: {back}\n{}",
        kind.name(),
        s.diagnostics()
    );
    Ok(())
}
