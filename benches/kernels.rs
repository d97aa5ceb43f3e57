//! Criterion benches of every CPU kernel on one thread, with the plain `sha2` midstate loop
//! (`Kernel::Sha2`) as the baseline in the same run. Throughput is in nonces (elements) per second.
//!
//! Run: `cargo bench --bench kernels`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use miner::hash::{Job, Kernel, ShaNiBuild};
use miner::pow::Target;

const NONCES: u32 = 1 << 14;

fn kernels(c: &mut Criterion) {
    let mut header = [0u8; 80];
    for (i, b) in header.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(151).wrapping_add(7);
    }
    // Target 0: no nonce meets it, so every nonce runs the whole search path.
    let job = Job::new(&header, &Target::from_words([0; 8]));
    let mut group = c.benchmark_group("sha256d_scan");
    group.throughput(Throughput::Elements(u64::from(NONCES)));
    for kernel in Kernel::available() {
        group.bench_function(kernel.name(), |b| {
            let mut hits = Vec::new();
            let mut first = 0u32;
            b.iter(|| {
                kernel.scan(black_box(&job), first, NONCES, &mut hits);
                first = first.wrapping_add(NONCES);
            });
            assert!(hits.is_empty());
        });
    }
    group.finish();

    // The three builds of the SHA-NI kernel (the same code, wider encodings around the SHA
    // instructions).
    let builds = ShaNiBuild::available();
    if !builds.is_empty() {
        let mut group = c.benchmark_group("sha_ni_builds");
        group.throughput(Throughput::Elements(u64::from(NONCES)));
        for build in builds {
            group.bench_function(build.name(), |b| {
                let mut hits = Vec::new();
                let mut first = 0u32;
                b.iter(|| {
                    build.scan(black_box(&job), first, NONCES, &mut hits);
                    first = first.wrapping_add(NONCES);
                });
            });
        }
        group.finish();
    }

    // How many interleaved SHA-NI streams pay off (the AVX-512VL build, where the CPU has it).
    if ShaNiBuild::available().contains(&ShaNiBuild::Avx512Vl) {
        let mut group = c.benchmark_group("sha_ni_streams");
        group.throughput(Throughput::Elements(u64::from(NONCES)));
        for streams in ShaNiBuild::STREAM_COUNTS {
            group.bench_function(format!("{streams} streams"), |b| {
                let mut hits = Vec::new();
                b.iter(|| {
                    ShaNiBuild::Avx512Vl.scan_streams(
                        streams,
                        black_box(&job),
                        0,
                        NONCES,
                        &mut hits,
                    )
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
