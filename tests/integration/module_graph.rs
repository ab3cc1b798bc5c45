//! The workspace's modules import each other in one direction: within every
//! crate, no two modules use each other's items, directly or through others
//! (a parent that only declares and re-exports its children does not count
//! as using them). Read from the sources: `use` paths, `crate::` and
//! `super::` paths, and a module's own children named in its code; test
//! modules are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

const CRATES: [&str; 7] = [
    "kernels", "core", "msgs", "sim-data", "train", "runtime", "tools",
];

/// Every `.rs` file under `src`, by module path (`a/b.rs` and `a/b/mod.rs`
/// are `[a, b]`; `lib.rs` and `main.rs` the root).
fn modules(src: &Path) -> BTreeMap<Module, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source folder").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let Ok(rel) = path.strip_prefix(src) else {
                continue;
            };
            let Some(rel) = rel.to_str().and_then(|r| r.strip_suffix(".rs")) else {
                continue;
            };
            let mut parts: Module = rel.split('/').map(str::to_owned).collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            out.insert(parts, path);
        }
    }
    out
}

/// The code of a file without comments and without its tests (everything
/// from the first `#[cfg(test)]`).
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The statements `use ...;` (with `pub use` re-exports apart), flattened
/// to single paths (`a::{b, c::d}` to `a::b`, `a::c::d`).
fn use_paths(code: &str) -> (Vec<String>, Vec<String>, String) {
    let (mut uses, mut reexports, mut rest) = (Vec::new(), Vec::new(), String::new());
    let mut tail = code;
    while let Some(at) = tail.find("use ") {
        let before = &tail[..at];
        let starts_word = before
            .chars()
            .last()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        let Some(end) = tail[at..].find(';') else {
            break;
        };
        if !starts_word {
            rest.push_str(&tail[..at + 4]);
            tail = &tail[at + 4..];
            continue;
        }
        let is_pub = before.trim_end().ends_with("pub") || before.trim_end().ends_with(')');
        let stmt: String = tail[at + 4..at + end].split_whitespace().collect();
        let target = if is_pub { &mut reexports } else { &mut uses };
        target.extend(flatten(&stmt));
        rest.push_str(before);
        tail = &tail[at + end + 1..];
    }
    rest.push_str(tail);
    (uses, reexports, rest)
}

fn flatten(stmt: &str) -> Vec<String> {
    let Some(open) = stmt.find("::{") else {
        return vec![stmt.split(" as ").next().unwrap_or(stmt).to_owned()];
    };
    let (base, inner) = (&stmt[..open], &stmt[open + 3..stmt.len().saturating_sub(1)]);
    let (mut parts, mut depth, mut cur) = (Vec::new(), 0, String::new());
    for c in inner.chars().chain([',']) {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            if !cur.is_empty() {
                parts.extend(flatten(&cur).into_iter().map(|p| format!("{base}::{p}")));
            }
            cur.clear();
        } else {
            cur.push(c);
        }
    }
    parts
}

/// `path` as written in module `m`, made absolute (`crate::`, `super::`,
/// `self::`); `None` for other crates' paths.
fn absolute(m: &Module, path: &str) -> Option<Module> {
    let mut parts = path.split("::").filter(|p| !p.is_empty() && *p != "self");
    let first = parts.next()?;
    let mut base: Module = match first {
        "crate" => Vec::new(),
        "super" => m[..m.len().saturating_sub(1)].to_vec(),
        _ => return None,
    };
    for p in parts {
        if p == "super" {
            base.pop();
        } else if p != "*" {
            base.push(p.to_owned());
        }
    }
    Some(base)
}

/// The module a path points into: its longest prefix that is a module,
/// following a re-export one step when the next name is one.
fn target(
    path: &Module,
    files: &BTreeMap<Module, PathBuf>,
    reexported: &BTreeMap<(Module, String), Module>,
) -> Option<Module> {
    let n = (0..=path.len())
        .rev()
        .find(|&n| files.contains_key(&path[..n]))?;
    let module = path[..n].to_vec();
    if let Some(name) = path.get(n) {
        if let Some(to) = reexported.get(&(module.clone(), name.clone())) {
            let k = (0..=to.len())
                .rev()
                .find(|&k| files.contains_key(&to[..k]))?;
            return Some(to[..k].to_vec());
        }
    }
    Some(module)
}

