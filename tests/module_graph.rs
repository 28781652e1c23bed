//! The crate's modules import one way, as ARCHITECTURE.md's module map draws them.
//!
//! This reads every `use` and every path in `src/` (`crate::`, `super::`, `self::` or a child
//! module's name first; comments and test modules left out), resolves each to the file of the
//! module it names, and checks two things:
//!
//! - no two files import each other, directly or round a longer circle. A module's parent is
//!   its vocabulary (a child may read what its parent defines, as `ring/capture.rs` adds
//!   methods to the `RingWriter` of `ring/mod.rs`): an arrow to one's own ancestor is not
//!   counted; arrows between siblings and across subtrees are;
//! - every arrow between two top-level modules runs down [`TIERS`], the map's order: a module
//!   uses only modules of lower tiers.
//!
//! It reads the code as text, so it needs no build of the crate; the checks themselves are
//! exercised on small made-up trees first (a circle and an arrow that runs up must be found).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level modules of `src/`, from the bottom tier up: a module may use only modules of
/// tiers below its own. ARCHITECTURE.md, "Module map", is this list in words.
const TIERS: &[&[&str]] = &[
    // Vocabulary: no module of the crate below them.
    &["sync", "bytes", "counts", "clock", "shared_log", "durable"],
    &["event"],
    &[
        "civil",
        "query",
        "queue",
        "histogram",
        "alarms",
        "readiness",
        "record",
        "coldset",
    ],
    &["conns", "metrics", "ring"],
    // The hours that left the ring, on disk, and their late events.
    &["cold"],
    &["late"],
    // The core: the queue into the one writer, and what the writer hands each batch to.
    &["ingest", "uniques", "freezer"],
    &["writer"],
    &["thread", "publisher", "ack"],
    &["journal"],
    // The edge, the flags, and the two modes the server runs in.
    &["http"],
    &["config"],
    &["start"],
    &["single", "cluster"],
    &["log"],
    &["server"],
];

/// One source file: its module path and its code (comments and test modules removed).
struct Source {
    module: Vec<String>,
    code: String,
}

/// The module path of `rel` (a path under `src/`), or `None` for files that are not modules
/// of the library (the binary, test modules kept in files of their own).
fn module_of(rel: &Path) -> Option<Vec<String>> {
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let (last, dirs) = parts.split_last()?;
    let stem = last.strip_suffix(".rs")?;
    if stem == "main" && dirs.is_empty() {
        return None;
    }
    if stem == "tests" || stem.ends_with("_tests") {
        return None;
    }
    let mut module: Vec<String> = dirs.to_vec();
    if stem != "mod" && !(stem == "lib" && dirs.is_empty()) {
        module.push(stem.to_owned());
    }
    Some(module)
}

/// `text` without comments and without test modules (`#[cfg(test)]` on a `mod`).
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(") && trimmed.contains("test") {
            // Skip the attributes that follow, then see what they are on.
            while lines
                .peek()
                .is_some_and(|l| l.trim_start().starts_with("#["))
            {
                lines.next();
            }
            if lines
                .peek()
                .is_some_and(|l| l.trim_start().starts_with("mod "))
            {
                let head = lines.next().unwrap_or_default();
                if head.trim_end().ends_with('{') {
                    let mut depth = 1i32;
                    for l in lines.by_ref() {
                        depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
                        if depth <= 0 {
                            break;
                        }
                    }
                }
                continue;
            }
            continue;
        }
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The paths of a `use` tree (`a::{b, c::{d, e as f}, self}` → `a::b`, `a::c::d`, ...).
fn use_paths(tree: &str) -> Vec<Vec<String>> {
    fn expand(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
        let tree = tree.trim();
        if tree.is_empty() {
            return;
        }
        if let Some(open) = tree.find('{') {
            let head: Vec<String> = tree[..open]
                .split("::")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let mut path = prefix.to_vec();
            path.extend(head);
            // Split the group at its top-level commas.
            let (mut depth, mut start) = (0, 0);
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&path, &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            expand(&path, &inner[start..], out);
            return;
        }
        let tree = tree.split(" as ").next().unwrap_or(tree);
        let mut path = prefix.to_vec();
        for seg in tree.split("::").map(str::trim).filter(|s| !s.is_empty()) {
            if seg == "self" && !path.is_empty() {
                continue;
            }
            path.push(seg.to_owned());
        }
        out.push(path);
    }
    let mut out = Vec::new();
    expand(&[], tree, &mut out);
    out
}

