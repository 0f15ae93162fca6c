//! The allocator under measurement: a loaded plugin or the built-in fallback,
//! seen through one function table.

use std::ffi::c_void;
use std::path::{Path, PathBuf};

use plugin_abi::loader::{LoadError, Plugin, PluginApi};
use plugin_abi::{Allocator, AllocatorStats};
use serde::{Deserialize, Serialize};

use crate::allocators::facts::TypedFacts;
use crate::allocators::plugin_data::{self, Info};
use crate::postmortem::{self, Stage};

/// How to make a [`Subject`] again, in a child process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    /// A plugin loaded from this path.
    Plugin(PathBuf),
    /// A subject built into the runner, by name.
    Builtin(String),
}

/// An allocator the runner can create on an arena and call.
pub struct Subject {
    /// How to make it again (in a child process).
    pub spec: Spec,
    /// What to call it in reports.
    pub name: String,
    /// Where it came from (a path, or "built in").
    pub origin: String,
    /// Its functions.
    pub api: PluginApi,
    /// Creation flags (`ALLOCATOR_FLAG_*`), used when non-zero.
    pub flags: u32,
    /// Its blocks lie inside the arena it is created on (false for the
    /// fallback and the system allocators, whose blocks come from the OS).
    pub blocks_in_arena: bool,
    /// Documented facts, for built-in subjects (plugins describe themselves
    /// through `allocator_info`).
    pub facts: Option<TypedFacts>,
    /// What `allocator_info` said, checked (`plugin_data.rs`).
    pub info: Info,
    /// Keeps a plugin loaded for as long as `api` is used.
    _plugin: Option<Plugin>,
}

/// What an allocator exports and supports beyond the four required calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Exports `allocator_stats`.
    pub has_stats: bool,
    /// Exports `allocator_check`.
    pub has_check: bool,
    /// Exports `allocator_realloc`.
    pub has_realloc: bool,
    /// `allocator_info` says it supports `ALLOCATOR_FLAG_LOCKED` (a
    /// thread-safe instance).
    pub lockable: bool,
}

/// Why a plugin cannot be measured.
#[derive(Debug)]
pub enum SubjectError {
    /// Nothing loadable at the path (the brief's rule: use the fallback).
    Load(LoadError),
    /// It loaded, but what it says about itself is wrong.
    Invalid {
        /// The path as given.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

impl std::fmt::Display for SubjectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubjectError::Load(e) => write!(f, "{}", crate::output::shown(&e.to_string())),
            SubjectError::Invalid { path, why } => {
                write!(
                    f,
                    "plugin {}: {why}",
                    crate::output::shown(&path.display().to_string())
                )
            }
        }
    }
}

impl std::error::Error for SubjectError {}

impl Subject {
    /// A subject built into the runner (a peer adapter).
    pub fn builtin(name: &str, api: PluginApi, facts: TypedFacts) -> Subject {
        Subject {
            spec: Spec::Builtin(name.into()),
            name: name.into(),
            origin: "built into alloclab".into(),
            api,
            flags: 0,
            blocks_in_arena: facts.uses_arena,
            facts: Some(facts),
            info: builtin_info(&api),
            _plugin: None,
        }
    }

    /// Loads the plugin at `path` and checks what it says about itself.
    /// Its name is the one `allocator_info` gives, else the file's stem
    /// (`libbump.so`: `bump`), control characters escaped.
    pub fn load(path: &Path) -> Result<Subject, SubjectError> {
        let before = postmortem::stage(Stage::Loading);
        // SAFETY: the user named this file as an allocator plugin; its
        // initialisers run, as for any dlopen.
        let plugin = unsafe { Plugin::load(path) };
        postmortem::stage(before);
        let plugin = plugin.map_err(SubjectError::Load)?;
        let api = *plugin.api();
        let info = plugin_data::read_info(&api)
            .map_err(|why| SubjectError::Invalid {
                path: path.to_path_buf(),
                why,
            })?
            .unwrap_or_default();
        let name = info.name.clone().unwrap_or_else(|| file_stem_name(path));
        Ok(Subject {
            spec: Spec::Plugin(path.to_path_buf()),
            name,
            origin: crate::output::shown(&path.display().to_string()),
            api,
            flags: 0,
            blocks_in_arena: true,
            facts: None,
            info,
            _plugin: Some(plugin),
        })
    }

    /// Creates an allocator on `[memory, memory + size)`, or NULL.
    ///
    /// # Safety
    ///
    /// The memory must stay valid and otherwise unused until [`Subject::destroy`].
    pub unsafe fn create(&self, memory: *mut c_void, size: usize) -> *mut Allocator {
        postmortem::note_arena(memory, size);
        let before = postmortem::stage(Stage::Create);
        let a = match (self.flags, self.api.create_with_flags) {
            (0, _) | (_, None) => {
                // SAFETY: forwarded contract.
                unsafe { (self.api.create)(memory, size) }
            }
            (flags, Some(f)) => {
                // SAFETY: forwarded contract.
                unsafe { f(memory, size, flags) }
            }
        };
        postmortem::stage(before);
        a
    }

    /// Ends an allocator made by [`Subject::create`].
    ///
    /// # Safety
    ///
    /// `a` came from `self.create` and is not used afterwards.
    pub unsafe fn destroy(&self, a: *mut Allocator) {
        let before = postmortem::stage(Stage::Destroy);
        // SAFETY: forwarded contract.
        unsafe { (self.api.destroy)(a) };
        postmortem::stage(before);
    }

    /// The plugin's one-line description from `allocator_info`, if any.
    pub fn description(&self) -> Option<String> {
        self.info.description.clone()
    }

    /// What it exports and supports.
    pub fn capabilities(&self) -> Capabilities {
        Capabilities {
            has_realloc: self.api.realloc.is_some(),
            has_stats: self.api.stats.is_some(),
            has_check: self.api.check.is_some(),
            lockable: self.info.supported_flags & plugin_abi::ALLOCATOR_FLAG_LOCKED != 0,
        }
    }

    /// The allocator's stats, if the plugin exports them; for an allocator
    /// that manages its arena of `arena` bytes, checked to add up
    /// (`plugin_data::check_stats`): an error says what does not.
    ///
    /// # Safety
    ///
    /// `a` is a live allocator of this subject.
    pub unsafe fn stats(
        &self,
        a: *mut Allocator,
        arena: usize,
    ) -> Result<Option<AllocatorStats>, String> {
        let Some(f) = self.api.stats else {
            return Ok(None);
        };
        let mut s = AllocatorStats::default();
        let before = postmortem::stage(Stage::Stats);
        // SAFETY: forwarded contract; `s` is a valid out-pointer.
        let answered = unsafe { f(a, &mut s) } == 0;
        postmortem::stage(before);
        if !answered {
            return Ok(None);
        }
        if self.blocks_in_arena {
            plugin_data::check_stats(&s, arena)?;
        }
        Ok(Some(s))
    }
}

/// What a built-in allocator's `allocator_info` says (trusted: the runner's
/// own code).
fn builtin_info(api: &PluginApi) -> Info {
    plugin_data::read_info(api)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// `libbump.so` → `bump`: a plugin's name when `allocator_info` gives none.
pub fn file_stem_name(path: &Path) -> String {
    let stem = path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    let name = stem
        .strip_prefix("lib")
        .filter(|n| !n.is_empty())
        .unwrap_or(&stem);
    crate::output::shown(name)
}
