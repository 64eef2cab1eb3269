//! DNS name syntax, shared by configuration, the core and the workspace
//! model. A leaf: no crate imports.

/// True for a syntactically valid lower-case DNS name (labels of a-z, 0-9, '-').
pub fn is_dns_name(host: &str) -> bool {
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
