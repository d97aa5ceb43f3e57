//! Every kernel agrees with the portable one, and all agree with an independent oracle: the `sha2`
//! crate's SHA-256d over the full 80-byte header, compared with the target as a 256-bit integer.

use miner::hash::{sha256d, Job, Kernel};
use miner::pow::Target;
use rand::{Rng, SeedableRng};

use crate::kernel_coverage::{tested_kernels, tested_sha_ni_builds};

fn oracle(header: &[u8; 80], target: &Target, first: u32, count: u32) -> Vec<u32> {
    let mut h = *header;
    (0..count)
        .map(|i| first.wrapping_add(i))
        .filter(|&n| {
            h[76..80].copy_from_slice(&n.to_le_bytes());
            target.is_met_by(&sha256d(&h))
        })
        .collect()
}

fn scan(kernel: Kernel, job: &Job, first: u32, count: u32) -> Vec<u32> {
    // Poison value: a kernel that pushes nothing must not look like one that found nonce 0.
    let mut hits = vec![0xdead_beef];
    kernel.scan(job, first, count, &mut hits);
    assert_eq!(
        hits.remove(0),
        0xdead_beef,
        "{kernel} disturbed existing hits"
    );
    hits
}

fn random_header(rng: &mut impl Rng) -> [u8; 80] {
    let mut h = [0u8; 80];
    rng.fill(&mut h[..]);
    h
}

#[test]
fn all_available_kernels_are_listed_and_portable_is_always_there() {
    let available = tested_kernels("all_available_kernels_are_listed");
    assert!(available.contains(&Kernel::Soft));
    assert!(available.contains(&Kernel::Sha2));
    assert!(available.contains(&Kernel::best()));
    eprintln!("kernels on this CPU: {available:?}");
}

#[test]
fn kernels_agree_on_random_jobs_at_easy_targets() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0001);
    let mut total_hits = 0;
    let kernels = tested_kernels("kernels_agree_on_random_jobs");
    for round in 0..20_000 {
        let header = random_header(&mut rng);
        // Top words from "every hash" down to "one in 2^16", so hit lists are rarely empty.
        let top = match round % 4 {
            0 => u32::MAX,
            1 => 0x0fff_ffff,
            2 => 0x00ff_ffff,
            _ => 0x0000_ffff,
        };
        let mut words: [u32; 8] = rng.gen();
        words[7] = top;
        let target = Target::from_words(words);
        let job = Job::new(&header, &target);
        let first: u32 = rng.gen();
        let count = rng.gen_range(1..64).min(u32::MAX - first + 1);
        let expected = oracle(&header, &target, first, count);
        total_hits += expected.len();
        for &kernel in &kernels {
            assert_eq!(
                scan(kernel, &job, first, count),
                expected,
                "{kernel}, round {round}"
            );
        }
    }
    assert!(
        total_hits > 10_000,
        "too few hits to exercise the kernels: {total_hits}"
    );
}

#[test]
fn every_build_of_the_sha_ni_kernel_agrees_with_the_oracle() {
    use miner::hash::ShaNiBuild;
    let builds = tested_sha_ni_builds("every_build_of_the_sha_ni_kernel");
    if Kernel::ShaNi.is_available() {
        assert!(builds.contains(&ShaNiBuild::Sse));
        assert!(builds.contains(&ShaNiBuild::current()));
    } else {
        assert!(builds.is_empty());
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0005);
    for round in 0..5_000 {
        let (job, first, count, expected) = random_case(&mut rng, round, 40);
        for &build in &builds {
            let mut hits = Vec::new();
            build.scan(&job, first, count, &mut hits);
            assert_eq!(hits, expected, "sha-ni {}, round {round}", build.name());
        }
    }
}

#[test]
fn every_stream_count_the_benches_measure_agrees_with_the_oracle() {
    use miner::hash::ShaNiBuild;
    let builds = tested_sha_ni_builds("every_stream_count");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0006);
    for round in 0..600 {
        // Up to 25 nonces: partial batches for every stream count.
        let (job, first, count, expected) = random_case(&mut rng, round, 26);
        for &build in &builds {
            for streams in ShaNiBuild::STREAM_COUNTS {
                let mut hits = Vec::new();
                build.scan_streams(streams, &job, first, count, &mut hits);
                assert_eq!(
                    hits,
                    expected,
                    "sha-ni {} x{streams}, round {round}",
                    build.name()
                );
            }
        }
    }
}

