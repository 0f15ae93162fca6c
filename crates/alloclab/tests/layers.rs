//! The runner's parts import in one direction only. Each source file belongs
//! to a layer; a file may name (`crate::part`) only parts of its own layer
//! or of a lower one, and a command may not name another command:
//!
//! | layer | parts |
//! |---|---|
//! | 0 base | `arena`, `signals`, `output`, `postmortem`, `artifacts` |
//! | 1 report toolkit | `toolkit` |
//! | 2 allocators under test | `allocators` |
//! | 3 measurement engine | `engine`; beside it the arena maps, `arena_map` |
//! | 4 commands | `compare`, `programs`, `record`, `map` |
//! | 5 the binary | `main.rs` |
//!
//! The test reads the sources (test modules included), so a new import
//! that runs upwards fails here, naming the file and the part.

use std::path::{Path, PathBuf};

/// The layer of a top-level part of `src/`.
fn layer(part: &str) -> Option<u32> {
    Some(match part {
        "arena" | "signals" | "output" | "postmortem" | "artifacts" => 0,
        "toolkit" => 1,
        "allocators" => 2,
        "engine" | "arena_map" => 3,
        "compare" | "programs" | "record" | "map" => 4,
        "main" => 5,
        _ => return None,
    })
}

/// Every `.rs` file below `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level part a file of `src/` belongs to: `src/engine/run.rs` →
/// `engine`, `src/programs.rs` → `programs`.
fn part_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The parts a source names through `crate::`: `crate::engine::run` and
/// `use crate::{engine::run, toolkit}` both count.
fn named_parts(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            // Only the first segment of each path in the group.
            let mut depth = 0;
            let mut start = true;
            for (k, c) in group[..end].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && !c.is_whitespace() => {
                        parts.push(ident(&group[k..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            parts.push(ident(rest));
        }
    }
    parts
}

#[test]
fn no_part_imports_a_higher_layer_or_another_command() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(files.len() > 20, "found only {} sources", files.len());
    let mut wrong = Vec::new();
    for file in &files {
        let part = part_of(&src, file);
        let own = layer(&part)
            .unwrap_or_else(|| panic!("{}: part `{part}` has no layer", file.display()));
        let text = std::fs::read_to_string(file).unwrap();
        for named in named_parts(&text) {
            if named == part || named.is_empty() {
                continue;
            }
            let Some(theirs) = layer(&named) else {
                continue; // a macro path such as `crate::outln`
            };
            if theirs > own || (theirs == own && own == 4) {
                wrong.push(format!(
                    "{} (layer {own}, {part}) names crate::{named} (layer {theirs})",
                    file.strip_prefix(&src).unwrap().display()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_reader_sees_grouped_imports() {
    assert_eq!(
        named_parts("use crate::{engine::run, toolkit::{a, b}};\nx(crate::arena::A)"),
        ["engine", "toolkit", "arena"]
    );
    assert_eq!(layer("compare"), Some(4));
    assert_eq!(layer("no-such-part"), None);
}
