//! What ARCHITECTURE.md and the crate map in `lib.rs` state, checked, so that a change that
//! makes them untrue fails here rather than misleading the next reader:
//!
//! - every "Architecture invariant" grep the document gives is run (read from the
//!   document itself, so a new one is run as soon as it is written) and finds nothing;
//! - the middleware order it gives is the order `api::app::app` wraps;
//! - every file, folder and `module::item` it names exists;
//! - the crate map names every module `lib.rs` declares.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The spans of `text` between backticks.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

// ---- The invariant greps ----

/// One `grep -rn[E] 'PATTERN' DIR` of the document: what it looks for, as the literal
/// strings its pattern matches, and where.
#[derive(Debug)]
struct Grep {
    command: String,
    dir: String,
    literals: Vec<String>,
}

/// Every `grep -r...` command ARCHITECTURE.md gives in backticks.
fn documented_greps() -> Vec<Grep> {
    let doc = read("ARCHITECTURE.md");
    // A command may wrap onto the next line of the document.
    let doc = doc.replace("\n  ", " ");
    backticked(&doc)
        .into_iter()
        .filter(|span| span.starts_with("grep -r"))
        .map(parse_grep)
        .collect()
}

fn parse_grep(command: &str) -> Grep {
    let (flags, rest) = command["grep ".len()..]
        .split_once(" '")
        .unwrap_or_else(|| panic!("{command}: expected grep -FLAGS 'PATTERN' DIR"));
    let (pattern, dir) = rest
        .rsplit_once("' ")
        .unwrap_or_else(|| panic!("{command}: expected grep -FLAGS 'PATTERN' DIR"));
    Grep {
        command: command.to_string(),
        dir: dir.trim().to_string(),
        literals: literals(pattern, flags.contains('E')),
    }
}

/// The strings a grep pattern made of alternatives and groups of literals matches:
/// `a|b(c|d)` (extended) or `a\|b` (basic) -> `a`, `bc`, `bd`, `b`. Any other operator is
/// refused, so that this test never checks less than the document says.
fn literals(pattern: &str, extended: bool) -> Vec<String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Token {
        Char(char),
        Or,
        Open,
        Close,
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        let token = match (c, extended) {
            ('\\', true) => Token::Char(chars.next().expect("an escaped character")),
            ('\\', false) => match chars.next() {
                Some('|') => Token::Or,
                Some('(') => Token::Open,
                Some(')') => Token::Close,
                Some(other) => Token::Char(other),
                None => panic!("{pattern}: ends with a backslash"),
            },
            ('|', true) => Token::Or,
            ('(', true) => Token::Open,
            (')', true) => Token::Close,
            _ => Token::Char(c),
        };
        if let Token::Char(c) = token {
            assert!(
                !".*+?[]{}^$".contains(c) || pattern.contains(&format!("\\{c}")),
                "{pattern}: only alternatives of literals are understood here"
            );
        }
        tokens.push(token);
    }
    // Alternatives of sequences; a group is expanded in place.
    fn alternatives(tokens: &[Token], at: &mut usize) -> Vec<String> {
        let mut all = Vec::new();
        let mut current = vec![String::new()];
        while *at < tokens.len() {
            let token = tokens[*at];
            *at += 1;
            match token {
                Token::Char(c) => current.iter_mut().for_each(|s| s.push(c)),
                Token::Open => {
                    let inner = alternatives(tokens, at);
                    current = current
                        .iter()
                        .flat_map(|head| inner.iter().map(move |tail| format!("{head}{tail}")))
                        .collect();
                }
                Token::Close => break,
                Token::Or => all.append(&mut std::mem::replace(&mut current, vec![String::new()])),
            }
        }
        all.append(&mut current);
        all
    }
    alternatives(&tokens, &mut 0)
}

