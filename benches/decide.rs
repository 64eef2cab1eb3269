//! `decide()` for a request carrying a valid pass: the hot path of every
//! check. Run: `cargo bench --bench decide`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use workspace_gate::config::Scheme;
use workspace_gate::core::{CheckRequest, Decision, Settings, decide};
use workspace_gate::session::signed::sign;
use workspace_gate::session::{Identity, Keyring, PassClaims, TokenKind};
use workspace_gate::workspaces::{HostPort, Owner, Snapshot, Workspace};

fn bench(c: &mut Criterion) {
    let now = 1_800_000_000;
    let settings = Settings::new(
        "workspaces.test",
        "workspaces.test",
        Scheme::Https,
        None,
        3600,
        60,
    );
    let keyring = Keyring::new(&[vec![7u8; 32], vec![8u8; 32]]).unwrap();
    // A realistic index: 10,000 workspaces, two hosts each.
    let workspaces = (0..10_000)
        .map(|i| Workspace {
            id: i.to_string(),
            name: format!("ws-{i}"),
            namespace: "ns".into(),
            owner: Some(Owner {
                id: format!("user-{i}"),
                username: format!("user{i}"),
            }),
            hosts: vec![
                HostPort {
                    host: format!("ws-{i}.workspaces.test"),
                    service_port: Some(3000),
                },
                HostPort {
                    host: format!("60001-ws-{i}.workspaces.test"),
                    service_port: Some(60001),
                },
            ],
            service: None,
        })
        .collect();
    let snapshot = Snapshot::build(workspaces).unwrap();
    let pass = sign(
        &keyring,
        TokenKind::Pass,
        &PassClaims {
            aud: "ws-4242.workspaces.test".into(),
            who: Identity {
                user_id: "user-4242".into(),
                username: "user4242".into(),
            },
            wid: "4242".into(),
            iat: now,
            exp: now + 3600,
        },
    );
    let cookie = format!("_ga=GA1.2.3; theme=dark; __Host-workspace-gate-pass={pass}; session=abc");
    let req = CheckRequest {
        method: "GET",
        host: "ws-4242.workspaces.test",
        path: "/api/v1/files?path=src/main.rs",
        cookie: Some(&cookie),
        accept: Some("application/json"),
        ..Default::default()
    };
    assert!(matches!(
        decide(&snapshot, &keyring, &settings, now, &req),
        Decision::Allow(_)
    ));
    c.bench_function("decide/valid_pass", |b| {
        b.iter(|| {
            decide(
                black_box(&snapshot),
                &keyring,
                &settings,
                now,
                black_box(&req),
            )
        })
    });
    let no_pass = CheckRequest {
        cookie: Some("_ga=GA1.2.3"),
        accept: Some("text/html"),
        ..req.clone()
    };
    c.bench_function("decide/no_pass_navigation", |b| {
        b.iter(|| {
            decide(
                black_box(&snapshot),
                &keyring,
                &settings,
                now,
                black_box(&no_pass),
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
