//! The Hilbert curve: a square-filling order of cells in which consecutive
//! cells are neighbours, so that nearby addresses stay nearby in the picture.

/// The cell `(x, y)` of a `side` x `side` grid (`side` a power of two) at
/// position `d` along the curve, which starts at `(0, 0)` and ends at
/// `(side - 1, 0)`. O(log side).
pub fn cell(side: u32, d: u64) -> (u32, u32) {
    debug_assert!(side.is_power_of_two());
    let (mut x, mut y) = (0u64, 0u64);
    let mut t = d;
    let mut s = 1u64;
    while s < u64::from(side) {
        let rx = 1 & (t / 2);
        let ry = 1 & (t ^ rx);
        if ry == 0 {
            if rx == 1 {
                x = s - 1 - x;
                y = s - 1 - y;
            }
            std::mem::swap(&mut x, &mut y);
        }
        x += s * rx;
        y += s * ry;
        t /= 4;
        s *= 2;
    }
    (x as u32, y as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visits_every_cell_once_moving_one_step_at_a_time() {
        for side in [1u32, 2, 4, 16, 64] {
            let n = u64::from(side) * u64::from(side);
            let mut seen = vec![false; n as usize];
            let mut prev: Option<(u32, u32)> = None;
            for d in 0..n {
                let (x, y) = cell(side, d);
                assert!(x < side && y < side);
                let i = (y * side + x) as usize;
                assert!(!seen[i], "cell ({x}, {y}) visited twice");
                seen[i] = true;
                if let Some((px, py)) = prev {
                    assert_eq!(px.abs_diff(x) + py.abs_diff(y), 1, "a jump at d = {d}");
                }
                prev = Some((x, y));
            }
        }
    }
}
