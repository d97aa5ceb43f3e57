//! `miner mine --node` against a segwit node (BIP 141/145). No segwit node runs here (the CI
//! bitcoind is Bitcoin SV), so these tests build getblocktemplate answers that hold real witness
//! transactions and check the client's block against a witness commitment computed in this file
//! with plain `sha2` over the wtxids the vectors publish (not over the code under test), then
//! against `bitcoin::Block::check_witness_commitment`. One test mines a block through
//! `miner::client::run` against a real HTTP JSON-RPC server on 127.0.0.1 and checks what it
//! submitted.

use bitcoin::consensus::encode::{deserialize, serialize};
use bitcoin::Block;
use miner::backend::CpuBackend;
use miner::client::{decode_template, run, ClientError, ClientOptions, RpcClient, Submitted};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// A transaction as a node lists it: raw data, txid and wtxid (display order, as in `txid` and
/// `hash` of a getblocktemplate entry).
struct Vector {
    data: &'static str,
    txid: &'static str,
    wtxid: &'static str,
}

/// A segwit spend (P2SH-wrapped witness output, one witness input), from rust-bitcoin 0.32's
/// `segwit_transaction` test, with the txid and wtxid it publishes.
const SEGWIT_P2SH: Vector = Vector {
    data: concat!(
        "02000000000101595895ea20179de87052b4046dfe6fd515860505d6511a9004cf12a1f93cac7c0100000000",
        "ffffffff01deb807000000000017a9140f3444e271620c736808aa7b33e370bd87cb5a078702483045022100",
        "fb60dad8df4af2841adc0346638c16d0b8035f5e3f3753b88db122e70c79f9370220756e6633b17fd2710e62",
        "6347d28d60b0a2d6cbb41de51740644b9fb3ba7751040121028fa937ca8cba2197a37c007176ed8941055d3b",
        "cb8627d085e94553e62f057dcc00000000",
    ),
    txid: "f5864806e3565c34d1b41e716f72609d00b55ea5eac5b924c9719a842ef42206",
    wtxid: "80b7d8a82d5d5bf92905b06f2014dd699e03837ca172e3a59d51426ebbe3e7f5",
};

