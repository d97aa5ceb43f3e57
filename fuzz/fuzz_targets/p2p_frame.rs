//! Fuzz target: `miner::fuzzing::p2p_frame` (see its documentation for what it feeds where).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| miner::fuzzing::p2p_frame(data));
