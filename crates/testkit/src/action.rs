//! The one action type that drives every allocator, from proptest (a
//! [`proptest::strategy::Strategy`]) and from cargo-fuzz (`arbitrary`).

use arbitrary::Arbitrary;
use proptest::prelude::*;

/// A request size, resolved against the arena length so that a fuzzer's
/// random bytes reach small, medium, exact power-of-two, arena-sized and huge
/// requests alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Arbitrary)]
pub struct Size {
    /// Which family of sizes.
    pub class: u8,
    /// The value within it.
    pub raw: u32,
}

impl Size {
    /// The byte count this stands for in an arena of `arena_len` bytes.
    pub fn resolve(self, arena_len: usize) -> usize {
        let raw = self.raw as usize;
        match self.class % 16 {
            0..=4 => 1 + raw % 128,
            5..=8 => 1 + raw % 4096,
            9 => 1 + raw % 65536,
            10 => 1 << (raw % 21),
            11 => (1usize << (raw % 21)) + 1,
            12 => (1usize << (1 + raw % 20)) - 1,
            13 => raw % (arena_len + arena_len / 4 + 1),
            14 => 0,
            _ => usize::MAX - raw % 8192,
        }
    }
}

/// A pointer that no allocator handed out, relative to a live block or to
/// the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Arbitrary)]
pub enum BadPointer {
    /// Inside a live block, past its start (a multiple of 16 bytes in, or any).
    Interior(u16),
    /// A live block's start plus 1..=15 bytes.
    Misaligned(u8),
    /// Below the arena.
    Before(u16),
    /// At or past the end of the arena.
    After(u16),
    /// Near the start of the arena, where allocator state usually lives.
    ArenaStart(u16),
}

/// What a use-after-free write puts into the first 16 bytes of a freed
/// block (where both cores keep their free-list links).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Arbitrary)]
pub enum Scribble {
    /// Every byte this value (0x41, 0xff, 0 ...).
    Bytes(u8),
    /// The address of a live block (this index), or a spot 16 bytes into it.
    LiveBlock(u16, bool),
    /// The address of a neighbour: the block's own address plus `16 * k`
    /// (`k` may be negative, never 0).
    Neighbour(i8),
    /// The address of another recently freed block (maybe of another size
    /// class, maybe handed out again).
    OtherFreed(u16),
    /// An address outside the arena: before it (`false`) or after it.
    OutOfArena(u16, bool),
    /// Any two words.
    Words(u64, u64),
}

/// One call (or a short sequence of calls) on an allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Arbitrary)]
pub enum Action {
    /// `alloc(size)`.
    Alloc(Size),
    /// `alloc_aligned(size, 1 << (log2 % 13))`.
    AllocAligned(Size, u8),
    /// `free` of the live block at this index (modulo the number live).
    Free(u16),
    /// `realloc` of the live block at this index to a new size.
    Realloc(u16, Size),
    /// `realloc(NULL, size)`.
    ReallocNull(Size),
    /// `realloc(p, 0)` of a live block: frees it.
    ReallocZero(u16),
    /// `free(NULL)`.
    FreeNull,
    /// `free` of a pointer that is not a live block (chosen near this block index).
    FreeBad(u16, BadPointer),
    /// `realloc` of a pointer that is not a live block.
    ReallocBad(u16, BadPointer, Size),
    /// `free` again of a recently freed pointer (which may have been handed out
    /// again since, and then is a valid free).
    FreeAgain(u16),
    /// `alloc_aligned` with an alignment that is not a power of two.
    AllocBadAlign(Size, u8),
    /// Overwrite the whole block with new bytes, as a caller may.
    Scribble(u16),
    /// `add_region` of a fresh region: `len` resolved against the arena
    /// length (from 0 to about twice it), starting `misalign` bytes past a
    /// 4096-byte boundary. A region large enough must be taken.
    AddRegion {
        /// Length selector.
        len: u32,
        /// Bytes past a 4096-byte boundary where the region starts.
        misalign: u16,
    },
    /// `add_region` of memory the allocator already manages (part of the
    /// arena, from this offset): must be refused, changing nothing.
    AddOverlapping(u16),
    /// Overwrite the first 16 bytes of the block freed last (if nothing was
    /// allocated since), as a use-after-free bug does.
    ScribbleFreed(Scribble),
}