/// Every path the code names: `use` trees, and paths elsewhere (`crate::x::f()`,
/// `nats::FreshReply`: those whose first segment is no module are sorted out later).
fn paths_in(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = String::new();
    // `use` statements (possibly over several lines), then the other code.
    let mut chars = code;
    while let Some(i) = find_use(chars) {
        rest.push_str(&chars[..i]);
        let after = &chars[i..];
        let body_start = after.find("use ").map_or(0, |u| u + 4);
        let end = after.find(';').unwrap_or(after.len());
        paths.extend(use_paths(&after[body_start..end]));
        chars = &after[(end + 1).min(after.len())..];
    }
    rest.push_str(chars);
    let bytes = rest.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        // A path starts at an identifier that no `::` or identifier character precedes.
        let starts = (i == 0 || !(ident(bytes[i - 1]) || bytes[i - 1] == b':'))
            && (bytes[i].is_ascii_alphabetic() || bytes[i] == b'_');
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < bytes.len() && ident(bytes[j]) {
            j += 1;
        }
        if !rest[j..].starts_with("::") {
            i = j;
            continue;
        }
        while j < bytes.len() && (ident(bytes[j]) || rest[j..].starts_with("::")) {
            j += if bytes[j] == b':' { 2 } else { 1 };
        }
        paths.push(
            rest[i..j]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        );
        i = j;
    }
    paths
}

/// Where the next `use` statement starts (at a line's start, after `pub`, `pub(crate)`...).
fn find_use(code: &str) -> Option<usize> {
    let mut at = 0;
    for line in code.split_inclusive('\n') {
        let t = line.trim_start();
        let t = t
            .strip_prefix("pub(crate) ")
            .or_else(|| t.strip_prefix("pub(super) "))
            .or_else(|| t.strip_prefix("pub "))
            .unwrap_or(t);
        if t.starts_with("use ") {
            return Some(at + line.len() - line.trim_start().len());
        }
        at += line.len();
    }
    None
}

/// The file-to-file arrows of `sources`: (from module, to module), each a module with a file.
fn arrows(sources: &[Source]) -> BTreeSet<(Vec<String>, Vec<String>)> {
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|s| s.module.clone()).collect();
    let mut arrows = BTreeSet::new();
    for s in sources {
        for path in paths_in(&s.code) {
            let Some(first) = path.first() else { continue };
            let mut resolved: Vec<String> = match first.as_str() {
                "crate" => Vec::new(),
                "self" => s.module.clone(),
                "super" => s.module.clone(),
                _ => {
                    let mut child = s.module.clone();
                    child.push(first.clone());
                    if !modules.contains(&child) {
                        continue; // another crate
                    }
                    s.module.clone()
                }
            };
            let mut segs = path.iter().peekable();
            if first == "crate" || first == "self" {
                segs.next();
            }
            while segs.peek().is_some_and(|s| *s == "super") {
                segs.next();
                resolved.pop();
            }
            resolved.extend(segs.cloned());
            // The file of the longest prefix that is a module.
            let target = (0..=resolved.len())
                .rev()
                .map(|n| resolved[..n].to_vec())
                .find(|m| modules.contains(m));
            if let Some(target) = target {
                let ancestor = s.module.starts_with(&target);
                if !target.is_empty() && !ancestor {
                    arrows.insert((s.module.clone(), target));
                }
            }
        }
    }
    arrows
}

