//! Dispatch scheduling as pure arithmetic: how many nonces one dispatch may cover, the
//! workgroup grid that covers them, the size a first-hit search caps a dispatch at, and the rule
//! that adapts the size toward [`TARGET_DISPATCH_MS`]. Kept apart from the device so the edges
//! (2^31 nonces, a grid row limit of 65,535, a size of 0, a tail dispatch) are unit-tested
//! without a GPU.

use crate::backend::StopAt;
use crate::hash::Job;
use crate::pow::Target;

/// What each dispatch should take; far below desktop watchdog limits (about 2 s).
pub const TARGET_DISPATCH_MS: f64 = 30.0;

/// A search that stops at its first hit keeps each dispatch to at most this fraction of the
/// expected hashes per hit: the dispatches still in flight when a hit lands run to their end, and
/// this keeps that overshoot to a few percent of a block's work.
pub const FIRST_HIT_SHARE: u64 = 64;

/// Most nonces one dispatch covers. Half the nonce space: the shader and the hit count take the
/// dispatch's nonce count as a `u32`, where 2^32 would wrap to 0 and hash nothing, and the
/// invocation offsets (`invocation * nonces_per_invocation + i`) stay below 2^32 with room to
/// spare. At 6 GH/s 2^31 nonces is about 0.36 s, far beyond the ~30 ms dispatches aim for.
pub const MAX_DISPATCH: u64 = 1 << 31;

/// Nonces per dispatch before the first measurement, when the options give none.
pub(crate) const DEFAULT_INITIAL_DISPATCH: u64 = 1 << 20;

/// The workgroup grid of one dispatch: `x` groups per row, `y` rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Grid {
    pub(crate) x: u32,
    pub(crate) y: u32,
}

