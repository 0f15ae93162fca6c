//! The allocators `alloclab programs` runs programs under: glibc (nothing
//! preloaded), this project's two malloc shims, mimalloc and jemalloc when
//! their shared libraries are installed, and `--preload` libraries.

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::artifacts::{self, Artifact};

/// An allocator the programs run on.
#[derive(Clone, Debug)]
pub(super) struct Allocator {
    pub(super) name: String,
    /// `LD_PRELOAD` value; None for glibc.
    pub(super) preload: Option<PathBuf>,
    /// One of this project's shims (prints its statistics line).
    pub(super) ours: bool,
    /// Why it cannot run.
    pub(super) missing: Option<String>,
}

pub(super) fn system_lib(file: &str) -> Option<PathBuf> {
    let arch = std::env::consts::ARCH;
    [
        format!("/usr/lib/{arch}-linux-gnu/{file}"),
        format!("/usr/lib64/{file}"),
        format!("/usr/lib/{file}"),
        format!("/usr/local/lib/{file}"),
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

pub(super) fn all(extra: &[String]) -> Result<Vec<Allocator>> {
    let ours = |name: &str, shim: Artifact| Allocator {
        name: name.into(),
        preload: Some(artifacts::path(shim)),
        ours: true,
        missing: artifacts::find(shim)
            .err()
            .map(|e| format!("not built: {e}")),
    };
    let system = |name: &str, file: &str, package: &str| {
        let path = system_lib(file);
        Allocator {
            name: name.into(),
            missing: path
                .is_none()
                .then(|| format!("not installed (apt-get install {package})")),
            preload: path,
            ours: false,
        }
    };
    let mut all = vec![
        Allocator {
            name: "glibc".into(),
            preload: None,
            ours: false,
            missing: None,
        },
        ours("buddy", artifacts::BUDDY_SHIM),
        ours("mckusick-karels", artifacts::MCKUSICK_KARELS_SHIM),
        system("mimalloc", "libmimalloc.so.2", "libmimalloc2.0"),
        system("jemalloc", "libjemalloc.so.2", "libjemalloc2"),
    ];
    for e in extra {
        let Some((name, path)) = e
            .split_once('=')
            .filter(|(n, p)| !n.is_empty() && !p.is_empty())
        else {
            bail!("--preload {e}: expected NAME=PATH");
        };
        if all.iter().any(|a| a.name == name) {
            bail!("--preload {e}: there is already an allocator called {name}");
        }
        let path = std::path::absolute(path)?;
        all.push(Allocator {
            name: name.into(),
            missing: (!path.is_file()).then(|| format!("not found ({})", path.display())),
            preload: Some(path),
            ours: false,
        });
    }
    Ok(all)
}