/// Each line of the files under `dir` that holds one of `literals`, as `file:line: text`.
fn matching_lines(dir: &Path, literals: &[String]) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if literals.iter().any(|l| line.contains(l.as_str())) {
                found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn every_invariant_grep_of_the_architecture_finds_nothing() {
    let greps = documented_greps();
    assert!(
        greps.len() >= 3,
        "the document's greps were not found: {greps:?}"
    );
    for grep in greps {
        let dir = root().join(&grep.dir);
        assert!(dir.is_dir(), "{}: no folder {}", grep.command, grep.dir);
        let found = matching_lines(&dir, &grep.literals);
        assert!(
            found.is_empty(),
            "`{}` finds:\n{}",
            grep.command,
            found.join("\n")
        );
    }
}

#[test]
fn the_grep_reader_understands_the_documents_patterns() {
    let domain = parse_grep(r"grep -rnE 'tokio|actix|std::(net|fs)|::now\(\)|serde' src/domain");
    assert_eq!(domain.dir, "src/domain");
    assert_eq!(
        domain.literals,
        ["tokio", "actix", "std::net", "std::fs", "::now()", "serde"]
    );
    let wire = parse_grep(r"grep -rn 'Serialize\|Deserialize' src/domain");
    assert_eq!(wire.literals, ["Serialize", "Deserialize"]);
    // And a file that breaks one is found.
    let dir = std::env::temp_dir().join(format!("invariants-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("clock.rs"),
        "fn f() {\n    let t = Instant::now();\n}\n",
    )
    .unwrap();
    let found = matching_lines(&dir, &domain.literals);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].ends_with("clock.rs:2: let t = Instant::now();"));
}

// ---- The middleware order ----

/// The middleware modules `api::app::app` wraps, outermost (the last `.wrap`) first.
fn wrapped_by_the_app() -> Vec<String> {
    let code = read("src/api/app.rs");
    let mut layers: Vec<String> = code
        .lines()
        .filter_map(|line| {
            let call = line.trim().strip_prefix(".wrap")?;
            let inner = call.split_once('(')?.1;
            let inner = inner.strip_prefix("from_fn(").unwrap_or(inner);
            Some(inner.split_once("::")?.0.to_string())
        })
        .collect();
    layers.reverse();
    layers
}

/// The `api` modules a text names, in order, as `api/x.rs` or `api::x::`.
fn api_modules_named(text: &str) -> Vec<String> {
    let mut named: Vec<String> = Vec::new();
    for span in backticked(text) {
        let module = span
            .strip_prefix("api/")
            .and_then(|s| s.strip_suffix(".rs"))
            .or_else(|| {
                span.strip_prefix("api::")
                    .and_then(|s| s.split("::").next())
            });
        if let Some(module) = module
            && named.last().map(String::as_str) != Some(module)
        {
            named.push(module.to_string());
        }
    }
    named
}

#[test]
fn the_documented_middleware_order_is_the_apps() {
    let wrapped = wrapped_by_the_app();
    assert_eq!(
        wrapped,
        [
            "counting",
            "connections",
            "staleness",
            "draining",
            "error",
            "head"
        ],
        "the app's stack changed: update this list, app's doc and ARCHITECTURE.md"
    );
    let doc = read("ARCHITECTURE.md");
    let paragraph = doc
        .split("\n\n")
        .find(|p| p.starts_with("Middleware order"))
        .expect("ARCHITECTURE.md's middleware paragraph");
    let before_resources = paragraph.split("then per resource").next().unwrap();
    let mut documented = api_modules_named(before_resources);
    documented.retain(|m| m != "app");
    assert_eq!(documented, wrapped, "ARCHITECTURE.md's middleware order");
    let app_doc: String = read("src/api/app.rs")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("///"))
        .collect::<Vec<_>>()
        .join("\n");
    let numbered: Vec<String> = backticked(&app_doc)
        .into_iter()
        .filter_map(|s| s.strip_suffix(".rs"))
        .map(String::from)
        .collect();
    assert_eq!(numbered, wrapped, "api::app::app's doc");
}

// ---- Names that exist ----

