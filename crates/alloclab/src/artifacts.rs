//! The project's own build artifacts that the runner uses beside itself:
//! the two plugins (`compare`), the two `LD_PRELOAD` malloc shims
//! (`programs`) and the recorder (`record`), and the traces shipped in the
//! repository (`compare`).
//!
//! They live in the runner's own folder: cargo puts `alloclab` and the
//! workspace's `cdylib`s in the same `target/<profile>/`. But `cargo run`
//! builds only the runner's package and its dependencies, not the `cdylib`s
//! of the other workspace members, so on a fresh clone the README's first
//! command (`cargo run --release -- compare`) would find none of them.
//! Hence [`ensure_built`]: when the runner was started by `cargo run` from
//! this workspace (cargo sets `CARGO` and `CARGO_MANIFEST_DIR` for the
//! program it runs), it builds them with that same cargo and profile before
//! they are used. The nested build is safe: `cargo run` releases its lock on
//! the target folder before it starts the program (a build script that ran
//! cargo on the same target folder would deadlock instead). Started any
//! other way (`./target/release/alloclab`, an installed copy), the runner
//! builds nothing and [`find`] says which file it looked for, and where.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Result, bail};

/// One of the project's shared libraries the runner needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// The workspace package that builds it.
    pub package: &'static str,
    /// Its file name in `target/<profile>/`.
    pub file: &'static str,
    /// What it is, for messages.
    pub what: &'static str,
}

/// The buddy-system plugin.
pub const BUDDY_PLUGIN: Artifact = Artifact {
    package: "buddy-plugin",
    file: "libbuddy.so",
    what: "the buddy plugin",
};
/// The McKusick-Karels plugin.
pub const MCKUSICK_KARELS_PLUGIN: Artifact = Artifact {
    package: "mckusick-karels-plugin",
    file: "libmckusick_karels.so",
    what: "the McKusick-Karels plugin",
};
/// The buddy malloc shim.
pub const BUDDY_SHIM: Artifact = Artifact {
    package: "buddy-malloc",
    file: "libbuddy_malloc.so",
    what: "the buddy malloc shim",
};
/// The McKusick-Karels malloc shim.
pub const MCKUSICK_KARELS_SHIM: Artifact = Artifact {
    package: "mckusick-karels-malloc",
    file: "libmckusick_karels_malloc.so",
    what: "the McKusick-Karels malloc shim",
};
/// The allocation recorder of `alloclab record`.
pub const RECORDER: Artifact = Artifact {
    package: "alloc-recorder",
    file: "liballoc_recorder.so",
    what: "the allocation recorder",
};

/// Every artifact [`ensure_built`] builds.
pub const ALL: [Artifact; 5] = [
    BUDDY_PLUGIN,
    MCKUSICK_KARELS_PLUGIN,
    BUDDY_SHIM,
    MCKUSICK_KARELS_SHIM,
    RECORDER,
];

/// The folder of the running executable, where the artifacts are expected.
pub fn dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
        .unwrap_or_default()
}

/// Where `artifact` is expected (it may not exist).
pub fn path(artifact: Artifact) -> PathBuf {
    dir().join(artifact.file)
}

/// The path of `artifact`, or why it is not there: the file looked for and
/// how to build it.
pub fn find(artifact: Artifact) -> Result<PathBuf> {
    let p = path(artifact);
    if p.is_file() {
        return Ok(p);
    }
    let how = if in_checkout() {
        "build it with `cargo build --release` at the repository's root, or start the runner \
         with `cargo run --release -- ...`, which builds it"
    } else {
        "this copy of alloclab is not in the repository's target folder: build the repository \
         (`cargo build --release`) and run target/release/alloclab from there"
    };
    bail!(
        "{} ({}) is not next to the runner: {} does not exist; {how}",
        artifact.what,
        artifact.file,
        p.display()
    )
}

/// The repository this runner was built from (its workspace root).
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `path` as reports show it, without the machine's folders: relative to
/// the repository when it lies inside it (`target/release/libbuddy.so`),
/// its file name otherwise; control characters escaped.
pub fn report_path(path: &Path) -> String {
    let absolute = path
        .canonicalize()
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf());
    let shown = match repository().canonicalize() {
        Ok(root) if absolute.starts_with(&root) => absolute.strip_prefix(&root).map_or_else(
            |_| absolute.display().to_string(),
            |r| r.display().to_string(),
        ),
        _ => absolute.file_name().map_or_else(
            || path.display().to_string(),
            |f| f.to_string_lossy().into_owned(),
        ),
    };
    crate::output::shown(&shown)
}

