//! Choosing the CPU kernel by measurement, and remembering the choice per CPU.
//!
//! No fixed order of kernels is right on every CPU: on a Zen 4 EPYC (AVX-512 executed as two
//! 256-bit halves) `sha-ni` beats `avx512`, on Zen 5 `avx512` leads, on an x86 CPU without SHA-NI
//! or AVX2 the plain `sha2` loop can beat our portable kernel, and on aarch64 the `sha2` loop uses
//! the ARMv8 SHA instructions too, so it competes with `armv8-sha`. So at start-up every available
//! kernel runs for a few milliseconds on the real job path ([`Kernel::scan`] on a job no nonce
//! meets), round-robin so frequency changes hit them all alike, timed by the thread's CPU clock so
//! a loaded machine does not skew it, and the fastest wins ([`calibrate`], about 0.1 s in all).
//! When the two fastest come within 10% of each other, or a kernel's rounds disagree by more than
//! 15% (a disturbed measurement), those two are measured again, at most twice more ([`judge`] is
//! the rule); a result still disturbed after that is used for the run but not cached
//! (`kernel_choice` says `calibrated (noisy: not cached)`).
//!
//! The result is cached in a JSON file in the data directory ([`CACHE_FILE`]), one entry per
//! [`CpuIdentity`]: the CPU's model, the set of kernels available (so `MINER_DISABLE_KERNELS` or
//! a new kernel gets its own entry), the crate version and the executable's size and time (a new
//! or rebuilt binary recalibrates). Deleting
//! the file, or `--recalibrate`, measures again. A cache that cannot be read or written never
//! stops mining: the choice is then measured and the problem reported as a warning.

use super::{Job, Kernel};
use crate::pow::Target;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The cache file's name inside the data directory.
pub const CACHE_FILE: &str = "kernel-calibration.json";

/// Default total time [`calibrate`] spends measuring.
pub const DEFAULT_BUDGET: Duration = Duration::from_millis(100);

/// Rounds of the round-robin: each kernel is measured this many times and keeps its best.
const ROUNDS: u32 = 6;

/// Nonces per [`Kernel::scan`] call while measuring: about 0.4 ms for the slowest kernel.
const CHUNK: u32 = 1024;

/// Why a kernel runs. Serialized as `"calibrated"`, `"cached"`, `"--kernel"` or
/// `"calibrated (noisy: not cached)"` (the `--json` field `kernel_choice`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChoiceReason {
    /// Measured in this run (no usable cache entry, or `--recalibrate`).
    #[serde(rename = "calibrated")]
    Calibrated,
    /// Read from the cache file, measured by an earlier run on the same CPU and binary.
    #[serde(rename = "cached")]
    Cached,
    /// Named with `--kernel`.
    #[serde(rename = "--kernel")]
    Flag,
    /// Measured in this run, but the rounds of the two fastest kernels disagreed even after
    /// measuring again ([`CalibrationVerdict::Noisy`]: a busy machine), so the choice was not
    /// written to the cache and the next run measures again.
    #[serde(rename = "calibrated (noisy: not cached)")]
    CalibratedNoisy,
}

impl ChoiceReason {
    /// The name used in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ChoiceReason::Calibrated => "calibrated",
            ChoiceReason::Cached => "cached",
            ChoiceReason::Flag => "--kernel",
            ChoiceReason::CalibratedNoisy => "calibrated (noisy: not cached)",
        }
    }
}

impl fmt::Display for ChoiceReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One kernel's measured rate on one thread.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KernelRate {
    /// Kernel name, as `--kernel` takes it.
    pub kernel: String,
    /// Million hashes per second, one thread.
    pub mhs: f64,
}

/// What identifies a calibration: the same CPU model, the same kernels, the same binary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuIdentity {
    /// Vendor, brand string, family and model (see [`CpuIdentity::cpu_model`]).
    pub cpu: String,
    /// Names of the kernels available (after `MINER_DISABLE_KERNELS`), baseline first.
    pub kernels: Vec<String>,
    /// This crate's version: a new binary may have new or changed kernels.
    pub miner_version: String,
    /// The running executable's size and modification time, so a rebuilt binary of the same
    /// version (a developer's) measures again too. Empty where the executable cannot be read.
    #[serde(default)]
    pub build: String,
}

