//! Imports run one way: a top-level module of `src/` may name only modules
//! in lower layers (the module map at the top of `src/lib.rs` and
//! `docs/architecture.md` give the reason for each layer).
//!
//! The scan is textual: every `crate::<module>` path (including the
//! members of `use crate::{a, b}`) and every `super::<module>` written at
//! the top level of `src/<m>.rs` or `src/<m>/mod.rs`, where `super` is the
//! crate root. Comment lines are skipped, so intra-doc links do not count.
//! Test modules (`#[cfg(test)]`) follow the same rule as the code they test.
//! `main.rs` is the binary, above every layer.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Bottom first. A module may reference modules of strictly lower layers.
const LAYERS: &[&[&str]] = &[
    // 0: leaves with no crate imports.
    &[
        "files",
        "bounded",
        "connections",
        "dns",
        "metrics",
        "scheme",
    ],
    // 1: key and certificate material read from files.
    &["material", "log_output"],
    // 2: plain settings values; token formats and keys.
    &["config", "session"],
    // 3: the workspace model, its index and the file loader.
    &["workspaces"],
    // 4: the decision, pure.
    &["core"],
    // 5: answers built from decisions; the login with the provider.
    &["answer", "oidc"],
    // 6: authorizers.
    &["authz"],
    // 7: controller adapters (behind the check-service interface) and the
    //    discovery controller.
    &["adapters", "discovery", "ssh"],
    // 8: wiring.
    &["server"],
];

/// Upward references that still exist, `(from, to)`. Each is a known debt:
/// remove the entry when the import goes. A reference not listed here and
/// not allowed by `LAYERS` fails the test.
const KNOWN_VIOLATIONS: &[(&str, &str)] = &[];

/// References that the layers would allow but a module's own rule does
/// not, `(from, to)`.
const NOT_EVEN_DOWN: &[(&str, &str)] = &[
    // The decision depends only on the token formats and the workspace
    // model: `server` builds `core::Settings` from the configuration.
    ("core", "config"),
    // Adapters receive settings through `adapters::Checks`.
    ("adapters", "config"),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The identifiers that follow `prefix` in `line`, e.g. `crate::` ->
/// `["core", "session"]` for `use crate::{core::X, session};`.
fn referenced(line: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find(prefix) {
        // `$crate::` and `foo_crate::` are not this crate.
        let before = rest[..at].chars().next_back();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level members of the group (depth 1).
            let mut depth = 1;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            out.push(ident(&group[start..i]));
                            break;
                        }
                    }
                    ',' if depth == 1 => {
                        out.push(ident(&group[start..i]));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.push(ident(rest));
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

fn ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// `(from, to) -> first place seen`, for every top-level module reference.
fn references() -> BTreeMap<(String, String), String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut refs = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let parts: Vec<_> = rel.iter().map(|p| p.to_str().unwrap()).collect();
        let from = parts[0].trim_end_matches(".rs").to_string();
        if from == "lib" || from == "main" {
            continue;
        }
        // In `src/m.rs` and `src/m/mod.rs`, an unindented `super::` is the
        // crate root; anywhere else it stays inside `m`.
        let top_file = parts.len() == 1 || (parts.len() == 2 && parts[1] == "mod.rs");
        let text = fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            let mut to = referenced(line, "crate::");
            if top_file && !line.starts_with(char::is_whitespace) {
                to.extend(referenced(line, "super::"));
            }
            for to in to {
                if to != from && layer_of(&to).is_some() {
                    refs.entry((from.clone(), to))
                        .or_insert_with(|| format!("src/{}:{}", rel.display(), n + 1));
                }
            }
        }
    }
    refs
}

#[test]
fn every_top_level_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut missing = BTreeSet::new();
    for entry in fs::read_dir(&src).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let module = name.trim_end_matches(".rs");
        if module != "lib" && module != "main" && layer_of(module).is_none() {
            missing.insert(module.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "modules without a layer in tests/layers.rs: {missing:?}"
    );
}

#[test]
fn imports_only_go_down() {
    let mut violations = Vec::new();
    let mut still_known = BTreeSet::new();
    for ((from, to), at) in references() {
        let (lf, lt) = (layer_of(&from).unwrap(), layer_of(&to).unwrap());
        let forbidden = NOT_EVEN_DOWN.contains(&(from.as_str(), to.as_str()));
        if lt < lf && !forbidden {
            continue;
        }
        if KNOWN_VIOLATIONS.contains(&(from.as_str(), to.as_str())) {
            still_known.insert((from, to));
            continue;
        }
        violations.push(format!(
            "{from} (layer {lf}) -> {to} (layer {lt}), first at {at}"
        ));
    }
    for (from, to) in &still_known {
        println!("known upward import, to remove: {from} -> {to}");
    }
    assert!(
        violations.is_empty(),
        "imports that go up or sideways, or break a module's own rule:\n  {}",
        violations.join("\n  ")
    );
}

#[test]
fn known_violations_are_not_stale() {
    let refs = references();
    let stale: Vec<_> = KNOWN_VIOLATIONS
        .iter()
        .filter(|(f, t)| !refs.contains_key(&(f.to_string(), t.to_string())))
        .collect();
    assert!(
        stale.is_empty(),
        "KNOWN_VIOLATIONS lists imports that are gone; remove them: {stale:?}"
    );
}

#[test]
fn the_scan_sees_grouped_and_nested_paths() {
    assert_eq!(
        referenced("use crate::{core::{A, B}, session};", "crate::"),
        ["core", "session"]
    );
    assert_eq!(
        referenced("let x = crate::server::now();", "crate::"),
        ["server"]
    );
    assert!(referenced("$crate::x; other_crate::y", "crate::").is_empty());
}
