//! Every kernel agrees with the portable one, and all agree with an independent oracle: the `sha2`
//! crate's SHA-256d over the full 80-byte header, compared with the target as a 256-bit integer.

use miner::hash::{sha256d, Job, Kernel};
use miner::pow::Target;
use rand::{Rng, SeedableRng};

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
    let available = Kernel::available();
    assert!(available.contains(&Kernel::Soft));
    assert!(available.contains(&Kernel::Sha2));
    assert!(available.contains(&Kernel::best()));
    eprintln!("kernels on this CPU: {available:?}");
}

#[test]
fn kernels_agree_on_random_jobs_at_easy_targets() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0001);
    let mut total_hits = 0;
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
        for kernel in Kernel::available() {
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
fn kernels_agree_when_the_top_word_ties_and_lower_words_decide() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0002);
    let (mut met, mut missed) = (0, 0);
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
        for kernel in Kernel::available() {
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
    for count in 1..=40u32 {
        let header = random_header(&mut rng);
        let job = Job::new(&header, &target);
        let first = u32::MAX - (count - 1);
        let expected: Vec<u32> = (first..=u32::MAX).collect();
        for kernel in Kernel::available() {
            assert_eq!(
                scan(kernel, &job, first, count),
                expected,
                "{kernel}, count {count}"
            );
        }
    }
    // An empty range finds nothing.
    let job = Job::new(&random_header(&mut rng), &target);
    for kernel in Kernel::available() {
        assert!(scan(kernel, &job, 5, 0).is_empty());
    }
}

#[test]
fn impossible_target_finds_nothing() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0004);
    let job = Job::new(&random_header(&mut rng), &Target::from_words([0; 8]));
    for kernel in Kernel::available() {
        assert!(scan(kernel, &job, 0, 5000).is_empty(), "{kernel}");
    }
}

#[test]
fn fallback_order_prefers_the_fastest_kernel_present() {
    use Kernel::*;
    // CPUs with every feature, without AVX-512, without SHA-NI, with neither, with nothing.
    assert_eq!(
        Kernel::fastest_of(&[Sha2, Soft, Avx2, ShaNi, Avx512]),
        Avx512
    );
    assert_eq!(Kernel::fastest_of(&[Sha2, Soft, Avx2, ShaNi]), ShaNi);
    assert_eq!(Kernel::fastest_of(&[Sha2, Soft, Avx2, Avx512]), Avx512);
    assert_eq!(Kernel::fastest_of(&[Sha2, Soft, Avx2]), Avx2);
    assert_eq!(Kernel::fastest_of(&[Sha2, Soft]), Soft);
    assert_eq!(Kernel::fastest_of(&[]), Soft);
    // The baseline is never picked to mine with.
    assert!(!Kernel::PREFERENCE.contains(&Sha2));
}

#[test]
fn every_kernel_name_parses_back() {
    for k in Kernel::ALL {
        assert_eq!(k.name().parse::<Kernel>().unwrap(), k);
    }
    assert!("avx1024".parse::<Kernel>().is_err());
}
