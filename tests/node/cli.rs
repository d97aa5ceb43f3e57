//! The real `miner` binary, run as a user would.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::process::{Command, Output};

use crate::kernel_coverage::tested_kernels;

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
    assert!(kernels.iter().any(|k| k["kernel"] == "soft"));
    let rate = |k: &Value, field: &str| {
        k[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field} missing: {k}"))
    };
    let sha2_one = rate(&kernels[0], "mhs_one_thread");
    let sha2_all = rate(&kernels[0], "mhs_all_threads");
    for k in kernels {
        let one = rate(k, "mhs_one_thread");
        let all = rate(k, "mhs_all_threads");
        assert!(one > 0.0 && all > 0.0, "{k}");
        assert_eq!(k["threads"], 2);
        // Every ratio is recomputed here from the measured rates in the same report: a ratio
        // taken against the wrong baseline (another kernel, the other thread count) or
        // inverted fails, which `sha2 / sha2 == 1` alone cannot show.
        let close = |got: f64, want: f64| (got / want - 1.0).abs() < 1e-9;
        let one_ratio = rate(k, "ratio_to_sha2_one_thread");
        let all_ratio = rate(k, "ratio_to_sha2_all_threads");
        assert!(close(one_ratio, one / sha2_one), "{k}: one-thread ratio");
        assert!(close(all_ratio, all / sha2_all), "{k}: all-thread ratio");
        assert!(
            close(rate(k, "thread_scaling"), all / one),
            "{k}: thread scaling"
        );
    }
    // soft (no midstate tricks, plain Rust rounds) is slower than the sha2 crate: the ratios
    // order the kernels the way their rates do.
    let soft = kernels.iter().find(|k| k["kernel"] == "soft").unwrap();
    assert!(rate(soft, "ratio_to_sha2_one_thread") < 1.0, "{soft}");
}

#[test]
fn ctrl_c_stops_mining_cleanly_with_a_summary() {
    let (status, out) = interrupted_mine(&["--json"]);
    assert_eq!(
        status.code(),
        Some(130),
        "exit {status:?}: {}",
        stderr(&out)
    );
    let summary: Value = serde_json::from_str(stdout(&out).lines().last().expect("a summary line"))
        .expect("summary is JSON");
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["interrupted"], true);
    assert_eq!(summary["blocks"], 0);
    assert!(summary["hashes"].as_u64().unwrap() > 100_000, "{summary}");
    // No block, so no mean: null, not a meaningless 0.
    for field in [
        "mean_trials_per_block",
        "mean_hashes_per_block",
        "mean_seconds_per_block",
        "expected_hashes_per_block",
    ] {
        assert!(summary[field].is_null(), "{field}: {summary}");
    }
}