/// The circles of `arrows` (strongly connected sets of more than one module).
fn circles(arrows: &BTreeSet<(Vec<String>, Vec<String>)>) -> Vec<BTreeSet<Vec<String>>> {
    let mut next: BTreeMap<&Vec<String>, Vec<&Vec<String>>> = BTreeMap::new();
    for (a, b) in arrows {
        next.entry(a).or_default().push(b);
        next.entry(b).or_default();
    }
    let reach = |from: &Vec<String>| -> BTreeSet<Vec<String>> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from];
        while let Some(m) = todo.pop() {
            for &n in next.get(m).map(Vec::as_slice).unwrap_or(&[]) {
                if seen.insert(n.clone()) {
                    todo.push(n);
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&Vec<String>, BTreeSet<Vec<String>>> =
        next.keys().map(|m| (*m, reach(m))).collect();
    let mut found: Vec<BTreeSet<Vec<String>>> = Vec::new();
    for (m, r) in &reachable {
        if !r.contains(*m) {
            continue;
        }
        let circle: BTreeSet<Vec<String>> = r
            .iter()
            .filter(|n| reachable.get(n).is_some_and(|rn| rn.contains(*m)))
            .cloned()
            .collect();
        if !found.contains(&circle) {
            found.push(circle);
        }
    }
    found
}

/// The arrows between top-level modules that do not run down [`TIERS`], and the top-level
/// modules the tiers do not list.
fn upward(arrows: &BTreeSet<(Vec<String>, Vec<String>)>) -> Vec<String> {
    let tier = |m: &str| TIERS.iter().position(|t| t.contains(&m));
    let mut wrong = BTreeSet::new();
    for (a, b) in arrows {
        let (a, b) = (&a[0], &b[0]);
        if a == b {
            continue;
        }
        match (tier(a), tier(b)) {
            (Some(ta), Some(tb)) if tb < ta => {}
            (Some(_), Some(_)) => {
                wrong.insert(format!("{a} -> {b} runs up or sideways"));
            }
            (None, _) => {
                wrong.insert(format!("{a} is not in TIERS"));
            }
            (_, None) => {
                wrong.insert(format!("{b} is not in TIERS"));
            }
        }
    }
    wrong.into_iter().collect()
}

fn sources_under(root: &Path) -> Vec<Source> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<Source>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read src/")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, root, out);
            } else if let Some(module) = module_of(path.strip_prefix(root).expect("under src/")) {
                let text = std::fs::read_to_string(&path).expect("read a source file");
                out.push(Source {
                    module,
                    code: code_of(&text),
                });
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

fn name(m: &[String]) -> String {
    m.join("::")
}

#[test]
fn no_two_files_of_the_crate_import_each_other_and_every_arrow_runs_down_the_map() {
    let sources = sources_under(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(sources.len() > 50, "read {} files only", sources.len());
    let arrows = arrows(&sources);
    if std::env::var_os("MODULE_GRAPH_PRINT").is_some() {
        // The map as the code draws it: `MODULE_GRAPH_PRINT=1 cargo test --test
        // module_graph -- --nocapture` prints each top-level module and what it uses.
        let mut top: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (a, b) in &arrows {
            top.entry(&a[0]).or_default();
            if a[0] != b[0] {
                top.entry(&a[0]).or_default().insert(&b[0]);
            }
        }
        for (m, uses) in &top {
            println!(
                "{m} -> {}",
                uses.iter().copied().collect::<Vec<_>>().join(" ")
            );
        }
    }
    let circles: Vec<String> = circles(&arrows)
        .iter()
        .map(|c| {
            let ties: Vec<String> = arrows
                .iter()
                .filter(|(a, b)| c.contains(a) && c.contains(b))
                .map(|(a, b)| format!("{} -> {}", name(a), name(b)))
                .collect();
            ties.join(", ")
        })
        .collect();
    assert!(circles.is_empty(), "import circles: {circles:#?}");
    let wrong = upward(&arrows);
    assert!(
        wrong.is_empty(),
        "arrows against the module map: {wrong:#?}"
    );
}

/// A made-up crate: `(path under src/, text)`.
fn made_up(files: &[(&str, &str)]) -> Vec<Source> {
    files
        .iter()
        .filter_map(|(p, text)| {
            module_of(Path::new(p)).map(|module| Source {
                module,
                code: code_of(text),
            })
        })
        .collect()
}

#[test]
fn a_circle_through_a_use_group_and_a_parent_module_is_found() {
    let sources = made_up(&[
        ("lib.rs", "pub mod ring;\npub mod writer;\n"),
        ("ring/mod.rs", "mod slot;\npub use slot::Slot;\n"),
        (
            "ring/slot.rs",
            "use crate::{event::Event, writer::{Sink, BATCH as B}};\n",
        ),
        ("writer.rs", "pub fn f() { crate::ring::Slot::new(); }\n"),
    ]);
    let arrows = arrows(&sources);
    let found = circles(&arrows);
    assert_eq!(found.len(), 1, "{arrows:?}");
    let names: BTreeSet<String> = found[0].iter().map(|m| name(m)).collect();
    assert_eq!(
        names,
        ["ring", "ring::slot", "writer"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}

#[test]
fn an_arrow_up_the_map_is_found_and_comments_and_tests_are_not_arrows() {
    let sources = made_up(&[
        ("event.rs", "use super::http::Service;\n"),
        (
            "ring.rs",
            "// see crate::server\n#[cfg(test)]\nmod tests {\n    use crate::server::X;\n}\n",
        ),
        ("ring_tests.rs", "use crate::server::Y;\n"),
        ("http/mod.rs", "pub struct Service;\npub use conn::serve;\n"),
        ("http/conn.rs", "use super::Service;\n"),
        ("server.rs", "use crate::ring::Ring;\n"),
    ]);
    let arrows = arrows(&sources);
    assert_eq!(
        upward(&arrows),
        vec!["event -> http runs up or sideways".to_string()],
        "{arrows:?}"
    );
}
