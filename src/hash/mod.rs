//! SHA-256d and the nonce-search kernels.
//!
//! Every kernel has the same signature, `scan(job, first, count, hits)`: hash the headers with
//! nonces `first .. first + count` and push every nonce whose hash meets the job's target.
//! [`Kernel`] is the one dispatch point; it checks the CPU at run time, so every binary carries
//! every kernel of its architecture (x86-64 or aarch64) and falls back to the portable one.

/// Runs `$body` with `$t` bound to each literal in turn: straight-line code for the kernels'
/// round and schedule loops, so that the message schedule stays in registers instead of an
/// array in memory (LLVM keeps the longer of these loops rolled otherwise). Defined before the
/// kernel modules, so in scope in them.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
macro_rules! unroll {
    ($t:ident in [$($n:literal)*] $body:block) => {
        $({
            let $t: usize = $n;
            $body
        })*
    };
}

// The aarch64 kernels are `unsafe fn`s too (the SHA-2 one needs a CPU feature), reached only
// through [`Kernel::scan`].
#[cfg(target_arch = "aarch64")]
mod arm_neon;
#[cfg(target_arch = "aarch64")]
mod arm_sha2;
pub mod calibrate;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod lanes;
mod sha2_loop;
// The portable kernel: crate-private (the GPU backend shares its per-job precomputation); tests
// and benches reach it as `Kernel::Soft`, and `Job::hash` is its full double hash.
pub(crate) mod soft;
// The x86 kernels are `unsafe fn`s (they need CPU features): crate-private, reached only
// through the safe dispatch below ([`Kernel::scan`], [`ShaNiBuild::scan`]), which checks the CPU.
#[cfg(target_arch = "x86_64")]
mod x86_avx2;
#[cfg(target_arch = "x86_64")]
mod x86_avx512;
#[cfg(target_arch = "x86_64")]
mod x86_shani;

use crate::pow::Target;
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// SHA-256 initial hash value (FIPS 180-4 §5.3.3).
pub(crate) const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// SHA-256 round constants (FIPS 180-4 §4.2.2).
pub(crate) const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// SHA-256(SHA-256(data)), in raw byte order (read it as a little-endian integer to compare with
/// a target; reverse it to display it).
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    let first = Sha256::digest(data);
    Sha256::digest(first).into()
}

/// A hash in display order: byte-reversed hex, as Bitcoin shows block hashes.
pub fn display_hash(hash: &[u8; 32]) -> String {
    let mut rev = *hash;
    rev.reverse();
    hex::encode(rev)
}

/// Everything a kernel needs to search the nonces of one 80-byte header, and nothing more:
/// the midstate of the first 64 bytes, the three words before the nonce, and the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    /// SHA-256 state after compressing header bytes 0..64.
    pub midstate: [u32; 8],
    /// Header bytes 64..76 (merkle root tail, time, nBits) as SHA-256 message words (big-endian).
    pub tail: [u32; 3],
    /// The target, least significant word first.
    pub target: [u32; 8],
}

impl Job {
    /// Prepares a job from a header (its nonce field is ignored) and the target to meet.
    pub fn new(header: &[u8; 80], target: &Target) -> Job {
        let mut midstate = IV;
        soft::compress(&mut midstate, &be_words::<16>(&header[..64]));
        let tail = be_words::<3>(&header[64..76]);
        Job {
            midstate,
            tail,
            target: target.to_words(),
        }
    }

    /// The full SHA-256d of this job's header with `nonce`, in raw byte order. The slow path that
    /// kernels use to confirm a candidate.
    pub fn hash(&self, nonce: u32) -> [u8; 32] {
        let h = soft::double_hash(self, nonce);
        let mut out = [0u8; 32];
        for (i, w) in h.iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// Whether `nonce` gives a hash at or below the target (full 256-bit comparison).
    pub fn meets(&self, nonce: u32) -> bool {
        Target::from_words(self.target).is_met_by(&self.hash(nonce))
    }

    /// The SHA-256 message word 3 of the second block for `nonce` (the header stores the nonce
    /// little-endian, SHA-256 reads words big-endian).
    #[inline(always)]
    pub(crate) fn nonce_word(nonce: u32) -> u32 {
        nonce.swap_bytes()
    }
}

/// Reads `N` big-endian 32-bit words.
pub(crate) fn be_words<const N: usize>(bytes: &[u8]) -> [u32; N] {
    let mut w = [0u32; N];
    for (i, word) in w.iter_mut().enumerate() {
        *word = u32::from_be_bytes([
            bytes[4 * i],
            bytes[4 * i + 1],
            bytes[4 * i + 2],
            bytes[4 * i + 3],
        ]);
    }
    w
}

/// The early-reject test every kernel uses: the hash's top 32 bits (as a little-endian integer)
/// are `bswap(H7)`; a nonce is a candidate when they do not exceed the target's top word, and
/// only candidates get the full comparison.
#[inline(always)]
pub(crate) fn is_candidate(h7: u32, target_top: u32) -> bool {
    h7.swap_bytes() <= target_top
}

/// A nonce-search kernel. All are compiled into every binary; [`Kernel::is_available`] checks the
/// CPU at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// The plain `sha2` crate loop with a midstate: the in-run baseline, not tuned by us.
    Sha2,
    /// Portable Rust with midstate, precomputed rounds and early reject.
    Soft,
    /// x86 SHA extensions, eight nonces interleaved (built three ways, see [`ShaNiBuild`]).
    ShaNi,
    /// AVX2, 8 nonces in 8 lanes.
    Avx2,
    /// AVX-512, 16 nonces in 16 lanes.
    Avx512,
    /// aarch64 NEON (Advanced SIMD, every aarch64 CPU): 4 nonces in the 4 lanes of a 128-bit
    /// vector, the lane body of the x86 lane kernels.
    Neon,
    /// The ARMv8 SHA-256 instructions (`sha256h`, `sha256h2`, `sha256su0/1`), four nonces
    /// interleaved.
    ArmSha,
}

