//! What a plugin says about itself, validated rather than trusted.
//!
//! - `allocator_info`: the struct and every string it points to are copied
//!   with `process_vm_readv` on this very process, which answers `EFAULT`
//!   for memory that is not readable instead of faulting; strings must end
//!   within a bound, be UTF-8 and hold no control character (a name with a
//!   newline could fake a line of the runner's output). See [`read_info`].
//! - `allocator_stats`: the header's sum (metadata + reserved + free =
//!   arena), each figure within the arena ([`check_stats`]).
//! - Names and paths from outside, wherever they are shown: control
//!   characters escaped ([`shown`]).

use std::ffi::c_void;

use plugin_abi::loader::PluginApi;
use plugin_abi::{ALLOCATOR_STAT_UNKNOWN, AllocatorInfo, AllocatorStats};

use crate::output::shown;
use crate::postmortem::{self, Stage};

/// The longest name `allocator_info` may give, in bytes.
pub const MAX_NAME: usize = 64;
/// The longest description or complexity line, in bytes.
pub const MAX_LINE: usize = 1024;

/// `allocator_info`'s answer, checked.
#[derive(Clone, Debug, Default)]
pub struct Info {
    /// Short name.
    pub name: Option<String>,
    /// One line: the algorithm.
    pub description: Option<String>,
    /// `ALLOCATOR_FLAG_*` bits accepted at creation.
    pub supported_flags: u32,
}

