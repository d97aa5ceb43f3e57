//! The GPU backend on a real Vulkan device: in CI that is Mesa's lavapipe (software Vulkan, which
//! `scripts/test.sh` installs), elsewhere whatever adapter wgpu finds. These tests FAIL when there is no
//! adapter: a missing GPU must never look like a passing GPU test.

use miner::backend::gpu::{GpuBackend, GpuOptions, MAX_DISPATCH, SHADER};
use miner::backend::{Backend, CpuBackend, StopAt};
use miner::hash::{Job, Kernel};
use miner::pow::Target;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU64};

fn gpu(options: GpuOptions) -> GpuBackend {
    match GpuBackend::new(None, options) {
        Ok(g) => {
            eprintln!("GPU tests run on {}", g.name());
            g
        }
        Err(e) => panic!(
            "GPU tests need a wgpu adapter and found none ({e}). \
             Install a Vulkan driver, e.g. `apt-get install -y mesa-vulkan-drivers` (scripts/test.sh, the README's test command, does)."
        ),
    }
}

fn scan(b: &dyn Backend, job: &Job, range: std::ops::Range<u64>) -> Vec<u32> {
    let progress = AtomicU64::new(0);
    let r = b
        .scan(
            job,
            range.clone(),
            StopAt::End,
            &AtomicBool::new(false),
            &progress,
        )
        .expect("scan");
    assert_eq!(r.hashes, range.end - range.start, "{}", b.name());
    assert_eq!(progress.into_inner(), r.hashes);
    assert!(!r.cancelled);
    r.hits
}

/// A mining search over a whole nonce range: it stops at the first hit.
fn first_hit(g: &GpuBackend, job: &Job) -> miner::backend::ScanReport {
    g.scan(
        job,
        0..1 << 32,
        StopAt::FirstHit,
        &AtomicBool::new(false),
        &AtomicU64::new(0),
    )
    .expect("scan")
}

fn cpu() -> CpuBackend {
    CpuBackend::new(Kernel::best(), None).unwrap()
}

#[test]
fn wgsl_parses_and_validates_without_a_device() {
    let module = naga::front::wgsl::parse_str(SHADER).expect("WGSL parses");
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .expect("WGSL validates");
    assert!(module.entry_points.iter().any(|e| e.name == "main"));
}

#[test]
fn gpu_matches_cpu_on_random_jobs_with_many_hits_per_dispatch() {
    let g = gpu(GpuOptions {
        initial_dispatch: Some(1 << 15),
        fixed_dispatch: true,
        ..GpuOptions::default()
    });
    let c = cpu();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6e0_0001);
    let mut total = 0;
    for round in 0..12 {
        let mut header = [0u8; 80];
        rng.fill(&mut header[..]);
        let mut words: [u32; 8] = rng.gen();
        // 1 in 256 .. 1 in 64k nonces hit; some targets tie on the top word.
        words[7] = [0x00ff_ffff, 0x000f_ffff, 0x0000_ffff][round % 3];
        let target = Target::from_words(words);
        let job = Job::new(&header, &target);
        let first = u64::from(rng.gen::<u32>() >> 1);
        let range = first..first + 100_000 + round as u64; // not a multiple of anything
        let expected = scan(&c, &job, range.clone());
        total += expected.len();
        assert_eq!(scan(&g, &job, range), expected, "round {round}");
    }
    assert!(
        total > 1000,
        "only {total} hits: targets too hard to test much"
    );
}

#[test]
fn overflowing_hit_buffer_loses_nothing() {
    // Room for 4 hits per dispatch, a target that gives ~128 per dispatch.
    let g = gpu(GpuOptions {
        hit_capacity: 4,
        initial_dispatch: Some(1 << 15),
        fixed_dispatch: true,
        ..GpuOptions::default()
    });
    let job = Job::new(
        &[7u8; 80],
        &Target::from_words([0, 0, 0, 0, 0, 0, 0, 0x00ff_ffff]),
    );
    let expected = scan(&cpu(), &job, 1000..200_000);
    assert!(expected.len() > 500);
    assert_eq!(scan(&g, &job, 1000..200_000), expected);
}