/// Two P2SH-P2WSH 3-of-3 multisig inputs, from rust-bitcoin 0.32's `txid` test ("txid/hash from
/// Core decoderawtransaction").
const SEGWIT_MULTISIG: Vector = Vector {
    data: concat!(
    "01000000000102ff34f95a672bb6a4f6ff4a7e90fa8c7b3be7e70ffc39bc99be3bda67942e836c0000000023220020cd",
    "e476664d3fa347b8d54ef3aee33dcb686a65ced2b5207cbf4ec5eda6b9b46e4f414d4c934ad81d330314e888888e3bd2",
    "2c7dde8aac2ca9227b30d7c40093248af7812201000000232200200af6f6a071a69d5417e592ed99d256ddfd8b3b2238",
    "ac73f5da1b06fc0b2e79d54f414d4c0ba0c8f505000000001976a914dcb5898d9036afad9209e6ff0086772795b14410",
    "88ac033c0f000000000017a914889f8c10ff2bd4bb9dabb68c5c0d700a46925e6c87033c0f000000000017a914889f8c",
    "10ff2bd4bb9dabb68c5c0d700a46925e6c87033c0f000000000017a914889f8c10ff2bd4bb9dabb68c5c0d700a46925e",
    "6c87033c0f000000000017a914889f8c10ff2bd4bb9dabb68c5c0d700a46925e6c87033c0f000000000017a914889f8c",
    "10ff2bd4bb9dabb68c5c0d700a46925e6c87033c0f000000000017a914889f8c10ff2bd4bb9dabb68c5c0d700a46925e",
    "6c87033c0f000000000017a914889f8c10ff2bd4bb9dabb68c5c0d700a46925e6c87033c0f000000000017a914889f8c",
    "10ff2bd4bb9dabb68c5c0d700a46925e6c87033c0f000000000017a914889f8c10ff2bd4bb9dabb68c5c0d700a46925e",
    "6c87033c0f000000000017a914889f8c10ff2bd4bb9dabb68c5c0d700a46925e6c87050047304402200380b8663e727d",
    "7e8d773530ef85d5f82c0b067c97ae927800a0876a1f01d8e2022021ee611ef6507dfd217add2cd60a8aea3cbcfec034",
    "da0bebf3312d19577b8c290147304402207bd9943ce1c2c5547b120683fd05d78d23d73be1a5b5a2074ff586b9c853ed",
    "4202202881dcf435088d663c9af7b23efb3c03b9dbc0c899b247aa94a74d9b4b3c84f501483045022100ba12bba745af",
    "3f18f6e56be70f8382ca8e107d1ed5ceaa3e8c360d5ecf78886f022069b38ebaac8fe6a6b97b497cbbb115f3176f7213",
    "540bef08f9292e5a72de52de01695321023c9cd9c6950ffee24772be948a45dc5ef1986271e46b686cb52007bac21439",
    "5a2102756e27cb004af05a6e9faed81fd68ff69959e3c64ac8c9f6cd0e08fd0ad0e75d2103fa40da236bd82202a985a9",
    "104e851080b5940812685769202a3b43e4a8b13e6a53ae050048304502210098b9687b81d725a7970d1eee91ff6b89bc",
    "9832c2e0e3fb0d10eec143930b006f02206f77ce19dc58ecbfef9221f81daad90bb4f468df391212abc4f084fe2cc9bd",
    "ef01483045022100e5479f81a3ad564103da5e2ec8e12f61f3ac8d312ab68763c1ddd7bae94c20610220789b81b7220b",
    "27b681b1b2e87198897376ba9d033bc387f084c8b8310c8539c201483045022100aa1cc48a2d256c0e556616444cc08a",
    "e4959d464e5ffff2ae09e3550bdab6ce9f02207192d5e3329a56ba7b1ead724634d104f1c3f8749fe6081e6233aee3e8",
    "55817a016953210260de9cc68658c61af984e3ab0281d17cfca1cc035966d335f474932d5e6c5422210355fbb768ce3c",
    "e39360277345dbb5f376e706459e5a2b5e0e09a535e61690647021023222ceec58b94bd25925dd9743dae6b928737491",
    "bd940fc5dd7c6f5d5f2adc1e53ae00000000",
    ),
    txid: "9652aa62b0e748caeec40c4cb7bc17c6792435cc3dfe447dd1ca24f912a1c6ec",
    wtxid: "d6ac4a5e61657c4c604dcde855a1db74ec6b3e54f32695d72c5e11c7761ea1b4",
};

/// A legacy (non-witness) transaction from the same test: txid and wtxid are equal.
const LEGACY: Vector = Vector {
    data: concat!(
        "01000000010c7196428403d8b0c88fcb3ee8d64f56f55c8973c9ab7dd106bb4f3527f5888d000000006a47",
        "30440220503a696f55f2c00eee2ac5e65b17767cd88ed04866b5637d3c1d5d996a70656d02202c9aff698f",
        "343abb6d176704beda63fcdec503133ea4f6a5216b7f925fa9910c0121024d89b5a13d6521388969209df2",
        "7a8469bd565aff10e8d42cef931fad5121bfb8ffffffff02b825b404000000001976a914ef79e7ee9fff98",
        "bcfd08473d2b76b02a48f8c69088ac0000000000000000296a273236303039343836393731373233313237",
        "3633313032313332353630353838373931323132373000000000",
    ),
    txid: "971ed48a62c143bbd9c87f4bafa2ef213cfa106c6e140f111931d0be307468dd",
    wtxid: "971ed48a62c143bbd9c87f4bafa2ef213cfa106c6e140f111931d0be307468dd",
};

/// BIP 141's output script prefix: OP_RETURN, push 36, 0xaa21a9ed.
const COMMITMENT_PREFIX: &str = "6a24aa21a9ed";

fn sha256d(data: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(data)).into()
}