/// A command-line argument as reports show it: an absolute path (alone or
/// after `--option=`) through [`report_path`], anything else as it is.
pub fn report_arg(arg: &str) -> String {
    match arg.split_once('=') {
        Some((option, value)) if option.starts_with("--") && value.starts_with('/') => {
            format!("{option}={}", report_path(Path::new(value)))
        }
        _ if arg.starts_with('/') => report_path(Path::new(arg)),
        _ => crate::output::shown(arg),
    }
}

/// The runner runs from the target folder of the checkout it was built
/// from (not an installed or copied executable).
fn in_checkout() -> bool {
    let (Ok(exe), Ok(root)) = (
        std::env::current_exe().and_then(|e| e.canonicalize()),
        repository().canonicalize(),
    ) else {
        return false;
    };
    exe.starts_with(root)
}

/// The traces shipped in the repository's `traces/` folder, sorted; an
/// error naming the folder when the runner is not beside its repository.
pub fn shipped_traces() -> Result<Vec<PathBuf>> {
    let dir = repository().join("traces");
    let read = std::fs::read_dir(&dir).map_err(|e| {
        anyhow::anyhow!(
            "the traces shipped with alloclab are not there ({}: {e})",
            dir.display()
        )
    })?;
    let mut files: Vec<PathBuf> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "trace"));
    files.sort();
    Ok(files)
}

/// How the running executable was built, when cargo started it from this
/// workspace: the cargo to call and the arguments selecting the same
/// profile, target triple and target folder.
struct CargoRun {
    cargo: PathBuf,
    args: Vec<String>,
}

/// `Some` when the runner was started by `cargo run` (or by a test that
/// cargo runs) from this workspace.
fn started_by_cargo() -> Option<CargoRun> {
    let cargo = std::env::var_os("CARGO")?;
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")?;
    let ours = Path::new(env!("CARGO_MANIFEST_DIR"));
    if Path::new(&manifest).canonicalize().ok()? != ours.canonicalize().ok()? {
        return None;
    }
    // <target-dir>/[<triple>/]<profile-dir>/alloclab, where cargo keeps its
    // fingerprints beside the executable (not a copy elsewhere).
    let exe_dir = dir();
    if !exe_dir.join(".fingerprint").is_dir() {
        return None;
    }
    let profile_dir = exe_dir.file_name()?.to_str()?.to_string();
    let above = exe_dir.parent()?;
    let mut args = vec!["--profile".to_string()];
    args.push(match profile_dir.as_str() {
        "debug" => "dev".into(),
        other => other.into(),
    });
    // The target folder holds cargo's CACHEDIR.TAG; with `--target`, the
    // profile folder sits one level further down, under the triple.
    let target_dir = if above.join("CACHEDIR.TAG").is_file() {
        above
    } else {
        let root = above
            .parent()
            .filter(|r| r.join("CACHEDIR.TAG").is_file())?;
        args.extend(["--target".into(), above.file_name()?.to_str()?.into()]);
        root
    };
    args.push("--target-dir".into());
    args.push(target_dir.to_str()?.into());
    Some(CargoRun {
        cargo: cargo.into(),
        args,
    })
}

/// When the runner was started by `cargo run` from this workspace, builds
/// every artifact (plugins, shims, recorder) with the same cargo, profile
/// and target folder, once per process; otherwise does nothing. An error
/// when cargo fails.
pub fn ensure_built() -> Result<()> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let Some(run) = started_by_cargo() else {
                return Ok(());
            };
            let mut cmd = Command::new(&run.cargo);
            cmd.arg("build").args(&run.args);
            for a in ALL {
                cmd.args(["-p", a.package]);
            }
            cmd.current_dir(repository());
            // Cargo's progress and a line saying why, for a person watching;
            // in a log, cargo's errors only.
            if std::io::stderr().is_terminal() {
                eprintln!(
                    "alloclab: building this project's plugins, malloc shims and recorder ({})",
                    ALL.map(|a| a.package).join(", ")
                );
            } else {
                cmd.arg("--quiet");
            }
            match cmd.status() {
                Ok(s) if s.success() => Ok(()),
                Ok(s) => Err(format!(
                    "building the plugins, shims and recorder failed ({s}): see cargo's messages above"
                )),
                Err(e) => Err(format!("cannot run {}: {e}", run.cargo.display())),
            }
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_show_no_machine_paths() {
        let root = repository().canonicalize().unwrap();
        let lib = root.join("target/release/libbuddy.so");
        assert_eq!(report_path(&lib), "target/release/libbuddy.so");
        assert_eq!(report_path(Path::new("/opt/plugins/libx.so")), "libx.so");
        assert_eq!(
            report_arg(&lib.display().to_string()),
            "target/release/libbuddy.so"
        );
        assert_eq!(
            report_arg("--json=/home/someone/out.json"),
            "--json=out.json"
        );
        assert_eq!(report_arg("--quick"), "--quick");
        assert_eq!(report_arg("docs/results"), "docs/results");
    }
}
