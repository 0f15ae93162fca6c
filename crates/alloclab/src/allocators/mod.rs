//! The allocators under test: plugins loaded by path (`subject.rs`, their
//! self-description checked in `plugin_data.rs`), the built-in `mmap`
//! fallback (`fallback.rs`), and the peers (`peers/`), all seen through one
//! function table as a [`subject::Subject`].
//!
//! Layer: above the base (`arena`, `postmortem`, `output`), below the
//! measurement engine; it imports neither the engine nor a command.

pub mod empty;
pub mod facts;
pub mod fallback;
pub mod peers;
pub mod plugin_data;
pub mod subject;

use plugin_abi::loader::PluginApi;
use plugin_abi::{ALLOCATOR_FLAG_FAITHFUL, ALLOCATOR_FLAG_RETURN_PAGES};

use crate::artifacts::{self, Artifact};
use plugin_abi::{AllocFn, CreateFn, DestroyFn, FreeFn};
use subject::{Spec, Subject};

/// The function table of an allocator that has the four required calls and
/// none of the optional ones; callers add theirs with struct update syntax
/// (`PluginApi { realloc: Some(r), ..table(c, d, a, f) }`).
pub fn table(create: CreateFn, destroy: DestroyFn, alloc: AllocFn, free: FreeFn) -> PluginApi {
    PluginApi {
        create,
        destroy,
        alloc,
        free,
        realloc: None,
        create_with_flags: None,
        alloc_aligned: None,
        usable_size: None,
        stats: None,
        check: None,
        info: None,
        add_region: None,
    }
}

/// This project's plugins as `compare` runs them: the artifact, the
/// creation flags and the row's name.
pub const OWN_PLUGINS: [(Artifact, u32, &str); 4] = [
    (artifacts::BUDDY_PLUGIN, 0, "buddy"),
    (artifacts::MCKUSICK_KARELS_PLUGIN, 0, "mckusick-karels"),
    (
        artifacts::MCKUSICK_KARELS_PLUGIN,
        ALLOCATOR_FLAG_FAITHFUL,
        "mckusick-karels+faithful",
    ),
    (
        artifacts::MCKUSICK_KARELS_PLUGIN,
        ALLOCATOR_FLAG_RETURN_PAGES,
        "mckusick-karels+return",
    ),
];

/// The name of the built-in `mmap`/`munmap` fallback.
pub const FALLBACK: &str = "mmap fallback";

/// The built-in `mmap`/`munmap` fallback as a subject.
pub fn fallback() -> Subject {
    Subject::builtin(FALLBACK, fallback::api(), fallback::FACTS)
}

/// A peer as a subject the runner can measure.
pub fn peer_subject(p: &peers::Peer) -> Subject {
    Subject::builtin(p.name, p.api, p.facts)
}

/// Every peer as a subject, system allocators first.
pub fn peer_subjects() -> Vec<Subject> {
    peers::all().iter().map(peer_subject).collect()
}

/// The empty call as a subject (the engine's baseline, never in a table).
pub fn empty_call() -> Subject {
    Subject::builtin("empty call", empty::api(), fallback::FACTS)
}

/// The allocator built into the runner called `name` (the fallback, or a
/// peer by its name, ASCII case-insensitive).
pub fn builtin(name: &str) -> Option<Subject> {
    if name == FALLBACK {
        return Some(fallback());
    }
    peers::by_name(name).map(|p| peer_subject(&p))
}

/// Makes the subject `spec` describes, with creation `flags`.
pub fn from_spec(spec: &Spec, flags: u32) -> Result<Subject, String> {
    let mut s = match spec {
        Spec::Plugin(path) => Subject::load(path).map_err(|e| e.to_string())?,
        Spec::Builtin(name) => {
            builtin(name).ok_or_else(|| format!("no built-in allocator `{name}`"))?
        }
    };
    s.flags = flags;
    Ok(s)
}
