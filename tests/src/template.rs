//! `template.yaml`, read as text the way the tests need it: a layout change that hides
//! something makes the checks that use these readers fail, not pass.

use std::collections::BTreeMap;

/// The template's text.
pub fn text() -> String {
    std::fs::read_to_string(format!("{}/../template.yaml", env!("CARGO_MANIFEST_DIR")))
        .expect("template.yaml")
}

/// The environment variables of `Globals.Function` (under `""`) and of each function's own
/// `Environment` block (under its binary name), as `(name, value as written)`.
pub fn environment(template: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut variables: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut owner: Option<String> = None;
    let mut entries_indent: Option<usize> = None;
    for line in template.lines() {
        let trimmed = line.trim();
        let indent = line.len() - line.trim_start().len();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line == "Globals:" {
            owner = Some(String::new());
        } else if let Some(binary) = trimmed.strip_prefix("Binary:") {
            owner = Some(binary.trim().to_owned());
            variables.entry(binary.trim().to_owned()).or_default();
        }
        match entries_indent {
            Some(at) if indent == at => {
                if let (Some(owner), Some((name, value))) = (&owner, trimmed.split_once(':')) {
                    variables
                        .entry(owner.clone())
                        .or_default()
                        .push((name.to_owned(), value.trim().to_owned()));
                }
                continue;
            }
            Some(at) if indent > at => continue,
            _ => entries_indent = None,
        }
        if trimmed == "Variables:" && owner.is_some() {
            entries_indent = Some(indent + 2);
        }
    }
    variables
}
