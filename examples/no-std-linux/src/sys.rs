//! What libc and the C runtime would give: the entry point, three system
//! calls (x86_64 Linux, raw `syscall` instructions) and the memory
//! functions the compiler calls (`memcpy`, `memmove`, `memset`, `memcmp`,
//! `bcmp`).

use core::arch::{asm, naked_asm};
use core::ptr::NonNull;

/// The ELF entry point: the kernel leaves `argc` at `rsp`, 16-byte aligned;
/// a call needs `rsp` 16-byte aligned before it, which `call` then pushes to
/// 8 mod 16, as every function expects.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn _start() -> ! {
    naked_asm!("xor ebp, ebp", "and rsp, -16", "call program_main", "ud2")
}

/// `exit_group(status)`.
pub fn exit(status: i32) -> ! {
    // SAFETY: exit_group takes one integer and does not return.
    unsafe {
        asm!("syscall", in("rax") 231, in("rdi") status as isize, options(noreturn, nostack));
    }
}

/// `write(1, s)`, all of it.
pub fn print(s: &str) {
    let mut bytes = s.as_bytes();
    while !bytes.is_empty() {
        let n: isize;
        // SAFETY: write reads `len` bytes from a valid buffer.
        unsafe {
            asm!("syscall", inlateout("rax") 1isize => n, in("rdi") 1, in("rsi") bytes.as_ptr(),
                 in("rdx") bytes.len(), lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// `mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)`.
pub fn mmap(len: usize) -> Option<NonNull<u8>> {
    let p: isize;
    // SAFETY: an anonymous private mapping touches no existing memory.
    unsafe {
        asm!("syscall", inlateout("rax") 9isize => p, in("rdi") 0, in("rsi") len, in("rdx") 3,
             in("r10") 0x22, in("r8") -1isize, in("r9") 0, lateout("rcx") _, lateout("r11") _,
             options(nostack));
    }
    // Errors are -4095..=-1.
    if (-4095..0).contains(&p) {
        return None;
    }
    NonNull::new(p as *mut u8)
}

/// A message formatted on the stack (the panic handler must not allocate).
pub struct StackWriter {
    buf: [u8; 512],
    len: usize,
}

impl StackWriter {
    pub fn new() -> Self {
        StackWriter {
            buf: [0; 512],
            len: 0,
        }
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("(not UTF-8)")
    }
}

impl core::fmt::Write for StackWriter {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let mut n = s.len().min(self.buf.len() - self.len);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

// The memory functions. `rep movsb`/`rep stosb` (fast on current x86_64)
// rather than loops, which the compiler could turn back into calls to the
// very functions being defined.

/// # Safety
///
/// The C contract: `n` bytes readable at `src`, writable at `dest`, not
/// overlapping.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract; the direction flag is clear (ABI).
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dest => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
///
/// The C contract: `n` bytes readable at `src`, writable at `dest`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if dest.addr().wrapping_sub(src.addr()) >= n {
        // No overlap with `dest` after `src`: forwards is safe.
        // SAFETY: the caller's contract.
        return unsafe { memcpy(dest, src, n) };
    }
    // Backwards, from the last byte (the direction flag set, then cleared).
    // SAFETY: the caller's contract; `n > 0` here (`dest - src < n`).
    unsafe {
        asm!("std", "rep movsb", "cld", inout("rcx") n => _,
             inout("rdi") dest.add(n - 1) => _, inout("rsi") src.add(n - 1) => _,
             options(nostack));
    }
    dest
}

/// # Safety
///
/// The C contract: `n` bytes writable at `dest`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract; the direction flag is clear (ABI).
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dest => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
///
/// The C contract: `n` bytes readable at `a` and `b`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: `i < n` (the caller's contract).
        let (x, y) = unsafe { (a.add(i).read(), b.add(i).read()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// # Safety
///
/// As for [`memcmp`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { memcmp(a, b, n) }
}

// The prebuilt `alloc` of this target was compiled for unwinding and names
// the unwinder's entry points; with `panic = "abort"` nothing unwinds, so
// they are never called.

/// Never called: nothing unwinds (`panic = "abort"`).
#[unsafe(no_mangle)]
extern "C" fn _Unwind_Resume() -> ! {
    exit(134)
}

/// Never called: nothing unwinds (`panic = "abort"`).
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}