/// Every module's uses of other modules of the crate at `src`.
fn graph(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let files = modules(src);
    let is_test = |m: &Module| {
        m.last()
            .is_some_and(|l| l.ends_with("tests") || l == "test_util")
    };
    let mut parsed = BTreeMap::new();
    let mut reexported = BTreeMap::new();
    for (m, path) in &files {
        let text = std::fs::read_to_string(path).expect("a source file");
        let (uses, reexports, rest) = use_paths(&code(&text));
        for r in &reexports {
            let with_root = if r.starts_with("crate::") || r.starts_with("super::") {
                r.clone()
            } else {
                format!("self::{r}")
            };
            let to = if let Some(local) = with_root.strip_prefix("self::") {
                let mut to = m.clone();
                to.extend(local.split("::").map(str::to_owned));
                Some(to)
            } else {
                absolute(m, &with_root)
            };
            if let Some(mut to) = to {
                if let Some(name) = to.pop() {
                    reexported.insert((m.clone(), name), to);
                }
            }
        }
        parsed.insert(m.clone(), (uses, rest));
    }
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (m, (uses, rest)) in &parsed {
        if is_test(m) {
            continue;
        }
        let mut paths: Vec<Module> = uses.iter().filter_map(|u| absolute(m, u)).collect();
        for word in rest.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')) {
            if word.starts_with("crate::") || word.starts_with("super::") {
                paths.extend(absolute(m, word));
            }
            // A child module named in the parent's code.
            if let Some((head, _)) = word.split_once("::") {
                let mut child = m.clone();
                child.push(head.to_owned());
                if files.contains_key(&child) {
                    paths.push(child);
                }
            }
        }
        let own = edges.entry(m.clone()).or_default();
        for p in paths {
            if let Some(t) = target(&p, &files, &reexported) {
                if &t != m && !is_test(&t) {
                    own.insert(t);
                }
            }
        }
    }
    edges
}

/// A cycle in `edges`, if there is one (depth-first search).
fn cycle(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    fn visit(
        m: &Module,
        edges: &BTreeMap<Module, BTreeSet<Module>>,
        done: &mut BTreeSet<Module>,
        stack: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(i) = stack.iter().position(|s| s == m) {
            return Some(stack[i..].to_vec());
        }
        if done.contains(m) {
            return None;
        }
        stack.push(m.clone());
        for next in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, edges, done, stack) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(m.clone());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|m| visit(m, edges, &mut done, &mut Vec::new()))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

#[test]
fn no_crate_has_an_import_loop() {
    for krate in CRATES {
        let edges = graph(&workspace().join(krate).join("src"));
        assert!(edges.len() > 3, "{krate}: modules not found");
        if let Some(c) = cycle(&edges) {
            let names: Vec<String> = c
                .iter()
                .map(|m| format!("{krate}::{}", m.join("::")))
                .collect();
            panic!("import loop: {} -> back to the first", names.join(" -> "));
        }
    }
}

/// The reader finds loops: two sibling modules using each other, one
/// through a re-export, and a parent using its child that uses it back.
#[test]
fn the_reader_finds_loops_through_reexports_and_parents() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let src = dir.path();
    let write = |rel: &str, text: &str| {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("a folder");
        std::fs::write(p, text).expect("a file");
    };
    write("lib.rs", "pub mod a;\npub mod b;\npub use b::Bee;\n");
    write("a.rs", "use crate::Bee;\npub struct Ay;\n");
    write("b.rs", "pub struct Bee(crate::a::Ay);\n");
    let edges = graph(src);
    assert!(cycle(&edges).is_some(), "{edges:?}");
    // The same without the loop: `a` uses `b`, `b` does not use `a`.
    write(
        "b.rs",
        "pub struct Bee;\n#[cfg(test)]\nmod tests { use crate::a::Ay; }\n",
    );
    assert_eq!(cycle(&graph(src)), None);
    // A parent whose code names its child, which uses the parent back.
    write("b.rs", "pub mod c;\npub struct Bee;\nfn f() { c::g(); }\n");
    write("b/c.rs", "pub fn g() -> super::Bee { super::Bee }\n");
    assert!(cycle(&graph(src)).is_some());
}