impl CpuIdentity {
    /// This machine's identity with the kernels available now.
    pub fn current() -> CpuIdentity {
        CpuIdentity::with_kernels(&Kernel::available())
    }

    /// This machine's identity with `kernels` as the available set.
    pub fn with_kernels(kernels: &[Kernel]) -> CpuIdentity {
        CpuIdentity {
            cpu: CpuIdentity::cpu_model(),
            kernels: kernels.iter().map(|k| k.name().to_string()).collect(),
            miner_version: env!("CARGO_PKG_VERSION").to_string(),
            build: build_id(),
        }
    }

    /// The CPU model: on x86-64 the CPUID vendor, brand string, family and model (virtual
    /// machines often shorten the brand string, e.g. "AMD EPYC", so family and model tell Zen 4
    /// from Zen 5); elsewhere /proc/cpuinfo's model lines, or the architecture name.
    pub fn cpu_model() -> String {
        #[cfg(target_arch = "x86_64")]
        {
            x86_cpu_model()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            proc_cpuinfo_model().unwrap_or_else(|| std::env::consts::ARCH.to_string())
        }
    }
}

/// `size-mtime` of the running executable (empty if unknown).
fn build_id() -> String {
    std::env::current_exe()
        .and_then(std::fs::metadata)
        .map(|m| {
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            format!("{}-{mtime}", m.len())
        })
        .unwrap_or_default()
}

#[cfg(target_arch = "x86_64")]
fn x86_cpu_model() -> String {
    use core::arch::x86_64::__cpuid;
    let regs = |leaf: u32| __cpuid(leaf);
    let v = regs(0);
    let mut vendor = Vec::with_capacity(12);
    for r in [v.ebx, v.edx, v.ecx] {
        vendor.extend_from_slice(&r.to_le_bytes());
    }
    let mut brand = Vec::with_capacity(48);
    if regs(0x8000_0000).eax >= 0x8000_0004 {
        for leaf in 0x8000_0002..=0x8000_0004u32 {
            let r = regs(leaf);
            for w in [r.eax, r.ebx, r.ecx, r.edx] {
                brand.extend_from_slice(&w.to_le_bytes());
            }
        }
    }
    let sig = regs(1).eax;
    let base_family = (sig >> 8) & 0xf;
    let base_model = (sig >> 4) & 0xf;
    let family = if base_family == 0xf {
        base_family + ((sig >> 20) & 0xff)
    } else {
        base_family
    };
    let model = if base_family == 0x6 || base_family == 0xf {
        (((sig >> 16) & 0xf) << 4) | base_model
    } else {
        base_model
    };
    let text = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .trim_matches(|c: char| c == '\0' || c.is_whitespace())
            .to_string()
    };
    format!(
        "{} {} (family {family}, model {model}, stepping {})",
        text(&vendor),
        text(&brand),
        sig & 0xf
    )
}

/// "model name", "CPU implementer" and "CPU part" lines of /proc/cpuinfo (the first of each).
#[cfg(not(target_arch = "x86_64"))]
fn proc_cpuinfo_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mut parts = Vec::new();
    for key in ["model name", "CPU implementer", "CPU part", "CPU variant"] {
        if let Some(v) = info.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        }) {
            parts.push(format!("{key} {v}"));
        }
    }
    (!parts.is_empty()).then(|| format!("{} {}", std::env::consts::ARCH, parts.join(", ")))
}

/// Measures every kernel in `kernels` on this thread for about `budget` of CPU time in all and
/// returns their rates, fastest first. Each kernel is measured `ROUNDS` (6) times round-robin and
/// keeps its best round, so a frequency ramp or a noisy neighbour hurts all of them alike. Rates
/// are per second of this thread's CPU time where the OS reports it (Linux), so other processes
/// taking the core while a kernel runs (a loaded machine) do not make that kernel look slow.
/// When the result is not clear the two fastest are measured again ([`measure`]).
pub fn calibrate(kernels: &[Kernel], budget: Duration) -> Vec<KernelRate> {
    measure(kernels, budget).rates
}

