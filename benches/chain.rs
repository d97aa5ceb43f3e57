//! Chain and node figures (not criterion: each figure is one long run). Prints a table:
//! blocks validated and connected per second on a chain of 100,000 blocks (in memory, and
//! durably into the store), the time to open a store of 100,000 blocks, and getblocktemplate
//! and submitblock latency (median, p99) on loopback.
//!
//! Run: `cargo bench --bench chain` (MINER_BENCH_BLOCKS=N for another chain length).

use bitcoin::consensus::encode::serialize;
use bitcoin::{Block, ScriptBuf};
use miner::backend::CpuBackend;
use miner::block::Template;
use miner::chain::store::Store;
use miner::chain::{Chain, ChainParams};
use miner::hash::Kernel;
use miner::node::{Credentials, NodeState, Server};
use miner::pow::retarget::RetargetParams;
use miner::pow::CompactTarget;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

fn rules() -> RetargetParams {
    RetargetParams::fixed(
        CompactTarget::from_consensus(0x207fffff),
        ChainParams::regtest().pow_limit,
    )
}

/// The next block on `chain`'s tip, mined with the CPU (regtest bits: two hashes on average).
fn next_block(chain: &Chain, time: u32) -> Block {
    let t = Template::builder(chain.tip_hash(), chain.height() + 1)
        .median_time_past(chain.median_time_past())
        .time(time)
        .bits(chain.next_bits())
        .value(chain.params().subsidy(chain.height() + 1))
        .payout(ScriptBuf::from_bytes(vec![0x51]))
        .build()
        .unwrap();
    let job = t.job(0);
    let mut hits = Vec::new();
    let mut first = 0u32;
    while hits.is_empty() {
        Kernel::best().scan(&job.job, first, 64, &mut hits);
        first += 64;
    }
    t.assemble(0, hits[0])
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn post(addr: &str, auth: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "POST / HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply
}

fn main() {
    let n: u32 = std::env::var("MINER_BENCH_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("miner-bench-chain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let base_time = 1_700_000_000u32;

    // Build the chain once (mining is not what is measured).
    let mut builder = Chain::new(ChainParams::regtest(), rules());
    let mut blocks = Vec::with_capacity(n as usize);
    for i in 0..n {
        let b = next_block(&builder, base_time + i);
        builder.submit(b.clone(), base_time + n + 10).unwrap();
        blocks.push(b);
    }
    let now = base_time + n + 10;

    // 1. Validate and connect, in memory.
    let mut chain = Chain::new(ChainParams::regtest(), rules());
    let started = Instant::now();
    for b in &blocks {
        chain.submit(b.clone(), now).unwrap();
    }
    let in_memory = started.elapsed().as_secs_f64();
    assert_eq!(chain.height(), n);

    // 2. Validate, connect and commit durably (one fsync per block), on the first 2,000.
    let durable_n = n.min(2_000);
    let mut stored =
        Chain::open(&dir.join("durable.redb"), ChainParams::regtest(), rules()).unwrap();
    let started = Instant::now();
    for b in &blocks[..durable_n as usize] {
        stored.submit(b.clone(), now).unwrap();
    }
    let durable = started.elapsed().as_secs_f64();
    drop(stored);

    // 3. Open a store of n blocks (written in bulk, then reopened).
    let path = dir.join("full.redb");
    {
        let (mut store, _) =
            Store::open(&path, &Chain::rules(&ChainParams::regtest(), &rules())).unwrap();
        let all: Vec<(u32, &Block)> = blocks
            .iter()
            .enumerate()
            .map(|(i, b)| (i as u32 + 1, b))
            .collect();
        for chunk in all.chunks(10_000) {
            store.put_many(chunk).unwrap();
        }
    }
    let started = Instant::now();
    let reopened = Chain::open(&path, ChainParams::regtest(), rules()).unwrap();
    let open_s = started.elapsed().as_secs_f64();
    assert_eq!(reopened.height(), n);
    drop(reopened);

    // 4. RPC latency on loopback: a node on a fresh store.
    let node_chain = Chain::open(&dir.join("node.redb"), ChainParams::regtest(), rules()).unwrap();
    let backend = Box::new(CpuBackend::new(Kernel::best(), Some(1)).unwrap());
    let state = Arc::new(NodeState::new(node_chain, backend));
    let creds = Credentials {
        user: "u".into(),
        password: "p".into(),
    };
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), state.clone(), creds, None).unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let handle = {
        let stop = stop.clone();
        std::thread::spawn(move || server.run(stop))
    };
    let auth = "dTpw"; // base64("u:p")
    let calls = 1_000usize.min(n as usize);
    let gbt = r#"{"id":0,"method":"getblocktemplate","params":[{"rules":["segwit"]}]}"#;
    let mut gbt_ms = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let reply = post(&addr, auth, gbt);
        gbt_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(reply.contains("previousblockhash"));
    }
    let mut submit_ms = Vec::with_capacity(calls);
    for b in &blocks[..calls] {
        let body = format!(
            r#"{{"id":1,"method":"submitblock","params":["{}"]}}"#,
            hex::encode(serialize(b))
        );
        let t = Instant::now();
        let reply = post(&addr, auth, &body);
        submit_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(reply.contains("\"result\":null"), "{reply}");
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    handle.join().unwrap();
    gbt_ms.sort_by(f64::total_cmp);
    submit_ms.sort_by(f64::total_cmp);

    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| validate + connect, in memory, {n} blocks | {:.0} blocks/s ({in_memory:.2} s) |",
        f64::from(n) / in_memory
    );
    println!("| validate + connect + durable commit, {durable_n} blocks | {:.0} blocks/s ({durable:.2} s) |", f64::from(durable_n) / durable);
    println!("| open a store of {n} blocks | {open_s:.2} s |");
    println!(
        "| getblocktemplate latency, {calls} calls | median {:.3} ms, p99 {:.3} ms |",
        percentile(&gbt_ms, 0.5),
        percentile(&gbt_ms, 0.99)
    );
    println!(
        "| submitblock latency (durable), {calls} calls | median {:.3} ms, p99 {:.3} ms |",
        percentile(&submit_ms, 0.5),
        percentile(&submit_ms, 0.99)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
