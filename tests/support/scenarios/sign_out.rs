//! Signing out on one workspace host, and on the auth host for every host.

use anyhow::ensure;

use super::{LOGIN, PASS, hops_text, provider_hops, run, sign_in_refusal, sign_out, visit};
use crate::support::controller::ControllerKind;
use crate::support::stack::{AUTH_HOST, WS1, WS2_A};

pub async fn sign_out_on_workspace_host_ends_access_there(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    run(kind, "sign-out-ws", |s| async move {
        let b = s.browser("alice");
        visit(&s, &b, WS1, "/").await?;
        visit(&s, &b, WS2_A, "/").await?;
        let r = sign_out(&b, &s.url(WS1, "/.workspace-gate/sign_out")).await?;
        ensure!(r.status < 500, "sign-out: {}", r.describe());
        ensure!(
            b.cookie(WS1, PASS).is_none(),
            "ws-1's pass survived its sign-out\nhops:\n{}",
            hops_text(&b)
        );
        let r = b.fetch(&s.url(WS1, "/after")).await?;
        ensure!(
            r.status == sign_in_refusal(kind),
            "ws-1 after its sign-out: {}",
            r.describe()
        );
        Ok(())
    })
    .await
}

pub async fn sign_out_on_auth_host_ends_access_everywhere(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    run(kind, "sign-out-auth", |s| async move {
        let b = s.browser("alice");
        visit(&s, &b, WS1, "/").await?;
        visit(&s, &b, WS2_A, "/").await?;
        let r = sign_out(&b, &s.url(AUTH_HOST, "/auth/sign_out")).await?;
        ensure!(
            r.status < 500,
            "sign-out: {}\nhops:\n{}",
            r.describe(),
            hops_text(&b)
        );
        ensure!(
            b.cookie(AUTH_HOST, LOGIN).is_none(),
            "login cookie survived sign-out"
        );
        for host in [WS1, WS2_A] {
            ensure!(
                b.cookie(host, PASS).is_none(),
                "{host}'s pass survived the auth-host sign-out\nhops:\n{}",
                hops_text(&b)
            );
            let r = b.fetch(&s.url(host, "/after")).await?;
            ensure!(
                r.status == sign_in_refusal(kind),
                "{host} after sign-out: {}",
                r.describe()
            );
        }
        // Coming back needs the provider again.
        b.clear_hops();
        visit(&s, &b, WS1, "/back").await?;
        ensure!(
            !provider_hops(&s, &b).is_empty(),
            "signed back in without the provider"
        );
        Ok(())
    })
    .await
}
