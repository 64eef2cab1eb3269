//! GitLab's host template: `{{.port}}-<workspace-name>.<dns_zone>`, rendered
//! once per Service port with the port's target port.

/// Renders `template` for `port`. The only placeholder GitLab's agent writes
/// is `{{.port}}` (spaces inside the braces are tolerated).
pub(crate) fn render(template: &str, port: u16) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() + 5);
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or(TemplateError::Unclosed)?;
        let name = after[..close].trim();
        if name != ".port" {
            return Err(TemplateError::UnknownPlaceholder(name.to_string()));
        }
        out.push_str(&port.to_string());
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    let host = out.to_ascii_lowercase();
    if !is_dns_name(&host) {
        return Err(TemplateError::NotAHost(host));
    }
    Ok(host)
}

pub(crate) use crate::dns::is_dns_name;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("a '{{{{' is not closed")]
    Unclosed,
    #[error("unknown placeholder '{0}' (only {{{{.port}}}} is supported)")]
    UnknownPlaceholder(String),
    #[error("'{0}' is not a valid host name")]
    NotAHost(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_gitlab_template_per_port() {
        assert_eq!(
            render("{{.port}}-ws-1.workspaces.test", 60001).unwrap(),
            "60001-ws-1.workspaces.test"
        );
        assert_eq!(
            render("{{ .port }}-WS.example.dev", 3000).unwrap(),
            "3000-ws.example.dev"
        );
    }

    #[test]
    fn rejects_unknown_placeholders_and_bad_hosts() {
        assert!(render("{{.name}}.x", 1).is_err());
        assert!(render("{{.port}", 1).is_err());
        assert!(render("a b.{{.port}}", 1).is_err());
    }
}