/// The two fastest kernels closer than this fraction of the faster one's rate are measured
/// again ([`CalibrationVerdict::Close`]).
pub const CLOSE_MARGIN: f64 = 0.10;

/// A kernel whose middle round is more than this fraction below its best round was disturbed
/// while it was measured ([`CalibrationVerdict::Noisy`]).
pub const SPREAD_LIMIT: f64 = 0.15;

/// Extra passes over the two fastest kernels when the first pass is not
/// [`CalibrationVerdict::Clear`]. Each costs `2 / kernels` of the budget (40 ms of the default
/// 100 ms with five kernels), so the whole calibration stays within 0.18 s of CPU time with five
/// kernels, 0.3 s with two.
pub const EXTRA_PASSES: u32 = 2;

/// How far a calibration can be trusted: [`judge`]'s answer. (Named apart from the other
/// verdicts in the crate, e.g. the Stratum server's share check.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalibrationVerdict {
    /// The fastest kernel leads the runner-up by at least [`CLOSE_MARGIN`] and both measured
    /// steadily: the choice is clear.
    Clear,
    /// Both of the two fastest measured steadily but lie within [`CLOSE_MARGIN`] of each other.
    /// Worth measuring again (a disturbed round may hide the real leader); if it stays so after
    /// [`EXTRA_PASSES`], it is a genuine tie and either choice costs under 10%.
    Close,
    /// The rounds of one of the two fastest kernels disagree by more than [`SPREAD_LIMIT`]: the
    /// machine was busy while they ran, so their best round may understate them. Not cached.
    Noisy,
}

/// A calibration with its verdict ([`measure`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    /// One-thread rates of every kernel measured (best round of each), fastest first.
    pub rates: Vec<KernelRate>,
    /// Whether the result is clear, after any extra passes.
    pub verdict: CalibrationVerdict,
    /// Passes run: 1, plus the extra passes over the two fastest.
    pub passes: u32,
}

/// The decision rule over measured rounds, a pure function: `rounds[i]` holds the rates (any
/// unit) of kernel `i`'s rounds. Ranks the kernels by their best round; the two fastest must
/// each have their middle round (the upper median) within [`SPREAD_LIMIT`] of their best, else
/// [`CalibrationVerdict::Noisy`]; then the leader must be at least [`CLOSE_MARGIN`] ahead, else
/// [`CalibrationVerdict::Close`]. One kernel (or none) is [`CalibrationVerdict::Clear`]; a kernel
/// with no rounds or no positive rate counts as not measured and is ranked last.
pub fn judge(rounds: &[Vec<f64>]) -> CalibrationVerdict {
    let order = ranking(rounds);
    let spread = |i: usize| {
        let mut r: Vec<f64> = rounds[i]
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect();
        r.sort_by(f64::total_cmp);
        match (r.last(), r.get(r.len() / 2)) {
            (Some(&best), Some(&middle)) if best > 0.0 => 1.0 - middle / best,
            _ => 1.0,
        }
    };
    match order[..] {
        [] | [_] => CalibrationVerdict::Clear,
        [first, second, ..] => {
            if spread(first) > SPREAD_LIMIT || spread(second) > SPREAD_LIMIT {
                CalibrationVerdict::Noisy
            } else if best_of(&rounds[second]) > (1.0 - CLOSE_MARGIN) * best_of(&rounds[first]) {
                CalibrationVerdict::Close
            } else {
                CalibrationVerdict::Clear
            }
        }
    }
}

/// A kernel's best round (0 if it has no finite positive round).
fn best_of(rounds: &[f64]) -> f64 {
    rounds
        .iter()
        .copied()
        .filter(|x| x.is_finite() && *x > 0.0)
        .fold(0.0, f64::max)
}

/// Kernel indices by best round, fastest first.
fn ranking(rounds: &[Vec<f64>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rounds.len()).collect();
    order.sort_by(|&a, &b| best_of(&rounds[b]).total_cmp(&best_of(&rounds[a])));
    order
}