impl Kernel {
    /// Every kernel, baseline first (the x86-64 ones, then the aarch64 ones; a CPU has at most
    /// one family).
    pub const ALL: [Kernel; 7] = [
        Kernel::Sha2,
        Kernel::Soft,
        Kernel::Avx2,
        Kernel::ShaNi,
        Kernel::Avx512,
        Kernel::Neon,
        Kernel::ArmSha,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Sha2 => "sha2",
            Kernel::Soft => "soft",
            Kernel::ShaNi => "sha-ni",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512 => "avx512",
            Kernel::Neon => "neon",
            Kernel::ArmSha => "armv8-sha",
        }
    }

    /// Whether this CPU can run the kernel. `MINER_DISABLE_KERNELS=avx512,sha-ni` (a comma list
    /// of names) hides kernels, to see how `miner` behaves on a CPU without them.
    pub fn is_available(self) -> bool {
        if disabled_by_env(self) {
            return false;
        }
        match self {
            Kernel::Sha2 | Kernel::Soft => true,
            Kernel::ShaNi => shani_available(),
            Kernel::Avx2 => avx2_available(),
            Kernel::Avx512 => avx512_available(),
            Kernel::Neon => neon_available(),
            Kernel::ArmSha => arm_sha2_available(),
        }
    }

    /// The kernels this CPU can run, baseline first.
    pub fn available() -> Vec<Kernel> {
        Kernel::ALL
            .into_iter()
            .filter(|k| k.is_available())
            .collect()
    }

    /// A fixed order, fastest first on the x86-64 CPUs measured when it was written (and, for
    /// the aarch64 kernels, by instruction counts: BENCHMARKS.md). No fixed order is right
    /// everywhere (sha-ni leads on Zen 4, avx512 on Zen 5; without SHA-NI the `sha2` loop may
    /// beat `soft`), so the kernel is chosen by measurement ([`calibrate`]); this order is only
    /// the fallback when a measurement gives nothing. No CPU has kernels of both families, so
    /// their relative order does not matter.
    pub const PREFERENCE: [Kernel; 6] = [
        Kernel::Avx512,
        Kernel::ShaNi,
        Kernel::Avx2,
        Kernel::ArmSha,
        Kernel::Neon,
        Kernel::Soft,
    ];

    /// The first kernel of [`Kernel::PREFERENCE`] in `available`; the portable one if none.
    pub fn fastest_of(available: &[Kernel]) -> Kernel {
        Kernel::PREFERENCE
            .into_iter()
            .find(|k| available.contains(k))
            .unwrap_or(Kernel::Soft)
    }

    /// The fastest kernel on this CPU, measured once per process (about 0.1 s, every available
    /// kernel including the `sha2` loop; see [`calibrate::measured_best`]). The command line
    /// uses [`calibrate::KernelChoice`] instead, which also caches the choice per CPU.
    pub fn best() -> Kernel {
        calibrate::measured_best()
    }

    /// Hashes nonces `first .. first + count` of `job` and pushes every nonce that meets the
    /// target onto `hits`, in ascending order. `first + count` must not exceed 2^32.
    ///
    /// # Panics
    /// If the kernel is not available on this CPU (check [`Kernel::is_available`]) or the range
    /// passes 2^32.
    pub fn scan(self, job: &Job, first: u32, count: u32, hits: &mut Vec<u32>) {
        assert!(
            u64::from(first) + u64::from(count) <= 1 << 32,
            "nonce range passes 2^32"
        );
        match self {
            Kernel::Sha2 => sha2_loop::scan(job, first, count, hits),
            Kernel::Soft => soft::scan(job, first, count, hits),
            #[cfg(target_arch = "x86_64")]
            Kernel::ShaNi => {
                assert!(shani_available(), "the sha-ni kernel needs SHA extensions");
                // SAFETY: `shani_available()` just confirmed at run time that the CPU has the
                // SHA, SSE2, SSSE3 and SSE4.1 extensions that `x86_shani::sse` is compiled for;
                // `ShaNiBuild::current()` picks the AVX2 or AVX-512VL builds only after its own
                // run-time checks of those features.
                unsafe {
                    match ShaNiBuild::current() {
                        ShaNiBuild::Avx512Vl => x86_shani::avx512vl::scan(job, first, count, hits),
                        ShaNiBuild::Avx2 => x86_shani::avx2::scan(job, first, count, hits),
                        ShaNiBuild::Sse => x86_shani::sse::scan(job, first, count, hits),
                    }
                }
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                assert!(avx2_available(), "the avx2 kernel needs AVX2");
                // SAFETY: `avx2_available()` just confirmed AVX2, which `x86_avx2::scan` is
                // compiled for.
                unsafe { x86_avx2::scan(job, first, count, hits) }
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                assert!(
                    avx512_available(),
                    "the avx512 kernel needs AVX-512 F and BW"
                );
                // SAFETY: `avx512_available()` just confirmed AVX-512 F and BW, which
                // `x86_avx512::scan` is compiled for.
                unsafe { x86_avx512::scan(job, first, count, hits) }
            }
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::ShaNi | Kernel::Avx2 | Kernel::Avx512 => {
                unreachable!("x86 kernels are never available off x86-64")
            }
            #[cfg(target_arch = "aarch64")]
            Kernel::Neon => {
                assert!(neon_available(), "the neon kernel needs NEON");
                // SAFETY: `neon_available()` just confirmed at run time (it is part of the
                // aarch64 baseline, so this is a formality) that the CPU has NEON, which
                // `arm_neon::scan` is compiled for.
                unsafe { arm_neon::scan(job, first, count, hits) }
            }
            #[cfg(target_arch = "aarch64")]
            Kernel::ArmSha => {
                assert!(
                    arm_sha2_available(),
                    "the armv8-sha kernel needs the ARMv8 SHA-256 instructions"
                );
                // SAFETY: `arm_sha2_available()` just confirmed at run time that the CPU has
                // NEON and the SHA-256 instructions (FEAT_SHA256, `sha2`), which `arm_sha2::scan`
                // is compiled for.
                unsafe { arm_sha2::scan(job, first, count, hits) }
            }
            #[cfg(not(target_arch = "aarch64"))]
            Kernel::Neon | Kernel::ArmSha => {
                unreachable!("aarch64 kernels are never available off aarch64")
            }
        }
    }
}

