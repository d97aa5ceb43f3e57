//! Tests that measure real time on real processes and so run one at a time, with nothing else
//! of the suite beside them (feature `cli`): the regtest bitcoind interop (`bitcoind`), the
//! node's edge probes, which time auth delays and RSS (`node_edge`), and the live experiment
//! runs, judged by their block times and relay delays (`experiment_live`). Each was a test
//! binary of its own whose tests took one file-wide lock, so it ran alone on the machine; here
//! they all take [`ONE_AT_A_TIME`], so that still holds. See tests/engine/main.rs for why the
//! tests are gathered into a few binaries.

use std::sync::Mutex;

/// Held by every test in this binary for its whole run.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

mod bitcoind;
mod experiment_live;
mod node_edge;
