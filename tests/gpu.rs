//! The GPU backend on a real Vulkan device: in CI that is Mesa's lavapipe (software Vulkan, which
//! `scripts/test.sh` installs), elsewhere whatever adapter wgpu finds. These tests FAIL when there is no
//! adapter: a missing GPU must never look like a passing GPU test.

use miner::backend::gpu::{GpuBackend, GpuOptions, SHADER};
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

#[test]
fn first_hit_search_keeps_its_dispatches_small_next_to_the_expected_work() {
    // The adapted dispatch is 2^22 nonces, but the target is met about once per 2^16: a search
    // that stops at its first hit must not run 2^22-nonce dispatches past the hit. The floor is
    // 1/32 of the adapted size, so at most 3 dispatches of 2^17 run after the hit's start.
    let adapted = 1u64 << 22;
    let floor = adapted / 32;
    let g = gpu(GpuOptions {
        initial_dispatch: Some(adapted),
        fixed_dispatch: true,
        ..GpuOptions::default()
    });
    let c = cpu();
    for seed in 0..4u8 {
        let mut words = [u32::MAX; 8];
        words[7] = 0x0000_ffff;
        let job = Job::new(&[seed; 80], &Target::from_words(words));
        let r = first_hit(&g, &job);
        let first = *r.hits.first().expect("a hit");
        // The lowest hit reported is the first hit of the range: the CPU finds none below it.
        assert_eq!(scan(&c, &job, 0..u64::from(first) + 1), vec![first]);
        assert!(
            r.hashes <= u64::from(first) + 1 + 3 * floor && r.hashes < adapted,
            "seed {seed}: hashed {} for a first hit at {first}",
            r.hashes
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
