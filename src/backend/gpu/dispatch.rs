//! Dispatch scheduling as pure arithmetic: how many nonces one dispatch may cover, and the
//! workgroup grid that covers them. Kept apart from the device so the edges (2^31 nonces, a
//! grid row limit of 65,535, a size of 0) are unit-tested without a GPU.

/// Most nonces one dispatch covers. Half the nonce space: the shader and the hit count take the
/// dispatch's nonce count as a `u32`, where 2^32 would wrap to 0 and hash nothing, and the
/// invocation offsets (`invocation * nonces_per_invocation + i`) stay below 2^32 with room to
/// spare. At 6 GH/s 2^31 nonces is about 0.36 s, far beyond the ~30 ms dispatches aim for.
pub const MAX_DISPATCH: u64 = 1 << 31;

/// Nonces per dispatch before the first measurement, when the options give none.
pub const DEFAULT_INITIAL_DISPATCH: u64 = 1 << 20;

/// The workgroup grid of one dispatch: `x` groups per row, `y` rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub x: u32,
    pub y: u32,
}

/// The grid for `count` nonces at `per_group` nonces per workgroup, with at most `max_x`
/// groups per row (both at least 1). One row when it fits; otherwise the fewest rows that fit,
/// each of `ceil(groups / rows)` groups, so at most `rows - 1` groups are launched past the
/// needed ones (the shader returns early for offsets past the count). A grid of full
/// `max_x`-wide rows would launch up to a whole row too many: 2^27 nonces at 2,048 per group and
/// a 65,535 limit need 65,536 groups, which full rows make 131,070.
pub fn grid(count: u64, per_group: u64, max_x: u32) -> Grid {
    let groups = count.div_ceil(per_group.max(1)).max(1);
    let max_x = u64::from(max_x.max(1));
    if groups <= max_x {
        return Grid {
            x: groups as u32,
            y: 1,
        };
    }
    let rows = groups.div_ceil(max_x);
    let x = groups.div_ceil(rows);
    Grid {
        x: x as u32,
        // `count` is at most MAX_DISPATCH, so rows fit; saturate rather than wrap if not.
        y: u32::try_from(rows).unwrap_or(u32::MAX),
    }
}

/// Largest dispatch the grid limits allow, capped at [`MAX_DISPATCH`]: whole workgroups of
/// `per_group` nonces, `max_x` per row, `max_y` rows.
pub fn max_dispatch(per_group: u64, max_x: u32, max_y: u32) -> u64 {
    (per_group * u64::from(max_x) * u64::from(max_y)).clamp(1, MAX_DISPATCH)
}

/// The dispatch size to start from: `requested` (or [`DEFAULT_INITIAL_DISPATCH`]), raised to
/// one workgroup and lowered to `max`. A size of 0 would never advance through the range.
pub fn initial_dispatch(requested: Option<u64>, per_group: u64, max: u64) -> u64 {
    requested
        .unwrap_or(DEFAULT_INITIAL_DISPATCH)
        .max(per_group)
        .min(max)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Grid {
        /// Workgroups launched.
        fn groups(&self) -> u64 {
            u64::from(self.x) * u64::from(self.y)
        }
    }

    /// Nonces a grid covers at `per_group` nonces per group.
    fn covered(g: Grid, per_group: u64) -> u64 {
        g.groups() * per_group
    }

    #[test]
    fn one_row_when_the_groups_fit() {
        assert_eq!(grid(1, 2048, 65_535), Grid { x: 1, y: 1 });
        assert_eq!(grid(2048, 2048, 65_535), Grid { x: 1, y: 1 });
        assert_eq!(grid(2049, 2048, 65_535), Grid { x: 2, y: 1 });
        assert_eq!(grid(65_535 * 2048, 2048, 65_535), Grid { x: 65_535, y: 1 });
        // Nothing to do still launches one group, which returns at once.
        assert_eq!(grid(0, 2048, 65_535), Grid { x: 1, y: 1 });
    }

    #[test]
    fn rows_are_only_as_wide_as_needed() {
        // The example: 2^27 nonces, 2,048 per group, 65,535 per row: 65,536 groups in
        // two rows of 32,768, not two rows of 65,535.
        let g = grid(1 << 27, 2048, 65_535);
        assert_eq!(g, Grid { x: 32_768, y: 2 });
        assert_eq!(g.groups(), 65_536);
        // One group past a full row.
        assert_eq!(
            grid((65_535 + 1) * 2048, 2048, 65_535),
            Grid { x: 32_768, y: 2 }
        );
        // A small limit: 10 groups with at most 3 per row take 4 rows of 3 (2 spare).
        assert_eq!(grid(10 * 128, 128, 3), Grid { x: 3, y: 4 });
    }

    #[test]
    fn every_grid_covers_its_count_with_less_than_a_row_of_slack() {
        for per_group in [1u64, 64, 128, 2048, 16_384] {
            for max_x in [1u32, 2, 3, 7, 1000, 65_535] {
                for count in [
                    1u64,
                    per_group - 1,
                    per_group,
                    per_group + 1,
                    123_457,
                    1 << 27,
                    (1 << 31) - 1,
                    MAX_DISPATCH,
                ] {
                    let count = count.max(1);
                    let g = grid(count, per_group, max_x);
                    let needed = count.div_ceil(per_group);
                    assert!(
                        g.x >= 1 && g.x <= max_x,
                        "{count} {per_group} {max_x}: {g:?}"
                    );
                    assert!(
                        covered(g, per_group) >= count,
                        "{count} {per_group} {max_x}"
                    );
                    assert!(
                        g.groups() - needed < u64::from(g.y),
                        "{count} {per_group} {max_x}: {g:?} launches {} groups for {needed}",
                        g.groups()
                    );
                }
            }
        }
    }

    #[test]
    fn dispatches_are_capped_at_2_pow_31() {
        // A device whose grid could hold 2^32 nonces or more still gets at most 2^31.
        assert_eq!(max_dispatch(2048, 65_535, 65_535), MAX_DISPATCH);
        assert_eq!(max_dispatch(1 << 16, 1 << 16, 1 << 16), MAX_DISPATCH);
        // A small grid caps below that.
        assert_eq!(max_dispatch(128, 3, 5), 128 * 15);
        // The capped size is a u32 count that is not 0.
        assert!(MAX_DISPATCH <= u64::from(u32::MAX) && (MAX_DISPATCH as u32) != 0);
    }

    #[test]
    fn the_initial_size_is_clamped_to_one_group_and_the_cap() {
        let max = max_dispatch(2048, 65_535, 65_535);
        // 0 would never advance: one workgroup instead.
        assert_eq!(initial_dispatch(Some(0), 2048, max), 2048);
        assert_eq!(initial_dispatch(Some(1), 2048, max), 2048);
        assert_eq!(initial_dispatch(Some(5000), 2048, max), 5000);
        assert_eq!(initial_dispatch(None, 2048, max), DEFAULT_INITIAL_DISPATCH);
        // 2^32 (or more) would wrap the shader's u32 count: the cap instead.
        assert_eq!(initial_dispatch(Some(1 << 32), 2048, max), MAX_DISPATCH);
        assert_eq!(initial_dispatch(Some(u64::MAX), 2048, max), MAX_DISPATCH);
        // A grid smaller than the request.
        assert_eq!(initial_dispatch(Some(1 << 20), 128, 128 * 15), 128 * 15);
    }
}
