//! The recording state: which live pointer has which block id, the trace
//! buffer, the thread numbers. One lock guards it all (recording serialises
//! the program's allocation calls; the real calls themselves run outside
//! it).
//!
//! Event order. A `FREE` is recorded (and its id given back) *before* the
//! real `free`, an `ALLOC` *after* the real `malloc`: whatever another thread
//! does in between, an address is never live twice in the table. A
//! `realloc` takes the old pointer out of the table before the real call and
//! puts the result in after it, under the same id.

use core::cell::{Cell, UnsafeCell};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use alloc_trace::{Event, MAGIC, encode};
use malloc_shim::lock::Mutex;
use malloc_shim::sys;

use crate::ids::IdAlloc;
use crate::table::Table;

const BUF_BYTES: usize = 1 << 20;

struct Inner {
    fd: i32,
    ptrs: Table,
    ids: IdAlloc,
    buf: NonNull<u8>,
    len: usize,
    /// The thread number of the last event.
    current: u64,
    /// The number the next new thread gets.
    next_thread: u64,
    /// Lost sight of a block (an address came back from `malloc` while we
    /// still had it live): recorded as a free of the old block.
    anomalies: u64,
}

impl Inner {
    fn new(fd: i32) -> Option<Inner> {
        let me = Inner {
            fd,
            ptrs: Table::new(1 << 16, false)?,
            ids: IdAlloc::new()?,
            buf: sys::map(BUF_BYTES, false)?,
            len: 0,
            current: 0,
            next_thread: 0,
            anomalies: 0,
        };
        // The magic goes out at once: a trace file that holds it proves the
        // recorder ran, even in a process killed before its first flush.
        sys::write_all(fd, MAGIC).then_some(me)
    }

    fn put(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > BUF_BYTES {
            self.flush();
        }
        // SAFETY: `len + bytes.len() <= BUF_BYTES` after the flush (records
        // are at most 40 bytes), inside the buffer mapping.
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.buf.as_ptr().add(self.len),
                bytes.len(),
            );
        }
        self.len += bytes.len();
    }

    /// Writes the buffer out; false on a write error.
    fn flush(&mut self) -> bool {
        // SAFETY: the first `len` bytes of the buffer are initialised.
        let bytes = unsafe { core::slice::from_raw_parts(self.buf.as_ptr(), self.len) };
        let ok = sys::write_all(self.fd, bytes);
        self.len = 0;
        ok
    }

    fn emit(&mut self, e: Event) {
        let n = self.thread_number();
        if n != self.current {
            self.current = n;
            self.event(Event::Thread { thread: n });
        }
        self.event(e);
    }

    /// The calling thread's number: given on its first event, in order,
    /// kept in a thread-local (a new thread starts without one, even where
    /// it reuses a finished thread's stack and `pthread_self` value).
    fn thread_number(&mut self) -> u64 {
        const NONE: u64 = u64::MAX;
        thread_local! {
            // No destructor: nothing is registered at thread exit, and the
            // access allocates nothing (static TLS: the library is preloaded).
            static NUMBER: Cell<u64> = const { Cell::new(NONE) };
        }
        NUMBER
            .try_with(|number| {
                if number.get() == NONE {
                    number.set(self.next_thread);
                    self.next_thread += 1;
                }
                number.get()
            })
            .unwrap_or(self.current)
    }

    fn event(&mut self, e: Event) {
        let mut rec = [0u8; 40];
        let n = encode(e, &mut rec);
        self.put(rec.get(..n).unwrap_or_default());
    }

    /// A new live block at `p`; its id.
    fn born(&mut self, p: usize) -> Option<u64> {
        let id = self.ids.alloc()?;
        match self.ptrs.insert(p, id) {
            Ok(None) => Some(id),
            Ok(Some(old)) => {
                // We missed a free of this address: close the old block.
                self.anomalies += 1;
                self.ids.free(old);
                self.emit(Event::Free { id: old });
                Some(id)
            }
            Err(_) => {
                self.ids.free(id);
                None
            }
        }
    }
}

/// The recorder of this process.
pub struct Recorder {
    lock: Mutex,
    recording: AtomicBool,
    /// Set once by `start`, then only touched under `lock`.
    inner: UnsafeCell<Option<Inner>>,
}

// SAFETY: `inner` is only reached under `lock` (or by `start`, before
// `recording` is published).
unsafe impl Sync for Recorder {}

impl Recorder {
    /// A recorder that records nothing until [`Recorder::start`].
    pub const fn new() -> Self {
        Recorder {
            lock: Mutex::new(),
            recording: AtomicBool::new(false),
            inner: UnsafeCell::new(None),
        }
    }

