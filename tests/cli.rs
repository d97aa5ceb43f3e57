//! The real `miner` binary, run as a user would.

use miner::pow::CompactTarget;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::process::{Command, Output};

fn miner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_miner"))
        .args(args)
        .output()
        .expect("run the miner binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Target from nBits, decoded here with the `bitcoin` crate, independently of our own code.
fn independent_target(bits: u32) -> [u8; 32] {
    let t = bitcoin::Target::from_compact(bitcoin::CompactTarget::from_consensus(bits));
    t.to_be_bytes()
}

#[test]
fn mine_json_gives_blocks_that_rehash_below_target_and_chain() {
    let out = miner(&[
        "mine",
        "--memory",
        "--difficulty",
        "5e4",
        "--blocks",
        "3",
        "--json",
    ]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 4, "3 blocks and a summary: {lines:?}");
    // Regtest genesis, in raw order.
    let mut prev: Vec<u8> =
        hex::decode("0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206").unwrap();
    prev.reverse();
    for (i, block) in lines[..3].iter().enumerate() {
        assert_eq!(block["type"], "block");
        assert_eq!(block["height"], i as u64 + 1);
        let header = hex::decode(block["header"].as_str().unwrap()).unwrap();
        assert_eq!(header.len(), 80);
        let hash: [u8; 32] = Sha256::digest(Sha256::digest(&header)).into();
        let mut display = hash;
        display.reverse();
        assert_eq!(hex::encode(display), block["hash"].as_str().unwrap());
        // Below the target of the header's own nBits (big-endian comparison of display order).
        let bits = u32::from_le_bytes(header[72..76].try_into().unwrap());
        assert!(
            display <= independent_target(bits),
            "block {i} above its target"
        );
        // nBits are those of D = 5e4: floor((2^256-1)/5e4), compacted.
        assert_eq!(bits, 0x1f014f8b);
        // Chained by previous hash.
        assert_eq!(
            &header[4..36],
            &prev[..],
            "block {i} does not build on the previous one"
        );
        prev = hash.to_vec();
        let nonce = u32::from_le_bytes(header[76..80].try_into().unwrap());
        assert_eq!(block["nonce"], nonce);
        assert!(block["hashes"].as_u64().unwrap() > 0);
        assert!(block["seconds"].as_f64().unwrap() >= 0.0);
    }
    let summary = &lines[3];
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["blocks"], 3);
    assert_eq!(summary["difficulty"], 50000.0);
    assert!(summary["mean_hashes_per_block"].as_f64().unwrap() > 0.0);
}

#[test]
fn mine_prints_block_lines_and_a_summary() {
    let out = miner(&[
        "mine",
        "--memory",
        "-d",
        "1e4",
        "-n",
        "2",
        "--threads",
        "1",
        "--kernel",
        "soft",
    ]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("block ")).count(),
        2,
        "{text}"
    );
    assert!(text.contains("2 blocks in"), "{text}");
    assert!(text.contains("you asked for D = 10000"), "{text}");
    assert!(stderr(&out).contains("cpu (soft, 1 threads)"));
}