/// The grid for `count` nonces at `per_group` nonces per workgroup, with at most `max_x`
/// groups per row (both at least 1). One row when it fits; otherwise the fewest rows that fit,
/// each of `ceil(groups / rows)` groups, so at most `rows - 1` groups are launched past the
/// needed ones (the shader returns early for offsets past the count). A grid of full
/// `max_x`-wide rows would launch up to a whole row too many: 2^27 nonces at 2,048 per group and
/// a 65,535 limit need 65,536 groups, which full rows make 131,070.
pub(crate) fn grid(count: u64, per_group: u64, max_x: u32) -> Grid {
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
pub(crate) fn max_dispatch(per_group: u64, max_x: u32, max_y: u32) -> u64 {
    (per_group * u64::from(max_x) * u64::from(max_y)).clamp(1, MAX_DISPATCH)
}

/// The dispatch size to start from: `requested` (or [`DEFAULT_INITIAL_DISPATCH`]), raised to
/// one workgroup and lowered to `max`. A size of 0 would never advance through the range.
pub(crate) fn initial_dispatch(requested: Option<u64>, per_group: u64, max: u64) -> u64 {
    requested
        .unwrap_or(DEFAULT_INITIAL_DISPATCH)
        .max(per_group)
        .min(max)
        .max(1)
}

/// For a search that stops at its first hit: 1/[`FIRST_HIT_SHARE`] of the hashes a hit is
/// expected to take at `job`'s target.
pub(crate) fn first_hit_share(job: &Job, stop: StopAt) -> Option<u64> {
    match stop {
        StopAt::End => None,
        StopAt::FirstHit => {
            let expected = Target::from_words(job.target).work().to_f64();
            Some((expected / FIRST_HIT_SHARE as f64) as u64)
        }
    }
}

/// Nonces for the next dispatch: the `adapted` size, or for a first-hit search on an easy
/// target (`share`, from [`first_hit_share`]) that share of the expected hashes per hit, though
/// never below 1/32 of the adapted size (about 1 ms of work), under which the cost of a dispatch
/// itself would eat the rate, nor below one workgroup (`per_group`), nor above `adapted`.
pub(crate) fn dispatch_for(adapted: u64, share: Option<u64>, per_group: u64) -> u64 {
    match share {
        None => adapted,
        Some(share) => adapted.min(share.max(adapted / 32).max(per_group)),
    }
}

/// The dispatch size after a dispatch of `count` nonces, from the `current` size, kept within
/// `min..=max`. A full-size dispatch (`count >= current`) doubles or halves it by `busy_ms`,
/// the time since the previous completion, toward [`TARGET_DISPATCH_MS`]. A smaller one (a
/// range's tail, or a first-hit search's capped dispatch) can only double it, and only when its
/// rate over `latency_ms`, from its submission to its read-back (never less than the dispatch
/// itself took, so never too fast), says the size is far too small: mining at a low difficulty
/// thus still learns a fast device's speed, and with it the floor of [`dispatch_for`].
pub(crate) fn adapt(
    current: u64,
    count: u64,
    busy_ms: f64,
    latency_ms: f64,
    min: u64,
    max: u64,
) -> u64 {
    let next = if count >= current {
        if busy_ms < TARGET_DISPATCH_MS / 2.0 {
            current * 2
        } else if busy_ms > TARGET_DISPATCH_MS * 2.0 {
            current / 2
        } else {
            current
        }
    } else if count as f64 * TARGET_DISPATCH_MS / latency_ms.max(1e-3) > 2.0 * current as f64 {
        current * 2
    } else {
        current
    };
    // `min` above `max` (a grid smaller than one workgroup) yields `max`, never a panic.
    next.clamp(min.min(max), max)
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
    /// A job whose target's top word is `top` and every other word all ones.
    fn job(top: u32) -> Job {
        let mut target = [u32::MAX; 8];
        target[7] = top;
        Job {
            midstate: [0; 8],
            tail: [0; 3],
            target,
        }
    }

    #[test]
    fn first_hit_share_follows_the_expected_work() {
        assert_eq!(first_hit_share(&job(u32::MAX), StopAt::End), None);
        // A hit per 2^16 nonces: a share of 2^16 / 64 = 1024.
        assert_eq!(
            first_hit_share(&job(0x0000_ffff), StopAt::FirstHit),
            Some(1024)
        );
        // A hit per 2^32 nonces: 2^26.
        assert_eq!(first_hit_share(&job(0), StopAt::FirstHit), Some(1 << 26));
        // Every hash meets the easiest target: the share is 0, and the floor rules.
        assert_eq!(first_hit_share(&job(u32::MAX), StopAt::FirstHit), Some(0));
    }

    #[test]
    fn a_first_hit_dispatch_is_the_share_between_a_32nd_of_the_adapted_size_and_all_of_it() {
        let adapted = 1 << 20;
        // Scanning to the end: the adapted size.
        assert_eq!(dispatch_for(adapted, None, 2048), adapted);
        // A share between the floor and the adapted size is taken as it is.
        assert_eq!(dispatch_for(adapted, Some(100_000), 2048), 100_000);
        // Below 1/32 of the adapted size: the floor.
        assert_eq!(dispatch_for(adapted, Some(0), 2048), adapted / 32);
        assert_eq!(dispatch_for(adapted, Some(1000), 2048), adapted / 32);
        // Above the adapted size (a hard target): the adapted size.
        assert_eq!(dispatch_for(adapted, Some(1 << 26), 2048), adapted);
        // A floor below one workgroup: one workgroup.
        assert_eq!(dispatch_for(32 * 1000, Some(0), 2048), 2048);
    }

    #[test]
    fn a_full_dispatch_doubles_when_fast_halves_when_slow_and_stays_near_the_target() {
        let (min, max) = (2048, MAX_DISPATCH);
        let at = |busy_ms: f64| adapt(1 << 20, 1 << 20, busy_ms, busy_ms, min, max);
        assert_eq!(at(TARGET_DISPATCH_MS / 2.0 - 0.1), 1 << 21);
        assert_eq!(at(TARGET_DISPATCH_MS / 2.0), 1 << 20);
        assert_eq!(at(TARGET_DISPATCH_MS), 1 << 20);
        assert_eq!(at(TARGET_DISPATCH_MS * 2.0), 1 << 20);
        assert_eq!(at(TARGET_DISPATCH_MS * 2.0 + 0.1), 1 << 19);
        // The bounds hold: never past the cap, never below one workgroup.
        assert_eq!(
            adapt(MAX_DISPATCH, MAX_DISPATCH, 1.0, 1.0, min, max),
            MAX_DISPATCH
        );
        assert_eq!(adapt(2048, 2048, 1e6, 1e6, min, max), 2048);
        // A grid smaller than a workgroup: the grid's size, not a panic.
        assert_eq!(adapt(100, 100, 1.0, 1.0, 2048, 1000), 1000);
    }

    #[test]
    fn a_small_dispatch_only_doubles_the_size_and_only_when_far_too_fast() {
        let (min, max) = (2048, MAX_DISPATCH);
        let current = 1 << 20;
        // A tail of 2^16 nonces in 0.1 ms: 2^16 * 300 nonces per 30 ms, far past 2 * 2^20.
        assert_eq!(adapt(current, 1 << 16, 0.1, 0.1, min, max), 1 << 21);
        // The same tail in 1 ms: 2^16 * 30 < 2^21, so the size stays.
        assert_eq!(adapt(current, 1 << 16, 1.0, 1.0, min, max), current);
        // A slow small dispatch never halves the size: it says nothing about a full one.
        assert_eq!(adapt(current, 1 << 16, 1000.0, 1000.0, min, max), current);
        // The rate is read over the latency, not the busy time.
        assert_eq!(adapt(current, 1 << 16, 0.1, 10.0, min, max), current);
        // A latency of 0 does not divide by zero.
        assert_eq!(adapt(current, 1 << 16, 0.0, 0.0, min, max), 1 << 21);
    }
}
