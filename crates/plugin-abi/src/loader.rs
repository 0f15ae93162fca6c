//! Loading a plugin by path (`dlopen`, through `libloading`) and resolving the
//! functions of `include/allocator.h`.

use std::ffi::CStr;
use std::fmt;
use std::path::{Path, PathBuf};

use libloading::Library;

use arena_api::types::*;

/// The function table of a plugin: the four required functions and the
/// optional ones it exports. The runner's built-in allocators (the
/// `mmap` fallback, the peers) fill the same table, so every allocator is
/// called through the same kind of function pointer.
#[derive(Clone, Copy, Debug)]
pub struct PluginApi {
    /// `allocator_create` (required).
    pub create: CreateFn,
    /// `allocator_destroy` (required).
    pub destroy: DestroyFn,
    /// `allocator_alloc` (required).
    pub alloc: AllocFn,
    /// `allocator_free` (required).
    pub free: FreeFn,
    /// `allocator_realloc`.
    pub realloc: Option<ReallocFn>,
    /// `allocator_create_with_flags`.
    pub create_with_flags: Option<CreateWithFlagsFn>,
    /// `allocator_alloc_aligned`.
    pub alloc_aligned: Option<AllocAlignedFn>,
    /// `allocator_usable_size`.
    pub usable_size: Option<UsableSizeFn>,
    /// `allocator_stats`.
    pub stats: Option<StatsFn>,
    /// `allocator_check`.
    pub check: Option<CheckFn>,
    /// `allocator_info`.
    pub info: Option<InfoFn>,
    /// `allocator_add_region`: more memory after creation.
    pub add_region: Option<AddRegionFn>,
}

impl PluginApi {
    /// The plugin's `allocator_info()`, if it exports one that answers.
    pub fn info(&self) -> Option<&'static AllocatorInfo> {
        // SAFETY: `allocator_info` takes nothing and returns NULL or a
        // pointer to a static `AllocatorInfo` (header contract), valid while
        // the plugin is loaded; `Plugin` keeps it loaded for `'static` users
        // by never being dropped before them (see `Plugin::api`).
        self.info.and_then(|f| unsafe { f().as_ref() })
    }

    /// The plugin's name from `allocator_info()`, if any.
    pub fn name(&self) -> Option<String> {
        let info = self.info()?;
        if info.name.is_null() {
            return None;
        }
        // SAFETY: a non-null `name` is a static NUL-terminated string (header).
        Some(
            unsafe { CStr::from_ptr(info.name) }
                .to_string_lossy()
                .into_owned(),
        )
    }
}

/// Why a plugin could not be used.
#[derive(Debug)]
pub enum LoadError {
    /// `dlopen` failed: missing file, not a shared library, wrong architecture...
    Open {
        /// The path as given.
        path: PathBuf,
        /// The loader's own message.
        message: String,
    },
    /// The library loaded but lacks a required function.
    MissingSymbol {
        /// The path as given.
        path: PathBuf,
        /// The missing function.
        symbol: &'static str,
        /// The loader's own message.
        message: String,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Open { path, message } => {
                write!(f, "cannot load plugin {}: {message}", path.display())
            }
            LoadError::MissingSymbol {
                path,
                symbol,
                message,
            } => write!(
                f,
                "{} is not an allocator plugin: it does not export `{symbol}` ({message})",
                path.display()
            ),
        }
    }
}

impl std::error::Error for LoadError {}

/// The loader's message inside a `libloading` error (its `Display` says only
/// "dlopen failed").
fn loader_message(e: &libloading::Error) -> String {
    match std::error::Error::source(e) {
        Some(source) => source.to_string(),
        None => e.to_string(),
    }
}

