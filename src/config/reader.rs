//! The one reader of the configuration: the YAML file, then the
//! environment key by key, then typed values. Every section reads its
//! values through it, so a list, a duration or a port is parsed the same
//! way everywhere and every problem carries its dotted key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::Value;

use super::Problem;
use super::keys::{KEYS, LIST_KEYS, default_of};

pub(super) fn problem(key: &str, reason: impl Into<String>) -> Problem {
    Problem {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// The configuration as one YAML tree (file, then environment), with the
/// problems found so far and the folder relative paths are resolved in.
pub(super) struct Reader {
    root: Value,
    pub(super) problems: Vec<Problem>,
    base: PathBuf,
}

impl Reader {
    /// Reads `path` (optional: the environment alone may configure
    /// everything), then applies the environment and reports unknown keys.
    pub(super) fn new(path: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Reader {
        let mut problems = Vec::new();
        let empty = || Value::Mapping(Default::default());
        let (mut root, base) = match path {
            None => (empty(), PathBuf::from(".")),
            Some(p) => {
                let text = crate::files::read_text(p, crate::files::SMALL).and_then(|text| {
                    crate::files::check_yaml_nesting(&text)?;
                    Ok(text)
                });
                let root = match text {
                    Err(e) => {
                        problems.push(problem(
                            "(file)",
                            format!("cannot read {}: {e}", p.display()),
                        ));
                        empty()
                    }
                    Ok(text) => match serde_yaml::from_str::<Value>(&text) {
                        Ok(Value::Null) => empty(),
                        Ok(v @ Value::Mapping(_)) => v,
                        Ok(_) => {
                            problems.push(problem("(file)", "the file must be a YAML mapping"));
                            empty()
                        }
                        Err(e) => {
                            problems.push(problem("(file)", format!("{}: {e}", p.display())));
                            empty()
                        }
                    },
                };
                (root, parent(p))
            }
        };
        for kd in KEYS {
            if let Some(v) = env(&kd.env_name()) {
                let value = if LIST_KEYS.contains(&kd.key) {
                    Value::Sequence(comma_list(&v).map(Value::String).collect())
                } else {
                    Value::String(v)
                };
                set_path(&mut root, kd.key, value);
            }
        }
        unknown_keys(&root, "", &mut problems);
        Reader {
            root,
            problems,
            base,
        }
    }

    /// A reader of YAML text alone, for the sections' unit tests.
    #[cfg(test)]
    pub(super) fn from_text(yaml: &str) -> Reader {
        let root: Value = serde_yaml::from_str(yaml).expect("test YAML");
        let mut problems = Vec::new();
        unknown_keys(&root, "", &mut problems);
        Reader {
            root,
            problems,
            base: PathBuf::from("."),
        }
    }

    pub(super) fn problem(&mut self, key: &str, reason: impl Into<String>) {
        self.problems.push(problem(key, reason));
    }

    /// The value at a dotted key; an explicit `null` counts as absent.
    pub(super) fn raw(&self, key: &str) -> Option<&Value> {
        let mut cur = &self.root;
        for part in key.split('.') {
            cur = cur.as_mapping()?.get(part)?;
        }
        if cur.is_null() { None } else { Some(cur) }
    }

    /// A single value as a string (numbers and booleans accepted), trimmed;
    /// the key's default when absent; a list or mapping is a problem.
    pub(super) fn string(&mut self, key: &str) -> String {
        match self.raw(key) {
            None => default_of(key).to_string(),
            Some(Value::String(s)) => s.trim().to_string(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(_) => {
                self.problem(key, "must be a single value");
                String::new()
            }
        }
    }

    /// [`string`](Self::string), `None` when empty.
    pub(super) fn optional(&mut self, key: &str) -> Option<String> {
        Some(self.string(key)).filter(|s| !s.is_empty())
    }

    pub(super) fn required(&mut self, key: &str) -> String {
        let s = self.string(key);
        if s.is_empty() {
            self.problem(key, "is required");
        }
        s
    }

    /// A list of non-empty strings: a YAML sequence, or one comma-separated
    /// string (as the environment gives it); the default when absent.
    pub(super) fn list(&mut self, key: &str) -> Vec<String> {
        let items = match self.raw(key) {
            None => return comma_list(default_of(key)).collect(),
            Some(Value::String(s)) => return comma_list(s).collect(),
            Some(Value::Sequence(items)) => items.clone(),
            Some(_) => {
                self.problem(key, "must be a list");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for item in items {
            match item.as_str().map(str::trim) {
                Some(s) if !s.is_empty() => out.push(s.to_string()),
                _ => self.problem(key, "items must be non-empty strings"),
            }
        }
        out
    }

    /// A duration like `60s`, `5m` or `7d`, at least `min` (and never zero).
    pub(super) fn duration(&mut self, key: &str, min: Duration) -> Duration {
        let min = min.max(Duration::from_nanos(1));
        let s = self.string(key);
        match humantime::parse_duration(&s) {
            Ok(d) if d >= min => d,
            Ok(_) if min == Duration::from_nanos(1) => {
                self.problem(key, "must be longer than zero");
                Duration::from_secs(1)
            }
            Ok(_) => {
                self.problem(
                    key,
                    format!("must be at least {}", humantime::format_duration(min)),
                );
                min
            }
            Err(e) => {
                self.problem(
                    key,
                    format!("'{s}' is not a duration like 60s, 5m or 7d ({e})"),
                );
                min.max(Duration::from_secs(1))
            }
        }
    }

    /// A duration of at most `max` (a documented limit, not a default).
    pub(super) fn duration_at_most(&mut self, key: &str, max: Duration) -> Duration {
        let d = self.duration(key, Duration::ZERO);
        if d > max {
            self.problem(key, format!("must be at most {}s", max.as_secs()));
        }
        d
    }

    /// A listen address like `127.0.0.1:8080`; `None` when empty and
    /// `optional`, or when it does not parse (reported).
    pub(super) fn addr(&mut self, key: &str, optional: bool) -> Option<SocketAddr> {
        let s = self.string(key);
        if s.is_empty() && optional {
            return None;
        }
        match s.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.problem(key, format!("'{s}' is not an address like 127.0.0.1:8080"));
                None
            }
        }
    }

    /// A TCP port, 1 to 65535.
    pub(super) fn port(&mut self, key: &str) -> u16 {
        let s = self.string(key);
        self.parse_port(key, &s)
    }

    /// A port that may be left empty (the feature it serves is off).
    pub(super) fn optional_port(&mut self, key: &str) -> Option<u16> {
        let s = self.string(key);
        (!s.is_empty()).then(|| self.parse_port(key, &s))
    }

    fn parse_port(&mut self, key: &str, s: &str) -> u16 {
        match s.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                self.problem(key, format!("'{s}' is not a port number"));
                1
            }
        }
    }

    /// A whole number from 0 to `max`.
    pub(super) fn count(&mut self, key: &str, max: u32) -> u32 {
        let s = self.string(key);
        match s.parse::<u32>() {
            Ok(n) if n <= max => n,
            _ => {
                self.problem(key, format!("'{s}' is not a whole number from 0 to {max}"));
                0
            }
        }
    }

    /// One of `choices` (`(spelling, value)`); `fallback` when it is none
    /// of them (reported with every spelling).
    pub(super) fn one_of<T: Copy>(&mut self, key: &str, choices: &[(&str, T)], fallback: T) -> T {
        let s = self.string(key);
        if let Some((_, v)) = choices.iter().find(|(name, _)| *name == s) {
            return *v;
        }
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        let spelled = match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.concat(),
        };
        self.problem(key, format!("'{s}' must be {spelled}"));
        fallback
    }

    /// A lower-case host name (no scheme, port or path); required.
    pub(super) fn host(&mut self, key: &str) -> String {
        let s = self.required(key).to_ascii_lowercase();
        if !s.is_empty() && !crate::dns::is_dns_name(&s) {
            self.problem(
                key,
                format!("'{s}' is not a host name (no scheme, port or path)"),
            );
        }
        s
    }

    /// A Kubernetes object or namespace name (DNS-1123 label).
    pub(super) fn name(&mut self, key: &str, required: bool) -> Option<String> {
        let s = self.string(key);
        if s.is_empty() {
            if required {
                self.problem(key, "is required");
            }
            return None;
        }
        if !crate::dns::is_dns_label(&s) {
            self.problem(
                key,
                format!(
                    "'{s}' is not a Kubernetes name (lower-case letters, digits, '-', at most 63)"
                ),
            );
        }
        Some(s)
    }

    /// An annotation or label key like `example.com/name`.
    pub(super) fn annotation_key(&mut self, key: &str) -> String {
        let s = self.string(key);
        if !crate::dns::is_qualified_name(&s) {
            self.problem(
                key,
                format!("'{s}' is not an annotation key like example.com/name"),
            );
        }
        s
    }

    /// A path from the configuration, relative to the file's folder.
    pub(super) fn path(&self, s: &str) -> PathBuf {
        let p = PathBuf::from(s);
        if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        }
    }

    /// The trimmed content of the file a required key names.
    pub(super) fn secret_file(&mut self, key: &str) -> String {
        let s = self.required(key);
        if s.is_empty() {
            return s;
        }
        let p = self.path(&s);
        match crate::files::read_text(&p, crate::files::SMALL) {
            Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
            Ok(_) => {
                self.problem(key, format!("{} is empty", p.display()));
                String::new()
            }
            Err(e) => {
                self.problem(key, format!("cannot read {}: {e}", p.display()));
                String::new()
            }
        }
    }
}

