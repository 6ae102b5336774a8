//! The shape of the crate, checked from its sources (no GPU): the planner is pure (it never
//! reaches the GPU, the CPU reference or the runner), and src's top-level modules import each
//! other in one direction only (no cycles), as docs/adding-an-op.md and README describe.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Source text without comments (`//` to the end of the line), so doc links do not count.
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .expect("read source")
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The crate's top-level modules a source file names: `crate::x` paths and the names inside
/// `use crate::{x, y::z}` groups.
fn crate_refs(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c, d}`: the first segment of each item, up to the matching brace.
            let mut depth = 1;
            let mut item = String::new();
            let mut first = true;
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if depth == 1 && ch == ',' {
                    if first && !item.is_empty() {
                        refs.insert(item.clone());
                    }
                    first = true;
                    item.clear();
                    continue;
                }
                if first && (ch.is_alphanumeric() || ch == '_') {
                    item.push(ch);
                } else if first && !item.is_empty() {
                    refs.insert(item.clone());
                    first = false;
                }
            }
            if first && !item.is_empty() {
                refs.insert(item);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            refs.insert(name);
        }
    }
    refs.retain(|r| modules.contains(r));
    refs
}

/// Top-level module name → the top-level modules its files import.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = code(&src.join("lib.rs"));
    let modules: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect();
    assert!(modules.len() > 5, "lib.rs lists the modules: {modules:?}");
    let mut graph = BTreeMap::new();
    for m in &modules {
        let mut files = Vec::new();
        let dir = src.join(m);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
        let file = src.join(format!("{m}.rs"));
        if file.is_file() {
            files.push(file);
        }
        assert!(!files.is_empty(), "no source for module {m}");
        let mut refs = BTreeSet::new();
        for f in &files {
            refs.extend(crate_refs(&code(f), &modules));
        }
        refs.remove(m);
        graph.insert(m.clone(), refs);
    }
    graph
}

#[test]
fn the_planner_imports_no_gpu_module() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/plan");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    assert!(files.len() >= 2);
    // The pure halves of the ops (`ops::<op>`, its mod.rs) are allowed; their launchers
    // (`ops::<op>::gpu`), the GPU context, wgpu, the CPU reference and the runner are not.
    let forbidden = [
        "wgpu::",
        "crate::gpu",
        "::gpu::",
        "::gpu as",
        "::gpu;",
        "crate::cpu",
        "::cpu::",
        "crate::model",
        "crate::train",
        "crate::data",
        "crate::checkpoint",
    ];
    let mut found = Vec::new();
    for f in &files {
        let text = code(f);
        for (n, line) in text.lines().enumerate() {
            for bad in forbidden {
                if line.contains(bad) {
                    found.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "src/plan is not pure:\n{}",
        found.join("\n")
    );
}

/// An op's pure half (`src/ops/<op>/mod.rs`, which the planner imports) and its CPU twin name
/// no GPU module: wgpu and the launchers stay in the op's `gpu.rs`.
#[test]
fn the_ops_pure_halves_and_cpu_twins_import_no_gpu_module() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ops");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    let pure: Vec<&PathBuf> = files
        .iter()
        .filter(|f| f.file_name().is_some_and(|n| n != "gpu.rs"))
        .collect();
    assert!(pure.len() >= 20, "{} files", pure.len());
    let forbidden = [
        "wgpu::",
        "crate::gpu",
        "::gpu::",
        "::gpu as",
        "crate::model",
        "crate::train",
    ];
    let mut found = Vec::new();
    for f in pure {
        for (n, line) in code(f).lines().enumerate() {
            // `pub mod gpu;` declares the launchers beside the pure half.
            if line.trim() == "pub mod gpu;" {
                continue;
            }
            if forbidden.iter().any(|bad| line.contains(bad)) {
                found.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "GPU code outside the ops' gpu.rs:\n{}",
        found.join("\n")
    );
}

#[test]
fn src_top_level_modules_have_no_import_cycle() {
    let graph = module_graph();
    // Every edge a -> b from which a can be reached again lies on a cycle.
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(m) = todo.pop() {
            if m == to {
                return true;
            }
            if seen.insert(m.clone()) {
                todo.extend(graph[&m].iter().cloned());
            }
        }
        false
    };
    let mut cycles = Vec::new();
    for (a, refs) in &graph {
        for b in refs {
            if reaches(b, a) {
                cycles.push(format!("{a} -> {b}"));
            }
        }
    }
    let edges: Vec<String> = graph
        .iter()
        .map(|(m, r)| {
            format!(
                "{m} -> {}",
                r.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    assert!(
        cycles.is_empty(),
        "edges on import cycles among src's top-level modules: {cycles:?}\nthe graph:\n{}",
        edges.join("\n")
    );
}

/// The checker itself: a made-up cycle and a made-up impurity are caught.
#[test]
fn the_checks_catch_what_they_look_for() {
    let modules: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let refs = crate_refs(
        "use crate::{a::x, b};\nlet y = crate::c::f(); // crate::zzz",
        &modules,
    );
    assert_eq!(refs.len(), 3, "{refs:?}");
    let refs = crate_refs("use crate::{\n    a::{x, y},\n    b,\n};", &modules);
    assert_eq!(refs, ["a", "b"].iter().map(|s| s.to_string()).collect());
}
