//! Fuzz target: `miner::fuzzing::stratum_client_line` (see its documentation for what it feeds where).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| miner::fuzzing::stratum_client_line(data));
