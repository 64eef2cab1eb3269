//! The README documents every configuration key, with its environment
//! variable.

use workspace_gate::config::KEYS;

#[test]
fn readme_documents_every_config_key() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let missing: Vec<&str> = KEYS
        .iter()
        .filter(|k| {
            !readme.contains(&format!("| `{}` |", k.key))
                || !readme.contains(&format!("`{}`", k.env_name()))
        })
        .map(|k| k.key)
        .collect();
    assert!(
        missing.is_empty(),
        "README lacks {missing:?}; regenerate the table with scripts/config-table.py"
    );
}