#[test]
fn gpu_finds_the_genesis_and_block_125552_nonces() {
    let g = gpu(GpuOptions::default());
    for (header_hex, nonce) in [
        ("0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d00000000", 2_083_236_893u32),
        ("0100000081cd02ab7e569e8bcd9317e2fe99f2de44d49ab2b8851ba4a308000000000000e320b6c2fffc8d750423db8b1eb942ae710e951ed797f7affc8892b0f1fc122bc7f5d74df2b9441a00000000", 2_504_433_986),
    ] {
        let header: [u8; 80] = hex::decode(header_hex).unwrap().try_into().unwrap();
        let bits = u32::from_le_bytes(header[72..76].try_into().unwrap());
        let target =
            Target::from_compact(miner::pow::CompactTarget::from_consensus(bits)).unwrap();
        let job = Job::new(&header, &target);
        let start = u64::from(nonce) - 1_500_000;
        assert_eq!(scan(&g, &job, start..start + 2_000_000), vec![nonce]);
        // The last nonce of the range is hashed too.
        assert_eq!(scan(&g, &job, start..u64::from(nonce) + 1), vec![nonce]);
        assert_eq!(scan(&g, &job, start..u64::from(nonce)), Vec::<u32>::new());
    }
}

#[test]
fn two_dimensional_dispatch_covers_every_nonce_once() {
    // At most 3 workgroups in x forces a 2-D grid; 64 x 2 nonces per workgroup, and a range that
    // leaves the last row partly empty.
    let g = gpu(GpuOptions {
        workgroup_size: 64,
        nonces_per_invocation: 2,
        max_workgroups_x: Some(3),
        initial_dispatch: Some(64 * 2 * 100 + 77),
        fixed_dispatch: true,
        ..GpuOptions::default()
    });
    // Every hash meets this target: the hit list must be exactly the whole range.
    let job = Job::new(&[1u8; 80], &Target::MAX);
    let range = 5_000..5_000 + 3 * (64 * 2 * 100 + 77) + 11;
    let hits = scan(&g, &job, range.clone());
    let expected: Vec<u32> = (range.start as u32..range.end as u32).collect();
    assert_eq!(hits, expected);
    // And at the very top of the nonce space.
    let top = (1u64 << 32) - 20_000..1u64 << 32;
    let hits = scan(&g, &job, top.clone());
    assert_eq!(hits.len(), 20_000);
    assert_eq!(*hits.last().unwrap(), u32::MAX);
}

#[test]
fn gpu_stops_promptly_on_cancel_and_first_hit() {
    let g = gpu(GpuOptions::default());
    let job = Job::new(&[3u8; 80], &Target::from_words([0; 8]));
    let cancel = AtomicBool::new(true);
    let r = g
        .scan(&job, 0..1 << 32, StopAt::End, &cancel, &AtomicU64::new(0))
        .unwrap();
    assert!(r.cancelled);
    assert!(r.hashes < 1 << 30, "hashed {} after cancel", r.hashes);
    // FirstHit at an easy target stops long before the end of the range.
    let easy = Job::new(
        &[3u8; 80],
        &Target::from_words([0, 0, 0, 0, 0, 0, 0, 0x0fff_ffff]),
    );
    let r = first_hit(&g, &easy);
    assert!(!r.hits.is_empty());
    assert!(!r.cancelled);
    assert!(
        r.hashes < 1 << 28,
        "hashed {} for a 1-in-16 target",
        r.hashes
    );
}

/// Expected hashes per hit at `target`, 2^256 / (target + 1), computed here from the target's
/// words with big integers (not with the library's `Work`).
fn expected_hashes(words: [u32; 8]) -> f64 {
    use num_bigint::BigUint;
    let mut t = BigUint::from(0u8);
    for w in words.iter().rev() {
        t = (t << 32) + BigUint::from(*w);
    }
    let two256 = BigUint::from(1u8) << 256;
    let e: BigUint = two256 / (t + 1u8);
    e.to_string().parse::<f64>().unwrap()
}

