//! The crate's modules form layers: each imports (`crate::x::…`) only modules below it, so
//! the import graph has no cycle and `messenger`, the public facade, is imported by no
//! module but its add-ons (`metrics`, `testing`). DESIGN.md draws the layers.
//!
//! The test reads the crate's own sources (every `src/**/*.rs`, comments stripped), takes
//! each top-level module (a file `src/x.rs`, or a folder `src/x/` with everything in it) as
//! one node, and each `crate::x` path in it as an edge. Inside a folder module, `super::`
//! paths stay inside the node. `lib.rs` (the re-exports), `tests.rs` (tests of the public
//! API, written as a user would) and this file are not nodes.
//!
//! What it does not do: parse Rust. A `crate::` inside a string literal would count as an
//! edge, and an import through a root re-export (`crate::Messenger`) is refused rather than
//! resolved, so that every edge shows in the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The facade module and the only modules that may import it.
const FACADE: &str = "messenger";
const FACADE_ADD_ONS: [&str; 2] = ["metrics", "testing"];
/// Files that are not nodes of the graph.
const NOT_NODES: [&str; 3] = ["lib", "tests", "layering"];

type Graph = BTreeMap<String, BTreeSet<String>>;

/// `text` without `//` and `/* */` comments (doc comments included).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |i| &after[i..]);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |i| &after[i + 2..]);
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The first path segment after each `crate::` in `code` (each of a `crate::{a, b::c}`
/// group's members too).
fn crate_paths(code: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = code[from..].find("crate::") {
        let at = from + i;
        from = at + "crate::".len();
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue; // `msgr_crate::`, not ours
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut member_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => member_start = true,
                    _ if member_start && !c.is_whitespace() => {
                        member_start = false;
                        out.push(ident(&group[j..]));
                    }
                    _ => {}
                }
            }
        } else {
            out.push(ident(rest));
        }
    }
    out.retain(|s| !s.is_empty() && s != "self");
    out
}

/// The import graph of `sources` (`(path relative to src, text)`); errors name each
/// import through a root re-export.
fn graph(sources: &[(String, String)]) -> Result<Graph, Vec<String>> {
    let mut g = Graph::new();
    let mut errors = Vec::new();
    for (rel, text) in sources {
        let first = rel.split('/').next().unwrap_or(rel);
        let node = first.strip_suffix(".rs").unwrap_or(first).to_string();
        if NOT_NODES.contains(&node.as_str()) {
            continue;
        }
        let edges = g.entry(node.clone()).or_default();
        for target in crate_paths(&strip_comments(text)) {
            if target.starts_with(|c: char| c.is_ascii_uppercase()) {
                errors.push(format!(
                    "{rel}: crate::{target} goes through a root re-export; name its module"
                ));
            } else if target != node {
                edges.insert(target);
            }
        }
    }
    match errors.is_empty() {
        true => Ok(g),
        false => Err(errors),
    }
}

/// A cycle of `g` (its nodes in order, the first repeated at the end), if there is one.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    fn visit(
        g: &Graph,
        n: &str,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(n.to_string(), Mark::OnPath);
        path.push(n.to_string());
        for next in g.get(n).into_iter().flatten() {
            match marks.get(next).copied().unwrap_or(Mark::New) {
                Mark::OnPath => {
                    let start = path.iter().position(|p| p == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(g, next, marks, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks.insert(n.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for n in g.keys() {
        if marks.get(n).copied().unwrap_or(Mark::New) == Mark::New {
            if let Some(c) = visit(g, n, &mut marks, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

/// Every `.rs` file under `dir`, as `(path relative to root, text)`.
fn read_sources(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            read_sources(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under src");
            let text = std::fs::read_to_string(&path).expect("a readable source file");
            out.push((rel.to_string_lossy().replace('\\', "/"), text));
        }
    }
}

/// The graph's edges, one line per node, for failure messages and the report.
fn render(g: &Graph) -> String {
    g.iter()
        .map(|(n, e)| {
            format!(
                "{n} -> {}",
                e.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn crate_modules_import_each_other_without_a_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = Vec::new();
    read_sources(&src, &src, &mut sources);
    let g = graph(&sources).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    let shown = render(&g);

    // Every module lib.rs declares is a node, and every edge ends at one: the walk and
    // the parser saw the whole crate.
    let lib = &sources
        .iter()
        .find(|(p, _)| p == "lib.rs")
        .expect("lib.rs")
        .1;
    let declared: BTreeSet<String> = strip_comments(lib)
        .lines()
        .filter_map(|l| l.trim().trim_start_matches("pub ").strip_prefix("mod "))
        .filter_map(|l| l.strip_suffix(';'))
        .filter(|m| !NOT_NODES.contains(m))
        .map(str::to_string)
        .collect();
    let nodes: BTreeSet<String> = g.keys().cloned().collect();
    assert_eq!(nodes, declared, "nodes vs lib.rs's modules\n{shown}");
    for (n, edges) in &g {
        for t in edges {
            assert!(nodes.contains(t), "{n} -> {t}: no such module\n{shown}");
        }
    }
    // Lower bound on what was found: the host imports the leaf state it is built on.
    for leaf in ["identity", "policies", "registry", "call", "loopback"] {
        assert!(g["host"].contains(leaf), "host -> {leaf} not seen\n{shown}");
    }

    assert_eq!(find_cycle(&g), None, "an import cycle\n{shown}");
    let facade_users: Vec<&String> = g
        .iter()
        .filter(|(n, e)| e.contains(FACADE) && !FACADE_ADD_ONS.contains(&n.as_str()))
        .map(|(n, _)| n)
        .collect();
    assert!(
        facade_users.is_empty(),
        "{facade_users:?} import the facade\n{shown}"
    );
}

#[test]
fn the_check_finds_a_cycle_and_a_re_export_import() {
    let file = |p: &str, t: &str| (p.to_string(), t.to_string());
    let cyclic = [
        file(
            "a.rs",
            "use crate::b::B;\n// use crate::c::C; (a comment)\n",
        ),
        file("b/mod.rs", "use super::x;"),
        file("b/x.rs", "use crate::{c::{C, D}, error};"),
        file("c.rs", "fn f() -> crate::a::A { todo!() } /* crate::d */"),
        file("error.rs", "use msgr_crate::a;"),
    ];
    let g = graph(&cyclic).expect("no re-export imports");
    assert_eq!(
        render(&g),
        "a -> b\nb -> c, error\nc -> a\nerror -> ",
        "comments and other crates' paths are no edges; a folder is one node"
    );
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );

    let acyclic = [file("a.rs", "use crate::b::B;"), file("b.rs", "")];
    assert_eq!(find_cycle(&graph(&acyclic).expect("a graph")), None);

    let through_root = [file("a.rs", "use crate::Messenger;")];
    let errors = graph(&through_root).expect_err("refused");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("crate::Messenger"), "{errors:?}");
}
