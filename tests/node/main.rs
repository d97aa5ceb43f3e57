//! The `miner` binary and the networked parts, in one test binary (feature `cli`): the command
//! line end to end (`cli`), the JSON-RPC node (`node`, `descriptors`), P2P (`p2p`,
//! `p2p_misbehave`), the getblocktemplate client (`segwit`), crash safety (`store`), Stratum
//! server and client (`stratum_*`) and the fuzz corpora (`fuzz_corpus`). Tests run in parallel
//! here as they did in their own binaries; those that need the machine to themselves are in
//! tests/solo/. See tests/engine/main.rs for why the tests are gathered this way.

// Which kernels this machine tests, shared with tests/engine/.
#[path = "../kernel_coverage/mod.rs"]
mod kernel_coverage;

mod cli;
mod common;
mod descriptors;
mod fuzz_corpus;
mod node;
mod p2p;
mod p2p_misbehave;
mod segwit;
mod store;
mod stratum_client;
mod stratum_python;
mod stratum_server;
mod stratum_stocklike;
