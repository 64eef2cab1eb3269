//! Cookie header parsing: find the gate's cookies, and remove them from the
//! header that reaches the workspace.

/// Values of every cookie called `name` (a browser may send several).
pub fn values<'a>(header: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    header.split(';').filter_map(move |pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// The header without any cookie whose name starts with `prefix`; `None`
/// when nothing is left.
pub fn strip_prefixed(header: &str, prefix: &str) -> Option<String> {
    let mut out = String::with_capacity(header.len());
    for pair in header.split(';') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let name = pair.split_once('=').map_or(pair, |(k, _)| k).trim();
        if name.starts_with(prefix) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(pair);
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_only_gate_cookies() {
        let h = "a=1; __Host-workspace-gate-pass=xyz;b=2 ; __Host-workspace-gate-login=q";
        assert_eq!(
            strip_prefixed(h, "__Host-workspace-gate-").as_deref(),
            Some("a=1; b=2")
        );
        assert_eq!(
            strip_prefixed("__Host-workspace-gate-pass=1", "__Host-workspace-gate-"),
            None
        );
    }

    #[test]
    fn finds_every_value_of_a_name() {
        let v: Vec<_> = values("p=1; q=2; p=3", "p").collect();
        assert_eq!(v, ["1", "3"]);
    }
}