#[test]
fn first_hit_search_keeps_its_dispatches_small_next_to_the_expected_work() {
    // The expectation comes from the target alone: a hit takes E = 2^256 / (target + 1) hashes
    // on average (here 2^22), and a search that stops at its first hit may hash past that hit
    // only what is already in flight. The backend promises that overshoot is a few percent of
    // a block's work, so the bound is 5% of E, whatever dispatch sizes the code picks. (The
    // old bound, "3 dispatches of adapted / 32", restated the code's own floor.)
    let adapted = 1u64 << 20;
    let g = gpu(GpuOptions {
        initial_dispatch: Some(adapted),
        fixed_dispatch: true,
        ..GpuOptions::default()
    });
    let c = cpu();
    let mut words = [u32::MAX; 8];
    words[7] = 0x0000_03ff;
    let e = expected_hashes(words);
    assert_eq!(e, (1u64 << 22) as f64);
    let mut past = Vec::new();
    for seed in 0..4u8 {
        let job = Job::new(&[seed; 80], &Target::from_words(words));
        let r = first_hit(&g, &job);
        let first = *r.hits.first().expect("a hit");
        // The lowest hit reported is the first hit of the range: the CPU finds none below it.
        assert_eq!(scan(&c, &job, 0..u64::from(first) + 1), vec![first]);
        let overshoot = r.hashes - (u64::from(first) + 1);
        assert!(
            (overshoot as f64) <= 0.05 * e,
            "seed {seed}: hashed {overshoot} past a first hit at {first}, more than 5% of the \
             {e} hashes a hit takes"
        );
        past.push(overshoot);
    }
    // The dispatches in flight did run: the search is pipelined, not one nonce at a time.
    assert!(past.iter().all(|&o| o > 0), "{past:?}");
    // At an easy target (E = 2^16, below the adapted size's floor of about a millisecond of
    // work) the dispatches are floored for speed, yet a full adapted dispatch never runs past
    // the hit.
    words[7] = 0x0000_ffff;
    assert_eq!(expected_hashes(words), 65536.0);
    let big = gpu(GpuOptions {
        initial_dispatch: Some(1 << 22),
        fixed_dispatch: true,
        ..GpuOptions::default()
    });
    for seed in 0..4u8 {
        let job = Job::new(&[seed; 80], &Target::from_words(words));
        let r = first_hit(&big, &job);
        let first = *r.hits.first().expect("a hit");
        assert!(
            r.hashes - (u64::from(first) + 1) < 1 << 22,
            "seed {seed}: a whole 2^22 dispatch ran past the hit at {first}"
        );
    }
}

#[test]
fn the_committed_wgsl_is_what_the_generator_writes() {
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/shaders/gen_sha256d.py"
        ))
        .output()
        .expect("python3 runs shaders/gen_sha256d.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout) == SHADER,
        "shaders/sha256d.wgsl differs from the generator's output: edit shaders/gen_sha256d.py, \
         then python3 shaders/gen_sha256d.py > shaders/sha256d.wgsl"
    );
}

#[test]
fn capped_first_hit_dispatches_still_learn_the_device_speed() {
    // Start from a tiny adapted size. A target met once per ~2^16 nonces caps each first-hit
    // dispatch at the floor (one workgroup, 2048 nonces), far below the ~30 ms the device could
    // take; the size must still grow, or mining at a low difficulty would stay overhead-bound.
    let initial = 4096;
    let g = gpu(GpuOptions {
        initial_dispatch: Some(initial),
        ..GpuOptions::default()
    });
    let mut words = [u32::MAX; 8];
    words[7] = 0x0000_ffff;
    for seed in 0..8u8 {
        let job = Job::new(&[seed; 80], &Target::from_words(words));
        let r = first_hit(&g, &job);
        assert!(!r.hits.is_empty());
    }
    assert!(
        g.dispatch_size() >= 4 * initial,
        "dispatch size stayed at {} nonces",
        g.dispatch_size()
    );
    // ... but does not run away: pipelined completions come close together, and a size judged
    // by them doubles on every dispatch, to the 2^32 cap within the first scan. 2^28 nonces is
    // ~45 ms even at 6 GH/s, above what an honest estimate reaches on any device.
    assert!(
        g.dispatch_size() <= 1 << 28,
        "dispatch size ran away to {} nonces",
        g.dispatch_size()
    );
}