/// A display-order hash as the 32 bytes that are hashed.
fn internal(display_hex: &str) -> [u8; 32] {
    let mut bytes: [u8; 32] = hex::decode(display_hex).unwrap().try_into().unwrap();
    bytes.reverse();
    bytes
}

/// Bitcoin's merkle root: pair up, duplicating the last of an odd level.
fn merkle_root(mut level: Vec<[u8; 32]>) -> [u8; 32] {
    while level.len() > 1 {
        if level.len() % 2 == 1 {
            level.push(*level.last().unwrap());
        }
        level = level
            .chunks(2)
            .map(|pair| sha256d(&[pair[0], pair[1]].concat()))
            .collect();
    }
    level[0]
}

/// The commitment output script, computed here: witness root over [0x00..00 (the coinbase),
/// the published wtxids…], then SHA-256d(root ‖ 32 zero bytes of reserved value).
fn expected_commitment_script(txs: &[&Vector]) -> String {
    let leaves = std::iter::once([0u8; 32])
        .chain(txs.iter().map(|t| internal(t.wtxid)))
        .collect();
    let root = merkle_root(leaves);
    let commitment = sha256d(&[root, [0u8; 32]].concat());
    format!("{COMMITMENT_PREFIX}{}", hex::encode(commitment))
}

/// A getblocktemplate answer as Bitcoin Core shapes it, holding `txs`.
fn template_json(txs: &[&Vector], default_witness_commitment: Option<&str>) -> Value {
    let mut t = json!({
        "version": 0x2000_0000,
        "rules": ["csv", "!segwit"],
        "previousblockhash": "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
        "transactions": txs.iter().map(|t| json!({
            "data": t.data, "txid": t.txid, "hash": t.wtxid, "depends": [], "fee": 1000,
        })).collect::<Vec<_>>(),
        "coinbaseaux": {"flags": ""},
        "coinbasevalue": 5_000_000_000u64 + 1000 * txs.len() as u64,
        "target": "7fffff0000000000000000000000000000000000000000000000000000000000",
        "mintime": 1_700_000_000,
        "mutable": ["time", "transactions", "prevblock"],
        "noncerange": "00000000ffffffff",
        "curtime": 1_700_000_600,
        "bits": "207fffff",
        "height": 812,
    });
    if let Some(c) = default_witness_commitment {
        t["default_witness_commitment"] = json!(c);
    }
    t
}

fn payout() -> bitcoin::ScriptBuf {
    bitcoin::ScriptBuf::from_bytes(vec![0x51])
}

/// Everything a segwit node checks of the commitment, on a block as it would be submitted.
fn assert_segwit_block(block: &Block, txs: &[&Vector], expected_script: &str) {
    let coinbase = &block.txdata[0];
    let last = coinbase.output.last().unwrap();
    assert_eq!(hex::encode(last.script_pubkey.as_bytes()), expected_script);
    assert_eq!(last.value, bitcoin::Amount::ZERO);
    assert_eq!(coinbase.output.len(), 2, "payout + commitment");
    let witness: Vec<&[u8]> = coinbase.input[0].witness.iter().collect();
    assert_eq!(witness, vec![&[0u8; 32][..]], "the witness reserved value");
    for (tx, v) in block.txdata[1..].iter().zip(txs) {
        assert_eq!(hex::encode(serialize(tx)), v.data, "{}", v.txid);
    }
    assert_eq!(block.txdata.len(), txs.len() + 1);
    assert!(block.check_merkle_root());
    assert!(block.check_witness_commitment());
    // Serialized with witness data (the coinbase's marker and flag after its version)...
    let bytes = serialize(block);
    let varint_len = 1; // fewer than 253 transactions
    assert_eq!(
        &bytes[80 + varint_len + 4..80 + varint_len + 6],
        &[0x00, 0x01]
    );
    // ...and back again, unchanged.
    let back: Block = deserialize(&bytes).unwrap();
    assert_eq!(&back, block);
    assert!(back.check_witness_commitment());
    assert!(back.total_size() > back.base_size_for_test());
}