/// [`calibrate`] with its verdict: one pass of `ROUNDS` (6) round-robin rounds over every kernel;
/// while [`judge`] does not call the result [`CalibrationVerdict::Clear`], up to [`EXTRA_PASSES`]
/// more passes over the two fastest (a pass's rounds add to the earlier ones, and a kernel's rate
/// is its best round of all).
pub fn measure(kernels: &[Kernel], budget: Duration) -> Calibration {
    if kernels.is_empty() {
        return Calibration {
            rates: Vec::new(),
            verdict: CalibrationVerdict::Clear,
            passes: 0,
        };
    }
    let job = calibration_job();
    let slice = (budget / (ROUNDS * kernels.len() as u32)).as_secs_f64();
    let mut rounds = vec![Vec::new(); kernels.len()];
    let mut next_nonce = 0u32;
    let mut pass = |which: &[usize], rounds: &mut [Vec<f64>]| {
        let mut hits = Vec::new();
        for _ in 0..ROUNDS {
            for &i in which {
                let rate = measure_slice(kernels[i], &job, &mut next_nonce, slice, &mut hits);
                rounds[i].push(rate);
            }
        }
    };
    let all: Vec<usize> = (0..kernels.len()).collect();
    pass(&all, &mut rounds);
    let mut passes = 1;
    let mut verdict = judge(&rounds);
    while verdict != CalibrationVerdict::Clear && passes <= EXTRA_PASSES {
        let contenders: Vec<usize> = ranking(&rounds).into_iter().take(2).collect();
        pass(&contenders, &mut rounds);
        passes += 1;
        verdict = judge(&rounds);
    }
    let mut rates: Vec<KernelRate> = kernels
        .iter()
        .zip(&rounds)
        .map(|(k, r)| KernelRate {
            kernel: k.name().to_string(),
            mhs: best_of(r) / 1e6,
        })
        .collect();
    rates.sort_by(|a, b| b.mhs.total_cmp(&a.mhs));
    Calibration {
        rates,
        verdict,
        passes,
    }
}

/// Runs `kernel` for about `slice` seconds (CPU time where available) and returns its rate in
/// nonces per second.
fn measure_slice(
    kernel: Kernel,
    job: &Job,
    next_nonce: &mut u32,
    slice: f64,
    hits: &mut Vec<u32>,
) -> f64 {
    let clock = SliceClock::start();
    let mut nonces = 0u64;
    let seconds = loop {
        // `next_nonce` is a multiple of CHUNK, so `next_nonce + CHUNK <= 2^32`.
        kernel.scan(job, *next_nonce, CHUNK, hits);
        *next_nonce = next_nonce.wrapping_add(CHUNK);
        nonces += u64::from(CHUNK);
        let (seconds, wall) = clock.elapsed();
        // The wall-clock cap keeps a starved thread from measuring for long.
        if seconds >= slice || wall >= 20.0 * slice {
            break seconds;
        }
    };
    nonces as f64 / seconds.max(1e-9)
}

/// Times one measurement slice: by this thread's CPU time where available, else by the wall
/// clock.
struct SliceClock {
    wall: Instant,
    cpu: Option<f64>,
}

impl SliceClock {
    fn start() -> SliceClock {
        SliceClock {
            wall: Instant::now(),
            cpu: thread_cpu_seconds(),
        }
    }

    /// (seconds measured, by CPU time if available; wall seconds).
    fn elapsed(&self) -> (f64, f64) {
        let wall = self.wall.elapsed().as_secs_f64();
        match (self.cpu, thread_cpu_seconds()) {
            (Some(start), Some(now)) => (now - start, wall),
            _ => (wall, wall),
        }
    }
}

