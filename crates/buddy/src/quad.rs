//! The *quad code*: 5 bits per 64 bytes that tell, without reading any
//! block, which allocated blocks start where, and of which order.
//!
//! A *quad* is an aligned run of 4 granules (64 bytes). What the allocator
//! must know out of band (so that a bad `free` is rejected without trusting
//! memory a caller may have written) is the set of **allocated** blocks, with
//! their orders. Seen from one quad, that is one of these *quad states*:
//!
//! ```text
//!   pair state (granules 2p, 2p+1 of the quad)      quad state
//!   E  no allocated block starts in the pair         (s0, s1): 5 x 5 = 25
//!   L  an order-4 block at the even granule only     W6, W7, W8: a block of that
//!   R  an order-4 block at the odd granule only         order starts here
//!   B  order-4 blocks at both                        W: one of order >= 9 does
//!   P  an order-5 block at the pair                  D: an order digit (below)
//!                                                    = 30 states (codes 0..=29)
//! ```
//!
//! A state is stored as a 5-bit code: one bit in the *Q* bitmap and one
//! nibble in the *A* bitmap. Codes 0..=15 (Q = 0) are the states made only
//! of E, L, R, B, and then the nibble is simply "an order-4 block starts at
//! granule i" for each of its bits; codes 17..=29 (Q = 1) are the states with
//! a P, W6, W7, W8 and W, all with a non-zero nibble. So the frequent small blocks are
//! plain bits, and "no allocated block starts in these quads" is "their
//! nibbles are zero": one A-word test, whatever the Q bits.
//!
//! The order `k >= 9` of a W block at quad `q` is written in the Q bits of
//! the five quads after it, `q + 1 ..= q + 5`, as `k - 9` (5 bits: orders 9
//! to 40). Those quads lie inside the block (it has at least 8 quads) and
//! in the same Q word as `q` (the block is aligned to 8 quads), so the order
//! comes with the very word that holds `q`'s own Q bit: decoding any order
//! is O(1), with no extra memory access. Their nibbles stay zero, so their
//! codes are FREE (0) or D (16, "Q set, nibble zero"), neither of which
//! starts a block: a pointer into them is still rejected. Every other quad
//! inside an allocated block, and every quad of a free block, is FREE.
//!
//! Cost: 5 bits per 64 bytes = 0.98 % of the arena. (A lower bound for *any*
//! exact code of the allocated set is about 1.176 bits per granule, 0.92 %;
//! one bit per granule for starts plus one per pair for orders, the obvious
//! scheme, costs 1.17 %.)

/// A 5-bit quad code (`0..=29`; 30 and 31 are corrupt).
pub type Code = u8;

/// Pair states.
const E: u8 = 0;
const L: u8 = 1;
const R: u8 = 2;
const B: u8 = 3;
const P: u8 = 4;

/// The code of a quad in which no allocated block starts (also every quad
/// inside a free block, and most quads inside an allocated block).
pub const FREE: Code = 0;
/// An order digit: a set bit of the order of the W block before it.
pub const DIGIT: Code = 16;
/// The code of "an allocated block of order `k` starts at the quad's first
/// granule", for `k` in 6..=8.
///
/// # Time complexity
///
/// O(1).
pub const fn exact(k: u32) -> Code {
    20 + k as Code
}
/// An allocated block of order >= 9 starts at the quad's first granule; its
/// order is in the Q bits of the next five quads.
pub const WIDE: Code = 29;
/// The smallest order of a `WIDE` block (8 quads: five digits fit inside).
pub const WIDE_MIN_ORDER: u32 = 9;
/// Quads after a `WIDE` start whose Q bits hold its order minus 7.
pub const ORDER_DIGITS: u32 = 5;
/// Returned by the transition tables for a transition that cannot happen in
/// a consistent state.
pub const INVALID: Code = 0xFF;
/// Number of valid codes: `0..NUM_CODES`.
pub const NUM_CODES: u8 = 30;

/// A decoded quad state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuadState {
    /// The two pairs' states (E, L, R, B, P = 0..=4).
    Pairs(u8, u8),
    /// An allocated block of this order (6..=8) starts at granule 0.
    Exact(u8),
    /// An allocated block of order >= 9 starts at granule 0.
    Wide,
    /// An order digit (inside a `Wide` block).
    Digit,
}

/// The code of a state.
///
/// # Time complexity
///
/// O(1).
pub const fn encode(s: QuadState) -> Code {
    match s {
        QuadState::Pairs(s0, s1) => {
            if s0 < P && s1 < P {
                s0 | (s1 << 2)
            } else if s0 == P && s1 < P {
                17 + s1
            } else if s0 == P {
                21
            } else {
                22 + s0
            }
        }
        QuadState::Exact(k) => exact(k as u32),
        QuadState::Wide => WIDE,
        QuadState::Digit => DIGIT,
    }
}

