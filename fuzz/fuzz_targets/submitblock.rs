//! Fuzz target: `miner::fuzzing::submitblock` (see its documentation for what it feeds where).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| miner::fuzzing::submitblock(data));