/// A loaded plugin. Dropping it unloads the library: every allocator created
/// through its [`PluginApi`] must be destroyed first.
pub struct Plugin {
    api: PluginApi,
    path: PathBuf,
    _library: Library,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// Loads the plugin at `path` (absolute, relative, or a bare file name in
    /// the current folder) and resolves its functions. A missing optional
    /// function is not an error.
    ///
    /// # Safety
    ///
    /// Loading a shared library runs its initialisers, and its exported
    /// functions are trusted to have the signatures of the header: only load
    /// libraries that are allocator plugins or at least not hostile.
    pub unsafe fn load(path: &Path) -> Result<Plugin, LoadError> {
        let to_open = dlopen_path(path);
        // SAFETY: the caller accepts running the library's initialisers.
        let library = unsafe { Library::new(&to_open) }.map_err(|e| LoadError::Open {
            path: path.to_path_buf(),
            message: loader_message(&e),
        })?;
        macro_rules! required {
            ($name:literal) => {
                // SAFETY: the symbol, if present, has the header's signature
                // (caller's contract); the pointer is copied out while the
                // library stays loaded in `Plugin`.
                *unsafe { library.get(concat!($name, "\0").as_bytes()) }.map_err(|e| {
                    LoadError::MissingSymbol {
                        path: path.to_path_buf(),
                        symbol: $name,
                        message: loader_message(&e),
                    }
                })?
            };
        }
        macro_rules! optional {
            ($name:literal) => {
                // SAFETY: as for `required!`.
                unsafe { library.get(concat!($name, "\0").as_bytes()) }
                    .ok()
                    .map(|s| *s)
            };
        }
        let api = PluginApi {
            create: required!("allocator_create"),
            destroy: required!("allocator_destroy"),
            alloc: required!("allocator_alloc"),
            free: required!("allocator_free"),
            realloc: optional!("allocator_realloc"),
            create_with_flags: optional!("allocator_create_with_flags"),
            alloc_aligned: optional!("allocator_alloc_aligned"),
            usable_size: optional!("allocator_usable_size"),
            stats: optional!("allocator_stats"),
            check: optional!("allocator_check"),
            info: optional!("allocator_info"),
            add_region: optional!("allocator_add_region"),
        };
        Ok(Plugin {
            api,
            path: path.to_path_buf(),
            _library: library,
        })
    }

    /// The function table; valid while `self` lives.
    pub fn api(&self) -> &PluginApi {
        &self.api
    }

    /// The path it was loaded from, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `dlopen` searches the library path for a name without a `/`; a bare file
/// name that exists here means this file, so it is opened as `./name`.
fn dlopen_path(path: &Path) -> PathBuf {
    let bare = path.components().count() == 1 && !path.as_os_str().to_string_lossy().contains('/');
    if bare && path.is_file() {
        Path::new(".").join(path)
    } else {
        path.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_of_existing_files_open_from_here() {
        // Tests run in the package folder, where Cargo.toml exists.
        assert_eq!(
            dlopen_path(Path::new("Cargo.toml")),
            Path::new("./Cargo.toml")
        );
        assert_eq!(
            dlopen_path(Path::new("libnothing.so")),
            Path::new("libnothing.so")
        );
        assert_eq!(
            dlopen_path(Path::new("/abs/libx.so")),
            Path::new("/abs/libx.so")
        );
        assert_eq!(
            dlopen_path(Path::new("rel/libx.so")),
            Path::new("rel/libx.so")
        );
    }

    #[test]
    fn errors_carry_the_loaders_message() {
        // SAFETY: the file does not exist; nothing is run.
        let err = unsafe { Plugin::load(Path::new("/no/such/libplugin.so")) }.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/no/such/libplugin.so"), "{text}");
        assert!(text.contains("No such file"), "{text}");
        // A real shared library without the symbols: libc.
        // SAFETY: loading libc again runs nothing new.
        let err = unsafe { Plugin::load(Path::new("libc.so.6")) }.unwrap_err();
        assert!(
            matches!(
                err,
                LoadError::MissingSymbol {
                    symbol: "allocator_create",
                    ..
                }
            ),
            "{err}"
        );
    }
}
