//! The import rule of ARCHITECTURE.md, checked: every top-level module of `src/` sits on a
//! layer, and no module's code (tests aside) names a module on a layer above its own. A new
//! module fails this test until it is given a layer here and in ARCHITECTURE.md.

use std::collections::BTreeMap;
use std::path::Path;

/// Bottom first. A module may use modules of its own layer or below.
const LAYERS: &[&[&str]] = &[
    &["domain", "bayeux", "password"],
    &["probe", "pem"],
    &["config"],
    &[
        "metrics",
        "resource",
        "instances",
        "throttle",
        "tls",
        "logging",
        "client_errors",
    ],
    &["snapshot", "monitor", "auth", "history", "cluster"],
    &["registry"],
    &["notify", "admin"],
    &["api"],
    &["daemon", "standin"],
    &["lifecycle", "demo"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The top-level module a source file belongs to (`src/registry/mod.rs` -> `registry`).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_string()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The `crate::x` modules that `code` names, outside comments and test modules.
fn imports(code: &str) -> Vec<String> {
    let code = code.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = Vec::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                found.push(name);
            }
        }
    }
    found
}

#[test]
fn no_module_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            panic!("module `{module}` has no layer: add it to LAYERS and to ARCHITECTURE.md");
        };
        for import in imports(&std::fs::read_to_string(file).unwrap()) {
            let theirs = layer_of(&import)
                .unwrap_or_else(|| panic!("{}: `crate::{import}` has no layer", file.display()));
            if theirs > own {
                wrong
                    .entry(file.strip_prefix(&src).unwrap().display().to_string())
                    .or_insert_with(Vec::new)
                    .push(import);
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that run up the layers: {wrong:?}"
    );
}

#[test]
fn the_scanner_sees_imports_and_skips_comments_and_tests() {
    let code = "use crate::registry::Registry;\n// crate::api is only mentioned\nlet x = crate::metrics::Metrics::new();\n#[cfg(test)]\nuse crate::daemon;";
    assert_eq!(imports(code), ["registry", "metrics"]);
}
