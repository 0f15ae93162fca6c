//! `realloc`: in place when the new size fits the same bucket or page run,
//! otherwise allocate, copy, free.
//!
//! | block        | new size                                  | what happens |
//! |--------------|-------------------------------------------|--------------|
//! | object `2^k` | same bucket                               | in place |
//! | object `2^k` | smaller bucket                            | moved to it; in place if that fails |
//! | object `2^k` | larger                                    | moved (alloc, copy, free) |
//! | large run    | an object smaller than a page             | moved to its bucket; else as below |
//! | large run    | `m` pages, `m <` run                      | in place: the tail pages go back |
//! | large run    | `m` pages, `m >` run                      | in place if the free run right after it is long enough, else moved |

use core::ptr::NonNull;

use arena_api::ReallocError;

use crate::allocator::McKusickKarels;
use crate::bucket::bucket_index;
use crate::free::Block;
use crate::kmemusage::{KmemUsage, LARGE, LARGE_TAIL};
use crate::regions::Owner;

impl McKusickKarels {
    /// Resizes the block at `p` to hold `new_size` bytes (0 counts as 1),
    /// keeping its first `min(old, new)` bytes. On error nothing changes but
    /// a counter: [`ReallocError::BadPointer`] counts a rejected free,
    /// [`ReallocError::OutOfMemory`] a failed allocation.
    ///
    /// # Time complexity
    ///
    /// O(1) in place; moving costs a [`McKusickKarels::malloc`], a copy of
    /// the old block and a [`McKusickKarels::free`].
    pub fn realloc(
        &mut self,
        p: NonNull<u8>,
        new_size: usize,
    ) -> Result<NonNull<u8>, ReallocError> {
        let Some((owner, block)) = self.lookup_anywhere(p) else {
            self.rejected_frees += 1;
            return Err(ReallocError::BadPointer);
        };
        let new_size = new_size.max(1);
        let page_size = self.page_mask + 1;
        match block {
            Block::Object { indx, .. } => {
                let old = 1usize << indx;
                if new_size <= self.maxallocsave && bucket_index(new_size) == indx {
                    return Ok(p);
                }
                if new_size < old {
                    // A smaller bucket saves memory; if it has no room the
                    // block stays where it is, which is still a success.
                    return Ok(self.move_block(owner, block, p, old, new_size).unwrap_or(p));
                }
                self.move_or_fail(owner, block, p, old, new_size)
            }
            Block::Large { page, pagecnt } => {
                let old = (pagecnt as usize) << self.page_shift;
                if new_size <= self.maxallocsave
                    && (1usize << bucket_index(new_size)) < page_size
                    && let Some(q) = self.move_block(owner, block, p, old, new_size)
                {
                    return Ok(q);
                }
                let Some(m) = new_size
                    .checked_add(self.page_mask)
                    .map(|s| s >> self.page_shift)
                else {
                    self.failed_allocs += 1;
                    return Err(ReallocError::OutOfMemory);
                };
                let region = self.region_mut(owner);
                if m <= region.pages.npages as usize {
                    let m = m as u32;
                    if m == pagecnt {
                        return Ok(p);
                    }
                    if m < pagecnt {
                        region
                            .pages
                            .set_tags(page, m, KmemUsage::head(LARGE, 0), LARGE_TAIL);
                        region.pages.free_run(page + m, pagecnt - m);
                        return Ok(p);
                    }
                    if region.pages.grow_in_place(page, pagecnt, m - pagecnt) {
                        region
                            .pages
                            .set_tags(page, m, KmemUsage::head(LARGE, 0), LARGE_TAIL);
                        return Ok(p);
                    }
                }
                self.move_or_fail(owner, block, p, old, new_size)
            }
        }
    }

    fn move_or_fail(
        &mut self,
        owner: Owner,
        block: Block,
        p: NonNull<u8>,
        old: usize,
        new_size: usize,
    ) -> Result<NonNull<u8>, ReallocError> {
        self.move_block(owner, block, p, old, new_size)
            .ok_or_else(|| {
                self.failed_allocs += 1;
                ReallocError::OutOfMemory
            })
    }
}
