//! Which CPU kernels a kernel test covers on this machine (shared by tests/engine/kernels.rs,
//! tests/engine/vectors.rs and tests/node/cli.rs).
//!
//! Kernel tests run every kernel this CPU has, so on a CPU without AVX-512 or SHA-NI those
//! kernels would go untested without a word. [`tested_kernels`] prints what it skips and why, and
//! `MINER_REQUIRE_KERNELS=avx512,sha-ni,avx2` (a comma list of kernel names, as `--kernel` takes
//! them) turns a skip of any kernel named there into a test failure: `scripts/test.sh` sets it
//! under CI, whose machines have those kernels, and `armv8-sha,neon` for its aarch64 run under
//! qemu-user.

use miner::hash::{Kernel, ShaNiBuild};

/// The kernels this CPU runs (after `MINER_DISABLE_KERNELS`), baseline first. Prints to stderr,
/// tagged with `test`, each kernel left out and why.
///
/// # Panics
/// When `MINER_REQUIRE_KERNELS` names a kernel that is left out, or a name that is no kernel.
pub fn tested_kernels(test: &str) -> Vec<Kernel> {
    let available = Kernel::available();
    let hidden = env_list("MINER_DISABLE_KERNELS");
    let mut missing = Vec::new();
    for kernel in Kernel::ALL.into_iter().filter(|k| !available.contains(k)) {
        let why = match architecture(kernel) {
            _ if hidden.iter().any(|h| h == kernel.name()) => {
                "hidden by MINER_DISABLE_KERNELS".to_string()
            }
            Some(arch) if arch != std::env::consts::ARCH => {
                format!("an {arch} kernel, and this is {}", std::env::consts::ARCH)
            }
            _ => "this CPU lacks its instructions".to_string(),
        };
        eprintln!("{test}: skipped kernel {kernel}: {why}");
        missing.push((kernel, why));
    }
    for name in env_list("MINER_REQUIRE_KERNELS") {
        let kernel: Kernel = name.parse().unwrap_or_else(|e| {
            panic!("MINER_REQUIRE_KERNELS: {e}; fix the variable's comma list")
        });
        if let Some((_, why)) = missing.iter().find(|(k, _)| *k == kernel) {
            panic!(
                "{test}: MINER_REQUIRE_KERNELS requires kernel {kernel}, which was skipped ({why}); \
                 run on a CPU that has it, or leave it out of MINER_REQUIRE_KERNELS"
            );
        }
    }
    available
}

/// The architecture whose instructions a kernel uses; `None` for the portable ones.
fn architecture(kernel: Kernel) -> Option<&'static str> {
    match kernel {
        Kernel::Sha2 | Kernel::Soft => None,
        Kernel::Avx2 | Kernel::ShaNi | Kernel::Avx512 => Some("x86_64"),
        Kernel::Neon | Kernel::ArmSha => Some("aarch64"),
    }
}

/// The builds of the `sha-ni` kernel this CPU runs, narrowest first, printing those skipped. A
/// build is required when `MINER_REQUIRE_KERNELS` requires `sha-ni` and the kernel its wider
/// encoding comes from (`avx2`; `avx512` for the AVX-512VL build).
#[allow(dead_code)] // Used by tests/engine/kernels.rs only.
pub fn tested_sha_ni_builds(test: &str) -> Vec<ShaNiBuild> {
    let kernels = tested_kernels(test);
    let builds = ShaNiBuild::available();
    let required = env_list("MINER_REQUIRE_KERNELS");
    let requires = |k: Kernel| required.iter().any(|r| r.parse::<Kernel>() == Ok(k));
    for (build, needs) in [
        (ShaNiBuild::Sse, None),
        (ShaNiBuild::Avx2, Some(Kernel::Avx2)),
        (ShaNiBuild::Avx512Vl, Some(Kernel::Avx512)),
    ] {
        if builds.contains(&build) {
            continue;
        }
        let why = if !kernels.contains(&Kernel::ShaNi) {
            "no sha-ni kernel here".to_string()
        } else if needs.is_some_and(|k| !kernels.contains(&k)) {
            format!("no {} kernel here", needs.map_or("", Kernel::name))
        } else {
            "this CPU lacks AVX-512VL".to_string()
        };
        eprintln!("{test}: skipped sha-ni build {}: {why}", build.name());
        if requires(Kernel::ShaNi) && needs.is_none_or(requires) {
            panic!(
                "{test}: MINER_REQUIRE_KERNELS requires sha-ni{}, but its {} build was skipped \
                 ({why}); run on a CPU that has it, or leave it out of MINER_REQUIRE_KERNELS",
                needs.map_or(String::new(), |k| format!(" and {k}")),
                build.name()
            );
        }
    }
    builds
}

/// A comma list from the environment, trimmed and lower-cased; empty when unset.
fn env_list(var: &str) -> Vec<String> {
    std::env::var(var)
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}