/// The state of a code, or `None` for a corrupt code.
///
/// # Time complexity
///
/// O(1).
pub const fn decode(c: Code) -> Option<QuadState> {
    match c {
        0..=15 => Some(QuadState::Pairs(c & 3, (c >> 2) & 3)),
        17..=20 => Some(QuadState::Pairs(P, c - 17)),
        21 => Some(QuadState::Pairs(P, P)),
        22..=25 => Some(QuadState::Pairs(c - 22, P)),
        DIGIT => Some(QuadState::Digit),
        26..=28 => Some(QuadState::Exact(c - 20)),
        WIDE => Some(QuadState::Wide),
        _ => None,
    }
}

/// The pair state of pair `p` (0 or 1) in `Pairs(s0, s1)`.
const fn pair_of(s0: u8, s1: u8, i: usize) -> u8 {
    if i < 2 { s0 } else { s1 }
}

const fn with_pair(s0: u8, s1: u8, i: usize, s: u8) -> QuadState {
    if i < 2 {
        QuadState::Pairs(s, s1)
    } else {
        QuadState::Pairs(s0, s)
    }
}

/// The order (4..=8, or 9 meaning "9 or more: read the digits") of the
/// allocated block that starts at granule `i` of a quad in state `s`, or 0.
const fn start_order(s: QuadState, i: usize) -> u8 {
    let odd = i & 1 == 1;
    match s {
        QuadState::Pairs(s0, s1) => match pair_of(s0, s1, i) {
            L if !odd => 4,
            R if odd => 4,
            B => 4,
            P if !odd => 5,
            _ => 0,
        },
        QuadState::Exact(k) if i == 0 => k,
        QuadState::Wide if i == 0 => WIDE_MIN_ORDER as u8,
        _ => 0,
    }
}

/// The state after an order-4 block is allocated at granule `i`.
const fn set4(s: QuadState, i: usize) -> Option<QuadState> {
    let odd = i & 1 == 1;
    match s {
        QuadState::Pairs(s0, s1) => {
            let new = match (pair_of(s0, s1, i), odd) {
                (E, false) => L,
                (E, true) => R,
                (L, true) | (R, false) => B,
                _ => return None,
            };
            Some(with_pair(s0, s1, i, new))
        }
        _ => None,
    }
}

/// The state after an order-5 block is allocated at granule `i` (even).
const fn set5(s: QuadState, i: usize) -> Option<QuadState> {
    match s {
        QuadState::Pairs(s0, s1) if i & 1 == 0 && pair_of(s0, s1, i) == E => {
            Some(with_pair(s0, s1, i, P))
        }
        _ => None,
    }
}

/// The state after the allocated block starting at granule `i` is freed.
const fn clear(s: QuadState, i: usize) -> Option<QuadState> {
    let odd = i & 1 == 1;
    match s {
        QuadState::Pairs(s0, s1) => {
            let new = match (pair_of(s0, s1, i), odd) {
                (L, false) | (R, true) | (P, false) => E,
                (B, false) => R,
                (B, true) => L,
                _ => return None,
            };
            Some(with_pair(s0, s1, i, new))
        }
        QuadState::Exact(_) | QuadState::Wide if i == 0 => Some(QuadState::Pairs(E, E)),
        _ => None,
    }
}

/// A 128-entry transition table `code * 4 + i -> code` built from a const fn
/// on states (function pointers cannot be called in const context).
macro_rules! table {
    ($f:ident) => {{
        let mut t = [INVALID; 128];
        let mut c = 0;
        while c < 32 {
            if let Some(s) = decode(c as u8) {
                let mut i = 0;
                while i < 4 {
                    if let Some(n) = $f(s, i) {
                        t[c * 4 + i] = encode(n);
                    }
                    i += 1;
                }
            }
            c += 1;
        }
        t
    }};
}

/// `START[code * 4 + i]`: the order of the allocated block starting at
/// granule `i` of the quad (4..=8, or 9 meaning ">= 9: read the order
/// digits"), or 0 if none.
pub const START: [u8; 128] = {
    let mut t = [0; 128];
    let mut c = 0;
    while c < 32 {
        if let Some(s) = decode(c as u8) {
            let mut i = 0;
            while i < 4 {
                t[c * 4 + i] = start_order(s, i);
                i += 1;
            }
        }
        c += 1;
    }
    t
};

/// `STARTS[code]`: bit `i` set iff an allocated block starts at granule
/// `i` of the quad ([`START`] as a mask: one lookup tests a pair).
pub const STARTS: [u8; 32] = {
    let mut t = [0; 32];
    let mut c = 0;
    while c < 32 {
        let mut i = 0;
        while i < 4 {
            if START[c * 4 + i] != 0 {
                t[c] |= 1 << i;
            }
            i += 1;
        }
        c += 1;
    }
    t
};

/// `SET4[code * 4 + i]`: the code after an order-4 block is allocated at
/// granule `i`, or [`INVALID`].
pub const SET4: [Code; 128] = table!(set4);
/// `SET5[code * 4 + i]`: the code after an order-5 block is allocated at
/// granule `i`, or [`INVALID`].
pub const SET5: [Code; 128] = table!(set5);
/// `CLEAR[code * 4 + i]`: the code after the allocated block starting at
/// granule `i` is freed, or [`INVALID`].
pub const CLEAR: [Code; 128] = table!(clear);

