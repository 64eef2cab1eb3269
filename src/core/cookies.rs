//! Cookie header parsing: find the gate's cookies, and remove them from the
//! header that reaches the workspace.

use std::borrow::Cow;

/// A `Cookie` header's bytes as text, without the pairs that are not
/// UTF-8. Browsers send what pages set, `name=José` included; a pair a
/// workspace app (or a hostile page on a sibling host) set with bytes that
/// are not text must cost only that pair, never the gate's own cookies in
/// the same header. Borrowed when the whole header is text.
pub(crate) fn header_text(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(bytes.len());
    for pair in bytes.split(|b| *b == b';') {
        let Ok(pair) = std::str::from_utf8(pair) else {
            continue;
        };
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(pair);
    }
    Cow::Owned(out)
}

/// Values of every cookie called `name` (a browser may send several).
pub(crate) fn values<'a>(header: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    header.split(';').filter_map(move |pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// The header without any cookie whose name starts with `prefix`; `None`
/// when nothing is left.
pub(crate) fn strip_prefixed(header: &str, prefix: &str) -> Option<String> {
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
    fn pairs_that_are_not_text_cost_only_themselves() {
        // UTF-8 outside ASCII is text: the whole header is kept as it is.
        let h = "name=Jos\u{e9}; __Host-workspace-gate-pass=p";
        assert_eq!(header_text(h.as_bytes()), h);
        let v: Vec<_> = values(&header_text(h.as_bytes()), "__Host-workspace-gate-pass")
            .map(str::to_string)
            .collect();
        assert_eq!(v, ["p"]);
        // A Latin-1 byte is not: only its pair goes.
        let h = b"x=caf\xe9; __Host-workspace-gate-pass=p;y=2";
        assert_eq!(header_text(h), "__Host-workspace-gate-pass=p; y=2");
        assert_eq!(header_text(b"\xff"), "");
    }

    #[test]
    fn finds_every_value_of_a_name() {
        let v: Vec<_> = values("p=1; q=2; p=3", "p").collect();
        assert_eq!(v, ["1", "3"]);
    }
}