/// `Block::base_size` is private in bitcoin 0.32: the size without witnesses, from the weight.
trait BaseSize {
    fn base_size_for_test(&self) -> usize;
}
impl BaseSize for Block {
    fn base_size_for_test(&self) -> usize {
        (self.weight().to_wu() as usize - self.total_size()) / 3
    }
}

#[test]
fn witness_transactions_get_the_commitment_computed_independently() {
    // Odd and even leaf counts (the odd level duplicates its last hash), witness and legacy mixed.
    for txs in [
        vec![&SEGWIT_P2SH],
        vec![&SEGWIT_P2SH, &LEGACY],
        vec![&LEGACY, &SEGWIT_MULTISIG, &SEGWIT_P2SH],
        vec![&SEGWIT_MULTISIG, &LEGACY, &SEGWIT_P2SH, &LEGACY],
    ] {
        let expected = expected_commitment_script(&txs);
        // Without default_witness_commitment (an older node), and with Core's.
        for dwc in [None, Some(expected.as_str())] {
            let nt = decode_template(&template_json(&txs, dwc), &payout()).unwrap();
            assert!(nt.template.has_witness_commitment());
            for extranonce in [0, 7] {
                let block = nt.template.assemble(extranonce, 0x0102_0304);
                assert_segwit_block(&block, &txs, &expected);
                // The job's header is the block's: the commitment is in the hashed coinbase.
                assert_eq!(
                    &nt.template.job(extranonce).header[..76],
                    &miner::block::header_bytes(&block.header)[..76]
                );
            }
        }
    }
}

#[test]
fn a_default_witness_commitment_alone_still_gets_a_commitment() {
    // Core sends default_witness_commitment whenever segwit is active, also for a template
    // without witness transactions; the client then commits too (optional there, never wrong).
    for txs in [vec![], vec![&LEGACY]] {
        let expected = expected_commitment_script(&txs);
        let nt = decode_template(&template_json(&txs, Some(&expected)), &payout()).unwrap();
        let block = nt.template.assemble(3, 99);
        let coinbase = &block.txdata[0];
        assert_eq!(
            hex::encode(coinbase.output[1].script_pubkey.as_bytes()),
            expected
        );
        assert_eq!(coinbase.input[0].witness.len(), 1);
        assert!(block.check_witness_commitment());
        let back: Block = deserialize(&serialize(&block)).unwrap();
        assert_eq!(back, block);
    }
}

#[test]
fn a_default_witness_commitment_that_differs_is_refused_naming_both() {
    let txs = [&SEGWIT_P2SH, &LEGACY];
    let good = expected_commitment_script(&txs);
    let mut wrong = good.clone();
    wrong.replace_range(good.len() - 2.., "00");
    assert_ne!(wrong, good);
    match decode_template(&template_json(&txs, Some(&wrong)), &payout()) {
        Err(e @ ClientError::WitnessCommitmentMismatch { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&wrong), "{text}");
            assert!(text.contains(&good), "{text}");
            assert!(text.contains("default_witness_commitment"), "{text}");
        }
        other => panic!("expected a commitment mismatch, got {other:?}"),
    }
    let mut bad = template_json(&txs, None);
    bad["default_witness_commitment"] = json!(42);
    let e = decode_template(&bad, &payout()).unwrap_err().to_string();
    assert!(e.contains("default_witness_commitment"), "{e}");
}

#[test]
fn a_transaction_whose_txid_or_hash_disagrees_with_its_data_is_refused() {
    for (field, replacement) in [("txid", SEGWIT_P2SH.wtxid), ("hash", SEGWIT_P2SH.txid)] {
        let mut t = template_json(&[&LEGACY, &SEGWIT_P2SH], None);
        t["transactions"][1][field] = json!(replacement);
        let e = decode_template(&t, &payout()).unwrap_err().to_string();
        assert!(
            e.contains(&format!("transaction 1: its {field} field")),
            "{e}"
        );
        assert!(e.contains(replacement), "{e}");
    }
}

