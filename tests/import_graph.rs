//! The module graph of each crate stays free of cycles (docs/architecture.md, "Modules and their
//! dependencies"): every `crate::module` a file names (in `use` lines and in paths, tests included;
//! comments excluded) is an edge from the file's top-level module to that module, and the test
//! fails naming the first cycle it finds. A folder module (`dtls/`, `webhooks/`) is one node: edges inside it are its own
//! business.

#![deny(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to; `None` for the crate root.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    if rel.components().count() == 1 {
        let stem = first.strip_suffix(".rs")?;
        (stem != "lib" && stem != "main").then(|| stem.to_string())
    } else {
        Some(first)
    }
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first path segment of each item of a `{a, b::c, d::{e, f}}` group (text after the `{`).
fn group_heads(s: &str, out: &mut BTreeSet<String>) {
    let mut depth = 0usize;
    let mut item_start = true;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return,
            '}' => depth -= 1,
            ',' if depth == 0 => item_start = true,
            c if c.is_whitespace() => {}
            _ if item_start && depth == 0 => {
                let id = ident_at(&s[i..]);
                if !id.is_empty() && id != "self" {
                    out.insert(id.to_string());
                }
                item_start = false;
            }
            _ => {}
        }
    }
}

/// The modules named as `crate::<module>` in `code`, comments left out.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    // Whole-line comments (`//`, `//!`, `///`) only: a `//` inside a line may be in a string.
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        let preceded_by_ident = rest[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        rest = &rest[i + "crate::".len()..];
        if preceded_by_ident {
            continue; // `sluice_controlplane::crate::` cannot happen; `my_crate::x` is not ours
        }
        if let Some(group) = rest.strip_prefix('{') {
            group_heads(group, &mut out);
        } else {
            let id = ident_at(rest);
            if !id.is_empty() {
                out.insert(id.to_string());
            }
        }
    }
    out
}

/// The module graph of the crate whose sources are in `src`.
fn module_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph = Graph::new();
    for f in &files {
        let Some(from) = top_module(src, f) else {
            continue;
        };
        let code = std::fs::read_to_string(f).expect("read source");
        let deps = graph.entry(from.clone()).or_default();
        for to in crate_refs(&code) {
            if to != from {
                deps.insert(to);
            }
        }
    }
    graph
}

/// A cycle of `graph` as the path `a -> b -> ... -> a`, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        n: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(n) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|p| p == n).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(n.to_string(), Mark::Open);
        path.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, graph, marks, path) {
                return Some(c);
            }
        }
        path.pop();
        marks.insert(n.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut marks, &mut Vec::new()))
}

fn assert_acyclic(src: &Path) {
    let graph = module_graph(src);
    assert!(
        graph.len() > 5,
        "found only {:?} in {}",
        graph.keys(),
        src.display()
    );
    if let Some(cycle) = find_cycle(&graph) {
        let edges: Vec<String> = graph
            .iter()
            .map(|(k, v)| {
                format!(
                    "  {k} -> {}",
                    v.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        panic!(
            "import cycle in {}: {}\nthe graph:\n{}",
            src.display(),
            cycle.join(" -> "),
            edges.join("\n")
        );
    }
}

#[test]
fn the_control_plane_has_no_import_cycle() {
    assert_acyclic(&Path::new(env!("CARGO_MANIFEST_DIR")).join("controlplane/src"));
}

#[test]
fn the_state_module_depends_on_no_front_end() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("controlplane/src"));
    let state = &graph["state"];
    for front in ["api", "signal", "web", "metrics", "router"] {
        assert!(
            !state.contains(front),
            "state depends on {front}: {state:?}"
        );
    }
    for pure in [
        "hub",
        "mode",
        "rooms",
        "messages",
        "rate_limit",
        "limits",
        "sdp",
        "fingerprint",
        "clock",
        "access",
        "heartbeat",
    ] {
        let deps = &graph[pure];
        for shell in ["state", "api", "signal", "web", "router", "media", "dtls"] {
            assert!(!deps.contains(shell), "{pure} depends on {shell}: {deps:?}");
        }
    }
}

#[test]
fn the_checker_finds_cycles_and_reads_grouped_imports() {
    let refs = crate_refs(
        "use crate::{a::X, b::{C, D}, self};\n// use crate::commented;\nlet x = crate::c::f();\nuse other_crate::d;\n",
    );
    assert_eq!(
        refs.into_iter().collect::<Vec<_>>(),
        ["a", "b", "c"],
        "grouped, nested and inline paths; comments and other crates ignored"
    );
    let mut g = Graph::new();
    g.entry("api".into()).or_default().insert("state".into());
    g.entry("state".into()).or_default().insert("hub".into());
    g.entry("hub".into()).or_default();
    assert_eq!(find_cycle(&g), None);
    g.entry("hub".into()).or_default().insert("api".into());
    assert_eq!(
        find_cycle(&g),
        Some(vec![
            "api".into(),
            "state".into(),
            "hub".into(),
            "api".into()
        ])
    );
}

#[test]
fn the_dataplane_has_no_import_cycle() {
    assert_acyclic(&Path::new(env!("CARGO_MANIFEST_DIR")).join("dataplane/src"));
}

#[test]
fn the_binary_has_no_import_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    assert!(
        graph.contains_key("bench") && graph.contains_key("serve"),
        "{graph:?}"
    );
    assert_eq!(find_cycle(&graph), None);
}

#[test]
fn the_cluster_crate_has_no_import_cycle_and_its_pure_cores_use_no_redis() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster/src"));
    assert_eq!(find_cycle(&graph), None);
    for pure in ["node", "region", "placement", "cascade", "keys"] {
        assert!(
            !graph[pure].contains("store"),
            "{pure} depends on the Redis store: {:?}",
            graph[pure]
        );
    }
}

#[test]
fn the_broadcast_crate_is_pure_cores_with_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("broadcast/src");
    assert_eq!(find_cycle(&module_graph(&src)), None);
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(!files.is_empty());
    for f in files {
        let code = std::fs::read_to_string(&f).expect("read");
        for io in [
            "std::net",
            "std::fs",
            "tokio",
            "SystemTime::now",
            "Instant::now",
        ] {
            assert!(
                !code.contains(io),
                "{} uses {io}: its cores take time and data from the caller",
                f.display()
            );
        }
    }
}

/// `cargo test --test import_graph -- --ignored --nocapture` prints the graphs drawn in
/// docs/architecture.md.
#[test]
#[ignore = "prints the graphs for docs/architecture.md"]
fn print_graphs() {
    for dir in [
        "controlplane/src",
        "dataplane/src",
        "cluster/src",
        "broadcast/src",
        "src",
    ] {
        let g = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join(dir));
        for (k, v) in &g {
            println!("{dir}: {k} -> {v:?}");
        }
    }
}
