//! The out-of-band record of allocated blocks: the A and Q bitmaps that hold
//! one [quad code](crate::quad) per 64 bytes of the managed range.
//!
//! ```text
//!   quad index qi = (g - base_g) / 4            (g: absolute granule)
//!   A word qi / 16, nibble qi % 16 : the code's low 4 bits
//!   Q word qi / 64, bit    qi % 64 : the code's bit 4
//! ```
//!
//! Invariant (checked by [`crate::Buddy::check`]): the code of every quad
//! is exactly the one the allocated blocks determine, that is
//! - `START[code][i] == k` for `k` in `4..=9` iff an allocated block of
//!   order `k` starts at granule `i` of the quad (for `k >= 6`, `i == 0` and
//!   the code is `wide(k)`), `== 10` iff one of order `>= 10` does;
//! - the code is `MARKER` iff the quad starts at `g + granules(j)` for an
//!   allocated block of order `k >= 11` at `g` and some `10 <= j < k`;
//! - every other quad (free, interior, outside the managed range) is `FREE`.

use crate::order::{MAX_ORDER, granules};
use crate::quad::{
    self, CLEAR, Code, FREE, INVALID, MARKER, PROBE_ORDER, SET4, SET5, START, at, wide,
};

/// The largest order for which [`AllocMap::no_start_in`] answers from the
/// bitmaps (a region of 64 quads: four A words, one Q word).
pub(crate) const WORD_ORDER: u32 = 12;

/// `NIBBLES[log_n]`: the low `4 * 2^log_n` bits.
const NIBBLES: [u64; 5] = [0xF, 0xFF, 0xFFFF, 0xFFFF_FFFF, u64::MAX];

/// The A and Q bitmaps, inside the arena.
#[derive(Debug)]
pub(crate) struct AllocMap {
    /// A bitmap: `u64` words, 16 nibbles each.
    a: *mut u64,
    /// Q bitmap: `u64` words, 64 bits each.
    q: *mut u64,
    /// Absolute granule number of quad 0's first granule (a multiple of 256:
    /// a Q word covers an aligned 4 KiB, which `no_start_in` relies on).
    base_g: usize,
    /// Quads covered: `16 * a_words` (the Q bitmap covers at least as many).
    quads: usize,
}

impl AllocMap {
    /// The bitmaps at `a` (`a_words` words) and `q` (`a_words.div_ceil(4)`
    /// words), which must be zero, covering granules from `base_g`.
    ///
    /// # Safety
    ///
    /// Both are valid for reads and writes, 8-byte aligned, zeroed, and used
    /// by nothing else for as long as this map is used.
    ///
    /// # Time complexity
    ///
    /// O(1).
    pub(crate) unsafe fn new(a: *mut u64, a_words: usize, q: *mut u64, base_g: usize) -> Self {
        AllocMap {
            a,
            q,
            base_g,
            quads: a_words * 16,
        }
    }

    /// Quads covered by the bitmaps.
    pub(crate) fn quads(&self) -> usize {
        self.quads
    }

    /// The code of the quad holding granule `g` (`FREE` if `g` is not
    /// covered, which a consistent caller never asks).
    ///
    /// # Time complexity
    ///
    /// O(1): two word loads.
    #[inline(always)]
    pub(crate) fn code(&self, g: usize) -> Code {
        let qi = g.wrapping_sub(self.base_g) >> 2;
        if qi >= self.quads {
            debug_assert!(false, "granule {g:#x} outside the bitmaps");
            return FREE;
        }
        // SAFETY: `qi < quads = 16 * a_words`, so word `qi / 16` of A and
        // word `qi / 64 < a_words.div_ceil(4)` of Q exist (contract of `new`).
        let (aw, qw) = unsafe { (self.a.add(qi >> 4).read(), self.q.add(qi >> 6).read()) };
        let nibble = (aw >> ((qi & 15) << 2)) & 15;
        let q = (qw >> (qi & 63)) & 1;
        (nibble | (q << 4)) as Code
    }

