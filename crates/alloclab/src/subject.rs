//! The allocator under measurement: a loaded plugin or the built-in fallback,
//! seen through one function table.

use std::ffi::c_void;
use std::path::{Path, PathBuf};

use plugin_abi::loader::{Plugin, PluginApi};
use plugin_abi::{Allocator, AllocatorStats};

use crate::facts::TypedFacts;
use crate::fallback;

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
    /// Keeps a plugin loaded for as long as `api` is used.
    _plugin: Option<Plugin>,
}

/// A subject, and why it is the fallback if it is.
pub struct Chosen {
    /// What will run.
    pub subject: Subject,
    /// Why the fallback was used: the loader's message, if a path was given.
    pub fallback_reason: Option<String>,
}

impl Subject {
    /// The built-in `mmap`/`munmap` fallback.
    pub fn fallback() -> Subject {
        Subject {
            spec: Spec::Builtin("mmap fallback".into()),
            name: "mmap fallback".into(),
            origin: "built into alloclab".into(),
            api: fallback::api(),
            flags: 0,
            blocks_in_arena: false,
            facts: Some(fallback::FACTS),
            _plugin: None,
        }
    }

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
            _plugin: None,
        }
    }

    /// Loads the plugin at `path`.
    pub fn load(path: &Path) -> Result<Subject, plugin_abi::loader::LoadError> {
        // SAFETY: the user named this file as an allocator plugin; its
        // initialisers run, as for any dlopen.
        let plugin = unsafe { Plugin::load(path) }?;
        let api = *plugin.api();
        let name = api.name().unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().trim_start_matches("lib").to_string())
                .unwrap_or_else(|| path.display().to_string())
        });
        Ok(Subject {
            spec: Spec::Plugin(path.to_path_buf()),
            name,
            origin: path.display().to_string(),
            api,
            flags: 0,
            blocks_in_arena: true,
            facts: None,
            _plugin: Some(plugin),
        })
    }

    /// The subject built into the runner called `name`.
    pub fn builtin_named(name: &str) -> Option<Subject> {
        if name == "mmap fallback" {
            return Some(Subject::fallback());
        }
        crate::peers::by_name(name).map(|p| p.subject())
    }

    /// Makes the subject `spec` describes, with creation `flags`.
    pub fn from_spec(spec: &Spec, flags: u32) -> Result<Subject, String> {
        let mut s = match spec {
            Spec::Plugin(path) => Subject::load(path).map_err(|e| e.to_string())?,
            Spec::Builtin(name) => Subject::builtin_named(name)
                .ok_or_else(|| format!("no built-in allocator `{name}`"))?,
        };
        s.flags = flags;
        Ok(s)
    }

    /// The plugin at `path`, or the fallback (with the reason) when no path
    /// is given or it does not load: the brief's rule.
    pub fn choose(path: Option<&Path>) -> Chosen {
        match path {
            None => Chosen {
                subject: Subject::fallback(),
                fallback_reason: Some("no plugin path given".into()),
            },
            Some(p) => match Subject::load(p) {
                Ok(subject) => Chosen {
                    subject,
                    fallback_reason: None,
                },
                Err(e) => Chosen {
                    subject: Subject::fallback(),
                    fallback_reason: Some(e.to_string()),
                },
            },
        }
    }

    /// Creates an allocator on `[memory, memory + size)`, or NULL.
    ///
    /// # Safety
    ///
    /// The memory must stay valid and otherwise unused until [`Subject::destroy`].
    pub unsafe fn create(&self, memory: *mut c_void, size: usize) -> *mut Allocator {
        match (self.flags, self.api.create_with_flags) {
            (0, _) | (_, None) => {
                // SAFETY: forwarded contract.
                unsafe { (self.api.create)(memory, size) }
            }
            (flags, Some(f)) => {
                // SAFETY: forwarded contract.
                unsafe { f(memory, size, flags) }
            }
        }
    }

    /// Ends an allocator made by [`Subject::create`].
    ///
    /// # Safety
    ///
    /// `a` came from `self.create` and is not used afterwards.
    pub unsafe fn destroy(&self, a: *mut Allocator) {
        // SAFETY: forwarded contract.
        unsafe { (self.api.destroy)(a) }
    }

    /// The plugin's one-line description from `allocator_info`, if any.
    pub fn description(&self) -> Option<String> {
        let info = self.api.info()?;
        (!info.description.is_null()).then(|| {
            // SAFETY: a non-null description is a static NUL-terminated string (header).
            let text = unsafe { std::ffi::CStr::from_ptr(info.description) };
            text.to_string_lossy().into_owned()
        })
    }

    /// `allocator_info` says the plugin supports `ALLOCATOR_FLAG_LOCKED`.
    pub fn lockable(&self) -> bool {
        self.api
            .info()
            .is_some_and(|i| i.supported_flags & plugin_abi::ALLOCATOR_FLAG_LOCKED != 0)
    }

    /// The allocator's stats, if the plugin exports them.
    ///
    /// # Safety
    ///
    /// `a` is a live allocator of this subject.
    pub unsafe fn stats(&self, a: *mut Allocator) -> Option<AllocatorStats> {
        let f = self.api.stats?;
        let mut s = AllocatorStats::default();
        // SAFETY: forwarded contract; `s` is a valid out-pointer.
        (unsafe { f(a, &mut s) } == 0).then_some(s)
    }
}
