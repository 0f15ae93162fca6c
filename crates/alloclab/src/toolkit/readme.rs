//! Generated blocks in hand-written files: replacing the text between two
//! marker lines, and the relative links such a block needs.

use std::path::{Component, Path, PathBuf};

use anyhow::{Result, bail};

/// `text` with everything between the marker lines `begin` and `end`
/// replaced by `block`; an error if either is missing, out of order or
/// `begin` appears twice.
pub fn replace_between(text: &str, begin: &str, end: &str, block: &str) -> Result<String> {
    let Some(b) = text.find(begin) else {
        bail!(
            "no `{begin}` marker: put `{begin}` and `{end}` on their own lines where the results \
             go"
        );
    };
    let after = b + begin.len();
    let Some(e) = text[after..].find(end).map(|e| e + after) else {
        bail!("`{begin}` has no `{end}` after it");
    };
    if text[e + end.len()..].contains(begin) || text[after..e].contains(begin) {
        bail!("more than one `{begin}` marker");
    }
    Ok(format!(
        "{}\n{}\n{}",
        &text[..after],
        block.trim_end(),
        &text[e..]
    ))
}

/// `to` relative to the directory `from` (both absolute or both relative to
/// the same place), with `/` separators.
pub fn relative(from: &Path, to: &Path) -> String {
    let f: Vec<Component> = from.components().collect();
    let t: Vec<Component> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = f[common..]
        .iter()
        .filter(|c| !matches!(c, Component::CurDir))
        .map(|_| "..".to_string())
        .collect();
    parts.extend(
        t[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// `p` made absolute (canonical if it exists, else joined to the current
/// directory).
pub fn absolute(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    })
}
