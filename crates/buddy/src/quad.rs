//! The *quad code*: 5 bits per 64 bytes that tell, without reading any
//! block, which allocated blocks start where, and of which order.
//!
//! A *quad* is an aligned run of 4 granules (64 bytes). What the allocator
//! must know out of band (so that a bad `free` is rejected without trusting
//! memory a caller may have written) is the set of **allocated** blocks, with
//! their orders. Seen from one quad, that is one of these *quad states*:
//!
//! ```text
//!   pair state (granules 2p, 2p+1 of the quad)       quad state
//!   E  no allocated block starts in the pair          (s0, s1): 5 x 5 = 25
//!   L  an order-4 block at the even granule only      W6..W10: an allocated block
//!   R  an order-4 block at the odd granule only          of that order starts here
//!   B  order-4 blocks at both                         W10: one of order >= 10 does
//!   P  an order-5 block at the pair                   M: interior marker (below)
//!                                                     = 31 states
//! ```
//!
//! A state is stored as a 5-bit code: one bit in the *Q* bitmap and one
//! nibble in the *A* bitmap. Codes 0..=15 (Q = 0) are the states made only
//! of E, L, R, B, and then the nibble is simply "an order-4 block starts at
//! granule i" for each of its bits; codes 17..=31 (Q = 1) are the states with
//! a P, the W states and M, all with a non-zero nibble (code 16 is not
//! used). So the frequent small blocks are plain bits, the order of any
//! block up to 512 bytes is one table look-up, and "no allocated block
//! starts in these quads" is "their nibbles are zero": one A-word test,
//! whatever the Q bits.
//!
//! The order of a W10 block is told by *markers*: an allocated block of order
//! `k >= 11` at granule `g` sets the quads at `g + granules(j)` for
//! `j = 10..k` to M (the starts of its upper halves, which lie inside it).
//! Decoding probes `j = 10, 11, ...` while the quad at `g + granules(j)` is M
//! (O(k - 10) probes). A quad inside an allocated block that is not a marker
//! is 0; so is every quad of a free block, and a marker never sits at a real
//! block start (it is strictly inside its block), so the probe stops exactly
//! at the block's end.
//!
//! Cost: 5 bits per 64 bytes = 0.98 % of the arena. (A lower bound for *any*
//! exact code of the allocated set is about 1.176 bits per granule, 0.92 %;
//! one bit per granule for starts plus one per pair for orders, the obvious
//! scheme, costs 1.17 %.)

/// A 5-bit quad code (`0..=31`; 16 is never written).
pub type Code = u8;

/// Pair states.
const E: u8 = 0;
const L: u8 = 1;
const R: u8 = 2;
const B: u8 = 3;
const P: u8 = 4;

/// The code of a quad in which no allocated block starts (also every quad
/// inside a free block, and the non-marker quads inside an allocated block).
pub const FREE: Code = 0;
/// `wide(PROBE_ORDER)` means "an allocated block of this order or more:
/// probe the markers"; the W codes of smaller orders are exact.
pub const PROBE_ORDER: u32 = 10;
/// The code of "an allocated block of order `k` starts at the quad's first
/// granule", `6 <= k <= PROBE_ORDER` (`PROBE_ORDER`: that order or more).
pub const fn wide(k: u32) -> Code {
    20 + k as Code
}
/// An interior marker of an allocated block of order > `PROBE_ORDER`.
pub const MARKER: Code = 31;
/// Returned by the transition tables for a transition that cannot happen in
/// a consistent state.
pub const INVALID: Code = 0xFF;
/// Number of valid codes.
pub const NUM_CODES: u8 = 32;

/// A decoded quad state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuadState {
    /// The two pairs' states (E, L, R, B, P = 0..=4).
    Pairs(u8, u8),
    /// An allocated block of this order (6..=10; 10: 10 or more) starts
    /// at granule 0.
    Wide(u8),
    /// Interior marker.
    Marker,
}

/// The code of a state.
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
        QuadState::Wide(k) => wide(k as u32),
        QuadState::Marker => MARKER,
    }
}

/// The state of a code, or `None` for a corrupt code.
pub const fn decode(c: Code) -> Option<QuadState> {
    match c {
        0..=15 => Some(QuadState::Pairs(c & 3, (c >> 2) & 3)),
        17..=20 => Some(QuadState::Pairs(P, c - 17)),
        21 => Some(QuadState::Pairs(P, P)),
        22..=25 => Some(QuadState::Pairs(c - 22, P)),
        26..=30 => Some(QuadState::Wide(c - 20)),
        MARKER => Some(QuadState::Marker),
        _ => None, // 16: Q set with a zero nibble, never written
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

/// The order (4..=9, or 10 meaning "10 or more: probe the markers") of the
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
        QuadState::Wide(k) if i == 0 => k,
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
        QuadState::Wide(_) if i == 0 => Some(QuadState::Pairs(E, E)),
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
/// granule `i` of the quad (4..=9, or 10 meaning ">= 10: probe the
/// markers"), or 0 if none.
pub static START: [u8; 128] = {
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

/// `SET4[code * 4 + i]`: the code after an order-4 block is allocated at
/// granule `i`, or [`INVALID`].
pub static SET4: [Code; 128] = table!(set4);
/// `SET5[code * 4 + i]`: the code after an order-5 block is allocated at
/// granule `i`, or [`INVALID`].
pub static SET5: [Code; 128] = table!(set5);
/// `CLEAR[code * 4 + i]`: the code after the allocated block starting at
/// granule `i` is freed, or [`INVALID`].
pub static CLEAR: [Code; 128] = table!(clear);

/// The table index of granule `g` in a quad of code `c`.
#[inline(always)]
pub const fn at(c: Code, g: usize) -> usize {
    // `c & 31` keeps the index in bounds whatever the byte.
    ((c as usize & 31) << 2) | (g & 3)
}

/// The state built from the allocated blocks of order 4 and 5 found in a
/// quad, for the invariant check: `small[i]` is the order (0, 4 or 5) of the
/// allocated block starting at granule `i`. `None` if they cannot coexist.
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
        for k in 6..=10 {
            v.push(QuadState::Wide(k));
        }
        v.push(QuadState::Marker);
        v
    }

    #[test]
    fn codes_are_a_bijection_onto_0_to_31_but_16() {
        let mut seen = [false; 32];
        for s in all_states() {
            let c = encode(s);
            assert!(c < NUM_CODES, "{s:?} -> {c}");
            assert!(!seen[c as usize]);
            seen[c as usize] = true;
            assert_eq!(decode(c), Some(s));
        }
        assert!(seen.iter().enumerate().all(|(c, &s)| s == (c != 16)));
        assert_eq!(decode(16), None);
        // Q = 1 codes have a non-zero nibble: FREE iff the nibble is zero.
        assert!((17..32).all(|c| c & 15 != 0));
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
        for k in 6..=PROBE_ORDER {
            assert_eq!(u32::from(START[at(wide(k), 0)]), k);
            assert_eq!(CLEAR[at(wide(k), 0)], FREE);
            assert!((1..4).all(|i| START[at(wide(k), i)] == 0));
        }
        assert!((0..4).all(|i| START[at(MARKER, i)] == 0));
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