/// A whole test case: an arena and what is done with it.
#[derive(Clone, Debug, PartialEq, Eq, Arbitrary)]
pub struct Scenario {
    /// Arena length selector (resolved by [`Scenario::arena_len`]).
    pub arena: u32,
    /// Bytes past a 4096-byte boundary where the arena starts.
    pub misalign: u16,
    /// The actions, in order.
    pub actions: Vec<Action>,
}

impl Scenario {
    /// The arena length: from 0 to about `max` bytes, often odd, sometimes
    /// a power of two.
    pub fn arena_len(&self, max: usize) -> usize {
        let raw = self.arena as usize;
        if raw.is_multiple_of(5) {
            (1usize << (raw / 5 % 30)).min(max)
        } else {
            raw % (max + 1)
        }
    }
}

fn size_strategy() -> impl Strategy<Value = Size> {
    (any::<u8>(), any::<u32>()).prop_map(|(class, raw)| Size { class, raw })
}

fn scribble_strategy() -> impl Strategy<Value = Scribble> {
    prop_oneof![
        prop_oneof![Just(0x41u8), Just(0), Just(0xff), any::<u8>()].prop_map(Scribble::Bytes),
        (any::<u16>(), any::<bool>()).prop_map(|(i, b)| Scribble::LiveBlock(i, b)),
        any::<i8>().prop_map(Scribble::Neighbour),
        any::<u16>().prop_map(Scribble::OtherFreed),
        (any::<u16>(), any::<bool>()).prop_map(|(k, b)| Scribble::OutOfArena(k, b)),
        (any::<u64>(), any::<u64>()).prop_map(|(a, b)| Scribble::Words(a, b)),
    ]
}

fn bad_pointer_strategy() -> impl Strategy<Value = BadPointer> {
    prop_oneof![
        any::<u16>().prop_map(BadPointer::Interior),
        any::<u8>().prop_map(BadPointer::Misaligned),
        any::<u16>().prop_map(BadPointer::Before),
        any::<u16>().prop_map(BadPointer::After),
        any::<u16>().prop_map(BadPointer::ArenaStart),
    ]
}

/// Actions in the proportions a property test wants: mostly allocations and
/// frees, some reallocs, a few bad calls.
pub fn action_strategy() -> impl Strategy<Value = Action> {
    prop_oneof![
        30 => size_strategy().prop_map(Action::Alloc),
        4 => (size_strategy(), any::<u8>()).prop_map(|(s, a)| Action::AllocAligned(s, a)),
        25 => any::<u16>().prop_map(Action::Free),
        10 => (any::<u16>(), size_strategy()).prop_map(|(i, s)| Action::Realloc(i, s)),
        1 => size_strategy().prop_map(Action::ReallocNull),
        1 => any::<u16>().prop_map(Action::ReallocZero),
        1 => Just(Action::FreeNull),
        3 => (any::<u16>(), bad_pointer_strategy()).prop_map(|(i, b)| Action::FreeBad(i, b)),
        1 => (any::<u16>(), bad_pointer_strategy(), size_strategy()).prop_map(|(i, b, s)| Action::ReallocBad(i, b, s)),
        3 => any::<u16>().prop_map(Action::FreeAgain),
        1 => (size_strategy(), any::<u8>()).prop_map(|(s, a)| Action::AllocBadAlign(s, a)),
        2 => any::<u16>().prop_map(Action::Scribble),
        3 => scribble_strategy().prop_map(Action::ScribbleFreed),
        1 => (any::<u32>(), any::<u16>()).prop_map(|(len, misalign)| Action::AddRegion { len, misalign }),
        1 => any::<u16>().prop_map(Action::AddOverlapping),
    ]
}

/// Scenarios with arenas up to `max_arena` bytes and up to `max_actions` actions.
pub fn scenario_strategy(max_arena: usize, max_actions: usize) -> impl Strategy<Value = Scenario> {
    let max = u32::try_from(max_arena).unwrap_or(u32::MAX);
    (
        prop_oneof![0..=max, (0u32..30).prop_map(|k| k * 5)],
        any::<u16>(),
        proptest::collection::vec(action_strategy(), 0..=max_actions),
    )
        .prop_map(|(arena, misalign, actions)| Scenario {
            arena,
            misalign,
            actions,
        })
}