#[test]
fn kernels_agree_when_the_top_word_ties_and_lower_words_decide() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0002);
    let (mut met, mut missed) = (0, 0);
    let kernels = tested_kernels("kernels_agree_when_the_top_word_ties");
    for round in 0..10_000 {
        let mut header = random_header(&mut rng);
        let nonce: u32 = rng.gen();
        header[76..80].copy_from_slice(&nonce.to_le_bytes());
        let hash = Target::from_le_bytes(sha256d(&header)).to_words();
        // The target's top word equals the hash's; the lower words are the hash's plus or minus
        // a little, or random, so the full comparison decides.
        let mut words: [u32; 8] = rng.gen();
        words[7] = hash[7];
        match round % 3 {
            0 => words[..7].copy_from_slice(&hash[..7]), // equal: hash == target meets it
            1 => {
                words[..7].copy_from_slice(&hash[..7]);
                words[0] = hash[0].wrapping_sub(1).min(hash[0]); // just below (or equal at 0)
            }
            _ => {}
        }
        let target = Target::from_words(words);
        let job = Job::new(&header, &target);
        let first = nonce.saturating_sub(3);
        let count = (u64::from(u32::MAX) + 1 - u64::from(first)).min(7) as u32;
        let expected = oracle(&header, &target, first, count);
        if expected.contains(&nonce) {
            met += 1;
        } else {
            missed += 1;
        }
        for &kernel in &kernels {
            assert_eq!(
                scan(kernel, &job, first, count),
                expected,
                "{kernel}, round {round}"
            );
        }
    }
    assert!(
        met > 1000 && missed > 1000,
        "ties not exercised both ways: {met} met, {missed} missed"
    );
}

#[test]
fn kernels_handle_the_last_nonce_and_odd_ranges() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0003);
    let target = Target::from_words([u32::MAX; 8]); // every hash meets it
    let kernels = tested_kernels("kernels_handle_the_last_nonce");
    for count in 1..=40u32 {
        let header = random_header(&mut rng);
        let job = Job::new(&header, &target);
        let first = u32::MAX - (count - 1);
        let expected: Vec<u32> = (first..=u32::MAX).collect();
        for &kernel in &kernels {
            assert_eq!(
                scan(kernel, &job, first, count),
                expected,
                "{kernel}, count {count}"
            );
        }
    }
    // An empty range finds nothing.
    let job = Job::new(&random_header(&mut rng), &target);
    for &kernel in &kernels {
        assert!(scan(kernel, &job, 5, 0).is_empty());
    }
}

#[test]
fn impossible_target_finds_nothing() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0004);
    let job = Job::new(&random_header(&mut rng), &Target::from_words([0; 8]));
    for kernel in tested_kernels("impossible_target_finds_nothing") {
        assert!(scan(kernel, &job, 0, 5000).is_empty(), "{kernel}");
    }
}

#[test]
fn the_fallback_is_an_available_mining_kernel_for_every_kernel_set() {
    use Kernel::*;
    // Every kernel but the `sha2` baseline is in the fallback order exactly once: a kernel added
    // to `Kernel::ALL` and forgotten there fails here.
    for k in Kernel::ALL {
        let times = Kernel::PREFERENCE.iter().filter(|p| **p == k).count();
        assert_eq!(
            times,
            usize::from(k != Sha2),
            "{k} in {:?}",
            Kernel::PREFERENCE
        );
    }
    // Every kernel set a CPU (or MINER_DISABLE_KERNELS) can leave: the fallback is one of the set
    // (or the portable kernel, which every CPU has), never the baseline; adding a kernel to a
    // set either keeps the choice or picks the kernel added (one order, never a cycle).
    let subset = |mask: u32| -> Vec<Kernel> {
        (0..Kernel::ALL.len())
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| Kernel::ALL[i])
            .collect()
    };
    let sets = 1u32 << Kernel::ALL.len();
    for mask in 0..sets {
        let set = subset(mask);
        let pick = Kernel::fastest_of(&set);
        assert_ne!(pick, Sha2, "{set:?}");
        assert!(set.contains(&pick) || pick == Soft, "{set:?} -> {pick}");
        for (i, &added) in Kernel::ALL.iter().enumerate() {
            if mask & (1 << i) == 0 && added != Sha2 {
                let wider = Kernel::fastest_of(&subset(mask | (1 << i)));
                assert!(
                    wider == pick || wider == added,
                    "{set:?} -> {pick}, plus {added} -> {wider}"
                );
            }
        }
    }
    // Where a CPU has only the baseline and the portable kernel, the fallback mines with the
    // portable one.
    assert_eq!(Kernel::fastest_of(&[Sha2, Soft]), Soft);
}

