//! Fuzz target: `miner::fuzzing::jsonrpc` (see its documentation for what it feeds where).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| miner::fuzzing::jsonrpc(data));