/// This thread's CPU time in seconds (`CLOCK_THREAD_CPUTIME_ID`, nanosecond resolution).
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn thread_cpu_seconds() -> Option<f64> {
    /// `struct timespec` on 64-bit Linux.
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` (libc, always linked on Linux) writes one `struct timespec`, whose
    // layout on 64-bit Linux is two 64-bit integers, to the valid pointer it is given.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then_some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
}

/// No per-thread CPU clock here: measure by the wall clock.
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn thread_cpu_seconds() -> Option<f64> {
    None
}

/// A real job (a header with a varied tail) whose target no nonce meets, so every nonce runs the
/// kernel's whole path: the early reject on H7, as in mining at any real difficulty.
fn calibration_job() -> Job {
    let mut header = [0u8; 80];
    for (i, b) in header.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(59).wrapping_add(3);
    }
    Job::new(&header, &Target::from_words([0; 8]))
}

/// The fastest kernel of `rates` (the first: they are sorted), if it parses back to a kernel in
/// `available`.
fn winner(rates: &[KernelRate], available: &[Kernel]) -> Option<Kernel> {
    rates
        .iter()
        .filter(|r| r.mhs.is_finite() && r.mhs > 0.0)
        .filter_map(|r| r.kernel.parse::<Kernel>().ok())
        .find(|k| available.contains(k))
}

/// The kernel this process measures fastest among those available, measured once per process
/// (no cache): what [`Kernel::best`] returns.
pub fn measured_best() -> Kernel {
    static BEST: OnceLock<Kernel> = OnceLock::new();
    *BEST.get_or_init(|| {
        let available = Kernel::available();
        winner(&calibrate(&available, DEFAULT_BUDGET), &available)
            .unwrap_or_else(|| Kernel::fastest_of(&available))
    })
}

/// The kernel a CPU backend runs, and why: what `mine`, `scan`, `node` and `bench` report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KernelChoice {
    /// The kernel that runs.
    pub kernel: Kernel,
    /// Why it runs: measured now, cached from an earlier run, or `--kernel`.
    pub reason: ChoiceReason,
    /// One-thread rates of every available kernel behind the choice, fastest first (from the
    /// cache when `reason` is `Cached`; empty for `--kernel`).
    pub rates: Vec<KernelRate>,
    /// The cache file read or written, if a data directory was given.
    pub cache_file: Option<PathBuf>,
    /// A problem with the cache file (unreadable, unwritable) that did not stop the choice.
    pub warning: Option<String>,
}

impl Serialize for Kernel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl KernelChoice {
    /// The kernel to run: `flag` if given (`--kernel`); else the cache entry for this CPU in
    /// `data_dir` unless `recalibrate`; else a fresh calibration, written back to the cache.
    /// `data_dir: None` measures without caching.
    pub fn resolve(flag: Option<Kernel>, data_dir: Option<&Path>, recalibrate: bool) -> Self {
        KernelChoice::resolve_with(
            flag,
            data_dir,
            recalibrate,
            &Kernel::available(),
            DEFAULT_BUDGET,
        )
    }

    /// [`KernelChoice::resolve`] with the available kernels and the measuring time given (tests
    /// use it to stand for another CPU's kernel set).
    pub fn resolve_with(
        flag: Option<Kernel>,
        data_dir: Option<&Path>,
        recalibrate: bool,
        available: &[Kernel],
        budget: Duration,
    ) -> Self {
        KernelChoice::resolve_measuring(flag, data_dir, recalibrate, available, |kernels| {
            measure(kernels, budget)
        })
    }

    /// [`KernelChoice::resolve_with`] with the measurement given as a function (the unit tests
    /// hand it a fixed [`Calibration`] to see what each verdict does to the cache).
    fn resolve_measuring(
        flag: Option<Kernel>,
        data_dir: Option<&Path>,
        recalibrate: bool,
        available: &[Kernel],
        measure: impl FnOnce(&[Kernel]) -> Calibration,
    ) -> Self {
        if let Some(kernel) = flag {
            return KernelChoice {
                kernel,
                reason: ChoiceReason::Flag,
                rates: Vec::new(),
                cache_file: None,
                warning: None,
            };
        }
        let identity = CpuIdentity::with_kernels(available);
        let path = data_dir.map(|d| d.join(CACHE_FILE));
        let mut warning = None;
        let mut cache = CacheFile::default();
        if let Some(path) = &path {
            match CacheFile::load(path) {
                Ok(c) => cache = c,
                Err(e) => warning = Some(e.to_string()),
            }
            if !recalibrate {
                if let Some(entry) = cache.find(&identity) {
                    if let Some(kernel) = winner(&entry.rates_mhs, available) {
                        return KernelChoice {
                            kernel,
                            reason: ChoiceReason::Cached,
                            rates: entry.rates_mhs.clone(),
                            cache_file: Some(path.clone()),
                            warning,
                        };
                    }
                }
            }
        }
        let started = Instant::now();
        let Calibration { rates, verdict, .. } = measure(available);
        let measured_ms = started.elapsed().as_secs_f64() * 1e3;
        let kernel = winner(&rates, available).unwrap_or_else(|| Kernel::fastest_of(available));
        // A disturbed measurement is used for this run only: caching it would keep a wrong
        // choice until `--recalibrate`.
        let reason = match verdict {
            CalibrationVerdict::Noisy => ChoiceReason::CalibratedNoisy,
            CalibrationVerdict::Clear | CalibrationVerdict::Close => ChoiceReason::Calibrated,
        };
        if let (Some(path), ChoiceReason::Calibrated) = (&path, reason) {
            cache.insert(CacheEntry {
                identity,
                kernel: kernel.name().to_string(),
                rates_mhs: rates.clone(),
                calibration_ms: measured_ms,
                calibrated_unix: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            });
            if let Err(e) = cache.save(path) {
                warning = Some(e.to_string());
            }
        }
        KernelChoice {
            kernel,
            reason,
            rates,
            cache_file: path,
            warning,
        }
    }

    /// One line for people: `sha-ni (calibrated: sha-ni 30.1, avx512 28.4, ... MH/s per thread)`.
    pub fn summary(&self) -> String {
        if self.rates.is_empty() {
            return format!("{} ({})", self.kernel, self.reason);
        }
        let rates: Vec<String> = self
            .rates
            .iter()
            .map(|r| format!("{} {:.1}", r.kernel, r.mhs))
            .collect();
        format!(
            "{} ({}: {} MH/s on one thread)",
            self.kernel,
            self.reason,
            rates.join(", ")
        )
    }

    /// The measured rates as a JSON object `{"sha-ni": 30.1, ...}` (MH/s, one thread).
    pub fn rates_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.rates
                .iter()
                .map(|r| (r.kernel.clone(), serde_json::json!(r.mhs)))
                .collect(),
        )
    }
}

/// A problem with the cache file. Never fatal: the kernel is measured instead.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    // Each message includes its cause, so the cause is a plain field, not a `source`
    // (thiserror treats a field named `source` as one): `{e:#}` would print it twice.
    /// The file exists but could not be read.
    #[error("kernel cache {path}: cannot read it ({cause}); measuring the kernels instead (delete the file to stop this warning)")]
    Read {
        /// The cache file.
        path: PathBuf,
        /// The read's error.
        cause: std::io::Error,
    },
    /// The file is not a calibration cache (not JSON, or not this format).
    #[error(
        "kernel cache {path}: not a calibration file ({cause}); measuring again and rewriting it"
    )]
    Parse {
        /// The cache file.
        path: PathBuf,
        /// Where and why the JSON did not parse.
        cause: serde_json::Error,
    },
    /// The file, its directory or its temporary could not be written or renamed.
    #[error("kernel cache {path}: cannot write it ({cause}); the choice will be measured again next run (check the data directory's permissions or pass --datadir)")]
    Write {
        /// The cache file.
        path: PathBuf,
        /// The write's error.
        cause: std::io::Error,
    },
}

