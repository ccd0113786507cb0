//! The check that keeps a generated file (`docs/fields.md`, `client/src/types.d.ts`) equal to
//! what the code generates.

/// Fails when the file at `path` (from the repository root) differs from `text`; with
/// `UPDATE_DOCS` set, rewrites it instead.
pub fn keep_equal(path: &str, text: &str) {
    let full = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
    if std::fs::read_to_string(&full).unwrap_or_default() == text {
        return;
    }
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&full, text).unwrap();
    } else {
        panic!("{path} is stale: rerun with UPDATE_DOCS=1");
    }
}