#[test]
fn scan_finds_the_genesis_nonce() {
    let genesis = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d00000000";
    let out = miner(&[
        "scan",
        "--header",
        genesis,
        "--start",
        "2080000000",
        "--count",
        "4000000",
    ]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("nonce 2083236893  hash 000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"),
        "{text}"
    );
    assert!(text.contains("1 hits in 4000000 nonces"), "{text}");
    // An easier target gives more hits, each printed; --json is machine-readable.
    let out = miner(&[
        "scan",
        "--header",
        genesis,
        "--count",
        "100000",
        "--difficulty",
        "1000",
        "--json",
    ]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let hits = lines.iter().filter(|l| l["type"] == "hit").count();
    assert!(
        (50..200).contains(&hits),
        "{hits} hits at D=1000 over 1e5 nonces"
    );
    assert_eq!(lines.last().unwrap()["hits"], hits as u64);
    // --bits overrides the header's nBits.
    let out = miner(&[
        "scan", "--header", genesis, "--count", "1000", "--bits", "207fffff",
    ]);
    assert!(out.status.success());
    assert!(stdout(&out).lines().count() > 400);
}

#[test]
fn scan_finds_block_125552_nonce() {
    let header = "01000000".to_string()
        + "81cd02ab7e569e8bcd9317e2fe99f2de44d49ab2b8851ba4a308000000000000"
        + "e320b6c2fffc8d750423db8b1eb942ae710e951ed797f7affc8892b0f1fc122b"
        + "c7f5d74d"
        + "f2b9441a"
        + "00000000";
    let out = miner(&[
        "scan",
        "--header",
        &header,
        "--start",
        "2500000000",
        "--count",
        "5000000",
    ]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert!(
        stdout(&out).contains("nonce 2504433986  hash 00000000000000001e8d6829a8a21adc5d38d0a473b144b6765798e61f98bd1d"),
        "{}",
        stdout(&out)
    );
}

/// Runs `args`, expects failure with one clear error line mentioning every `needles`.
fn assert_refused(args: &[&str], needles: &[&str]) {
    let out = miner(args);
    assert!(
        !out.status.success(),
        "{args:?} succeeded: {}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    let first = err.lines().next().unwrap_or("");
    assert!(first.starts_with("error:"), "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: expected {n:?} in {err}");
    }
}

#[test]
fn bad_input_gets_a_clear_error() {
    let genesis = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d00000000";
    assert_refused(
        &["mine", "--memory", "--difficulty", "0"],
        &["--difficulty", "positive"],
    );
    assert_refused(
        &["mine", "--memory", "--difficulty", "-5"],
        &["--difficulty", "positive"],
    );
    assert_refused(
        &["mine", "--memory", "--difficulty", "NaN"],
        &["--difficulty", "not a number"],
    );
    assert_refused(
        &["mine", "--memory", "--difficulty", "lots"],
        &["--difficulty", "not a number", "1e6"],
    );
    assert_refused(
        &["mine", "--memory", "--difficulty", "inf"],
        &["--difficulty", "finite"],
    );
    assert_refused(
        &["mine", "--memory", "--payout", "bc1qnotanaddress"],
        &["--payout", "neither a known address"],
    );
    assert_refused(&["mine", "--memory", "--threads", "0"], &["--threads"]);
    assert_refused(
        &["scan", "--header", "00ff"],
        &["--header", "160 hex digits", "got 4"],
    );
    assert_refused(
        &["scan", "--header", &"zz".repeat(80)],
        &["--header", "not hex"],
    );
    assert_refused(
        &["scan", "--header", genesis, "--count", "4294967297"],
        &["--count", "2^32"],
    );
    assert_refused(
        &[
            "scan",
            "--header",
            genesis,
            "--start",
            "4294967295",
            "--count",
            "2",
        ],
        &["--count", "passes the last nonce"],
    );
    assert_refused(
        &["scan", "--header", genesis, "--start", "-1"],
        &["--start"],
    );
    assert_refused(
        &["scan", "--header", genesis, "--bits", "1d80ffff"],
        &["--bits", "negative"],
    );
    assert_refused(
        &["scan", "--header", genesis, "--bits", "nope"],
        &["--bits", "8 hex digits"],
    );
    assert_refused(&["bench", "--seconds", "0"], &["--seconds"]);
    assert_refused(
        &["mine", "--memory", "--kernel", "avx9000"],
        &["--kernel", "known kernels"],
    );
    // The header's own nBits can be unusable; the error says what to do.
    let zero_bits = format!("{}00000000{}", &genesis[..144], "00000000");
    assert_refused(
        &["scan", "--header", &zero_bits],
        &["nBits", "--difficulty or --bits"],
    );
}

#[test]
fn help_explains_every_command() {
    let out = miner(&["--help"]);
    assert!(out.status.success());
    for cmd in ["mine", "scan", "bench", "devices", "retarget-sim", "node"] {
        assert!(stdout(&out).contains(cmd));
        let sub = miner(&[cmd, "--help"]);
        assert!(sub.status.success());
        assert!(stdout(&sub).contains("Usage: miner"), "{cmd} --help");
    }
    let mine_help = stdout(&miner(&["mine", "--memory", "--help"]));
    for flag in [
        "--difficulty",
        "--blocks",
        "--threads",
        "--payout",
        "--json",
        "--kernel",
    ] {
        assert!(mine_help.contains(flag), "mine --help lacks {flag}");
    }
}

#[test]
fn bench_json_reports_every_kernel_against_sha2() {
    let out = miner(&["bench", "--seconds", "0.2", "--threads", "2", "--json"]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let kernels = v["kernels"].as_array().unwrap();
    assert_eq!(kernels[0]["kernel"], "sha2");
    assert_eq!(kernels[0]["ratio_to_sha2_one_thread"], 1.0);
    assert!(kernels.iter().any(|k| k["kernel"] == "soft"));
    for k in kernels {
        assert!(k["mhs_one_thread"].as_f64().unwrap() > 0.0, "{k}");
        assert!(k["mhs_all_threads"].as_f64().unwrap() > 0.0, "{k}");
        assert_eq!(k["threads"], 2);
    }
    let _ = CompactTarget::from_consensus(0); // the library is linked into the test
}

#[test]
fn ctrl_c_stops_mining_cleanly_with_a_summary() {
    use std::time::{Duration, Instant};
    let mut child = Command::new(env!("CARGO_BIN_EXE_miner"))
        .args(["mine", "--memory", "--difficulty", "1e15", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start miner");
    std::thread::sleep(Duration::from_millis(1500));
    // The shell's builtin `kill`, so the test needs no procps.
    let killed = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for miner") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("miner did not stop within 10 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("collect output");
    assert!(status.success(), "exit {status:?}: {}", stderr(&out));
    let summary: Value = serde_json::from_str(stdout(&out).lines().last().expect("a summary line"))
        .expect("summary is JSON");
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["interrupted"], true);
    assert_eq!(summary["blocks"], 0);
    assert!(summary["hashes"].as_u64().unwrap() > 100_000, "{summary}");
}

const GENESIS: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d00000000";

/// The miner binary with wgpu limited to a backend this build lacks: no adapter at all.
fn miner_without_gpu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_miner"))
        .args(args)
        .env("WGPU_BACKEND", "metal")
        .output()
        .expect("run the miner binary")
}

#[test]
fn devices_lists_the_adapter_the_gpu_tests_use() {
    let out = miner(&["devices", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Vec<Value> = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(
        !list.is_empty(),
        "no adapter: install mesa-vulkan-drivers (.ci/run does)"
    );
    for (i, a) in list.iter().enumerate() {
        assert_eq!(a["index"], i as u64);
        assert!(!a["name"].as_str().unwrap().is_empty());
        assert!(!a["backend"].as_str().unwrap().is_empty());
    }
    let text = stdout(&miner(&["devices"]));
    assert!(text.starts_with("0: "), "{text}");
}

#[test]
fn scan_and_mine_on_the_gpu() {
    let out = miner(&[
        "scan",
        "--backend",
        "gpu",
        "--adapter",
        "0",
        "--header",
        GENESIS,
        "--start",
        "2082000000",
        "--count",
        "2000000",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(
        "nonce 2083236893  hash 000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
    ));
    let out = miner(&[
        "mine",
        "--memory",
        "--backend",
        "gpu",
        "-d",
        "2e5",
        "-n",
        "2",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let blocks: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["type"] == "block")
        .collect();
    assert_eq!(blocks.len(), 2);
    for b in blocks {
        let header = hex::decode(b["header"].as_str().unwrap()).unwrap();
        let mut hash: [u8; 32] = Sha256::digest(Sha256::digest(&header)).into();
        hash.reverse();
        let bits = u32::from_le_bytes(header[72..76].try_into().unwrap());
        assert!(hash <= independent_target(bits));
    }
}

#[test]
fn all_backends_report_each_part() {
    let out = miner(&[
        "mine",
        "--memory",
        "--backend",
        "all",
        "-d",
        "1e6",
        "-n",
        "2",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let parts: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["type"] == "part")
        .collect();
    assert_eq!(parts.len(), 2, "{}", stdout(&out));
    assert!(parts[0]["backend"].as_str().unwrap().starts_with("cpu"));
    assert!(parts[1]["backend"].as_str().unwrap().starts_with("gpu"));
    let total: u64 = parts.iter().map(|p| p["hashes"].as_u64().unwrap()).sum();
    assert!(total > 0);
}

#[test]
fn bench_all_puts_gpu_beside_cpu() {
    let out = miner(&["bench", "--backend", "all", "--seconds", "0.3", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(!v["kernels"].as_array().unwrap().is_empty());
    let gpu = &v["gpu"];
    assert!(gpu["mhs"].as_f64().unwrap() > 0.0, "{gpu}");
    assert!(gpu["ratio_to_best_cpu"].as_f64().unwrap() > 0.0);
    assert!(gpu["dispatch_nonces"].as_u64().unwrap() > 0);
    let text = stdout(&miner(&["bench", "--backend", "gpu", "--seconds", "0.3"]));
    assert!(text.starts_with("gpu "), "{text}");
}

/// `miner bench --backend gpu --gpu-sweep` over the given lists, 0.2 s a setting.
fn gpu_sweep(workgroup_sizes: &str, nonces: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "bench",
        "--backend",
        "gpu",
        "--gpu-sweep",
        "--sweep-workgroup-sizes",
        workgroup_sizes,
        "--sweep-nonces",
        nonces,
        "--seconds",
        "0.2",
    ];
    args.extend_from_slice(extra);
    miner(&args)
}

#[test]
fn bench_gpu_sweep_measures_every_setting_and_reports_the_fastest() {
    let out = gpu_sweep("64,256", "8,16", &["--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let sweep = &v["gpu_sweep"];
    let results = sweep["results"].as_array().unwrap();
    let mut settings: Vec<(u64, u64)> = results
        .iter()
        .map(|r| {
            assert!(r["mhs"].as_f64().unwrap() > 0.0, "{r}");
            (
                r["workgroup_size"].as_u64().unwrap(),
                r["nonces_per_invocation"].as_u64().unwrap(),
            )
        })
        .collect();
    settings.sort_unstable();
    assert_eq!(settings, vec![(64, 8), (64, 16), (256, 8), (256, 16)]);
    assert!(sweep["refused"].as_array().unwrap().is_empty());
    // The report's GPU figure is the fastest setting; the default (256, 8) was measured.
    let fastest = results
        .iter()
        .map(|r| r["mhs"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(v["gpu"]["mhs"].as_f64().unwrap(), fastest);
    let default = results
        .iter()
        .find(|r| r["workgroup_size"] == 256 && r["nonces_per_invocation"] == 8)
        .unwrap();
    assert_eq!(sweep["default_mhs"], default["mhs"]);
    // Text: the grid, then the best setting as flags to pass.
    let text = stdout(&gpu_sweep("128", "4", &[]));
    assert!(text.contains("gpu sweep, MH/s"), "{text}");
    assert!(
        text.contains("--gpu-workgroup-size 128 --gpu-nonces-per-invocation 4"),
        "{text}"
    );
    assert_refused(&["bench", "--gpu-sweep"], &["--gpu-sweep", "--backend gpu"]);
}

#[test]
fn measure_gpu_script_reports_the_sweep_bench_and_end_to_end_ratios() {
    let dir = std::env::temp_dir().join(format!("miner-measure-gpu-{}", std::process::id()));
    let out = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/measure-gpu.sh"
        ))
        .arg(&dir)
        .env("MINER", env!("CARGO_BIN_EXE_miner"))
        .env("SECONDS_PER", "0.2")
        .env("E2E_SECONDS", "1")
        .env("SWEEP_WG", "256")
        .env("SWEEP_NPI", "8,16")
        .output()
        .expect("run bash");
    let _ = std::fs::remove_dir_all(&dir);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    for line in [
        "adapter  ",
        "sweep    256x8: ",
        "best     workgroup 256",
        "bench    gpu ",
    ] {
        assert!(text.contains(line), "no {line:?} in {text}");
    }
    // The end-to-end lines carry a positive ratio to the bench rate.
    for what in ["scan ", "mine "] {
        let line = text.lines().find(|l| l.starts_with(what)).unwrap();
        let ratio: f64 = line
            .split(" = ")
            .nth(1)
            .unwrap()
            .split('x')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(ratio > 0.0, "{line}");
    }
}

#[test]
fn no_gpu_is_one_clear_error_and_all_falls_back_to_cpu() {
    let out = miner_without_gpu(&[
        "scan",
        "--backend",
        "gpu",
        "--header",
        GENESIS,
        "--count",
        "10",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("error: --backend gpu: no GPU adapter found"),
        "{err}"
    );
    assert!(
        err.contains("mesa-vulkan-drivers") && err.contains("--backend cpu"),
        "{err}"
    );
    let out = miner_without_gpu(&[
        "mine",
        "--memory",
        "--backend",
        "all",
        "-d",
        "1e4",
        "-n",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("warning: --backend all runs on the CPU only"));
    assert!(stdout(&out).contains("1 blocks in"));
    let out = miner_without_gpu(&["devices"]);
    assert!(stdout(&out).contains("no GPU adapters found"));
    // The sweep: an error with --backend gpu, the CPU figures with a warning with all.
    let out = miner_without_gpu(&["bench", "--backend", "gpu", "--gpu-sweep"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("error: --gpu-sweep: no GPU adapter found"),
        "{}",
        stderr(&out)
    );
    let out = miner_without_gpu(&[
        "bench",
        "--backend",
        "all",
        "--gpu-sweep",
        "--seconds",
        "0.1",
        "--threads",
        "1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("warning: --backend all measures the CPU only"));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(v["gpu"].is_null() && !v["kernels"].as_array().unwrap().is_empty());
}

#[test]
fn every_available_kernel_can_be_forced_and_finds_the_genesis_nonce() {
    for kernel in miner::hash::Kernel::available() {
        let out = miner(&[
            "scan",
            "--kernel",
            kernel.name(),
            "--threads",
            "1",
            "--header",
            GENESIS,
            "--start",
            "2083200000",
            "--count",
            "100000",
        ]);
        assert!(out.status.success(), "{kernel}: {}", stderr(&out));
        assert!(
            stdout(&out).contains("nonce 2083236893"),
            "{kernel}: {}",
            stdout(&out)
        );
        assert!(
            stderr(&out).contains(&format!("cpu ({kernel}, 1 threads)")),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn hidden_kernels_fall_back_in_order_and_cannot_be_forced() {
    let run = |disabled: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_miner"))
            .args(args)
            .env("MINER_DISABLE_KERNELS", disabled)
            .output()
            .unwrap()
    };
    let available = miner::hash::Kernel::available();
    let mut hidden: Vec<&str> = Vec::new();
    // Hide the best kernel, then the next, ...: mining always works, on the next one in order.
    for kernel in miner::hash::Kernel::PREFERENCE {
        if !available.contains(&kernel) {
            continue;
        }
        let out = run(
            &hidden.join(","),
            &["mine", "--memory", "-d", "1e4", "-n", "1", "--threads", "1"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("cpu ({kernel}, 1 threads)")),
            "with {hidden:?} hidden expected {kernel}: {}",
            stderr(&out)
        );
        hidden.push(kernel.name());
    }
    let out = run(
        "avx512,sha-ni,avx2",
        &["mine", "--memory", "--kernel", "avx512", "-n", "1"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out)
            .contains("the avx512 kernel is not supported by this CPU; available: sha2, soft"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn mine_with_a_controller_moves_the_difficulty() {
    // Blocks at D = 1e5 arrive in milliseconds against a 1 s target, so asert raises D.
    let out = miner(&[
        "mine",
        "--memory",
        "-d",
        "1e5",
        "--block-time",
        "1",
        "-n",
        "12",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("difficulty asert (half-life 48 s), block time 1 s"),
        "{}",
        stderr(&out)
    );
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let d: Vec<f64> = lines
        .iter()
        .filter(|v| v["type"] == "block")
        .map(|v| v["difficulty"].as_f64().unwrap())
        .collect();
    assert_eq!(d.len(), 12);
    assert!((d[0] / 1e5 - 1.0).abs() < 1e-3, "{d:?}");
    assert!(d[11] > d[0], "difficulty did not rise: {d:?}");
    let summary = lines.last().unwrap();
    let ci = summary["mean_hashes_per_block_ci95"].as_array().unwrap();
    let mean = summary["mean_hashes_per_block"].as_f64().unwrap();
    assert!(ci[0].as_f64().unwrap() < mean && mean < ci[1].as_f64().unwrap());
    // Each block's header carries the nBits the controller asked for: they differ.
    let bits: std::collections::HashSet<String> = lines
        .iter()
        .filter(|v| v["type"] == "block")
        .map(|v| v["bits"].as_str().unwrap().to_string())
        .collect();
    assert!(bits.len() > 1);
}

#[test]
fn mine_summary_states_the_mean_with_a_95_percent_interval() {
    let out = miner(&["mine", "--memory", "-d", "2e4", "-n", "30"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("hashes per block: mean "), "{text}");
    assert!(text.contains("(95% interval "), "{text}");
    assert!(text.contains("you asked for D = 20000"), "{text}");
}

#[test]
fn retarget_sim_prints_a_table_and_writes_csv_and_svg() {
    let dir = std::env::temp_dir().join(format!("miner-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("series.csv");
    let svg = dir.join("chart.svg");
    let out = miner(&[
        "retarget-sim",
        "--algo",
        "asert,bitcoin,lwma",
        "--block-time",
        "600",
        "--blocks",
        "2000",
        "--hashrate",
        "1M,10M@500,1M@1000,onoff(1M/10M/50)@1500",
        "--seed",
        "3",
        "--window",
        "100",
        "--csv",
        csv.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "asert (half-life 28800 s)",
        "bitcoin (window 100)",
        "lwma (N = 100)",
        "recover@500",
        "recover@1000",
        "recover@1500",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let series = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(series.lines().count(), 1 + 3 * 2000);
    assert!(series.starts_with("algorithm,height,time_s,interval_s,hashrate_hs,difficulty,bits\n"));
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(
        chart.starts_with("<svg") && chart.contains("polyline") || chart.contains("<path"),
        "not an SVG chart"
    );
    assert!(chart.contains("asert (half-life 28800 s)"));
    // --json gives the same figures as data.
    let out = miner(&[
        "retarget-sim",
        "--algo",
        "asert",
        "--blocks",
        "1000",
        "--hashrate",
        "1M",
        "--json",
        "--csv",
        csv.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v[0]["algorithm"], "asert (half-life 480 s)");
    assert!(v[0]["mean_interval_s"].as_f64().unwrap() > 0.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_controller_parameters_name_the_flag() {
    assert_refused(
        &["mine", "--memory", "--block-time", "0"],
        &["--block-time", "at least 1 second"],
    );
    assert_refused(
        &["mine", "--memory", "--block-time", "-5"],
        &["--block-time"],
    );
    assert_refused(
        &["mine", "--memory", "--block-time", "soon"],
        &["--block-time", "not a duration"],
    );
    assert_refused(
        &["mine", "--memory", "--block-time", "1.5s"],
        &["--block-time", "whole number of seconds"],
    );
    assert_refused(
        &["mine", "--memory", "--half-life", "0"],
        &["--half-life", "at least 1 second"],
    );
    assert_refused(&["mine", "--memory", "--window", "0"], &["--window"]);
    assert_refused(&["mine", "--memory", "--window", "1"], &["--window"]);
    assert_refused(
        &["mine", "--memory", "--retarget", "dgw"],
        &["--retarget", "unknown difficulty algorithm", "asert"],
    );
    assert_refused(
        &["retarget-sim", "--algo", "asert,magic"],
        &["--algo", "unknown difficulty algorithm"],
    );
    assert_refused(
        &["retarget-sim", "--hashrate", "1M,10M@"],
        &["--hashrate", "bad hash-rate profile"],
    );
    assert_refused(
        &["retarget-sim", "--hashrate", "fast"],
        &["--hashrate", "'fast' is not a hash rate"],
    );
    assert_refused(&["retarget-sim", "--block-time", "0s"], &["--block-time"]);
    assert_refused(&["retarget-sim", "--blocks", "5"], &["--blocks"]);
}

#[test]
fn chain_files_set_the_rules_and_bad_ones_are_refused() {
    let chain = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/chain.json");
    let out = miner(&[
        "mine", "--memory", "--chain", chain, "-d", "1e4", "-n", "2", "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("mining on a new in-memory ten-second-asert chain"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("asert (half-life 600 s), block time 10 s"),
        "{}",
        stderr(&out)
    );
    // Flags override the file's controller.
    let out = miner(&[
        "mine",
        "--memory",
        "--chain",
        chain,
        "-d",
        "1e4",
        "-n",
        "1",
        "--retarget",
        "fixed",
    ]);
    assert!(
        stderr(&out).contains("difficulty fixed"),
        "{}",
        stderr(&out)
    );
    let dir = std::env::temp_dir().join(format!("miner-chainfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"halving_interval": 0}"#).unwrap();
    assert_refused(
        &["mine", "--memory", "--chain", bad.to_str().unwrap()],
        &["--chain", "halving_interval must be at least 1"],
    );
    std::fs::write(&bad, r#"{"subsidy": 1}"#).unwrap();
    assert_refused(
        &["mine", "--memory", "--chain", bad.to_str().unwrap()],
        &["--chain", "unknown field"],
    );
    assert_refused(
        &["mine", "--memory", "--chain", "mainnet"],
        &["--chain", "unknown chain preset"],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mine_continues_the_stored_chain_per_set_of_rules() {
    let dir = std::env::temp_dir().join(format!("miner-datadir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    let heights = |args: &[&str]| -> Vec<u64> {
        let out = miner(args);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["type"] == "block")
            .map(|v| v["height"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(
        heights(&["mine", "--datadir", d, "-d", "1e4", "-n", "2", "--json"]),
        vec![1, 2]
    );
    // Same rules: the chain continues.
    assert_eq!(
        heights(&["mine", "--datadir", d, "-d", "1e4", "-n", "2", "--json"]),
        vec![3, 4]
    );
    // Other rules: a chain of their own, from genesis.
    assert_eq!(
        heights(&["mine", "--datadir", d, "-d", "2e4", "-n", "1", "--json"]),
        vec![1]
    );
    let stores = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(stores, 2, "one store per set of rules");
    std::fs::remove_dir_all(&dir).unwrap();
}