    /// Starts recording into `path`. With `exclusive`, only if this process
    /// creates the file (`O_EXCL`: programs it starts, which inherit the
    /// environment, find it taken); otherwise the file is truncated (a
    /// process that `exec`s another program starts the trace again, as the
    /// new program). False if the file cannot be opened.
    pub fn start(&self, path: &core::ffi::CStr, exclusive: bool) -> bool {
        let mode = if exclusive {
            libc::O_EXCL
        } else {
            libc::O_TRUNC
        };
        // SAFETY: a NUL-terminated path; open does not allocate.
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC | mode,
                0o644,
            )
        };
        if fd < 0 {
            return false;
        }
        let Some(inner) = Inner::new(fd) else {
            // SAFETY: our descriptor.
            unsafe { libc::close(fd) };
            return false;
        };
        let Ok(_g) = self.lock.lock() else {
            return false;
        };
        // SAFETY: under the lock.
        unsafe { *self.inner.get() = Some(inner) };
        self.recording.store(true, Ordering::Release);
        true
    }

    /// Runs `f` on the state if recording, under the lock (a call made by
    /// the thread that holds it — a signal handler — is not recorded).
    fn with(&self, f: impl FnOnce(&mut Inner)) {
        if !self.recording.load(Ordering::Acquire) {
            return;
        }
        let Ok(_g) = self.lock.lock() else {
            return;
        };
        if !self.recording.load(Ordering::Relaxed) {
            return;
        }
        // SAFETY: under the lock.
        if let Some(inner) = unsafe { &mut *self.inner.get() } {
            f(inner);
        }
    }

    /// `p = malloc(size)` (or an aligned allocation) succeeded.
    pub fn alloc(&self, p: *mut core::ffi::c_void, size: usize, align: usize) {
        self.with(|s| {
            if let Some(id) = s.born(p as usize) {
                s.emit(if align > 16 {
                    Event::AllocAligned {
                        id,
                        size: size as u64,
                        align: align as u64,
                    }
                } else {
                    Event::Alloc {
                        id,
                        size: size as u64,
                    }
                });
            }
        });
    }

    /// `free(p)` is about to run.
    pub fn free(&self, p: *mut core::ffi::c_void) {
        self.with(|s| {
            if let Some(id) = s.ptrs.remove(p as usize) {
                s.emit(Event::Free { id });
                s.ids.free(id);
            }
        });
    }

    /// `realloc(p, ..)` is about to run: takes `p` out of the table and
    /// returns its id (None if `p` was not recorded).
    pub fn realloc_begin(&self, p: *mut core::ffi::c_void) -> Option<u64> {
        let mut id = None;
        self.with(|s| id = s.ptrs.remove(p as usize));
        id
    }

    /// `q = realloc(p, size)` returned: records what happened to block `id`.
    pub fn realloc_end(
        &self,
        id: Option<u64>,
        p: *mut core::ffi::c_void,
        q: *mut core::ffi::c_void,
        size: usize,
    ) {
        self.with(|s| match (id, q.is_null()) {
            // realloc(p, 0) freed p (glibc)
            (Some(id), true) if size == 0 => {
                s.emit(Event::Free { id });
                s.ids.free(id);
            }
            // failed: p is still live
            (Some(id), true) => {
                if s.ptrs.insert(p as usize, id).is_err() {
                    s.ids.free(id);
                }
            }
            (Some(id), false) => match s.ptrs.insert(q as usize, id) {
                Ok(None) => s.emit(Event::Realloc {
                    id,
                    size: size as u64,
                }),
                Ok(Some(other)) => {
                    s.anomalies += 1;
                    s.ids.free(other);
                    s.emit(Event::Free { id: other });
                    s.emit(Event::Realloc {
                        id,
                        size: size as u64,
                    });
                }
                Err(_) => {
                    s.emit(Event::Free { id });
                    s.ids.free(id);
                }
            },
            // a block we never saw: from now on, a new one
            (None, false) => {
                if let Some(id) = s.born(q as usize) {
                    s.emit(Event::Alloc {
                        id,
                        size: size as u64,
                    });
                }
            }
            (None, true) => {}
        });
    }

    /// At exit: writes what is buffered, closes the file, stops.
    pub fn finish(&self) {
        self.with(|s| {
            s.flush();
            // SAFETY: our descriptor.
            unsafe { libc::close(s.fd) };
        });
        self.recording.store(false, Ordering::Release);
    }

    /// Blocks that the recorder lost sight of so far (for tests).
    pub fn anomalies(&self) -> u64 {
        let mut n = 0;
        self.with(|s| n = s.anomalies);
        n
    }

    /// `pthread_atfork` prepare: no event is half-recorded across `fork`.
    pub fn fork_prepare(&self) {
        self.lock.fork_prepare();
    }

    /// `pthread_atfork` parent.
    pub fn fork_parent(&self) {
        self.lock.fork_parent();
    }

    /// `pthread_atfork` child: the child does not record (its events would
    /// interleave with the parent's in one file); the parent's buffered
    /// events are not the child's to write.
    pub fn fork_child(&self) {
        self.recording.store(false, Ordering::Release);
        self.lock.fork_child();
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}