/// Every hash meets [`Target::MAX`]: a scan's hits are exactly its range.
fn all_of(range: std::ops::Range<u64>) -> Vec<u32> {
    (range.start as u32..=(range.end - 1) as u32).collect()
}

#[test]
fn an_initial_dispatch_of_zero_is_one_workgroup_and_the_scan_ends() {
    // A fixed size of 0 used to loop forever without advancing.
    let g = gpu(GpuOptions {
        initial_dispatch: Some(0),
        fixed_dispatch: true,
        ..GpuOptions::default()
    });
    let per_group = 256 * 8;
    assert_eq!(g.dispatch_size(), per_group);
    let job = Job::new(&[4u8; 80], &Target::MAX);
    let range = 5_000..5_000 + 3 * per_group + 5;
    assert_eq!(scan(&g, &job, range.clone()), all_of(range));
}

#[test]
fn an_initial_dispatch_of_2_pow_32_is_capped_at_2_pow_31() {
    // 2^32 nonces in one dispatch wrote a count of 0 to the shader: nothing was hashed while
    // 2^32 hashes were counted.
    let g = gpu(GpuOptions {
        initial_dispatch: Some(1 << 32),
        fixed_dispatch: true,
        ..GpuOptions::default()
    });
    assert_eq!(MAX_DISPATCH, 1 << 31);
    assert_eq!(g.dispatch_size(), MAX_DISPATCH);
    // Just under the cap is taken as given.
    let g2 = gpu(GpuOptions {
        initial_dispatch: Some(MAX_DISPATCH - 2048),
        fixed_dispatch: true,
        ..GpuOptions::default()
    });
    assert_eq!(g2.dispatch_size(), MAX_DISPATCH - 2048);
    // The capped backend still hashes what it counts, up to the last nonce.
    let job = Job::new(&[5u8; 80], &Target::MAX);
    let top = (1u64 << 32) - 30_000..1u64 << 32;
    assert_eq!(scan(&g, &job, top.clone()), all_of(top));
}

/// The first hit of a sequential search over `jobs`, each over `nonces`, on the CPU.
fn sequential_first_hit(
    jobs: &mut dyn FnMut(u64) -> Job,
    nonces: std::ops::Range<u64>,
) -> (u64, u32) {
    let c = cpu();
    for index in 0.. {
        if let Some(&nonce) = scan(&c, &jobs(index), nonces.clone()).first() {
            return (index, nonce);
        }
    }
    unreachable!("the loop only ends with a hit")
}

#[test]
fn search_over_jobs_takes_the_first_hit_in_job_order_across_job_boundaries() {
    // Jobs of 2^16 nonces. The target is met about once per 2^17 nonces, so many jobs have no
    // hit and the first hit is often a few jobs in; a first-hit search caps each dispatch at
    // 1/64 of that, 2^11 nonces, with 3 in flight: the next job's first dispatches are
    // submitted while the current job's last ones run.
    let g = gpu(GpuOptions {
        initial_dispatch: Some(1 << 13),
        fixed_dispatch: true,
        ..GpuOptions::default()
    });
    let per_job = 1u64 << 16;
    let dispatch = 1u64 << 11;
    let nonces = 0..per_job;
    let mut words = [u32::MAX; 8];
    words[7] = 0x0000_7fff;
    let target = Target::from_words(words);
    let (mut searches, mut deepest, mut into_next_job) = (0, 0, 0);
    for seed in 0..64u8 {
        let mut jobs = |index: u64| {
            let mut header = [seed; 80];
            header[0..8].copy_from_slice(&index.to_le_bytes());
            Job::new(&header, &target)
        };
        let expected = sequential_first_hit(&mut jobs, nonces.clone());
        // Search on the GPU for the first 8 seeds, and for those whose first hit is in a job's
        // last dispatch (the next job is then in flight), until 3 of them.
        let in_last = u64::from(expected.1) >= per_job - dispatch;
        if searches >= 8 && !(in_last && into_next_job < 3) {
            continue;
        }
        let progress = AtomicU64::new(0);
        let r = g
            .search_jobs_over(
                &mut jobs,
                nonces.clone(),
                &AtomicBool::new(false),
                &progress,
            )
            .expect("search");
        let hit = r.hit.expect("a hit");
        assert_eq!((hit.job, hit.nonce), expected, "seed {seed}");
        assert!(!r.cancelled);
        // The hit's dispatch and the two in flight behind it ran, and nothing more: past a
        // job's end those are the next job's.
        let position = hit.job * per_job + u64::from(hit.nonce) + 1;
        assert_eq!(
            r.hashes,
            position.div_ceil(dispatch) * dispatch + 2 * dispatch,
            "seed {seed}: hit at {position}"
        );
        assert_eq!(progress.into_inner(), r.hashes);
        searches += 1;
        deepest = deepest.max(hit.job);
        if in_last {
            assert!(r.hashes > (hit.job + 1) * per_job);
            into_next_job += 1;
        }
    }
    assert!(
        deepest >= 2,
        "every first hit was in job 0 or 1: the test crossed too few jobs"
    );
    assert!(
        into_next_job >= 1,
        "no seed put a first hit in a job's last dispatch: the test never had two jobs in flight"
    );
}