#[test]
fn a_required_kernel_that_is_skipped_fails_the_kernel_tests() {
    // Runs one kernel test of this very binary again, with a kernel hidden and required.
    let child = |disable: &str, require: &str| {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "kernels::all_available_kernels_are_listed_and_portable_is_always_there",
                "--test-threads",
                "1",
                "--nocapture",
            ])
            .env("MINER_DISABLE_KERNELS", disable)
            .env("MINER_REQUIRE_KERNELS", require)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, text) = child("avx2", "soft, AVX2");
    assert!(!ok, "{text}");
    assert!(
        text.contains("skipped kernel avx2: hidden by MINER_DISABLE_KERNELS")
            && text.contains("MINER_REQUIRE_KERNELS requires kernel avx2, which was skipped"),
        "{text}"
    );
    // What is not required may be skipped: said, not failed.
    let (ok, text) = child("avx2", "soft,sha2");
    assert!(ok, "{text}");
    assert!(
        text.contains("skipped kernel avx2: hidden by MINER_DISABLE_KERNELS"),
        "{text}"
    );
    // A name that is no kernel is an error naming it.
    let (ok, text) = child("", "avx1024");
    assert!(!ok, "{text}");
    assert!(
        text.contains("MINER_REQUIRE_KERNELS: unknown kernel 'avx1024'"),
        "{text}"
    );
}

#[test]
fn every_kernel_name_parses_back() {
    for k in Kernel::ALL {
        assert_eq!(k.name().parse::<Kernel>().unwrap(), k);
    }
    assert!("avx1024".parse::<Kernel>().is_err());
}

mod calibration {
    use miner::hash::calibrate::{
        calibrate, CacheEntry, CacheFile, ChoiceReason, CpuIdentity, KernelChoice, KernelRate,
        CACHE_FILE,
    };
    use miner::hash::Kernel;
    use std::path::PathBuf;
    use std::time::Duration;