#[test]
fn a_template_without_witnesses_keeps_the_legacy_block() {
    // What the CI bitcoind (Bitcoin SV, no segwit) sends: no witness data, no
    // default_witness_commitment. The coinbase keeps its one output and no witness, and the block
    // is serialized without the segwit marker.
    for txs in [vec![], vec![&LEGACY]] {
        let nt = decode_template(&template_json(&txs, None), &payout()).unwrap();
        assert!(!nt.template.has_witness_commitment());
        let block = nt.template.assemble(1, 5);
        let coinbase = &block.txdata[0];
        assert_eq!(coinbase.output.len(), 1);
        assert_eq!(
            coinbase.output[0].value.to_sat(),
            5_000_000_000 + 1000 * txs.len() as u64
        );
        assert!(coinbase.input[0].witness.is_empty());
        let bytes = serialize(&block);
        // version 1, then the input count (1), not the 0x00 0x01 marker and flag
        assert_eq!(&bytes[81..86], &[1, 0, 0, 0, 1]);
        assert_eq!(block.total_size(), block.base_size_for_test());
        if let Some(legacy) = txs.first() {
            assert!(hex::encode(&bytes).ends_with(legacy.data));
        }
    }
}

#[test]
fn mine_node_submits_a_block_with_the_commitment() {
    let txs = [&SEGWIT_MULTISIG, &LEGACY, &SEGWIT_P2SH];
    let expected = expected_commitment_script(&txs);
    let template = template_json(&txs, Some(&expected));
    // A real JSON-RPC server on 127.0.0.1 standing in for a segwit node.
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let port = server.server_addr().to_ip().unwrap().port();
    let (submitted_tx, submitted_rx) = mpsc::channel::<String>();
    let srv = server.clone();
    let node = std::thread::spawn(move || {
        for mut request in srv.incoming_requests() {
            let mut body = String::new();
            request.as_reader().read_to_string(&mut body).unwrap();
            let call: Value = serde_json::from_str(&body).unwrap();
            let result = match call["method"].as_str() {
                Some("getblocktemplate") => template.clone(),
                Some("submitblock") => {
                    let hex = call["params"][0].as_str().unwrap().to_string();
                    submitted_tx.send(hex).unwrap();
                    Value::Null
                }
                other => json!(format!("unexpected method {other:?}")),
            };
            let reply = json!({"result": result, "error": null, "id": call["id"]});
            request
                .respond(tiny_http::Response::from_string(reply.to_string()))
                .unwrap();
        }
    });
    let client = RpcClient::new(&format!("http://127.0.0.1:{port}"), "u", "p");
    let backend = CpuBackend::best().unwrap();
    let options = ClientOptions {
        payout: payout(),
        blocks: Some(1),
        max_backoff: Duration::from_secs(1),
        scan_slice: miner::client::DEFAULT_SCAN_SLICE,
    };
    let (cancel, progress) = (AtomicBool::new(false), AtomicU64::new(0));
    let mut blocks: Vec<Submitted> = Vec::new();
    let mut events = Vec::new();
    let accepted = run(
        &client,
        &backend,
        &options,
        &cancel,
        &progress,
        |s| blocks.push(s.clone()),
        |e| events.push(e.to_string()),
    )
    .unwrap();
    server.unblock();
    node.join().unwrap();
    assert_eq!(accepted, 1, "events: {events:?}");
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].rejected, None);
    let hex = submitted_rx.try_recv().unwrap();
    let bytes = hex::decode(&hex).unwrap();
    let block: Block = deserialize(&bytes).unwrap();
    assert_eq!(serialize(&block), bytes, "round trip");
    assert_segwit_block(&block, &txs, &expected);
    assert_eq!(block.header.nonce, blocks[0].nonce);
    let mut hash = sha256d(&miner::block::header_bytes(&block.header));
    assert_eq!(hash, blocks[0].hash);
    // Proof of work against 207fffff, checked here: the hash as a little-endian number is at most
    // 0x7fffff << 232, i.e. its top byte (displayed first) is at most 0x7f.
    hash.reverse();
    assert!(hash[0] <= 0x7f, "{}", hex::encode(hash));
    assert!(block.header.validate_pow(block.header.target()).is_ok());
}