/// Whether `name` (`registry/publisher.rs`, `session/`, `assets/status/`) is a file or folder
/// of the repository, or the end of a path under `src/`.
fn names_a_path(name: &str) -> bool {
    if root().join(name).exists() {
        return true;
    }
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let name = name.trim_end_matches('/');
    files.iter().any(|file| {
        let path = file.to_string_lossy();
        let folder = file.parent().unwrap().to_string_lossy();
        [path, folder]
            .iter()
            .any(|p| p.ends_with(&format!("/{name}")))
    })
}

/// The source file of module `path` (`registry::hub`), if there is one.
fn module_file(path: &str) -> Option<PathBuf> {
    let relative = path.replace("::", "/");
    [
        format!("src/{relative}.rs"),
        format!("src/{relative}/mod.rs"),
    ]
    .into_iter()
    .map(|p| root().join(p))
    .find(|p| p.is_file())
}

/// Whether `code` defines or re-exports (`pub use`) `name`.
fn defines(code: &str, name: &str) -> bool {
    let is_word_end = |rest: &str| !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_');
    let defined = [
        "fn", "struct", "enum", "type", "trait", "const", "static", "mod",
    ]
    .iter()
    .any(|kind| {
        let needle = format!("{kind} {name}");
        code.match_indices(&needle)
            .any(|(at, _)| is_word_end(&code[at + needle.len()..]))
    });
    let exported = code.lines().any(|line| {
        let line = line.trim_start();
        line.starts_with("pub")
            && line.contains(" use ")
            && line
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|word| word == name)
    });
    defined || exported
}

/// Whether `span` (`registry::hub`, `domain::state::assess`, `api::app::app`) names a
/// module of the crate and, after it, an item that module defines.
fn names_an_item(span: &str) -> bool {
    let parts: Vec<&str> = span.split("::").collect();
    (1..=parts.len()).rev().any(|n| {
        let Some(file) = module_file(&parts[..n].join("::")) else {
            return false;
        };
        match parts.get(n) {
            None => true,
            Some(item) => defines(&std::fs::read_to_string(file).unwrap(), item),
        }
    })
}

/// The crate's top-level modules.
fn top_modules() -> Vec<String> {
    read("src/lib.rs")
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let line = line
                .strip_prefix("pub ")
                .or_else(|| line.strip_prefix("pub(crate) "))
                .unwrap_or(line);
            Some(line.strip_prefix("mod ")?.strip_suffix(';')?.to_string())
        })
        .collect()
}

#[test]
fn every_file_and_module_the_architecture_names_exists() {
    let doc = read("ARCHITECTURE.md").replace("\n  ", " ");
    let modules = top_modules();
    let mut missing = Vec::new();
    for span in backticked(&doc) {
        let is_path = !span.contains(' ') && (span.ends_with(".rs") || span.ends_with('/'));
        let first = span.split("::").next().unwrap();
        let is_item = span.contains("::")
            && !span.contains([' ', '(', '"'])
            && modules.iter().any(|m| m == first);
        if (is_path && !names_a_path(span)) || (is_item && !names_an_item(span)) {
            missing.push(span);
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names what does not exist: {missing:?}"
    );
}

#[test]
fn the_name_checks_refuse_what_is_gone() {
    assert!(names_a_path("registry/publisher.rs") && names_a_path("session/"));
    assert!(!names_a_path("metrics.rs"));
    assert!(names_an_item("domain::state::assess") && names_an_item("registry::Hub"));
    assert!(!names_an_item("registry::plan"), "private in reload.rs");
    assert!(!names_an_item("metrics::Gone"));
}

// ---- The crate map ----

#[test]
fn the_crate_map_names_every_module() {
    let lib = read("src/lib.rs");
    let map: String = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    let named = backticked(&map);
    let modules = top_modules();
    assert!(modules.len() > 20, "lib.rs's modules: {modules:?}");
    let missing: Vec<&String> = modules
        .iter()
        .filter(|m| !named.contains(&m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "lib.rs's crate map does not name {missing:?}"
    );
}
