//! Ends a logged-in SSH connection when the user may no longer use the
//! workspace: the workspace is gone or has another owner (seen on every
//! index change), the key was removed or the token no longer admits the
//! user (asked again every `ssh.recheck_interval`), or at the idle and
//! session limits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::Gateway;
use super::connection::{Admitted, Proof};
use super::relay::Activity;
use crate::authz::{Outcome, owner};
use crate::workspaces::Workspace;

/// Rechecks that fail (GitLab unreachable) this many times in a row end
/// the session: fail closed, but not on one lost request.
const MAX_FAILED_RECHECKS: u32 = 2;

/// Why the supervisor ends a connection: the metric label and the text
/// the user's client prints.
struct End(&'static str, String);

/// What the current index says about the admitted workspace.
fn still_there(admitted: &Admitted, now: Option<&Arc<Workspace>>) -> Result<Arc<Workspace>, End> {
    let was = &admitted.ws;
    let Some(ws) = now.filter(|w| w.namespace == was.namespace) else {
        return Err(End(
            "workspace_removed",
            format!("workspace {} was removed", was.name),
        ));
    };
    let uid = |w: &Workspace| w.service.as_ref().map(|s| s.uid.clone());
    if uid(ws) != uid(was) {
        return Err(End(
            "workspace_replaced",
            format!("workspace {} was replaced", was.name),
        ));
    }
    let owner = |w: &Workspace| w.owner.as_ref().map(|o| o.id.clone());
    if owner(ws) != owner(was) {
        return Err(End(
            "owner_changed",
            format!("workspace {} has a new owner", was.name),
        ));
    }
    if ws.ssh.is_none() {
        return Err(End(
            "no_ssh",
            format!("workspace {} no longer has an SSH port", was.name),
        ));
    }
    Ok(ws.clone())
}

/// Asks the authorizer (or the owner's keys) again. `Ok(None)`: still
/// admitted.
async fn recheck(gate: &Gateway, admitted: &Admitted, ws: &Workspace) -> Result<Option<End>, ()> {
    match &admitted.proof {
        Proof::Key(key) => {
            if owner::check_identity(&admitted.who, ws) != Outcome::Allowed(admitted.who.clone()) {
                return Ok(Some(End(
                    "denied",
                    format!("you may no longer use workspace {}", ws.name),
                )));
            }
            match gate.keys.holds(ws, key).await {
                Ok(true) => Ok(None),
                Ok(false) => Ok(Some(End(
                    "key_removed",
                    "the SSH key you logged in with was removed".into(),
                ))),
                Err(e) => {
                    tracing::warn!(workspace = %ws.name, error = %e, "ssh: cannot recheck the owner's keys");
                    Err(())
                }
            }
        }
        Proof::Token(token) => match gate.authz.bearer(token.expose(), ws).await {
            Ok(Outcome::Allowed(who)) if who.user_id == admitted.who.user_id => Ok(None),
            Ok(Outcome::Allowed(_) | Outcome::Denied) => Ok(Some(End(
                "denied",
                format!("you may no longer use workspace {}", ws.name),
            ))),
            Ok(Outcome::InvalidToken) => Ok(Some(End(
                "token_revoked",
                "the token you logged in with is no longer valid".into(),
            ))),
            Err(e) => {
                tracing::warn!(workspace = %ws.name, error = %e, "ssh: cannot recheck the token");
                Err(())
            }
        },
    }
}

/// Watches one connection until it ends or must end.
pub(super) async fn supervise(
    gate: Arc<Gateway>,
    admitted: Admitted,
    handle: russh::server::Handle,
    activity: Arc<Activity>,
    ended: Arc<Mutex<Option<String>>>,
    mut alive: tokio::sync::watch::Receiver<()>,
) {
    let settings = &gate.settings;
    let mut index = gate.index.clone();
    let deadline = Instant::from_std(activity.started()) + settings.max_session;
    let mut next_recheck = Instant::now() + settings.recheck_interval;
    let mut failures = 0u32;
    let end = loop {
        let idle_at = Instant::from_std(activity.last()) + settings.idle_timeout;
        let wake = deadline.min(idle_at).min(next_recheck);
        let changed = tokio::select! {
            // The connection is gone: nothing to watch.
            _ = alive.changed() => return,
            c = index.changed() => {
                if !c {
                    return;
                }
                true
            }
            _ = tokio::time::sleep_until(wake) => false,
        };
        let now = Instant::now();
        if now >= deadline {
            break End(
                "max_session",
                format!(
                    "session limit of {} reached (ssh.max_session); connect again",
                    humanize(settings.max_session)
                ),
            );
        }
        if now >= Instant::from_std(activity.last()) + settings.idle_timeout {
            break End(
                "idle",
                format!(
                    "idle for {} (ssh.idle_timeout)",
                    humanize(settings.idle_timeout)
                ),
            );
        }
        let snapshot = gate.index.current();
        let ws = match still_there(&admitted, snapshot.by_id(&admitted.ws.id)) {
            Ok(ws) => ws,
            Err(e) => break e,
        };
        if changed && now < next_recheck {
            continue;
        }
        next_recheck = now + settings.recheck_interval;
        match recheck(&gate, &admitted, &ws).await {
            Ok(None) => failures = 0,
            Ok(Some(e)) => break e,
            Err(()) => {
                failures += 1;
                if failures >= MAX_FAILED_RECHECKS {
                    break End(
                        "recheck_failed",
                        "your access could not be checked again; connect again later".into(),
                    );
                }
            }
        }
    };
    let End(label, text) = end;
    gate.metrics.ended(label);
    if let Ok(mut e) = ended.lock() {
        *e = Some(label.to_string());
    }
    let _ = handle
        .disconnect(
            russh::Disconnect::ByApplication,
            format!("workspace-gate: {text}"),
            "en".into(),
        )
        .await;
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}
