//! The CPU engine's integration tests, in one test binary: kernels against each other and an
//! independent SHA-256d (`kernels`), mainnet headers (`vectors`), the difficulty controllers'
//! published vectors (`retarget`) and simulations (`sim`). They need no Cargo feature, so this
//! binary builds with `--no-default-features` too: `scripts/test.sh` cross-builds it for aarch64
//! and runs its `kernels::` and `vectors::` tests under qemu-user.
//!
//! The integration tests are gathered into a few binaries, by the features they need and how
//! they run (engine, gpu, node, experiments, solo), because each test binary is compiled on its
//! own and links the whole crate: two dozen of them made `cargo test` spend most of its time
//! compiling and linking (issue 23).

// Which kernels this machine tests, shared with tests/node/cli.rs.
#[path = "../kernel_coverage/mod.rs"]
mod kernel_coverage;

mod kernels;
mod retarget;
mod sim;
mod vectors;
