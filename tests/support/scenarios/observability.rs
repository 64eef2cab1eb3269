//! Logs free of every token and cookie value; the metrics a login counts.

use anyhow::ensure;

use super::{metric_sum, run, sign_out, transfer_token_for, visit};
use crate::support::client::Mode;
use crate::support::controller::ControllerKind;
use crate::support::stack::{AUTH_HOST, WS1, WS2_A, WS2_B};

pub async fn logs_contain_no_token_or_cookie_value(kind: ControllerKind) -> anyhow::Result<()> {
    run(kind, "log-secrets", |s| async move {
        let alice = s.browser("alice");
        visit(&s, &alice, WS1, "/a?token=visible-in-url-is-fine").await?;
        visit(&s, &alice, WS2_A, "/").await?;
        let _ = transfer_token_for(&s, &alice, WS2_B).await?;
        let bob = s.browser("bob");
        let _ = bob.navigate(&s.url(WS1, "/")).await?;
        let tokens = s.provider.real().user_tokens("alice").await?;
        let b = s.browser("nobody");
        let _ = b
            .get(
                &s.url(WS1, "/"),
                Mode::Fetch,
                &[("authorization", &format!("Bearer {}", tokens.access_token))],
            )
            .await?;
        let _ = b
            .get(
                &s.url(WS1, "/"),
                Mode::Fetch,
                &[("authorization", "Bearer wrong-token-0123456789abcdef")],
            )
            .await?;
        let _ = sign_out(&alice, &s.url(AUTH_HOST, "/auth/sign_out")).await?;

        let mut secrets = alice.secrets();
        secrets.extend(bob.secrets());
        secrets.extend(b.secrets());
        secrets.push(tokens.access_token.clone());
        secrets.extend(tokens.refresh_token.clone());
        secrets.extend(tokens.id_token.clone());
        secrets.push("wrong-token-0123456789abcdef".into());
        secrets.push(s.provider.client_secret().to_string());
        secrets.push(
            std::fs::read_to_string(s.dir().join("gate-key-1"))?
                .trim()
                .to_string(),
        );
        ensure!(
            secrets.len() > 8,
            "too few secrets collected: {}",
            secrets.len()
        );
        s.assert_logs_free_of(&secrets)?;
        ensure!(
            !s.gate.logs().trim().is_empty(),
            "the gate logged nothing at all"
        );
        Ok(())
    })
    .await
}

/// A refused check is logged with its reference, controller, host and
/// decision; where the gate's page reaches the browser (every controller
/// but those calling `/check/nginx`, which answers with a bare status for
/// ingress-nginx to show its own error page), the page shows the same
/// reference.
pub async fn refusals_are_logged_with_the_reference_on_the_page(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    run(kind, "refusal-log", |s| async move {
        // Bob's own provider token on alice's ws-1: the check asks the
        // authorizer, which refuses.
        let tokens = s.provider.real().user_tokens("bob").await?;
        let b = s.browser("nobody");
        let r = b
            .get(
                &s.url(WS1, "/private"),
                Mode::Fetch,
                &[("authorization", &format!("Bearer {}", tokens.access_token))],
            )
            .await?;
        ensure!(
            r.status == 403,
            "bob's token on alice's ws-1: {}",
            r.describe()
        );
        // The gate writes its log from a queue: the line may follow the
        // answer by a moment.
        let refused = |logs: &str| -> Vec<serde_json::Value> {
            logs.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|v| v["message"] == "check refused" && v["decision"] == "forbidden")
                .collect()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut logs = s.gate.logs();
        while refused(&logs).is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            logs = s.gate.logs();
        }
        let refusals = refused(&logs);
        ensure!(
            refusals.len() == 1,
            "want one logged refusal, got {}:\n{logs}",
            refusals.len()
        );
        let line = &refusals[0];
        let id = line["request_id"].as_str().unwrap_or_default();
        ensure!(
            id.len() >= 8 && id != "-",
            "the refusal has no reference: {line}"
        );
        ensure!(
            line["host"].as_str().is_some_and(|h| h.starts_with(WS1))
                && line["controller"].as_str().is_some_and(|c| !c.is_empty())
                && line["reason"].as_str().is_some_and(|c| !c.is_empty()),
            "the refusal lacks host, controller or reason: {line}"
        );
        if !matches!(
            kind,
            ControllerKind::Nginx | ControllerKind::TraefikIngressNginx
        ) {
            ensure!(
                r.body.contains(id),
                "the page does not show the logged reference {id}: {}",
                r.describe()
            );
        }
        Ok(())
    })
    .await
}

pub async fn metrics_count_checks_logins_and_authorizer_calls(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    run(kind, "metrics", |s| async move {
        let b = s.browser("alice");
        visit(&s, &b, WS1, "/").await?;
        visit(&s, &b, WS2_A, "/").await?;
        let _ = s.browser("bob").navigate(&s.url(WS1, "/")).await?;
        let m = s.gate.metrics().await?;
        let checks = metric_sum(&m, "workspace_gate_checks_total", &[]);
        ensure!(checks >= 4.0, "workspace_gate_checks_total = {checks}\n{m}");
        let completed = metric_sum(&m, "workspace_gate_logins_total", &["completed"]);
        ensure!(completed >= 2.0, "completed logins = {completed}\n{m}");
        let started = metric_sum(&m, "workspace_gate_logins_total", &["started"]);
        ensure!(started >= 2.0, "started logins = {started}\n{m}");
        let authz = metric_sum(&m, "workspace_gate_authorizer_calls_total", &[]);
        ensure!(authz >= 2.0, "authorizer calls = {authz}\n{m}");
        let hist = metric_sum(&m, "workspace_gate_check_duration_seconds_count", &[]);
        ensure!(hist >= 4.0, "check latency histogram count = {hist}\n{m}");
        let ws = metric_sum(&m, "workspace_gate_index_workspaces", &[]);
        ensure!(ws == 3.0, "index_workspaces = {ws}\n{m}");
        Ok(())
    })
    .await
}