/// One calibration, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The CPU, kernel set and binary it was measured on (flattened into the entry's object).
    #[serde(flatten)]
    pub identity: CpuIdentity,
    /// The kernel chosen (the fastest of `rates_mhs`).
    pub kernel: String,
    /// One-thread rates, fastest first.
    pub rates_mhs: Vec<KernelRate>,
    /// How long the calibration took, in milliseconds.
    pub calibration_ms: f64,
    /// When it was measured (seconds since 1970).
    pub calibrated_unix: u64,
}

/// The cache file: one entry per [`CpuIdentity`] (a data directory on a shared home may serve
/// several machines).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheFile {
    /// At most one entry per CPU model and kernel set ([`CacheFile::insert`] replaces).
    pub entries: Vec<CacheEntry>,
}

impl CacheFile {
    /// Reads the cache; a missing file is an empty cache.
    pub fn load(path: &Path) -> Result<CacheFile, CacheError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CacheFile::default()),
            Err(cause) => {
                return Err(CacheError::Read {
                    path: path.to_path_buf(),
                    cause,
                })
            }
        };
        serde_json::from_str(&text).map_err(|cause| CacheError::Parse {
            path: path.to_path_buf(),
            cause,
        })
    }

    /// The entry for `identity`, if any.
    pub fn find(&self, identity: &CpuIdentity) -> Option<&CacheEntry> {
        self.entries.iter().find(|e| &e.identity == identity)
    }

    /// Adds `entry`, replacing any entry of the same CPU and kernel set (an older version's or
    /// build's entry is stale once this one is measured, so the file does not grow per build).
    pub fn insert(&mut self, entry: CacheEntry) {
        self.entries.retain(|e| {
            e.identity.cpu != entry.identity.cpu || e.identity.kernels != entry.identity.kernels
        });
        self.entries.push(entry);
    }

    /// Writes the cache (to a temporary file renamed over the old one, so a reader never sees
    /// half a file), creating the directory if needed.
    pub fn save(&self, path: &Path) -> Result<(), CacheError> {
        let write_err = |cause| CacheError::Write {
            path: path.to_path_buf(),
            cause,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(write_err)?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| write_err(e.into()))?;
        let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text + "\n").map_err(write_err)?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            write_err(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rounds of a kernel that measured steadily around `rate`.
    fn steady(rate: f64) -> Vec<f64> {
        vec![
            rate * 0.97,
            rate,
            rate * 0.99,
            rate * 0.98,
            rate,
            rate * 0.96,
        ]
    }

    #[test]
    fn a_clear_lead_with_steady_rounds_is_clear() {
        // Zen 4 as measured quietly: sha-ni 33, avx512 24.5, avx2 13, sha2 11, soft 2.2.
        let rounds = [
            steady(11.0),
            steady(2.2),
            steady(13.0),
            steady(33.0),
            steady(24.5),
        ];
        assert_eq!(judge(&rounds), CalibrationVerdict::Clear);
        assert_eq!(ranking(&rounds)[..2], [3, 4]);
    }

    #[test]
    fn two_kernels_within_ten_percent_are_close() {
        // The disturbed case seen under load: sha-ni 21.9 against avx512 22.4.
        let rounds = [steady(11.0), steady(21.9), steady(22.4)];
        assert_eq!(judge(&rounds), CalibrationVerdict::Close);
        // 11% apart is a lead.
        let rounds = [steady(11.0), steady(20.0), steady(22.5)];
        assert_eq!(judge(&rounds), CalibrationVerdict::Clear);
    }

    #[test]
    fn disagreeing_rounds_of_a_leader_are_noisy() {
        // The runner-up's middle round is 30% below its best: disturbed, even with a clear lead.
        let disturbed = vec![20.0, 14.0, 13.0, 24.0, 14.5, 13.5];
        let rounds = [steady(33.0), disturbed.clone(), steady(11.0)];
        assert_eq!(judge(&rounds), CalibrationVerdict::Noisy);
        // The same spread in a kernel far behind the two fastest does not matter.
        let slow_and_noisy = disturbed.iter().map(|r| r / 4.0).collect();
        let rounds = [steady(33.0), steady(24.0), slow_and_noisy];
        assert_eq!(judge(&rounds), CalibrationVerdict::Clear);
        // One slow round (a frequency ramp at the start) is not disagreement.
        let one_slow = vec![25.0, 33.0, 32.8, 33.1, 32.9, 33.0];
        assert_eq!(judge(&[one_slow, steady(24.0)]), CalibrationVerdict::Clear);
    }

    #[test]
    fn quiet_rounds_added_to_disturbed_ones_settle_the_choice() {
        // First pass: sha-ni disturbed throughout, close to avx512.
        let mut shani = vec![21.9, 21.5, 21.0, 21.8, 21.2, 21.6];
        let mut avx512 = steady(22.4);
        assert_eq!(
            judge(&[shani.clone(), avx512.clone()]),
            CalibrationVerdict::Close
        );
        // One quiet extra pass over the two: sha-ni's best is now its real rate, and the upper
        // median of twelve rounds lies among the quiet ones, so sha-ni leads clearly.
        shani.extend(steady(33.0));
        avx512.extend(steady(24.5));
        assert_eq!(
            judge(&[shani.clone(), avx512.clone()]),
            CalibrationVerdict::Clear
        );
        assert_eq!(ranking(&[shani.clone(), avx512.clone()]), [0, 1]);
        // Had the quiet pass been disturbed again in part (two quiet rounds of six), the
        // disagreement shows and the result is not trusted.
        let mut shani = vec![21.9, 21.5, 21.0, 21.8, 21.2, 21.6];
        shani.extend([33.0, 32.5, 21.4, 21.7, 21.1, 21.3]);
        assert_eq!(judge(&[shani, avx512]), CalibrationVerdict::Noisy);
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        assert_eq!(judge(&[]), CalibrationVerdict::Clear);
        assert_eq!(judge(&[steady(5.0)]), CalibrationVerdict::Clear);
        // A kernel with no rounds (or only NaN) ranks last and cannot be judged steady.
        assert_eq!(judge(&[steady(5.0), Vec::new()]), CalibrationVerdict::Noisy);
        assert_eq!(ranking(&[vec![f64::NAN], steady(1.0)]), [1, 0]);
    }

    #[test]
    fn only_a_settled_calibration_is_cached() {
        let dir = std::env::temp_dir().join(format!("miner-calib-verdict-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let available = [Kernel::Sha2, Kernel::Soft];
        let calibration = |verdict| Calibration {
            rates: vec![
                KernelRate {
                    kernel: "soft".into(),
                    mhs: 9.0,
                },
                KernelRate {
                    kernel: "sha2".into(),
                    mhs: 8.0,
                },
            ],
            verdict,
            passes: 1 + EXTRA_PASSES,
        };
        let resolve = |verdict| {
            KernelChoice::resolve_measuring(None, Some(&dir), false, &available, |k| {
                assert_eq!(k, available);
                calibration(verdict)
            })
        };
        // Disturbed: used for this run, said so, and not written.
        let noisy = resolve(CalibrationVerdict::Noisy);
        assert_eq!(noisy.kernel, Kernel::Soft);
        assert_eq!(noisy.reason, ChoiceReason::CalibratedNoisy);
        assert_eq!(
            serde_json::to_value(noisy.reason).unwrap(),
            "calibrated (noisy: not cached)"
        );
        assert!(noisy
            .summary()
            .starts_with("soft (calibrated (noisy: not cached): "));
        assert!(!dir.join(CACHE_FILE).exists());
        // A steady tie after the extra passes is cached, as a clear lead is.
        let tie = resolve(CalibrationVerdict::Close);
        assert_eq!(tie.reason, ChoiceReason::Calibrated);
        let cached = CacheFile::load(&dir.join(CACHE_FILE)).unwrap();
        assert_eq!(cached.entries.len(), 1);
        assert_eq!(cached.entries[0].kernel, "soft");
        let again = KernelChoice::resolve_measuring(None, Some(&dir), false, &available, |_| {
            panic!("a cached choice is not measured")
        });
        assert_eq!(again.reason, ChoiceReason::Cached);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn measure_reports_every_kernel_and_stays_within_its_passes() {
        let kernels = [Kernel::Sha2, Kernel::Soft];
        let c = measure(&kernels, Duration::from_millis(4));
        assert_eq!(c.rates.len(), 2);
        assert!(c.rates.iter().all(|r| r.mhs > 0.0), "{:?}", c.rates);
        assert!(c.rates[0].mhs >= c.rates[1].mhs);
        assert!((1..=1 + EXTRA_PASSES).contains(&c.passes), "{c:?}");
        if c.verdict == CalibrationVerdict::Clear {
            assert!(c.passes >= 1);
        } else {
            // Anything short of clear was measured again, as far as allowed.
            assert_eq!(c.passes, 1 + EXTRA_PASSES, "{c:?}");
        }
    }
}