#[test]
fn a_run_stopped_before_its_first_block_says_what_was_done_without_a_mean() {
    let (status, out) = interrupted_mine(&[]);
    assert_eq!(
        status.code(),
        Some(130),
        "exit {status:?}: {}",
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(text.contains("interrupted"), "{text}");
    assert!(text.contains("no block found: "), "{text}");
    assert!(
        text.contains(" hashes in ") && text.contains("H/s"),
        "{text}"
    );
    assert!(!text.contains("mean"), "{text}");
}

/// `miner mine` at a difficulty it cannot meet in time, stopped by SIGINT after 1.5 s.
fn interrupted_mine(extra: &[&str]) -> (std::process::ExitStatus, Output) {
    use std::time::{Duration, Instant};
    let mut child = Command::new(env!("CARGO_BIN_EXE_miner"))
        .args(["mine", "--memory", "--difficulty", "1e15"])
        .args(extra)
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
    (status, out)
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
        "no adapter: install mesa-vulkan-drivers (scripts/test.sh, the README's test command, does)"
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

#[test]
fn bench_says_when_the_gpu_adapter_is_a_cpu_and_reports_cpu_shares() {
    let out = miner(&["bench", "--backend", "all", "--seconds", "0.3", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    for k in v["kernels"].as_array().unwrap() {
        // A share is CPU time over threads x wall time, or null for a measurement too short to
        // judge (0.3 s on one thread is); `under_load` is whether either share is below 0.8.
        let mut low = false;
        for field in ["cpu_share_one_thread", "cpu_share_all_threads"] {
            if let Some(share) = k[field].as_f64() {
                assert!(share > 0.0 && share < 1.5, "{field}: {k}");
                low |= share < 0.8;
            } else {
                assert!(k[field].is_null(), "{field}: {k}");
            }
        }
        assert_eq!(k["under_load"], low, "{k}");
    }
    let gpu = &v["gpu"];
    let software = gpu["device_type"] == "Cpu";
    assert_eq!(gpu["software_adapter"], software, "{gpu}");
    let note = "the GPU adapter is a software rasterizer on the CPU: this ratio is not a GPU's";
    if software {
        assert_eq!(gpu["note"], note, "{gpu}");
    } else {
        assert!(gpu["note"].is_null(), "{gpu}");
    }
    let text = stdout(&miner(&["bench", "--backend", "all", "--seconds", "0.3"]));
    let ratio_line = text
        .lines()
        .find(|l| l.starts_with("gpu/cpu"))
        .unwrap_or_else(|| panic!("no gpu/cpu line: {text}"));
    assert_eq!(ratio_line.contains(note), software, "{text}");
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
    for kernel in tested_kernels("every_available_kernel_can_be_forced") {
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
fn hidden_kernels_are_never_chosen_and_cannot_be_forced() {
    // A private data directory, so the kernel cache starts empty and the user's is untouched.
    let data = std::env::temp_dir().join(format!("miner-hidden-kernels-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let run = |disabled: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_miner"))
            .args(args)
            .env("MINER_DISABLE_KERNELS", disabled)
            .env("XDG_DATA_HOME", &data)
            .output()
            .unwrap()
    };
    let available = tested_kernels("hidden_kernels_are_never_chosen");
    let mut hidden: Vec<&str> = Vec::new();
    // Hide the x86 kernels one by one: mining always works, on a kernel that is not hidden.
    for kernel in miner::hash::Kernel::PREFERENCE {
        if !available.contains(&kernel) || kernel == miner::hash::Kernel::Soft {
            continue;
        }
        hidden.push(kernel.name());
        let out = run(
            &hidden.join(","),
            &[
                "mine",
                "--memory",
                "-d",
                "1e4",
                "-n",
                "1",
                "--threads",
                "1",
                "--json",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let summary: Value = serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
        let chosen = summary["kernel"].as_str().unwrap();
        assert!(
            !hidden.contains(&chosen) && chosen.parse::<miner::hash::Kernel>().is_ok(),
            "with {hidden:?} hidden chose {chosen}"
        );
        let rates = summary["kernel_rates_mhs"].as_object().unwrap();
        assert!(hidden.iter().all(|h| !rates.contains_key(*h)), "{rates:?}");
        assert!(
            rates.contains_key("sha2") && rates.contains_key("soft"),
            "{rates:?}"
        );
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
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn the_kernel_choice_is_calibrated_then_cached_and_reported() {
    let dir = std::env::temp_dir().join(format!("miner-kernel-choice-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    let available: Vec<&str> = tested_kernels("the_kernel_choice_is_calibrated_then_cached")
        .iter()
        .map(|k| k.name())
        .collect();
    let mine = |extra: &[&str]| {
        let mut args = vec![
            "mine",
            "--datadir",
            d,
            "-d",
            "1e4",
            "-n",
            "1",
            "--threads",
            "1",
        ];
        args.extend_from_slice(extra);
        let out = miner(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let summary: Value = serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
        (summary, stderr(&out))
    };
    // First run: measured, every available kernel's rate reported, the cache written. A run on a
    // machine too busy to measure steadily says so and caches nothing; measure again then.
    let noisy = "calibrated (noisy: not cached)";
    let (mut first, mut header) = mine(&["--json"]);
    for _ in 0..5 {
        if first["kernel_choice"] != noisy {
            break;
        }
        assert!(!dir.join("kernel-calibration.json").exists());
        eprintln!("calibration disturbed, measuring again: {header}");
        (first, header) = mine(&["--json"]);
    }
    assert_eq!(first["kernel_choice"], "calibrated");
    let kernel = first["kernel"].as_str().unwrap().to_string();
    assert!(available.contains(&kernel.as_str()), "{kernel}");
    let rates = first["kernel_rates_mhs"].as_object().unwrap();
    for k in &available {
        assert!(rates[*k].as_f64().unwrap() > 0.0, "{k}: {rates:?}");
    }
    assert!(
        header.contains(&format!(
            "backend cpu ({kernel}, 1 threads); kernel {kernel} (calibrated: "
        )),
        "{header}"
    );
    let cache = dir.join("kernel-calibration.json");
    let text = std::fs::read_to_string(&cache).expect("the cache file is written");
    assert!(
        text.contains(&format!("\"kernel\": \"{kernel}\"")),
        "{text}"
    );
    // Second run: read from the cache, same kernel, said so.
    let (second, header) = mine(&["--json"]);
    assert_eq!(second["kernel_choice"], "cached");
    assert_eq!(second["kernel"], kernel.as_str());
    assert!(
        header.contains(&format!("kernel {kernel} (cached: ")),
        "{header}"
    );
    // --recalibrate measures again; --kernel overrides and reports no rates.
    let measured = |v: &Value| v["kernel_choice"] == "calibrated" || v["kernel_choice"] == noisy;
    let (again, _) = mine(&["--json", "--recalibrate"]);
    assert!(measured(&again), "{again}");
    let (forced, header) = mine(&["--json", "--kernel", "sha2"]);
    assert_eq!(forced["kernel_choice"], "--kernel");
    assert_eq!(forced["kernel"], "sha2");
    assert!(header.contains("kernel sha2 (--kernel)"), "{header}");
    // Deleting the file forces a new calibration.
    std::fs::remove_file(&cache).unwrap();
    let (fresh, _) = mine(&["--json"]);
    assert!(measured(&fresh), "{fresh}");
    // bench says which kernel mine runs and why, with the cache file.
    let out = Command::new(env!("CARGO_BIN_EXE_miner"))
        .args(["bench", "--seconds", "0.05", "--threads", "1", "--json"])
        .env("XDG_DATA_HOME", &dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let bench: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(
        available.contains(&bench["kernel"].as_str().unwrap()),
        "{bench}"
    );
    assert!(measured(&bench), "{bench}");
    assert!(bench["kernel_cache_file"]
        .as_str()
        .unwrap()
        .ends_with("kernel-calibration.json"));
    let _ = std::fs::remove_dir_all(&dir);
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
    assert!(text.contains("trials per block: mean "), "{text}");
    assert!(text.contains("hashes done per block: mean "), "{text}");
    assert!(text.contains("past the winning nonces"), "{text}");
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
fn retarget_sim_writes_files_only_when_asked() {
    let dir = std::env::temp_dir().join(format!("miner-sim-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_miner"))
            .arg("retarget-sim")
            .args(["--algo", "asert", "--blocks", "300", "--hashrate", "1M"])
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("run the miner binary");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    // No flags: the table, and nothing on disk.
    let text = run(&[]);
    assert!(text.contains("asert (half-life 480 s)"), "{text}");
    assert!(text.contains("no files written"), "{text}");
    assert_eq!(
        listing(),
        Vec::<String>::new(),
        "retarget-sim wrote files unasked"
    );
    // --csv alone writes the CSV only.
    run(&["--csv", "series.csv"]);
    assert_eq!(listing(), ["series.csv"]);
    // --out DIR writes both there, creating DIR.
    let text = run(&["--out", "charts"]);
    assert!(
        text.contains("wrote charts/retarget-sim.csv and charts/retarget-sim.svg"),
        "{text}"
    );
    let csv = std::fs::read_to_string(dir.join("charts/retarget-sim.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 300);
    let svg = std::fs::read_to_string(dir.join("charts/retarget-sim.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "not an SVG");
    // --svg beside --out names its own file.
    run(&["--out", "charts", "--svg", "mine.svg"]);
    assert_eq!(listing(), ["charts", "mine.svg", "series.csv"]);
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
    // Chains are directories (the kernel calibration cache is a file beside them).
    let stores = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir()))
        .count();
    assert_eq!(stores, 2, "one store per set of rules");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn payout_of_another_network_than_the_chain_is_refused() {
    let mainnet = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4";
    // The default chain is regtest: a mainnet address is refused before anything is mined,
    // with a line naming the address, both networks and the fix.
    let out = miner(&[
        "mine", "--memory", "-n", "1", "-d", "1e3", "--payout", mainnet, "--json",
    ]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).is_empty(), "mined anyway: {}", stdout(&out));
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.starts_with("error:"), "{err}");
    for needle in [
        "--payout",
        mainnet,
        "a mainnet address",
        "the chain is regtest",
        "bcrt1",
        "hex",
    ] {
        assert!(err.contains(needle), "expected {needle:?} in {err}");
    }
    assert_refused(
        &[
            "mine",
            "--memory",
            "-n",
            "1",
            "--payout",
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
        ],
        &["1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "mainnet", "regtest"],
    );
    // A regtest address, and a hex script (any network), mine.
    for payout in [
        "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
        "0014751e76e8199196d454941c45d1b3a323f1433bd6",
    ] {
        let out = miner(&[
            "mine", "--memory", "-n", "1", "-d", "1e3", "--payout", payout, "--json",
        ]);
        assert!(out.status.success(), "{payout}: {}", stderr(&out));
    }
    // A chain file with mainnet's genesis is a mainnet chain: the other way round.
    let dir = std::env::temp_dir().join(format!("miner-payout-net-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("main.json");
    std::fs::write(&file, r#"{"name": "main-like", "genesis": "mainnet"}"#).unwrap();
    let chain = file.to_str().unwrap();
    let out = miner(&[
        "mine", "--memory", "--chain", chain, "-n", "1", "-d", "1e3", "--payout", mainnet,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_refused(
        &[
            "mine",
            "--memory",
            "--chain",
            chain,
            "-n",
            "1",
            "--payout",
            "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
        ],
        &["a regtest address", "the chain is mainnet", "bc1…"],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A scratch directory for one test, empty at the start.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("miner-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `miner` with `args`, reads its stderr until a line contains `until` (or 30 s pass),
/// and returns the child (stderr still draining in a thread) and the lines read.
fn spawn_until(
    args: &[&str],
    envs: &[(&str, &std::path::Path)],
    until: &str,
) -> (std::process::Child, Vec<String>) {
    use std::io::BufRead;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_miner"));
    cmd.args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start miner");
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    while started.elapsed() < std::time::Duration::from_secs(30) {
        match lines.next() {
            Some(Ok(line)) => {
                let done = line.contains(until);
                seen.push(line);
                if done {
                    break;
                }
            }
            _ => break,
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (child, seen)
}

#[test]
fn no_command_means_mine_and_help_says_so() {
    // The usage people expect: flags without a command mine.
    let out = miner(&["--difficulty", "1e3", "--memory", "--blocks", "2", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[1]["height"], 2);
    assert_eq!(lines[2]["type"], "summary");
    let short = miner(&["-d", "1e3", "--memory", "-n", "1"]);
    assert!(short.status.success(), "{}", stderr(&short));
    assert!(stdout(&short).contains("block     1"), "{}", stdout(&short));
    // Help says so; help, version and every command still work.
    let help = miner(&["--help"]);
    assert!(help.status.success());
    assert!(
        stdout(&help).contains("With no command, miner runs `mine`"),
        "{}",
        stdout(&help)
    );
    assert!(
        stdout(&help).contains("miner [MINE OPTIONS]"),
        "{}",
        stdout(&help)
    );
    assert!(stdout(&miner(&["-h"])).contains("With no command"));
    let version = miner(&["--version"]);
    assert!(version.status.success());
    assert!(
        stdout(&version).starts_with("miner "),
        "{}",
        stdout(&version)
    );
    assert!(stdout(&miner(&["mine", "--help"])).contains("--difficulty"));
    let devices = miner(&["devices", "--json"]);
    assert!(devices.status.success(), "{}", stderr(&devices));
    // A mistyped command is still reported as one, not mined.
    assert_refused(&["mien", "-d", "1e3"], &["unrecognized subcommand 'mien'"]);
    // A flag mine lacks is an error about mine's flags.
    assert_refused(&["--no-such-flag"], &["--no-such-flag"]);
    // Plain `miner` mines on the user's data directory (a scratch HOME here).
    let home = scratch("plain-home");
    let (mut child, seen) = spawn_until(
        &[],
        &[("HOME", &home), ("XDG_DATA_HOME", &home.join("data"))],
        "mining on",
    );
    let _ = child.kill();
    let _ = child.wait();
    let text = seen.join("\n");
    assert!(text.contains("mining on the regtest chain in"), "{text}");
    assert!(
        text.contains(&home.join("data").join("miner").display().to_string()),
        "{text}"
    );
    std::fs::remove_dir_all(&home).unwrap();
}

#[test]
fn threads_far_above_the_cpu_count_are_refused_at_once() {
    let dir = scratch("threads-node");
    let node_dir = dir.to_str().unwrap().to_string();
    let started = std::time::Instant::now();
    for cmd in [
        &["--memory", "-n", "1"][..],
        &["scan", "--header", GENESIS, "--count", "10"][..],
        &["bench", "--seconds", "0.1"][..],
        &["node", "--rpcport", "0", "--datadir", &node_dir][..],
    ] {
        let args: Vec<&str> = cmd.iter().copied().chain(["--threads", "10000"]).collect();
        assert_refused(
            &args,
            &[
                "--threads 10000",
                "at most",
                "per logical CPU",
                "this machine has",
            ],
        );
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    // A few threads more than the CPUs still work.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let more = (cpus + 2).to_string();
    let out = miner(&["--memory", "-d", "1e3", "-n", "1", "--threads", &more]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_chain_file_is_named_with_the_presets() {
    for name in [
        "nosuchfile",
        "nosuchfile.json",
        "/nonexistent/dir/chain.json",
    ] {
        assert_refused(
            &["--memory", "--chain", name],
            &[
                "--chain",
                &format!("unknown chain preset '{name}', and no file of that name exists"),
                "presets: regtest",
            ],
        );
    }
    assert_refused(&["--memory", "--chain", "nosuchfile"], &["relative to"]);
}

#[test]
fn adapter_numbers_are_indices_only() {
    let list: Vec<Value> = serde_json::from_str(&stdout(&miner(&["devices", "--json"]))).unwrap();
    assert!(!list.is_empty(), "no adapter: install mesa-vulkan-drivers");
    // A number that is no index but appears in an adapter's name ("15" in llvmpipe's
    // "LLVM 15.0.6") must not select that adapter by name.
    let names: Vec<String> = list
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect();
    let in_a_name = names
        .iter()
        .flat_map(|n| {
            n.split(|c: char| !c.is_ascii_digit())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter_map(|d| d.parse::<usize>().ok())
        .find(|&d| d >= list.len());
    let missing = in_a_name.unwrap_or(list.len()).to_string();
    let scan = |adapter: &str| {
        miner(&[
            "scan",
            "--header",
            GENESIS,
            "--count",
            "1000",
            "--backend",
            "gpu",
            "--adapter",
            adapter,
        ])
    };
    let out = scan(&missing);
    assert!(
        !out.status.success(),
        "--adapter {missing} succeeded: {}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!("no adapter with index {missing}")),
        "{err}"
    );
    assert!(err.contains(&format!("0: {}", names[0])), "{err}");
    // A real index and part of a name still select.
    let out = scan("0");
    assert!(out.status.success(), "{}", stderr(&out));
    let part: String = names[0].chars().take(4).collect();
    let out = scan(&part);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn flags_the_controller_or_backend_ignore_are_warned_about() {
    let warned = |args: &[&str], needle: &str| {
        let mut all = vec!["--memory", "-d", "1e3", "-n", "1"];
        all.extend_from_slice(args);
        let out = miner(&all);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("warning: ")).collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        assert!(lines[0].contains(needle), "{args:?}: {err}");
    };
    warned(
        &["--retarget", "fixed", "--block-time", "5"],
        "--block-time ignored",
    );
    warned(
        &["--retarget", "fixed", "--window", "5", "--half-life", "60"],
        "--window, --half-life ignored",
    );
    warned(
        &["--retarget", "asert", "--window", "5"],
        "--window ignored: asert",
    );
    warned(
        &["--retarget", "lwma", "--half-life", "60"],
        "--half-life ignored: lwma",
    );
    warned(
        &["--retarget", "bitcoin", "--half-life", "60"],
        "--half-life ignored: bitcoin",
    );
    warned(
        &["--adapter", "0"],
        "--adapter ignored: the backend is the CPU",
    );
    warned(
        &["--gpu-workgroup-size", "64"],
        "--gpu-workgroup-size ignored",
    );
    // Flags the controller reads bring no warning.
    for ok in [
        &["--retarget", "asert", "--half-life", "60"][..],
        &["--retarget", "lwma", "--block-time", "2", "--window", "10"][..],
        &["--block-time", "5"][..],
        &[][..],
    ] {
        let mut all = vec!["--memory", "-d", "1e3", "-n", "1"];
        all.extend_from_slice(ok);
        let out = miner(&all);
        assert!(out.status.success(), "{ok:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("warning"),
            "{ok:?}: {}",
            stderr(&out)
        );
    }
    // lwma cannot see a 1 s target (whole-second header times): refused, with the fix.
    assert_refused(
        &["--memory", "--retarget", "lwma", "--block-time", "1"],
        &["--block-time 1", "lwma", "whole", "--block-time 2"],
    );
    let dir = scratch("lwma-file");
    let file = dir.join("fast.json");
    std::fs::write(
        &file,
        r#"{"controller": {"retarget": "lwma", "block_time": 1}}"#,
    )
    .unwrap();
    assert_refused(
        &["--memory", "--chain", file.to_str().unwrap()],
        &["controller.block_time 1", "lwma"],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mesa_runtime_dir_complaint_stays_off_the_terminal() {
    for args in [
        &["devices"][..],
        &[
            "scan",
            "--header",
            GENESIS,
            "--count",
            "1000",
            "--backend",
            "gpu",
        ][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_miner"))
            .args(args)
            .env_remove("XDG_RUNTIME_DIR")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("XDG_RUNTIME_DIR"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(
            stdout(&out).contains("llvmpipe") || args[0] == "scan",
            "{}",
            stdout(&out)
        );
    }
}

#[test]
fn a_new_chain_lists_the_other_chains_of_the_data_directory() {
    let dir = scratch("other-chains");
    let d = dir.to_str().unwrap();
    let out = miner(&["--datadir", d, "-d", "1e3", "-n", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("note:"),
        "first chain, nothing to list: {}",
        stderr(&out)
    );
    let out = miner(&["--datadir", d, "-d", "1e3", "--block-time", "5", "-n", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("is new;"), "{err}");
    assert!(err.contains("1 other chain"), "{err}");
    assert!(
        err.contains("height 2; flags: --difficulty 1000\n"),
        "{err}"
    );
    // The flags listed select that chain again: it continues at height 2.
    let out = miner(&["--datadir", d, "--difficulty", "1000", "-n", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("at height 2"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("note:"), "not new: {}", stderr(&out));
    let asert = "--difficulty 1000 --retarget asert --block-time 5 --half-life 240";
    let out = miner(
        &[
            &["--datadir", d, "-n", "1"][..],
            &asert.split(' ').collect::<Vec<_>>(),
        ]
        .concat(),
    );
    assert!(stderr(&out).contains("at height 1"), "{}", stderr(&out));
    // `miner node` on a new chain lists them too.
    let (mut node, seen) = spawn_until(
        &[
            "node",
            "--datadir",
            d,
            "--rpcport",
            "0",
            "-d",
            "5e3",
            "--threads",
            "1",
        ],
        &[],
        "listening on",
    );
    let _ = node.kill();
    let _ = node.wait();
    let text = seen.join("\n");
    assert!(text.contains("2 other chains"), "{text}");
    assert!(
        text.contains("height 3; flags: --difficulty 1000"),
        "{text}"
    );
    assert!(
        text.contains(&format!("height 2; flags: {asert}")),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_second_process_on_the_same_store_is_told_another_miner_holds_it() {
    let dir = scratch("locked");
    let d = dir.to_str().unwrap();
    let (mut node, seen) = spawn_until(
        &[
            "node",
            "--datadir",
            d,
            "--rpcport",
            "0",
            "-d",
            "1e3",
            "--threads",
            "1",
        ],
        &[],
        "listening on",
    );
    assert!(seen.iter().any(|l| l.contains("listening on")), "{seen:?}");
    let started = std::time::Instant::now();
    let out = miner(&["mine", "--datadir", d, "-d", "1e3", "-n", "1"]);
    let _ = node.kill();
    let _ = node.wait();
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("in use by another miner process"), "{err}");
    assert!(err.contains("chain.redb"), "{err}");
    assert!(err.contains(d), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A clock for the library test: starts where told, and `sleep` moves it on without waiting.
struct FakeClock(std::sync::atomic::AtomicU64);

impl miner::mining::Clock for FakeClock {
    fn now(&self) -> u32 {
        (self.0.load(std::sync::atomic::Ordering::SeqCst) / 1000) as u32
    }
    fn sleep(&self, d: std::time::Duration) {
        self.0
            .fetch_add(d.as_millis() as u64, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn mining_waits_for_the_clock_instead_of_failing_time_too_new() {
    use miner::backend::CpuBackend;
    use miner::chain::{Chain, ChainParams, MAX_FUTURE_BLOCK_TIME};
    use miner::mining::{mine_next_with_clock, next_template_at, search, Clock, MineOutcome};
    use miner::pow::retarget::RetargetParams;
    use std::sync::atomic::{AtomicBool, AtomicU64};
    let params = ChainParams::regtest();
    let bits = "1e3"
        .parse::<miner::pow::Difficulty>()
        .unwrap()
        .to_target()
        .to_compact_lossy();
    let mut chain = Chain::new(
        params.clone(),
        RetargetParams::fixed(bits, params.pow_limit),
    );
    let backend = CpuBackend::new(miner::hash::Kernel::best(), Some(1)).unwrap();
    let payout = bitcoin::ScriptBuf::from_bytes(vec![0x51]); // OP_TRUE
    let (cancel, progress) = (AtomicBool::new(false), AtomicU64::new(0));
    // Twelve blocks stamped 100 s past the future limit of an earlier clock: the state a fast
    // miner reaches after ~43,000 blocks at D = 1000.
    let now0: u32 = 1_800_000_000;
    let ahead = FakeClock(AtomicU64::new(
        u64::from(now0 + MAX_FUTURE_BLOCK_TIME + 100) * 1000,
    ));
    for _ in 0..12 {
        let outcome = mine_next_with_clock(
            &mut chain,
            &backend,
            &payout,
            &cancel,
            &progress,
            &ahead,
            &mut |w| panic!("waited {w}"),
        )
        .unwrap();
        assert!(matches!(outcome, MineOutcome::Mined(_)));
    }
    let mtp = chain.median_time_past();
    assert!(mtp >= now0 + MAX_FUTURE_BLOCK_TIME + 100, "{mtp}");
    let needed = mtp + 1 - (now0 + MAX_FUTURE_BLOCK_TIME);
    // Without waiting, the chain refuses our own block at the real clock.
    let template = next_template_at(&chain, &payout, now0).unwrap();
    let found = search(&template, &backend, &cancel, &progress)
        .unwrap()
        .found()
        .expect("found a block");
    let refused = chain.submit(found.block, now0).unwrap_err().to_string();
    assert!(refused.contains("time-too-new"), "{refused}");
    // The miner waits (on the fake clock, so at once), tells why once, and mines.
    let clock = FakeClock(AtomicU64::new(u64::from(now0) * 1000));
    let mut waits = Vec::new();
    let outcome = mine_next_with_clock(
        &mut chain,
        &backend,
        &payout,
        &cancel,
        &progress,
        &clock,
        &mut |w| waits.push(w),
    )
    .unwrap();
    let MineOutcome::Mined(block) = outcome else {
        panic!("not mined: {outcome:?}");
    };
    assert_eq!(waits, vec![needed]);
    assert_eq!(block.height, 13);
    assert_eq!(chain.height(), 13);
    assert!(
        clock.now() >= now0 + needed,
        "the clock did not move: {}",
        clock.now()
    );
    assert!(block.block.header.time <= clock.now() + MAX_FUTURE_BLOCK_TIME);
    assert!(block.block.header.time > mtp);
    // A cancel during the wait ends it without a block.
    let stuck = FakeClock(AtomicU64::new(u64::from(now0) * 1000));
    let cancelled = AtomicBool::new(true);
    let outcome = mine_next_with_clock(
        &mut chain,
        &backend,
        &payout,
        &cancelled,
        &progress,
        &stuck,
        &mut |_| {},
    )
    .unwrap();
    assert!(
        matches!(outcome, MineOutcome::Cancelled { hashes: 0, .. }),
        "{outcome:?}"
    );
    assert_eq!(chain.height(), 13);
}

/// A store that cannot grow (the file-size limit of `ulimit -f`, with SIGXFSZ ignored so the
/// write fails with EFBIG instead of killing the process) makes the first block's commit fail
/// mid-run. The error crosses three wrappers (store, submit, mining): each used to repeat its
/// source's text in its own message, so `error: {:#}` printed the reason two or three times.
#[cfg(unix)]
#[test]
fn a_store_error_while_mining_prints_its_reason_once() {
    let dir = scratch("store-efbig");
    let bin = env!("CARGO_BIN_EXE_miner");
    // How large a fresh store is once it holds a block: the limit leaves room to open it but
    // not to grow it.
    let probe = dir.join("probe");
    let out = miner(&[
        "mine",
        "--datadir",
        probe.to_str().unwrap(),
        "--difficulty",
        "2",
        "--blocks",
        "1",
        "--kernel",
        "sha2",
    ]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let store = std::fs::read_dir(&probe)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("chain.redb"))
        .find(|p| p.exists())
        .expect("the probe run made a store");
    let kib = std::fs::metadata(&store).unwrap().len() / 1024 + 16;
    let full = dir.join("full");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {kib}; exec \"$0\" mine --datadir \"$1\" --difficulty 2 \
             --blocks 100000 --kernel sha2"
        ))
        .arg(bin)
        .arg(&full)
        .output()
        .expect("run sh");
    let err = stderr(&out);
    assert!(!out.status.success(), "the store could not grow: {err}");
    let error_line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(
        error_line.contains("block store I/O failed"),
        "a store error: {error_line}"
    );
    // The OS's reason ("File too large (os error 27)") and each wrapper's text appear once.
    for reason in ["os error", "block store I/O failed", "File too large"] {
        assert_eq!(
            error_line.matches(reason).count(),
            1,
            "'{reason}' once in: {error_line}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The first text of at least `min` bytes (on char boundaries) that occurs twice, without
/// overlapping, in `line`.
fn repeated_text(line: &str, min: usize) -> Option<String> {
    let starts: Vec<usize> = line.char_indices().map(|(i, _)| i).collect();
    for &i in &starts {
        let Some(end) = starts.iter().copied().find(|&e| e >= i + min) else {
            break;
        };
        let piece = &line[i..end];
        if line[end..].contains(piece) {
            return Some(piece.to_string());
        }
    }
    None
}

/// A Rust path (`a::b`) or a CamelCase type name (`StakeError`) in `line`, if any.
fn rust_name(line: &str) -> Option<String> {
    for word in line.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')) {
        let w = word.trim_matches(':');
        if w.contains("::") {
            return Some(w.to_string());
        }
        let chars: Vec<char> = w.chars().collect();
        let camel = chars.len() > 3
            && chars[0].is_ascii_uppercase()
            && chars
                .windows(2)
                .any(|p| p[0].is_ascii_lowercase() && p[1].is_ascii_uppercase());
        // Consensus names are not Rust names.
        if camel && !["PoS", "DPoS", "PoW"].contains(&w) {
            return Some(w.to_string());
        }
    }
    None
}

#[test]
fn each_error_says_its_cause_once_and_names_no_rust_item() {
    let dir = std::env::temp_dir().join(format!("miner-errors-once-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let missing = p("missing-genesis.json");
    let bad_json = p("bad-genesis.json");
    std::fs::write(&bad_json, "{\"accounts\": [").expect("write");
    let no_dir = p("no-such-folder/out.json");
    let cache_dir = p("cache");
    std::fs::create_dir_all(&cache_dir).expect("cache dir");
    std::fs::write(
        dir.join("cache").join("kernel-calibration.json"),
        "not json",
    )
    .expect("write the cache");
    let cookie = p("missing.cookie");
    let chain = p("missing-chain.json");
    let cases: Vec<Vec<&str>> = vec![
        vec!["experiment", "pos", "--genesis", &missing],
        vec!["experiment", "pos", "--genesis", &bad_json],
        vec!["experiment", "dpos", "--genesis", &missing],
        vec!["experiment", "compare", "--genesis", &missing],
        vec![
            "experiment",
            "pos",
            "--blocks",
            "10",
            "--write-genesis",
            &no_dir,
        ],
        vec!["experiment", "pos", "--blocks", "10", "--csv", &no_dir],
        vec!["experiment", "double-spend", "--attacker", "2"],
        vec!["experiment", "pbft", "--faulty", "x"],
        vec!["mine", "--pool", "stratum+ssl://pool:3333"],
        vec!["mine", "--pool", "stratum+tcp://pool"],
        vec!["mine", "--memory", "--difficulty", "0"],
        vec!["mine", "--memory", "--difficulty", "abc"],
        vec!["mine", "--memory", "--chain", &chain],
        vec![
            "mine",
            "--node",
            "http://127.0.0.1:1",
            "--rpccookiefile",
            &cookie,
        ],
        vec!["scan", "--header", "zz"],
        vec!["retarget-sim", "--hashrate", "bogus"],
        vec!["retarget-sim", "--blocks", "100", "--svg", &no_dir],
        // A bad kernel cache is a warning, and mining goes on.
        vec!["mine", "--datadir", &cache_dir, "-d", "1000", "-n", "1"],
    ];
    for args in &cases {
        let out = miner(args);
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert!(!err.trim().is_empty(), "{args:?}: nothing on stderr");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        for (i, line) in lines.iter().enumerate() {
            assert!(
                !lines[..i].contains(line),
                "{args:?}: the line {line:?} repeats:\n{err}"
            );
            if let Some(text) = repeated_text(line, 20) {
                panic!("{args:?}: {text:?} twice in one line:\n{line}");
            }
            if let Some(name) = rust_name(line) {
                panic!("{args:?}: the Rust name {name:?} shown to the user:\n{line}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
