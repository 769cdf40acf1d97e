//! The import rules of ARCHITECTURE.md, checked: every top-level module of `src/` sits on a
//! layer, and no module's code (tests aside) names a module on a layer above its own; and no
//! two files import each other, directly or through others. A new module fails this test
//! until it is given a layer here and in ARCHITECTURE.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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
    &[
        "snapshot", "monitor", "auth", "history", "cluster", "alerts",
    ],
    &["registry"],
    &["notify", "admin"],
    &["api"],
    &["daemon", "standin", "control"],
    &["lifecycle", "demo", "cli"],
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

/// A file's module path (`src/registry/hub.rs` -> `registry::hub`, `src/registry/mod.rs` ->
/// `registry`); empty for `lib.rs` and `main.rs`, the roots.
fn module_path(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let path = parts.join("::");
    let path = path.strip_suffix("::mod").unwrap_or(&path);
    match path {
        "lib" | "main" => String::new(),
        _ => path.to_string(),
    }
}

/// The `crate::` paths `code` names outside comments and its unit-test module, a group
/// (`crate::a::{b, c::D}`) giving one path per member (`a::b`, `a::c::D`).
fn crate_paths(code: &str) -> Vec<String> {
    let code = match code.find("#[cfg(test)]\nmod tests") {
        Some(at) => &code[..at],
        None => code,
    };
    let is_path = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut found = Vec::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or_default();
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let end = rest.find(|c| !is_path(c)).unwrap_or(rest.len());
            let base = rest[..end].trim_end_matches(':');
            found.push(base.to_string());
            if rest[end..].starts_with('{') && rest[..end].ends_with("::") {
                let group = &rest[end + 1..];
                let group = &group[..group.find('}').unwrap_or(group.len())];
                for member in group.split(',') {
                    let member = member.trim();
                    let end = member.find(|c| !is_path(c)).unwrap_or(member.len());
                    if end > 0 {
                        found.push(format!("{base}::{}", &member[..end]));
                    }
                }
            }
        }
    }
    found
}

/// The file-level import graph of `src/`: each file's module path to those it imports.
fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeMap<String, PathBuf> = files
        .into_iter()
        .map(|file| (module_path(src, &file), file))
        .collect();
    // The longest module that a path starts with (`registry::hub::Hub` -> `registry::hub`).
    let resolve = |path: &str| {
        let mut parts: Vec<&str> = path.split("::").collect();
        while !parts.is_empty() {
            let candidate = parts.join("::");
            if modules.contains_key(&candidate) {
                return Some(candidate);
            }
            parts.pop();
        }
        None
    };
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let code = std::fs::read_to_string(file).unwrap();
        let targets = crate_paths(&code)
            .iter()
            .filter_map(|path| resolve(path))
            .filter(|target| target != module && !target.is_empty())
            .collect();
        graph.insert(module.clone(), targets);
    }
    graph
}

/// The groups of two or more modules that reach one another (Tarjan's strongly connected
/// components).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Search<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Search<'g> {
        fn visit(&mut self, v: &'g str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut search = Search {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !search.index.contains_key(v.as_str()) {
            search.visit(v);
        }
    }
    search.found
}

#[test]
fn no_files_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = import_graph(&src);
    assert!(graph.len() > 100, "the walk found {} files", graph.len());
    assert!(
        graph["registry"].contains("snapshot"),
        "the scanner misses imports"
    );
    let found = cycles(&graph);
    assert!(found.is_empty(), "files that import each other: {found:?}");
}

#[test]
fn the_cycle_finder_sees_cycles_and_groups() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a", "d"]),
        ("d", vec![]),
        ("e", vec!["d"]),
    ]
    .into_iter()
    .map(|(v, ws)| (v.to_string(), ws.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(cycles(&graph), [["a", "b", "c"]]);
    let code = "use crate::registry::{hub::Hub, Ping};\n// crate::api\nlet m = crate::metrics::Metrics::new();\n#[cfg(test)]\nmod tests {\nuse crate::daemon;\n}";
    assert_eq!(
        crate_paths(code),
        [
            "registry",
            "registry::hub::Hub",
            "registry::Ping",
            "metrics::Metrics::new"
        ]
    );
}