/// Which compilation of the `sha-ni` kernel runs (`hash/x86_shani.rs` has the same code built three
/// ways; the SHA instructions are the same, the code around them uses the wider encodings).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShaNiBuild {
    /// Legacy SSE encoding, 16 vector registers.
    Sse,
    /// VEX encoding (needs AVX2).
    Avx2,
    /// AVX-512VL enabled: 32 vector registers (needs AVX-512 F + VL).
    Avx512Vl,
}

impl ShaNiBuild {
    /// The widest build this CPU supports. Hiding `avx512` or `avx2` with
    /// `MINER_DISABLE_KERNELS` also keeps `sha-ni` from using those features, so the variable
    /// still shows how a CPU without them behaves.
    pub fn current() -> ShaNiBuild {
        ShaNiBuild::available()
            .last()
            .copied()
            .unwrap_or(ShaNiBuild::Sse)
    }

    /// Every build this CPU can run, narrowest first (empty without SHA extensions).
    pub fn available() -> Vec<ShaNiBuild> {
        let mut builds = Vec::new();
        if !Kernel::ShaNi.is_available() {
            return builds;
        }
        builds.push(ShaNiBuild::Sse);
        if Kernel::Avx2.is_available() {
            builds.push(ShaNiBuild::Avx2);
        }
        if Kernel::Avx512.is_available() && avx512vl_available() {
            builds.push(ShaNiBuild::Avx512Vl);
        }
        builds
    }

