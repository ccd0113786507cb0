//! The documentation's tables say what the code does: the route table of `docs/api.md` is the
//! route table of the code, the README's configuration table names exactly the settings the
//! code reads, and `docs/deploy.md` gives each function the variables `template.yaml` does.

use std::collections::BTreeSet;

use adsync::http::Route;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The backquoted words of each cell of each row of the Markdown table that follows
/// `heading` in `text`.
fn rows(text: &str, heading: &str) -> Vec<Vec<Vec<String>>> {
    let after = text
        .split_once(heading)
        .unwrap_or_else(|| panic!("no `{heading}`"))
        .1;
    after
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|row| {
            row.split('|')
                .skip(1)
                .map(|cell| {
                    cell.split('`')
                        .skip(1)
                        .step_by(2)
                        .map(str::to_owned)
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// The backquoted words of the first cell of each row of the Markdown table that follows
/// `heading` in `text`.
fn first_cells(text: &str, heading: &str) -> Vec<String> {
    rows(text, heading)
        .into_iter()
        .filter_map(|cells| cells.into_iter().next())
        .flatten()
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

#[test]
fn the_deploy_guide_gives_each_function_the_variables_the_template_does() {
    let deploy = read("docs/deploy.md");
    let environment =
        integration_tests::template::environment(&integration_tests::template::text());
    let names = |vars: &[(String, String)]| -> BTreeSet<String> {
        vars.iter().map(|(name, _)| name.clone()).collect()
    };
    let documented: std::collections::BTreeMap<String, BTreeSet<String>> =
        rows(&deploy, "Each function's own variables")
            .into_iter()
            .map(|cells| {
                let function = cells[0].first().cloned().unwrap_or_default();
                (function, cells[1].iter().cloned().collect())
            })
            .collect();
    let templated: std::collections::BTreeMap<String, BTreeSet<String>> = environment
        .iter()
        .filter(|(owner, _)| !owner.is_empty())
        .map(|(owner, vars)| (owner.clone(), names(vars)))
        .collect();
    assert_eq!(
        documented, templated,
        "docs/deploy.md's table of each function's variables"
    );
    // The Globals, named in the paragraph before the table.
    let globals = deploy
        .split_once("Environment variables every function gets")
        .and_then(|(_, rest)| rest.split_once("Each function's own variables"))
        .map(|(paragraph, _)| paragraph)
        .expect("the paragraph on the Globals");
    for name in names(&environment[""]) {
        assert!(
            globals.contains(&format!("`{name}`")) || globals.contains(&format!("`{name}=")),
            "docs/deploy.md does not name the global {name}"
        );
    }
}

#[test]
fn the_docs_give_the_functions_the_timeouts_the_code_has() {
    let deploy = read("docs/deploy.md");
    let ai = read("docs/ai.md");
    let default = Route::ListBusinesses.timeout().as_secs();
    assert!(
        deploy.contains(&format!("Timeouts: {default} s for every function except")),
        "docs/deploy.md's default timeout"
    );
    let longer = Route::ALL
        .into_iter()
        .filter(|r| r.timeout().as_secs() != default)
        .map(|r| (r.function(), r.timeout().as_secs()))
        .chain(std::iter::once((
            "sweep-stuck",
            adsync::lambda::SWEEP_TIMEOUT.as_secs(),
        )));
    for (function, secs) in longer {
        assert!(
            deploy.contains(&format!("`{function}` ({secs} s")),
            "docs/deploy.md: {function} has {secs} s"
        );
        assert!(
            ai.lines().any(|l| l.contains(&format!("`{function}`:"))
                && l.contains(&format!("timeout {secs} s"))),
            "docs/ai.md: {function} has {secs} s"
        );
    }
}