fn comma_list(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn parent(p: &Path) -> PathBuf {
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn set_path(root: &mut Value, dotted: &str, value: Value) {
    let mut cur = root;
    let parts: Vec<&str> = dotted.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_mapping() {
            *cur = Value::Mapping(Default::default());
        }
        let map = cur.as_mapping_mut().expect("just made a mapping");
        let key = Value::String(part.to_string());
        if i == parts.len() - 1 {
            map.insert(key, value);
            return;
        }
        cur = map
            .entry(key)
            .or_insert_with(|| Value::Mapping(Default::default()));
    }
}

/// Every key of the tree that the table does not list, and every section
/// that is not a mapping.
fn unknown_keys(v: &Value, prefix: &str, problems: &mut Vec<Problem>) {
    let Some(map) = v.as_mapping() else {
        if !v.is_null() {
            problems.push(problem(prefix, "must be a mapping"));
        }
        return;
    };
    for (k, child) in map {
        let Some(name) = k.as_str() else {
            problems.push(problem(prefix, "keys must be strings"));
            continue;
        };
        let full = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        };
        if KEYS.iter().any(|kd| kd.key == full) {
            continue;
        }
        let section = format!("{full}.");
        if KEYS.iter().any(|kd| kd.key.starts_with(&section)) {
            unknown_keys(child, &full, problems);
        } else {
            problems.push(problem(&full, "unknown key"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(r: Reader) -> Vec<(String, String)> {
        r.problems.into_iter().map(|p| (p.key, p.reason)).collect()
    }

    #[test]
    fn lists_read_the_same_in_every_section() {
        for (yaml, want) in [
            ("oidc: {scopes: [openid, ' api ']}", vec!["openid", "api"]),
            ("oidc: {scopes: 'openid, api,'}", vec!["openid", "api"]),
            ("oidc: {}", vec!["openid", "profile", "read_api"]),
        ] {
            let mut r = Reader::from_text(yaml);
            assert_eq!(r.list("oidc.scopes"), want, "{yaml}");
            assert!(r.problems.is_empty(), "{yaml}");
        }
        for key in ["oidc.scopes", "discovery.namespaces"] {
            let (section, leaf) = key.split_once('.').unwrap();
            let mut r = Reader::from_text(&format!("{section}: {{{leaf}: [a, '', 3]}}"));
            assert_eq!(r.list(key), vec!["a"]);
            assert_eq!(
                problems(r),
                vec![
                    (
                        key.to_string(),
                        "items must be non-empty strings".to_string()
                    );
                    2
                ]
            );
        }
    }

    #[test]
    fn durations_have_one_syntax_and_a_floor() {
        let mut r = Reader::from_text("session: {pass_ttl: 0s, login_ttl: soon}");
        assert_eq!(
            r.duration("session.pass_ttl", Duration::ZERO),
            Duration::from_secs(1)
        );
        r.duration("session.login_ttl", Duration::ZERO);
        let mut r2 = Reader::from_text("discovery: {lease_duration: 500ms}");
        assert_eq!(
            r2.duration("discovery.lease_duration", Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        let p = problems(r);
        assert_eq!(
            p[0],
            ("session.pass_ttl".into(), "must be longer than zero".into())
        );
        assert!(p[1].1.contains("is not a duration like 60s"), "{p:?}");
        assert_eq!(
            problems(r2),
            [(
                "discovery.lease_duration".into(),
                "must be at least 1s".into()
            )]
        );
    }

    #[test]
    fn a_choice_names_every_spelling() {
        let mut r = Reader::from_text("log: {format: xml}");
        let json = r.one_of("log.format", &[("json", 1), ("text", 2)], 1);
        assert_eq!(json, 1);
        assert_eq!(
            problems(r),
            [("log.format".into(), "'xml' must be json or text".into())]
        );
    }

    #[test]
    fn a_section_that_is_not_a_mapping_is_named() {
        let r = Reader::from_text("oidc: nope\nrouting: [a]\nlisten: {http: x, typo: 1}");
        let p = problems(r);
        assert!(
            p.contains(&("oidc".into(), "must be a mapping".into())),
            "{p:?}"
        );
        assert!(
            p.contains(&("routing".into(), "must be a mapping".into())),
            "{p:?}"
        );
        assert!(
            p.contains(&("listen.typo".into(), "unknown key".into())),
            "{p:?}"
        );
    }

    #[test]
    fn the_environment_overrides_the_file_key_by_key() {
        let dir = std::env::temp_dir().join(format!("wg-reader-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("gate.yaml");
        std::fs::write(&f, "oidc: {client_id: file, scopes: [openid]}\n").unwrap();
        let env = |k: &str| match k {
            "WORKSPACE_GATE_OIDC_CLIENT_ID" => Some("env".to_string()),
            "WORKSPACE_GATE_DISCOVERY_NAMESPACES" => Some("a, b".to_string()),
            _ => None,
        };
        let mut r = Reader::new(Some(&f), &env);
        assert_eq!(r.string("oidc.client_id"), "env");
        assert_eq!(r.list("oidc.scopes"), ["openid"]);
        assert_eq!(r.list("discovery.namespaces"), ["a", "b"]);
        assert_eq!(r.path("ws.yaml"), dir.join("ws.yaml"));
        assert!(r.problems.is_empty());
    }
}