    /// `sse`, `avx2` or `avx512vl`.
    pub fn name(self) -> &'static str {
        match self {
            ShaNiBuild::Sse => "sse",
            ShaNiBuild::Avx2 => "avx2",
            ShaNiBuild::Avx512Vl => "avx512vl",
        }
    }

    /// [`Kernel::scan`] with this build of the `sha-ni` kernel, for tests and benches.
    ///
    /// # Panics
    /// If this CPU cannot run the build (check [`ShaNiBuild::available`]) or the range passes
    /// 2^32.
    pub fn scan(self, job: &Job, first: u32, count: u32, hits: &mut Vec<u32>) {
        assert!(
            ShaNiBuild::available().contains(&self),
            "the {} build of sha-ni is not supported by this CPU",
            self.name()
        );
        assert!(
            u64::from(first) + u64::from(count) <= 1 << 32,
            "nonce range passes 2^32"
        );
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `ShaNiBuild::available()` just confirmed at run time the features each build
        // is compiled for (SHA + SSE4.1; and AVX2; and AVX-512 F + VL).
        unsafe {
            match self {
                ShaNiBuild::Avx512Vl => x86_shani::avx512vl::scan(job, first, count, hits),
                ShaNiBuild::Avx2 => x86_shani::avx2::scan(job, first, count, hits),
                ShaNiBuild::Sse => x86_shani::sse::scan(job, first, count, hits),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (job, hits);
            unreachable!("no sha-ni build is available off x86-64")
        }
    }

    /// The interleaved-stream counts [`ShaNiBuild::scan_streams`] is compiled for.
    #[doc(hidden)]
    pub const STREAM_COUNTS: [usize; 6] = [1, 2, 4, 6, 8, 10];

    /// [`ShaNiBuild::scan`] with `streams` nonces interleaved instead of the kernel's fixed
    /// count: for the benches that measure how many streams pay off. Not part of the supported
    /// API (hidden from the docs); the kernel modules themselves are crate-private.
    ///
    /// # Panics
    /// As [`ShaNiBuild::scan`], or if `streams` is not one of [`ShaNiBuild::STREAM_COUNTS`].
    #[doc(hidden)]
    pub fn scan_streams(
        self,
        streams: usize,
        job: &Job,
        first: u32,
        count: u32,
        hits: &mut Vec<u32>,
    ) {
        assert!(
            ShaNiBuild::available().contains(&self),
            "the {} build of sha-ni is not supported by this CPU",
            self.name()
        );
        assert!(
            u64::from(first) + u64::from(count) <= 1 << 32,
            "nonce range passes 2^32"
        );
        assert!(
            ShaNiBuild::STREAM_COUNTS.contains(&streams),
            "sha-ni is built for {:?} streams, not {streams}",
            ShaNiBuild::STREAM_COUNTS
        );
        #[cfg(target_arch = "x86_64")]
        {
            macro_rules! dispatch {
                ($($n:literal)*) => {
                    match (self, streams) {
                        $(
                            // SAFETY: `ShaNiBuild::available()` just confirmed at run time the
                            // features this build is compiled for (SHA + SSE4.1; and AVX2; and
                            // AVX-512 F + VL).
                            (ShaNiBuild::Sse, $n) => unsafe {
                                x86_shani::sse::scan_streams::<$n>(job, first, count, hits)
                            },
                            // SAFETY: as above.
                            (ShaNiBuild::Avx2, $n) => unsafe {
                                x86_shani::avx2::scan_streams::<$n>(job, first, count, hits)
                            },
                            // SAFETY: as above.
                            (ShaNiBuild::Avx512Vl, $n) => unsafe {
                                x86_shani::avx512vl::scan_streams::<$n>(job, first, count, hits)
                            },
                        )*
                        _ => unreachable!("stream count checked against STREAM_COUNTS above"),
                    }
                };
            }
            dispatch!(1 2 4 6 8 10);
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (job, hits);
            unreachable!("no sha-ni build is available off x86-64")
        }
    }
}

fn avx512vl_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether `MINER_DISABLE_KERNELS` names this kernel (the portable one cannot be disabled).
fn disabled_by_env(kernel: Kernel) -> bool {
    static DISABLED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let disabled = DISABLED.get_or_init(|| {
        std::env::var("MINER_DISABLE_KERNELS")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    });
    kernel != Kernel::Soft && disabled.iter().any(|d| d == kernel.name())
}

fn shani_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse2")
            && std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("sse4.1")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn neon_available() -> bool {
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("neon")
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        false
    }
}

fn arm_sha2_available() -> bool {
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("neon")
            && std::arch::is_aarch64_feature_detected!("sha2")
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        false
    }
}

fn avx2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn avx512_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for [`Kernel::from_str`]; it lists every name in [`Kernel::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown kernel '{0}'; known kernels: {known}", known = known_kernel_names())]
pub struct UnknownKernel(String);

/// `sha2, soft, avx2, ...`: every kernel's name, as `--kernel` takes it.
fn known_kernel_names() -> String {
    Kernel::ALL.map(Kernel::name).join(", ")
}

impl FromStr for Kernel {
    type Err = UnknownKernel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kernel::ALL
            .into_iter()
            .find(|k| {
                k.name().eq_ignore_ascii_case(s.trim())
                    || (s.trim() == "shani" && *k == Kernel::ShaNi)
            })
            .ok_or_else(|| UnknownKernel(s.to_string()))
    }
}
