//! Repository hygiene: every Rust module starts with a `//!` line saying what
//! lives there, and the domain folders know nothing of the transport.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_starts_with_a_doc_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches"] {
        if root.join(dir).exists() {
            rust_files(&root.join(dir), &mut files);
        }
    }
    files.push(root.join("build.rs"));
    let missing: Vec<String> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .map(|f| f.strip_prefix(root).unwrap().display().to_string())
        .collect();
    assert!(files.len() > 10);
    assert!(
        missing.is_empty(),
        "modules without a //! line: {missing:?}"
    );
}

/// The folders that hold the domain: matching, roster and tickets must not
/// know how they are called (ARCHITECTURE.md, "Architecture invariants").
const DOMAIN: [&str; 9] = [
    "src/model",
    "src/reading",
    "src/roster",
    "src/search",
    "src/matching",
    "src/tickets",
    "src/knowledge",
    "src/store",
    "src/photos",
];

/// Names that only the transport folders (`grpc`, `server`, `cli`) may use.
const TRANSPORT: [&str; 5] = ["tonic", "http::", "hyper", "tower", "crate::pb"];

#[test]
fn the_domain_folders_do_not_name_the_transport() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in DOMAIN {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 10, "the domain folders moved: {files:?}");
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if let Some(name) = TRANSPORT.iter().find(|t| code.contains(*t)) {
                let file = file.strip_prefix(root).unwrap().display();
                found.push(format!("{file}:{}: {name}", n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "transport names in the domain: {found:#?}"
    );
}