/// The table index of granule `g` in a quad of code `c`.
///
/// # Time complexity
///
/// O(1).
#[inline(always)]
pub const fn at(c: Code, g: usize) -> usize {
    // `c & 31` keeps the index in bounds whatever the byte.
    ((c as usize & 31) << 2) | (g & 3)
}

/// The state built from the allocated blocks of order 4 and 5 found in a
/// quad, for the invariant check: `small[i]` is the order (0, 4 or 5) of the
/// allocated block starting at granule `i`. `None` if they cannot coexist.
///
/// # Time complexity
///
/// O(1).
pub fn state_of_small_blocks(small: [u8; 4]) -> Option<QuadState> {
    let pair = |a: u8, b: u8| match (a, b) {
        (0, 0) => Some(E),
        (4, 0) => Some(L),
        (0, 4) => Some(R),
        (4, 4) => Some(B),
        (5, 0) => Some(P),
        _ => None,
    };
    Some(QuadState::Pairs(
        pair(small[0], small[1])?,
        pair(small[2], small[3])?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_states() -> Vec<QuadState> {
        let mut v = Vec::new();
        for s0 in 0..5 {
            for s1 in 0..5 {
                v.push(QuadState::Pairs(s0, s1));
            }
        }
        for k in 6..=8 {
            v.push(QuadState::Exact(k));
        }
        v.push(QuadState::Wide);
        v.push(QuadState::Digit);
        v
    }

    #[test]
    fn codes_are_a_bijection_onto_0_to_29() {
        let mut seen = [false; 32];
        for s in all_states() {
            let c = encode(s);
            assert!(c < NUM_CODES, "{s:?} -> {c}");
            assert!(!seen[c as usize]);
            seen[c as usize] = true;
            assert_eq!(decode(c), Some(s));
        }
        assert!(seen.iter().enumerate().all(|(c, &s)| s == (c < 30)));
        // Q = 1 codes but D have a non-zero nibble: no block starts in a
        // quad iff its nibble is zero.
        assert!((17..30).all(|c| c & 15 != 0));
        assert!((0..4).all(|i| START[at(DIGIT, i)] == 0));
        assert_eq!(encode(QuadState::Pairs(E, E)), FREE);
    }

    #[test]
    fn q0_codes_are_plain_start_bits() {
        for c in 0..16u8 {
            for i in 0..4 {
                let bit = (c >> i) & 1;
                assert_eq!(START[at(c, i)], 4 * bit, "code {c} granule {i}");
            }
        }
    }

    #[test]
    fn set_then_clear_is_identity() {
        for s in all_states() {
            let c = encode(s);
            for i in 0..4 {
                for (table, order) in [(&SET4, 4), (&SET5, 5)] {
                    let n = table[at(c, i)];
                    if n == INVALID {
                        continue;
                    }
                    assert_eq!(START[at(c, i)], 0, "set over a start");
                    assert_eq!(START[at(n, i)], order);
                    assert_eq!(CLEAR[at(n, i)], c);
                    // The other granules keep their starts.
                    for j in (0..4).filter(|&j| j != i) {
                        assert_eq!(START[at(n, j)], START[at(c, j)]);
                    }
                }
            }
        }
    }

    #[test]
    fn every_free_granule_of_a_small_state_can_be_allocated() {
        // In a quad holding only small blocks, a granule that is neither an
        // allocated start nor inside an order-5 block takes an order-4 block.
        for s0 in 0..5 {
            for s1 in 0..5 {
                let c = encode(QuadState::Pairs(s0, s1));
                for i in 0..4 {
                    let pair = if i < 2 { s0 } else { s1 };
                    let free = START[at(c, i)] == 0 && pair != P;
                    assert_eq!(SET4[at(c, i)] != INVALID, free);
                    assert_eq!(SET5[at(c, i)] != INVALID, i % 2 == 0 && pair == E);
                }
            }
        }
        for (c, k) in [
            (exact(6), 6),
            (exact(7), 7),
            (exact(8), 8),
            (WIDE, WIDE_MIN_ORDER),
        ] {
            assert_eq!(u32::from(START[at(c, 0)]), k);
            assert_eq!(CLEAR[at(c, 0)], FREE);
            assert!((1..4).all(|i| START[at(c, i)] == 0));
        }
    }

    #[test]
    fn small_block_states() {
        assert_eq!(
            state_of_small_blocks([5, 0, 4, 4]),
            Some(QuadState::Pairs(P, B))
        );
        assert_eq!(state_of_small_blocks([0, 5, 0, 0]), None);
    }
}

#[cfg(test)]
mod starts_tests {
    use super::*;

    #[test]
    fn starts_is_start_as_a_mask() {
        for c in 0..32 {
            for i in 0..4 {
                assert_eq!(STARTS[c] >> i & 1 == 1, START[c * 4 + i] != 0, "code {c}");
            }
        }
    }
}
