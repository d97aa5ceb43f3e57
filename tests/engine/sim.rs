//! Difficulty controllers in simulation, with fixed seeds: what `miner retarget-sim`'s table
//! reports is what these tests assert.

use miner::chain::ChainParams;
use miner::experiment::retarget::{simulate, stats, table, Profile, SimConfig};
use miner::pow::retarget::Algorithm;

fn config(algorithms: Vec<Algorithm>, profile: &str, blocks: u64, seed: u64) -> SimConfig {
    SimConfig {
        algorithms,
        spacing: 600,
        blocks,
        profile: Profile::parse(profile, blocks).unwrap(),
        seed,
        pow_limit: ChainParams::regtest().pow_limit,
    }
}

const ASERT: Algorithm = Algorithm::Asert {
    half_life: 48 * 600,
};
const LWMA: Algorithm = Algorithm::Lwma { window: 45 };
const BITCOIN: Algorithm = Algorithm::Bitcoin { window: 144 };

#[test]
fn asert_holds_the_interval_within_one_percent_at_constant_hash_rate() {
    for seed in [1, 2, 3] {
        let cfg = config(vec![ASERT, LWMA, BITCOIN], "1M", 10_000, seed);
        let runs = simulate(&cfg);
        let s: Vec<_> = runs.iter().map(|r| stats(r, &cfg)).collect();
        eprintln!("seed {seed}\n{}", table(&s, 600));
        assert!(
            s[0].mean_error_pct.abs() < 1.0,
            "asert, seed {seed}: {:?}",
            s[0]
        );
        // LWMA and Bitcoin stay close too (Bitcoin's window counts 143 intervals for 144).
        assert!(
            s[1].mean_error_pct.abs() < 3.0,
            "lwma, seed {seed}: {:?}",
            s[1]
        );
        assert!(
            s[2].mean_error_pct.abs() < 3.0,
            "bitcoin, seed {seed}: {:?}",
            s[2]
        );
        // Exponential solve times: the spread is about the mean itself.
        for x in &s {
            assert!(
                (x.std_dev_s / x.mean_interval_s - 1.0).abs() < 0.15,
                "{x:?}"
            );
            assert!(x.p95_s > 2.5 * 600.0 && x.p95_s < 3.5 * 600.0, "{x:?}");
        }
    }
}

#[test]
fn every_controller_recovers_after_ten_x_steps_up_and_down() {
    let cfg = config(vec![ASERT, LWMA, BITCOIN], "1M,10M@3000,1M@6000", 9_000, 42);
    let runs = simulate(&cfg);
    let s: Vec<_> = runs.iter().map(|r| stats(r, &cfg)).collect();
    eprintln!("{}", table(&s, 600));
    for x in &s {
        assert_eq!(x.recovery_blocks.len(), 2, "{x:?}");
        for &(step, blocks) in &x.recovery_blocks {
            let blocks =
                blocks.unwrap_or_else(|| panic!("{} never recovered after {step}", x.algorithm));
            // ASERT needs log2(10) = 3.3 half-lives (160 blocks) to move 10x; LWMA about N;
            // Bitcoin up to a window to notice, then 4x per window.
            let bound = match x.algorithm.split(' ').next() {
                Some("asert") => 400,
                Some("lwma") => 300,
                _ => 800,
            };
            assert!(
                blocks <= bound,
                "{} took {blocks} blocks after {step}",
                x.algorithm
            );
        }
        // Over the whole run the mean stays near T despite the steps.
        assert!(x.mean_error_pct.abs() < 10.0, "{x:?}");
    }
    // The step up makes blocks fast before the controller reacts: the fastest 20-block stretch
    // right after block 3000 is far below T for every controller.
    for run in &runs {
        let after = &run.blocks[3000..3020];
        let mean = after.iter().map(|b| b.interval_s).sum::<f64>() / 20.0;
        assert!(mean < 300.0, "{}: {mean}", run.algorithm);
    }
}

#[test]
fn same_seed_same_run_other_seed_other_run() {
    let a = simulate(&config(vec![ASERT], "steps", 2_000, 9));
    let b = simulate(&config(vec![ASERT], "steps", 2_000, 9));
    let c = simulate(&config(vec![ASERT], "steps", 2_000, 10));
    let times = |r: &Vec<miner::experiment::retarget::SimRun>| {
        r[0].blocks.iter().map(|b| b.time_s).collect::<Vec<_>>()
    };
    assert_eq!(times(&a), times(&b));
    assert_ne!(times(&a), times(&c));
}

#[test]
fn profiles_parse_and_refuse_nonsense() {
    let p = Profile::parse("1M,10M@100,onoff(1k/2k/10)@200", 1000).unwrap();
    assert_eq!(p.rate_at(0), 1e6);
    assert_eq!(p.rate_at(99), 1e6);
    assert_eq!(p.rate_at(100), 1e7);
    assert_eq!(p.rate_at(200), 2e3);
    assert_eq!(p.rate_at(210), 1e3);
    assert_eq!(p.rate_at(220), 2e3);
    assert_eq!(p.steps(), vec![100, 200]);
    let steps = Profile::parse("steps", 1000).unwrap();
    assert_eq!(steps.steps(), vec![250, 500, 750]);
    for bad in [
        "",
        "fast",
        "1M,",
        "1M@5",
        "1M,2M@0",
        "1M,2M@50,3M@40",
        "-1M",
        "0",
        "onoff(1M/2M)",
        "onoff(1M/2M/0)",
        "1M,2M@x",
    ] {
        let e = Profile::parse(bad, 1000).expect_err(bad);
        assert!(
            e.to_string().contains("bad hash-rate profile"),
            "{bad}: {e}"
        );
    }
}
