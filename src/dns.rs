//! DNS name syntax, shared by configuration, the core and the workspace
//! model. A leaf: no crate imports.

/// True for a syntactically valid lower-case DNS name (labels of a-z, 0-9, '-').
pub(crate) fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && (!l.starts_with("xn--") || is_a_label(l))
        })
}

/// DNS-1123 label: what Kubernetes accepts as a namespace or Service name.
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `[prefix/]name` as Kubernetes accepts for label and annotation keys.
pub(crate) fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    let prefix_ok = prefix.is_none_or(is_dns_name);
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    prefix_ok && name_ok
}

/// An `xn--` label that browsers will parse: it decodes (Punycode, IDNA
/// 2008 rules as browsers apply them) to a Unicode label that encodes back
/// to exactly this label. `xn--c` and the like do not, and a login landing
/// on such a host would end on a URL the browser refuses.
fn is_a_label(label: &str) -> bool {
    let (unicode, decoded) = idna::domain_to_unicode(label);
    decoded.is_ok()
        && unicode != label
        && idna::domain_to_ascii(&unicode).is_ok_and(|ascii| ascii == label)
}
