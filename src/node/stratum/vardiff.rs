//! Vardiff as a pure rule: from a connection's difficulty and the shares of its current window
//! (how many, over how long), the next difficulty. No clock and no I/O: the session measures
//! the window and applies the step.
//!
//! After at least [`MIN_SHARES`] shares (or, with fewer, after [`IDLE_INTERVALS`] share
//! intervals), the difficulty moves toward one share per interval by a factor of 1/4 to 16 per
//! step, within the floor and the ceiling; a change under 20 % is not made.

/// Shares a window needs before a step (unless it has run [`IDLE_INTERVALS`] intervals).
pub(crate) const MIN_SHARES: u32 = 8;
/// Share intervals after which a window steps whatever its share count.
pub(crate) const IDLE_INTERVALS: f64 = 6.0;

/// The rule's settings for one connection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Vardiff {
    /// Target seconds between shares (`--stratum-share-interval`).
    pub(crate) interval: f64,
    /// Lowest difficulty (the server's floor, or the miner's asked minimum).
    pub(crate) floor: f64,
    /// Highest difficulty.
    pub(crate) ceiling: f64,
}

/// What a vardiff check decides.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Step {
    /// Too few shares and too little time: keep the window and the difficulty.
    Wait,
    /// Measured: start a new window, keep the difficulty (within 20 % of the ideal).
    Restart,
    /// Measured: start a new window at this difficulty.
    Change(f64),
}

impl Vardiff {
    /// The step for a connection at difficulty `current` whose window holds `shares` shares
    /// over `elapsed` seconds, measured at the `applied` difficulty (the one sent, clamped to
    /// the network's). After a share (`after_share`) only a full window of [`MIN_SHARES`]
    /// steps; the timer also steps an idle one.
    pub(crate) fn step(
        &self,
        current: f64,
        applied: f64,
        shares: u32,
        elapsed: f64,
        after_share: bool,
    ) -> Step {
        let enough =
            (shares >= MIN_SHARES && elapsed > 0.0) || elapsed >= self.interval * IDLE_INTERVALS;
        if !enough || (after_share && shares < MIN_SHARES) {
            return Step::Wait;
        }
        let per_share = elapsed / f64::from(shares.max(1));
        let factor = (self.interval / per_share.max(1e-6)).clamp(0.25, 16.0);
        let d = (applied * factor).clamp(self.floor, self.ceiling);
        if (d / current - 1.0).abs() < 0.2 {
            return Step::Restart;
        }
        Step::Change(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: Vardiff = Vardiff {
        interval: 5.0,
        floor: 0.001,
        ceiling: 1e6,
    };

    #[test]
    fn a_window_steps_only_once_full_or_idle() {
        assert_eq!(RULE.step(1.0, 1.0, 7, 1.0, true), Step::Wait);
        assert_eq!(RULE.step(1.0, 1.0, 7, 1.0, false), Step::Wait);
        assert_eq!(RULE.step(1.0, 1.0, 8, 0.0, false), Step::Wait);
        // Idle for six intervals: the timer steps it, a share alone does not.
        assert_eq!(RULE.step(1.0, 1.0, 2, 30.0, true), Step::Wait);
        assert_eq!(RULE.step(1.0, 1.0, 2, 30.0, false), Step::Change(1.0 / 3.0));
    }

    #[test]
    fn the_difficulty_moves_toward_one_share_per_interval_within_bounds() {
        // 8 shares in 20 s at difficulty 1: one per 2.5 s, twice too fast.
        assert_eq!(RULE.step(1.0, 1.0, 8, 20.0, true), Step::Change(2.0));
        // 8 shares in 40 s: on target, so only the window restarts.
        assert_eq!(RULE.step(1.0, 1.0, 8, 40.0, true), Step::Restart);
        // Within 20 %: no change.
        assert_eq!(RULE.step(1.0, 1.0, 8, 36.0, true), Step::Restart);
        // At most 16 times up and 1/4 down per step.
        assert_eq!(RULE.step(1.0, 1.0, 8, 0.001, true), Step::Change(16.0));
        assert_eq!(RULE.step(1.0, 1.0, 0, 1e6, false), Step::Change(0.25));
        // The rate was measured at the applied difficulty, not the (higher) current one.
        assert_eq!(RULE.step(100.0, 1.0, 8, 20.0, true), Step::Change(2.0));
        // Floor and ceiling.
        let tight = Vardiff {
            floor: 0.5,
            ceiling: 1.5,
            ..RULE
        };
        assert_eq!(tight.step(1.0, 1.0, 8, 0.001, true), Step::Change(1.5));
        assert_eq!(tight.step(1.0, 1.0, 0, 1e6, false), Step::Change(0.5));
    }
}
