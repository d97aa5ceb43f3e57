//! Replays the kept fuzz corpora (`fuzz/corpus/TARGET/*`) through the same harness functions the
//! cargo-fuzz targets call (`miner::fuzzing`), without libFuzzer: every input the fuzzer kept,
//! and every crash it found once, must still run without a panic. A missing or empty corpus
//! directory fails the test rather than passing silently.
//!
//! `cargo test --test node -- --ignored write_seed_corpora` rewrites the hand-made seeds
//! (`fuzz/corpus/TARGET/seed-*`) the fuzzing started from.

use miner::bitcoin;
use miner::fuzzing::{rpc_body, TARGETS};
use serde_json::json;
use std::path::{Path, PathBuf};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target)
}

/// Every file of a target's corpus, sorted (a missing directory is an empty list).
fn corpus(target: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(target))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn every_corpus_input_runs_through_its_harness_without_a_panic() {
    let mut empty: Vec<&str> = Vec::new();
    for (name, harness) in TARGETS {
        let files = corpus(name);
        if files.is_empty() {
            empty.push(*name);
            continue;
        }
        for path in &files {
            let data = std::fs::read(path).unwrap();
            let outcome = std::panic::catch_unwind(|| harness(&data));
            assert!(
                outcome.is_ok(),
                "{name}: the harness panicked on {}",
                path.display()
            );
        }
        eprintln!("{name}: {} inputs replayed", files.len());
    }
    assert!(
        empty.is_empty(),
        "no corpus for {empty:?} under fuzz/corpus/: nothing was replayed"
    );
}

#[test]
fn every_fuzz_target_has_a_harness_and_a_corpus() {
    let targets = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    for (name, _) in TARGETS {
        let source = std::fs::read_to_string(targets.join(format!("{name}.rs"))).unwrap();
        assert!(
            source.contains(&format!("miner::fuzzing::{name}(data)")),
            "fuzz/fuzz_targets/{name}.rs does not call miner::fuzzing::{name}"
        );
        assert!(corpus_dir(name).is_dir(), "fuzz/corpus/{name} is missing");
    }
}

/// A block on regtest's genesis that `submitblock` accepts (regtest's easy target: a few
/// nonces at most).
fn block_at_height_one() -> bitcoin::Block {
    use miner::chain::{Chain, ChainParams};
    use miner::pow::retarget::RetargetParams;
    use miner::pow::CompactTarget;
    let params = ChainParams::regtest();
    let retarget =
        RetargetParams::fixed(CompactTarget::from_consensus(0x207f_ffff), params.pow_limit);
    let chain = Chain::new(params, retarget);
    let payout = bitcoin::ScriptBuf::from_bytes(vec![0x51]);
    let template = miner::mining::next_template(&chain, &payout).unwrap();
    (0..u32::MAX)
        .map(|nonce| template.assemble(0, nonce))
        .find(|b| {
            template
                .target
                .is_met_by(&miner::block::header_hash(&b.header))
        })
        .unwrap()
}

fn p2p_frame_seeds() -> Vec<Vec<u8>> {
    use bitcoin::p2p::message::{NetworkMessage, RawNetworkMessage};
    use bitcoin::p2p::message_blockdata::{GetHeadersMessage, Inventory};
    use bitcoin::p2p::message_network::VersionMessage;
    use bitcoin::p2p::{Address, ServiceFlags};
    let magic = bitcoin::p2p::Magic::from(bitcoin::Network::Regtest);
    let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
    let addr = Address::new(&"127.0.0.1:18444".parse().unwrap(), ServiceFlags::NONE);
    let version = VersionMessage::new(
        ServiceFlags::NONE,
        1_700_000_000,
        addr.clone(),
        addr.clone(),
        7,
        "/miner:0.1.0/".into(),
        0,
    );
    let messages = vec![
        NetworkMessage::Version(version),
        NetworkMessage::Verack,
        NetworkMessage::Ping(42),
        NetworkMessage::Pong(42),
        NetworkMessage::SendHeaders,
        NetworkMessage::GetAddr,
        NetworkMessage::Headers(vec![genesis.header]),
        NetworkMessage::GetHeaders(GetHeadersMessage::new(
            vec![genesis.block_hash()],
            <bitcoin::BlockHash as bitcoin::hashes::Hash>::all_zeros(),
        )),
        NetworkMessage::Inv(vec![Inventory::Block(genesis.block_hash())]),
        NetworkMessage::GetData(vec![Inventory::Block(genesis.block_hash())]),
        NetworkMessage::Block(block_at_height_one()),
        NetworkMessage::Addr(vec![(1_700_000_000, addr)]),
    ];
    messages
        .into_iter()
        .map(|m| bitcoin::consensus::encode::serialize(&RawNetworkMessage::new(magic, m)))
        .collect()
}

fn lines(values: Vec<serde_json::Value>) -> Vec<Vec<u8>> {
    values
        .into_iter()
        .map(|v| format!("{v}\n").into_bytes())
        .collect()
}