/// Copies `buf.len()` bytes at `addr` of this process; false if they are
/// not all readable. Never faults.
fn read_own(addr: usize, buf: &mut [u8]) -> bool {
    if buf.is_empty() {
        return true;
    }
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` is our buffer; the kernel checks `remote` and answers
    // EFAULT (or a short count) for memory that is not readable.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    usize::try_from(n).is_ok_and(|n| n == buf.len())
}

/// The NUL-terminated string at `p` (`None` for NULL), read without
/// trusting it: readable, at most `max` bytes, UTF-8, no control character.
fn read_string(p: *const libc::c_char, max: usize, what: &str) -> Result<Option<String>, String> {
    if p.is_null() {
        return Ok(None);
    }
    let page = rustix::param::page_size();
    let mut bytes = Vec::new();
    let mut addr = p as usize;
    loop {
        // Up to the end of the page: a string may end just before memory
        // that is not readable.
        let chunk = (page - addr % page).min(max + 1 - bytes.len());
        let mut buf = vec![0u8; chunk];
        if !read_own(addr, &mut buf) {
            return Err(format!(
                "allocator_info's {what} points to memory that is not readable ({:#x})",
                addr
            ));
        }
        if let Some(end) = buf.iter().position(|&b| b == 0) {
            bytes.extend_from_slice(&buf[..end]);
            break;
        }
        bytes.extend_from_slice(&buf);
        addr += chunk;
        if bytes.len() > max {
            return Err(format!(
                "allocator_info's {what} is longer than {max} bytes (or has no terminating NUL)"
            ));
        }
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "allocator_info's {what} is not UTF-8 (byte {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    if let Some((at, c)) = text.char_indices().find(|(_, c)| c.is_control()) {
        return Err(format!(
            "allocator_info's {what} contains a control character (U+{:04X} at byte {at}): {}",
            c as u32,
            shown(&text)
        ));
    }
    Ok(Some(text))
}

/// Calls the plugin's `allocator_info` and checks what it returns: `None`
/// if it has none (or answers NULL), an error naming what is wrong.
pub fn read_info(api: &PluginApi) -> Result<Option<Info>, String> {
    let Some(f) = api.info else {
        return Ok(None);
    };
    let before = postmortem::stage(Stage::Info);
    // SAFETY: `allocator_info` takes nothing (header); what it returns is
    // only read through `read_own`.
    let p = unsafe { f() };
    let info = (|| {
        if p.is_null() {
            return Ok(None);
        }
        let mut raw = [0u8; size_of::<AllocatorInfo>()];
        if !read_own(p as usize, &mut raw) {
            return Err(format!(
                "allocator_info returned {:#x}, which is not readable memory",
                p as usize
            ));
        }
        // SAFETY: `raw` holds the bytes of an `AllocatorInfo` (plain integers
        // and pointers: every bit pattern is a value); the pointers in it are
        // only read through `read_string`.
        let raw: AllocatorInfo = unsafe { std::ptr::read_unaligned(raw.as_ptr().cast()) };
        let name = read_string(raw.name, MAX_NAME, "name")?;
        read_string(raw.complexity, MAX_LINE, "complexity")?;
        if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            return Err("allocator_info's name is empty".into());
        }
        Ok(Some(Info {
            name,
            description: read_string(raw.description, MAX_LINE, "description")?,
            supported_flags: raw.supported_flags,
        }))
    })();
    postmortem::stage(before);
    info
}

/// Checks `allocator_stats`' answer for an allocator created on `arena`
/// bytes: the header's `metadata + reserved + free == arena_bytes`, and
/// every figure within the arena.
pub fn check_stats(s: &AllocatorStats, arena: usize) -> Result<(), String> {
    let whole = s
        .metadata_bytes
        .checked_add(s.bytes_reserved)
        .and_then(|x| x.checked_add(s.bytes_free));
    let wrong = if s.arena_bytes != arena {
        Some(format!(
            "arena_bytes is {}, but the arena has {arena} bytes",
            s.arena_bytes
        ))
    } else if whole != Some(arena) {
        Some(format!(
            "metadata {} + reserved {} + free {} bytes is not the arena's {arena}",
            s.metadata_bytes, s.bytes_reserved, s.bytes_free
        ))
    } else if s.largest_free_block > s.bytes_free {
        Some(format!(
            "the largest free block ({} bytes) is larger than the free bytes ({})",
            s.largest_free_block, s.bytes_free
        ))
    } else if s.bytes_requested != ALLOCATOR_STAT_UNKNOWN && s.bytes_requested > s.bytes_reserved {
        Some(format!(
            "{} bytes requested but only {} reserved",
            s.bytes_requested, s.bytes_reserved
        ))
    } else if s.live_blocks > arena {
        Some(format!(
            "{} live blocks in a {arena}-byte arena",
            s.live_blocks
        ))
    } else {
        None
    };
    match wrong {
        Some(w) => Err(format!("allocator_stats is inconsistent: {w}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_read_without_faulting() {
        assert_eq!(
            read_string(c"buddy".as_ptr(), 64, "name"),
            Ok(Some("buddy".into()))
        );
        assert_eq!(read_string(std::ptr::null(), 64, "name"), Ok(None));
        let err = read_string(8 as *const libc::c_char, 64, "name").unwrap_err();
        assert!(err.contains("not readable (0x8)"), "{err}");
        let err = read_string(c"two\nlines".as_ptr(), 64, "name").unwrap_err();
        assert!(
            err.contains("U+000A at byte 3") && err.contains("two\\nlines"),
            "{err}"
        );
        let long = std::ffi::CString::new("x".repeat(65)).unwrap();
        assert!(
            read_string(long.as_ptr(), 64, "name")
                .unwrap_err()
                .contains("longer than 64")
        );
        let bad = [0xffu8, 0xfe, 0];
        assert!(
            read_string(bad.as_ptr().cast(), 64, "name")
                .unwrap_err()
                .contains("not UTF-8")
        );
    }

    /// A string that ends right before a page that is not readable is read
    /// whole; one that runs into it is refused.
    #[test]
    fn strings_at_the_end_of_readable_memory() {
        let page = rustix::param::page_size();
        // SAFETY: two fresh pages, the second made inaccessible.
        let p = unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                2 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
            .cast::<u8>();
            assert_ne!(p.cast(), libc::MAP_FAILED);
            libc::mprotect(p.add(page).cast(), page, libc::PROT_NONE);
            p.add(page - 4).copy_from(c"abc".as_ptr().cast(), 4);
            p
        };
        // SAFETY: inside the first page.
        let tail = unsafe { p.add(page - 4) };
        assert_eq!(read_string(tail.cast(), 64, "name"), Ok(Some("abc".into())));
        // SAFETY: as above; the NUL is overwritten.
        unsafe { tail.add(3).write(b'd') };
        assert!(
            read_string(tail.cast(), 64, "name")
                .unwrap_err()
                .contains("not readable")
        );
        // SAFETY: our mapping.
        unsafe { libc::munmap(p.cast(), 2 * page) };
    }

    #[test]
    fn stats_must_add_up() {
        let good = AllocatorStats {
            arena_bytes: 1000,
            metadata_bytes: 100,
            bytes_requested: 300,
            bytes_reserved: 400,
            bytes_free: 500,
            largest_free_block: 200,
            live_blocks: 3,
            failed_allocs: 0,
            rejected_frees: 0,
        };
        assert_eq!(check_stats(&good, 1000), Ok(()));
        assert!(
            check_stats(&good, 2000)
                .unwrap_err()
                .contains("arena_bytes")
        );
        let garbage = AllocatorStats {
            bytes_reserved: usize::MAX,
            ..good
        };
        assert!(
            check_stats(&garbage, 1000)
                .unwrap_err()
                .contains("is not the arena's")
        );
        let larger = AllocatorStats {
            largest_free_block: 600,
            ..good
        };
        assert!(check_stats(&larger, 1000).is_err());
        let unknown = AllocatorStats {
            bytes_requested: ALLOCATOR_STAT_UNKNOWN,
            ..good
        };
        assert_eq!(check_stats(&unknown, 1000), Ok(()));
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(shown("bump\nfake line"), "bump\\nfake line");
        assert_eq!(shown("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(shown("mckusick-karels"), "mckusick-karels");
    }
}
