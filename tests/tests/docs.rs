//! The documentation's tables say what the code does: the route table of `docs/api.md` is the
//! route table of the code, and the README's configuration table names exactly the settings
//! the code reads.

use std::collections::BTreeSet;

use adsync::http::Route;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The backquoted words of the first cell of each row of the Markdown table that follows
/// `heading` in `text`.
fn first_cells(text: &str, heading: &str) -> Vec<String> {
    let after = text
        .split_once(heading)
        .unwrap_or_else(|| panic!("no `{heading}`"))
        .1;
    after
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .filter_map(|row| row.split('|').nth(1))
        .flat_map(|cell| {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_api_route_table_is_the_codes() {
    let documented: BTreeSet<String> = first_cells(&read("docs/api.md"), "## Routes")
        .into_iter()
        .map(|route| {
            route
                .split(['?', ' '])
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let routes: BTreeSet<String> = Route::ALL
        .iter()
        .map(|r| {
            let (method, path) = r.key();
            format!("{method} {path}")
        })
        .collect();
    assert_eq!(documented, routes, "docs/api.md's route table");
}

/// Every setting name the code reads: the upper-case string literals of the modules that
/// read the environment.
fn settings_read_by_the_code() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for module in ["shared/src/config.rs", "shared/src/telemetry.rs"] {
        let source = read(module);
        for literal in source.split('"').skip(1).step_by(2) {
            let is_name = literal.len() > 3
                && literal.starts_with(|c: char| c.is_ascii_uppercase())
                && literal
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if is_name {
                names.insert(literal.to_owned());
            }
        }
    }
    names
}

#[test]
fn the_readme_configuration_table_names_every_setting_the_code_reads() {
    let documented: BTreeSet<String> = first_cells(
        &read("README.md"),
        "## Configuration (environment of the functions)",
    )
    .into_iter()
    .map(|cell| cell.split('=').next().unwrap_or_default().to_owned())
    .collect();
    let read_by_code = settings_read_by_the_code();
    let undocumented: Vec<_> = read_by_code.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&read_by_code).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "read but not in the README: {undocumented:?}; in the README but not read: {unknown:?}"
    );
}