#[test]
fn a_hit_in_the_job_in_flight_does_not_count_before_the_current_job_is_done() {
    // Jobs 0..3 have no hit (target 0); from job 3 on every nonce hits. Each job is two
    // dispatches of one workgroup (2048 nonces: a first-hit search at so easy a target uses the
    // smallest), three in flight: when job 3's first dispatch is read back, job 4's first is in
    // flight with hits of its own. The first hit is still job 3's first nonce.
    let g = gpu(GpuOptions {
        initial_dispatch: Some(1 << 13),
        fixed_dispatch: true,
        ..GpuOptions::default()
    });
    let nonces = 1000..1000 + 2 * 2048;
    let mut jobs = |index: u64| {
        let target = if index < 3 {
            Target::from_words([0; 8])
        } else {
            Target::MAX
        };
        Job::new(&[index as u8; 80], &target)
    };
    let r = g
        .search_jobs_over(
            &mut jobs,
            nonces.clone(),
            &AtomicBool::new(false),
            &AtomicU64::new(0),
        )
        .expect("search");
    let hit = r.hit.expect("a hit");
    assert_eq!((hit.job, hit.nonce), (3, 1000));
    assert_eq!(hit.trials(), 3 * (1 << 32) + 1001);
    // Jobs 0..3, then job 3's two dispatches and job 4's first: all hashed, one of them past
    // the current job.
    assert_eq!(r.hashes, 3 * 4096 + 3 * 2048);
    // An empty range per job is refused, not searched forever.
    let e = g
        .search_jobs_over(&mut jobs, 7..7, &AtomicBool::new(false), &AtomicU64::new(0))
        .expect_err("an empty range");
    assert!(e.to_string().contains("at least one nonce"), "{e}");
}

#[test]
fn the_gpu_search_over_jobs_agrees_with_the_default_one_job_at_a_time() {
    // The trait's default (one scan per job, used by the CPU) and the GPU's pipelined override
    // give the same first hit; an easy target keeps it in the first job.
    let g = gpu(GpuOptions::default());
    let c = cpu();
    let mut words = [u32::MAX; 8];
    words[7] = 0x000f_ffff;
    for seed in 0..4u8 {
        let mut jobs = |index: u64| {
            let mut header = [seed; 80];
            header[8..16].copy_from_slice(&index.to_le_bytes());
            Job::new(&header, &Target::from_words(words))
        };
        let run = |b: &dyn Backend, jobs: &mut dyn FnMut(u64) -> Job| {
            b.search_jobs(jobs, &AtomicBool::new(false), &AtomicU64::new(0))
                .expect("search")
                .hit
                .expect("a hit")
        };
        let on_gpu = run(&g, &mut jobs);
        assert_eq!(on_gpu, run(&c, &mut jobs), "seed {seed}");
        assert_eq!(on_gpu.trials(), u64::from(on_gpu.nonce) + 1);
    }
}