    /// Writes the code of the quad holding granule `g`.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub(crate) fn set_code(&mut self, g: usize, c: Code) {
        let qi = g.wrapping_sub(self.base_g) >> 2;
        if qi >= self.quads || c >= quad::NUM_CODES {
            debug_assert!(false, "code {c} at granule {g:#x}");
            return;
        }
        let shift = (qi & 15) << 2;
        let bit = 1u64 << (qi & 63);
        // SAFETY: as in `code`; `&mut self` makes this the only access.
        unsafe {
            let a = self.a.add(qi >> 4);
            a.write((a.read() & !(15 << shift)) | (u64::from(c & 15) << shift));
            let q = self.q.add(qi >> 6);
            let w = q.read();
            q.write(if c >= 16 { w | bit } else { w & !bit });
        }
    }

    /// True when an allocated block starts at granule `g`.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub(crate) fn has_start(&self, g: usize) -> bool {
        START[at(self.code(g), g)] != 0
    }

    /// True when no allocated block starts inside the naturally aligned
    /// region of order `k` at granule `g`, for `k <= WORD_ORDER` (a region of
    /// at most 64 quads, so at most 4 A words and one Q word are tested).
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub(crate) fn no_start_in(&self, g: usize, k: u32) -> bool {
        if k <= 5 {
            let c = self.code(g);
            // Order 4: granule g; order 5: the pair at g.
            return START[at(c, g)] | (if k == 5 { START[at(c, g + 1)] } else { 0 }) == 0;
        }
        let qi = g.wrapping_sub(self.base_g) >> 2;
        // n = 2^(k-6) quads, aligned to n (the base is aligned to 64 quads).
        let log_n = k.wrapping_sub(6);
        if log_n > WORD_ORDER - 6 || qi >= self.quads || (self.quads - qi) >> log_n == 0 {
            debug_assert!(false, "region {g:#x} of order {k}");
            return false;
        }
        debug_assert!(qi.trailing_zeros() >= log_n, "unaligned region {g:#x}");
        // A quad's code is FREE iff its nibble is zero (no Q = 1 code has a
        // zero nibble): only the A bitmap is read. The nibbles lie in one A
        // word (n <= 16) or in n / 16 whole A words.
        if log_n <= 4 {
            // SAFETY: `qi < quads`: the word exists (see `code`).
            let a = unsafe { self.a.add(qi >> 4).read() } >> ((qi & 15) << 2);
            a & NIBBLES[log_n as usize] == 0
        } else {
            let mut any = 0;
            for w in 0..1usize << (log_n - 4) {
                // SAFETY: `qi + n <= quads`: the words `qi / 16 .. (qi + n) / 16`.
                any |= unsafe { self.a.add((qi >> 4) + w).read() };
            }
            any == 0
        }
    }

    /// The order of the allocated block that starts at granule `g`, or 0 if
    /// none does. `end` is the managed range's end (the marker probe never
    /// looks at or past it).
    ///
    /// # Time complexity
    ///
    /// O(1) up to order 10, O(k - 10) quad reads for order `k > 10`.
    #[inline(always)]
    pub(crate) fn start_order(&self, g: usize, end: usize) -> u32 {
        let t = u32::from(START[at(self.code(g), g)]);
        if t < PROBE_ORDER {
            t
        } else {
            self.probe_order(g, end)
        }
    }

    /// The order of the `wide(PROBE_ORDER)` block at `g`: `PROBE_ORDER`
    /// plus the number of markers.
    #[inline(never)]
    fn probe_order(&self, g: usize, end: usize) -> u32 {
        let mut j = PROBE_ORDER;
        while j < MAX_ORDER {
            let b = g + granules(j);
            if b >= end || self.code(b) != MARKER {
                break;
            }
            j += 1;
        }
        j
    }

    /// Records an allocated block of order `k` at granule `g` (which lies in
    /// a free block: no start, no marker).
    ///
    /// # Time complexity
    ///
    /// O(1) for `k <= PROBE_ORDER`, O(k - PROBE_ORDER) otherwise.
    #[inline(always)]
    pub(crate) fn mark_allocated(&mut self, g: usize, k: u32) {
        if k <= 5 {
            let c = self.code(g);
            let n = if k == 4 {
                SET4[at(c, g)]
            } else {
                SET5[at(c, g)]
            };
            debug_assert!(n != INVALID, "order {k} at {g:#x} over code {c}");
            if n != INVALID {
                self.set_code(g, n);
            }
        } else {
            debug_assert_eq!(self.code(g), FREE);
            self.set_code(g, wide(k.min(PROBE_ORDER)));
            for j in PROBE_ORDER..k {
                self.set_code(g + granules(j), MARKER);
            }
        }
    }

    /// Forgets the allocated block of order `k` at granule `g`.
    ///
    /// # Time complexity
    ///
    /// O(1) for `k <= PROBE_ORDER`, O(k - PROBE_ORDER) otherwise.
    #[inline(always)]
    pub(crate) fn clear_allocated(&mut self, g: usize, k: u32) {
        if k <= 5 {
            let c = self.code(g);
            let n = CLEAR[at(c, g)];
            debug_assert!(n != INVALID, "clear at {g:#x} of code {c}");
            if n != INVALID {
                self.set_code(g, n);
            }
        } else {
            self.set_code(g, FREE);
            for j in PROBE_ORDER..k {
                self.set_code(g + granules(j), FREE);
            }
        }
    }
}