    /// A fresh directory for one test's cache.
    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("miner-calibration-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const QUICK: Duration = Duration::from_millis(10);

    /// [`KernelChoice::resolve_with`] with a short budget. A calibration disturbed by a busy
    /// machine (`CalibratedNoisy`: used, not cached) is measured again, up to five times, so
    /// these tests of the cache see a written choice; the rule itself has unit tests in
    /// src/hash/calibrate.rs.
    fn resolve(dir: &std::path::Path, available: &[Kernel], recalibrate: bool) -> KernelChoice {
        let mut choice = KernelChoice::resolve_with(None, Some(dir), recalibrate, available, QUICK);
        for _ in 0..5 {
            if choice.reason != ChoiceReason::CalibratedNoisy {
                break;
            }
            eprintln!(
                "calibration disturbed, measuring again: {}",
                choice.summary()
            );
            choice = KernelChoice::resolve_with(None, Some(dir), recalibrate, available, QUICK);
        }
        choice
    }

    #[test]
    fn calibration_measures_every_available_kernel_and_ranks_them() {
        let available = Kernel::available();
        let rates = calibrate(&available, QUICK);
        assert_eq!(rates.len(), available.len(), "{rates:?}");
        for k in &available {
            let r = rates.iter().find(|r| r.kernel == k.name());
            assert!(
                r.is_some_and(|r| r.mhs > 0.0),
                "{k} not measured: {rates:?}"
            );
        }
        assert!(
            rates.windows(2).all(|w| w[0].mhs >= w[1].mhs),
            "not fastest first: {rates:?}"
        );
        // Whatever wins here, the process-wide choice is one of the available kernels.
        assert!(available.contains(&Kernel::best()));
    }

    #[test]
    fn the_choice_is_written_read_back_and_remeasured_on_request() {
        let dir = temp_dir("roundtrip");
        let available = Kernel::available();
        let first = resolve(&dir, &available, false);
        assert_eq!(first.reason, ChoiceReason::Calibrated);
        assert!(available.contains(&first.kernel));
        assert_eq!(
            first.rates[0].kernel,
            first.kernel.name(),
            "the fastest wins"
        );
        assert_eq!(first.cache_file, Some(dir.join(CACHE_FILE)));
        assert!(first.warning.is_none(), "{:?}", first.warning);
        let file = CacheFile::load(&dir.join(CACHE_FILE)).unwrap();
        let entry = file.find(&CpuIdentity::current()).expect("entry written");
        assert_eq!(entry.kernel, first.kernel.name());
        assert_eq!(entry.identity.miner_version, env!("CARGO_PKG_VERSION"));

        let second = resolve(&dir, &available, false);
        assert_eq!(second.reason, ChoiceReason::Cached);
        assert_eq!(second.kernel, first.kernel);
        // The cached rates are reported (JSON keeps them to within a rounding).
        assert_eq!(second.rates.len(), first.rates.len());
        for (a, b) in second.rates.iter().zip(&first.rates) {
            assert_eq!(a.kernel, b.kernel);
            assert!((a.mhs - b.mhs).abs() <= 1e-9 * b.mhs, "{a:?} vs {b:?}");
        }

        let again = resolve(&dir, &available, true);
        assert_eq!(again.reason, ChoiceReason::Calibrated);
        let file = CacheFile::load(&dir.join(CACHE_FILE)).unwrap();
        assert_eq!(file.entries.len(), 1, "a recalibration replaces its entry");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_cache_is_what_decides_until_the_kernel_set_or_version_changes() {
        let dir = temp_dir("invalidate");
        let available = Kernel::available();
        // An entry for this CPU that ranks the portable kernel first: only a run that reads the
        // cache would pick it.
        let rigged = CacheEntry {
            identity: CpuIdentity::with_kernels(&available),
            kernel: "soft".into(),
            rates_mhs: vec![
                KernelRate {
                    kernel: "soft".into(),
                    mhs: 1e6,
                },
                KernelRate {
                    kernel: "sha2".into(),
                    mhs: 1.0,
                },
            ],
            calibration_ms: 1.0,
            calibrated_unix: 0,
        };
        let mut old_version = rigged.clone();
        old_version.identity.miner_version = "0.0.0-older".into();
        old_version.identity.kernels = vec!["sha2".into(), "soft".into()];
        let cache = CacheFile {
            entries: vec![rigged, old_version],
        };
        cache.save(&dir.join(CACHE_FILE)).unwrap();
        let cached = resolve(&dir, &available, false);
        assert_eq!(cached.reason, ChoiceReason::Cached);
        assert_eq!(cached.kernel, Kernel::Soft);

        // Another kernel set (as MINER_DISABLE_KERNELS or another CPU makes): measured, and its
        // own entry added; the older version's entry is not used.
        let fewer = [Kernel::Sha2, Kernel::Soft];
        // Two kernels this close (under qemu-aarch64, sha2 0.6 vs soft 0.5 MH/s) can measure as
        // noisy, and a noisy calibration is not cached by design: measured again, a few times.
        let mut other = resolve(&dir, &fewer, false);
        for _ in 0..4 {
            if other.reason != ChoiceReason::CalibratedNoisy {
                break;
            }
            other = resolve(&dir, &fewer, false);
        }
        assert_eq!(other.reason, ChoiceReason::Calibrated);
        assert!(fewer.contains(&other.kernel), "{:?}", other.kernel);
        assert_eq!(other.rates.len(), 2);
        let file = CacheFile::load(&dir.join(CACHE_FILE)).unwrap();
        // The older version's entry for that kernel set is replaced, the first entry kept.
        assert_eq!(file.entries.len(), 2, "{file:?}");
        assert!(file
            .entries
            .iter()
            .all(|e| e.identity.miner_version == env!("CARGO_PKG_VERSION")));
        assert_eq!(resolve(&dir, &fewer, false).reason, ChoiceReason::Cached);
        // The first entry is still there and still used.
        assert_eq!(resolve(&dir, &available, false).kernel, Kernel::Soft);

        // A cached winner that this CPU no longer offers is never returned.
        let gone = resolve(&dir, &[Kernel::Sha2], false);
        assert_eq!(gone.kernel, Kernel::Sha2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_rebuilt_binary_measures_again() {
        let dir = temp_dir("rebuilt");
        let available = Kernel::available();
        let mut identity = CpuIdentity::with_kernels(&available);
        assert!(
            !identity.build.is_empty(),
            "the test binary has a size and time"
        );
        identity.build = "1-1".into();
        let stale = CacheEntry {
            identity,
            kernel: "soft".into(),
            rates_mhs: vec![KernelRate {
                kernel: "soft".into(),
                mhs: 1e6,
            }],
            calibration_ms: 1.0,
            calibrated_unix: 0,
        };
        CacheFile {
            entries: vec![stale],
        }
        .save(&dir.join(CACHE_FILE))
        .unwrap();
        let choice = resolve(&dir, &available, false);
        assert_eq!(choice.reason, ChoiceReason::Calibrated);
        let file = CacheFile::load(&dir.join(CACHE_FILE)).unwrap();
        assert_eq!(
            file.entries.len(),
            1,
            "the stale entry is replaced: {file:?}"
        );
        assert_eq!(file.entries[0].identity, CpuIdentity::current());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn kernel_flag_overrides_without_measuring_or_writing() {
        let dir = temp_dir("flag");
        let choice = KernelChoice::resolve_with(
            Some(Kernel::Sha2),
            Some(&dir),
            false,
            &Kernel::available(),
            QUICK,
        );
        assert_eq!(choice.kernel, Kernel::Sha2);
        assert_eq!(choice.reason, ChoiceReason::Flag);
        assert!(choice.rates.is_empty());
        assert!(!dir.join(CACHE_FILE).exists());
        assert_eq!(choice.summary(), "sha2 (--kernel)");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_broken_cache_is_a_warning_and_is_rewritten() {
        let dir = temp_dir("broken");
        std::fs::write(dir.join(CACHE_FILE), "{ not json").unwrap();
        let choice = resolve(&dir, &Kernel::available(), false);
        assert_eq!(choice.reason, ChoiceReason::Calibrated);
        let warning = choice.warning.expect("a warning about the bad file");
        assert!(
            warning.contains(CACHE_FILE) && warning.contains("not a calibration file"),
            "{warning}"
        );
        assert!(CacheFile::load(&dir.join(CACHE_FILE)).is_ok(), "rewritten");
        assert_eq!(
            resolve(&dir, &Kernel::available(), false).reason,
            ChoiceReason::Cached
        );

        // A data directory that cannot hold the file (it is a plain file): still a choice.
        let blocked = dir.join("not-a-dir");
        std::fs::write(&blocked, "x").unwrap();
        let choice = resolve(&blocked, &Kernel::available(), false);
        assert_eq!(choice.reason, ChoiceReason::Calibrated);
        assert!(Kernel::available().contains(&choice.kernel));
        let warning = choice
            .warning
            .expect("a warning about the unwritable cache");
        assert!(warning.contains("cannot write"), "{warning}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_cpu_model_is_named() {
        let id = CpuIdentity::current();
        assert!(!id.cpu.trim().is_empty());
        assert!(id.kernels.contains(&"soft".to_string()));
        #[cfg(target_arch = "x86_64")]
        assert!(id.cpu.contains("family"), "{}", id.cpu);
    }
}

/// A random job whose target's top word cycles through easy, medium and hard (by `round`), a
/// random range of 1 to `max_count - 1` nonces in it, and the oracle's hits there.
fn random_case(
    rng: &mut rand::rngs::StdRng,
    round: usize,
    max_count: u32,
) -> (Job, u32, u32, Vec<u32>) {
    let header = random_header(rng);
    let mut words: [u32; 8] = rng.gen();
    words[7] = [u32::MAX, 0x0fff_ffff, 0x00ff_ffff][round % 3];
    let target = Target::from_words(words);
    let job = Job::new(&header, &target);
    let first: u32 = rng.gen();
    let count = rng.gen_range(1..max_count).min(u32::MAX - first + 1);
    let expected = oracle(&header, &target, first, count);
    (job, first, count, expected)
}