fn stratum_server_seeds() -> Vec<Vec<u8>> {
    lines(vec![
        json!({"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1", "f000000f"]}),
        json!({"id": 2, "method": "mining.authorize", "params": ["worker", "x"]}),
        json!({"id": 3, "method": "mining.submit", "params": ["worker", "1", "00000000", "6b04fcf5", "a2e91a0c"]}),
        json!({"id": 4, "method": "mining.submit", "params": ["worker", "1", "00000000", "6b04fcf5", "a2e91a0c", "00002000"]}),
        json!({"id": 5, "method": "mining.configure", "params": [["version-rolling", "minimum-difficulty"], {"version-rolling.mask": "1fffe000", "version-rolling.min-bit-count": 2, "minimum-difficulty.value": 0.5}]}),
        json!({"id": 6, "method": "mining.suggest_difficulty", "params": ["0.5"]}),
        json!({"id": 7, "method": "mining.suggest_target", "params": ["00000000ffff0000000000000000000000000000000000000000000000000000"]}),
        json!({"id": 8, "method": "mining.extranonce.subscribe", "params": []}),
        json!({"id": 9, "result": true, "error": null}),
    ])
}

fn stratum_client_seeds() -> Vec<Vec<u8>> {
    lines(vec![
        json!({"id": 1, "result": [[["mining.set_difficulty", "f000000f"], ["mining.notify", "f000000f"]], "f000000f", 4], "error": null}),
        json!({"id": 2, "result": true, "error": null}),
        json!({"id": 3, "result": {"version-rolling": true, "version-rolling.mask": "1fffe000"}, "error": null}),
        json!({"id": 4, "result": null, "error": [21, "Job not found", null]}),
        json!({"id": null, "method": "mining.set_difficulty", "params": [0.001]}),
        json!({"id": null, "method": "mining.notify", "params": ["job1",
            "466e2206590b1a116012afcabf5beb433a4fc3281f2a335e3cb7b2c70f9188f1",
            "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff130101",
            "2f737631746573742fffffffff0100f2052a01000000015100000000",
            ["2a6a41aeb1abf285919a8dd916b4d4799966a855d6bd9b5d9f2c2d6131647687",
             "d21e8f4234eb72e398934de4ee626c8164d9136d6844600874ce330a45d76d83"],
            "20000000", "207fffff", "6b04fcf5", true]}),
        json!({"id": null, "method": "mining.set_extranonce", "params": ["0badf00d", 4]}),
        json!({"id": null, "method": "mining.set_version_mask", "params": ["1fffe000"]}),
        json!({"id": null, "method": "client.reconnect", "params": ["127.0.0.1", "3334", 5]}),
        json!({"id": 7, "method": "mining.ping", "params": []}),
        json!({"id": 8, "method": "client.show_message", "params": ["hello"]}),
    ])
}

fn jsonrpc_seeds() -> Vec<Vec<u8>> {
    let genesis = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";
    let block = hex::encode(bitcoin::consensus::encode::serialize(&block_at_height_one()));
    let mut seeds = vec![
        rpc_body("getblocktemplate", json!([{"rules": ["segwit"]}])),
        rpc_body(
            "getblocktemplate",
            json!([{"rules": ["segwit"], "longpollid": genesis}]),
        ),
        rpc_body("getblockcount", json!([])),
        rpc_body("getblockhash", json!([0])),
        rpc_body("getblock", json!([genesis, 2])),
        rpc_body("getblockheader", json!([genesis, false])),
        rpc_body("submitblock", json!([block])),
        rpc_body("getrawtransaction", json!([genesis, true])),
        rpc_body(
            "validateaddress",
            json!(["bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"]),
        ),
        rpc_body(
            "generatetoaddress",
            json!([1, "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"]),
        ),
        rpc_body("setban", json!(["10.0.0.1", "add", 60])),
        rpc_body("getnetworkhashps", json!([120, -1])),
        rpc_body("getchaintips", json!([])),
    ];
    seeds.push(
        json!([{"jsonrpc": "2.0", "id": 1, "method": "getbestblockhash"},
               {"jsonrpc": "2.0", "id": 2, "method": "getmininginfo", "params": null}])
        .to_string()
        .into_bytes(),
    );
    seeds
}

fn submitblock_seeds() -> Vec<Vec<u8>> {
    let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
    let one = bitcoin::consensus::encode::serialize(&block_at_height_one());
    vec![
        one.clone(),
        bitcoin::consensus::encode::serialize(&genesis),
        hex::encode(&one).into_bytes(),
    ]
}

#[test]
#[ignore = "writes the seed corpora into fuzz/corpus (run by hand)"]
fn write_seed_corpora() {
    let seeds: [(&str, Vec<Vec<u8>>); 5] = [
        ("p2p_frame", p2p_frame_seeds()),
        ("stratum_server_line", stratum_server_seeds()),
        ("stratum_client_line", stratum_client_seeds()),
        ("jsonrpc", jsonrpc_seeds()),
        ("submitblock", submitblock_seeds()),
    ];
    for (name, inputs) in seeds {
        let dir = corpus_dir(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, data) in inputs.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), data).unwrap();
        }
    }
}
