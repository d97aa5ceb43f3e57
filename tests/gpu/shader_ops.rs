//! The GPU kernel's integer operations per nonce, counted in the SPIR-V that naga emits for
//! `shaders/sha256d.wgsl` (what wgpu hands a Vulkan driver). This is the tracked figure for GPU
//! speed where no GPU is at hand (BENCHMARKS.md, "Operations per nonce"): a change that adds
//! work to the per-nonce path fails here. No device is needed.
//!
//! Print the table: `cargo test --test gpu -- shader_ops:: --nocapture`.

use miner::backend::gpu::SHADER;
use spirv::Op;
use std::collections::{BTreeMap, HashMap};

/// Per-nonce integer operations in the SPIR-V must stay at or below this. Measured 5,789;
/// the kernel before this count existed gave 7,044, its 1,038 rotates going through a helper
/// with a run-time amount (see BENCHMARKS.md). The bound leaves 1% for harmless reshuffles.
const MAX_OPS_PER_NONCE: u64 = 5_850;
/// The same with each rotate's shift pair and OR fused into one funnel shift, as a GPU runs it:
/// measured 3,749.
const MAX_FUSED_OPS_PER_NONCE: u64 = 3_790;
/// And with three-input logic and adds formed too (the greedy estimate): measured 2,706, next
/// to the ~2,560 DESIGN.md §4 gives as the minimum for SHA-256d with midstate and early reject.
const MAX_THREE_INPUT_OPS_PER_NONCE: u64 = 2_740;

/// One SPIR-V instruction: its opcode and operand words.
struct Inst {
    op: Op,
    args: Vec<u32>,
}

/// A basic block: its label and instructions.
struct Block {
    label: u32,
    insts: Vec<Inst>,
}

/// Parses a SPIR-V module into its functions' blocks (by function id) and its constants.
fn parse(words: &[u32]) -> (HashMap<u32, Vec<Block>>, HashMap<u32, u32>) {
    assert_eq!(words.first(), Some(&0x0723_0203), "SPIR-V magic number");
    let mut functions = HashMap::new();
    let mut constants = HashMap::new();
    let mut current: Option<(u32, Vec<Block>)> = None;
    let mut i = 5;
    while i < words.len() {
        let count = (words[i] >> 16) as usize;
        assert!(count > 0, "malformed instruction at word {i}");
        let op = Op::from_u32(words[i] & 0xffff).expect("a known opcode");
        let args = words[i + 1..i + count].to_vec();
        i += count;
        match op {
            Op::Constant => {
                constants.insert(args[1], args[2]);
            }
            Op::Function => current = Some((args[1], Vec::new())),
            Op::FunctionEnd => {
                let (id, blocks) = current.take().expect("a function");
                functions.insert(id, blocks);
            }
            Op::Label => {
                if let Some((_, blocks)) = current.as_mut() {
                    blocks.push(Block {
                        label: args[0],
                        insts: Vec::new(),
                    });
                }
            }
            _ => {
                if let Some(block) = current.as_mut().and_then(|(_, b)| b.last_mut()) {
                    block.insts.push(Inst { op, args });
                }
            }
        }
    }
    (functions, constants)
}

/// The class of an integer ALU operation; `None` for loads, stores, control flow and
/// composites, which a driver's register allocation and scheduling absorb.
fn class(op: Op) -> Option<&'static str> {
    Some(match op {
        Op::IAdd | Op::ISub => "add",
        Op::BitwiseAnd | Op::BitwiseOr | Op::BitwiseXor | Op::Not => "and/or/xor/not",
        Op::ShiftLeftLogical | Op::ShiftRightLogical | Op::ShiftRightArithmetic => "shift",
        Op::IMul => "mul",
        Op::IEqual
        | Op::INotEqual
        | Op::ULessThan
        | Op::ULessThanEqual
        | Op::UGreaterThan
        | Op::UGreaterThanEqual
        | Op::SLessThan
        | Op::SLessThanEqual
        | Op::SGreaterThan
        | Op::SGreaterThanEqual
        | Op::Select
        | Op::LogicalAnd
        | Op::LogicalOr
        | Op::LogicalNot => "compare/select",
        _ => return None,
    })
}

/// Operation counts of a stretch of code.
#[derive(Default, Debug)]
struct Counts {
    by_class: BTreeMap<&'static str, u64>,
    /// Shift pairs joined by an OR that a driver can fuse into one funnel shift (rotate).
    rotates: u64,
    /// Shifts whose amount is not a literal (a rotate helper with a run-time amount).
    variable_shifts: u64,
    /// Two-input logic ops and adds that fold into their only user as a three-input op (LOP3,
    /// IADD3 on NVIDIA GPUs), by a greedy pass in program order: an estimate of what a driver
    /// saves, as the reference minimum assumes.
    absorbed: u64,
}

impl Counts {
    fn total(&self) -> u64 {
        self.by_class.values().sum()
    }
    fn add(&mut self, other: &Counts) {
        for (k, v) in &other.by_class {
            *self.by_class.entry(k).or_default() += v;
        }
        self.rotates += other.rotates;
        self.variable_shifts += other.variable_shifts;
        self.absorbed += other.absorbed;
    }
    /// Ops with each rotate fused into one funnel shift.
    fn fused_rotates(&self) -> u64 {
        self.total() - 2 * self.rotates
    }
    /// Ops with rotates fused and three-input logic and adds formed.
    fn fused_three_input(&self) -> u64 {
        self.fused_rotates() - self.absorbed
    }
}

/// How often each id occurs in the function bodies: 1 for its definition, then 1 per use.
fn occurrences(functions: &HashMap<u32, Vec<Block>>) -> HashMap<u32, u32> {
    let mut n = HashMap::new();
    for inst in functions.values().flatten().flat_map(|b| &b.insts) {
        for &word in &inst.args {
            *n.entry(word).or_default() += 1;
        }
    }
    n
}

/// A logic op or add as the three-input pass sees it: its class and its inputs (distinct ones
/// for logic, where any function of three inputs is one LOP3; all of them for adds).
struct Node {
    logic: bool,
    inputs: Vec<(u32, u32)>,
}

/// Counts `blocks`, adding each called function's whole count per call.
fn count(
    blocks: &[&Block],
    functions: &HashMap<u32, Vec<Block>>,
    constants: &HashMap<u32, u32>,
) -> Counts {
    let mut c = Counts::default();
    // A loaded value stands for (variable, stores to it so far): two loads of `e` with no store
    // between are the same value, as a rotate `(e >> n) | (e << 32 - n)` reads it.
    let mut stores: HashMap<u32, u32> = HashMap::new();
    let mut value: HashMap<u32, (u32, u32)> = HashMap::new();
    // Shift results: (right?, value, literal amount).
    let mut shifts: HashMap<u32, (bool, (u32, u32), u32)> = HashMap::new();
    let source = |value: &HashMap<u32, (u32, u32)>, id: u32| *value.get(&id).unwrap_or(&(id, 0));
    let uses = occurrences(functions);
    let mut nodes: HashMap<u32, Node> = HashMap::new();
    let mut funnels: std::collections::HashSet<u32> = std::collections::HashSet::new();
    for block in blocks {
        for inst in &block.insts {
            match inst.op {
                Op::Store => *stores.entry(inst.args[0]).or_default() += 1,
                Op::Load => {
                    let generation = stores.get(&inst.args[2]).copied().unwrap_or(0);
                    value.insert(inst.args[1], (inst.args[2], generation));
                }
                Op::FunctionCall => {
                    let callee = &functions[&inst.args[2]];
                    c.add(&count(
                        &callee.iter().collect::<Vec<_>>(),
                        functions,
                        constants,
                    ));
                }
                Op::ShiftLeftLogical | Op::ShiftRightLogical => {
                    match constants.get(&inst.args[3]) {
                        Some(&amount) => {
                            let right = inst.op == Op::ShiftRightLogical;
                            shifts.insert(
                                inst.args[1],
                                (right, source(&value, inst.args[2]), amount),
                            );
                        }
                        None => c.variable_shifts += 1,
                    }
                }
                Op::BitwiseOr => {
                    if let (Some(x), Some(y)) =
                        (shifts.get(&inst.args[2]), shifts.get(&inst.args[3]))
                    {
                        if x.0 != y.0 && x.1 == y.1 && x.2 + y.2 == 32 {
                            c.rotates += 1;
                            funnels.insert(inst.args[1]);
                        }
                    }
                }
                _ => {}
            }
            if let Some(k) = class(inst.op) {
                *c.by_class.entry(k).or_default() += 1;
            }
            // Three-input forms: an and/or/xor (or add) whose result has no other user folds
            // into its user when their inputs together number at most three.
            let logic = matches!(inst.op, Op::BitwiseAnd | Op::BitwiseOr | Op::BitwiseXor);
            if (logic || inst.op == Op::IAdd) && !funnels.contains(&inst.args[1]) {
                let mut inputs: Vec<(u32, u32)> = inst.args[2..4]
                    .iter()
                    .map(|&id| source(&value, id))
                    .collect();
                for &operand in &inst.args[2..4] {
                    let Some(child) = nodes.get(&operand) else {
                        continue;
                    };
                    if child.logic != logic || uses[&operand] != 2 {
                        continue;
                    }
                    let mut union = inputs.clone();
                    if let Some(at) = union.iter().position(|&i| i == source(&value, operand)) {
                        union.remove(at);
                    }
                    union.extend(child.inputs.iter().copied());
                    if logic {
                        union.sort_unstable();
                        union.dedup();
                    }
                    if union.len() <= 3 {
                        inputs = union;
                        c.absorbed += 1;
                    }
                }
                nodes.insert(inst.args[1], Node { logic, inputs });
            }
        }
    }
    c
}

/// The operations one nonce costs on the path every nonce takes: the blocks of `main`'s nonce
/// loop, less the candidate path (the `if` after the early reject, taken about once in 2^32 at
/// a real target). Also returns the candidate path's own count.
fn per_nonce(words: &[u32]) -> (Counts, Counts) {
    let (functions, constants) = parse(words);
    // `main` holds the unrolled hash, by far the largest block (`meets` has a loop too).
    let main = functions
        .values()
        .max_by_key(|blocks| blocks.iter().map(|b| b.insts.len()).max())
        .expect("the entry point");
    let at = |label: u32| {
        main.iter()
            .position(|b| b.label == label)
            .expect("a block with that label")
    };
    let header = main
        .iter()
        .position(|b| b.insts.iter().any(|i| i.op == Op::LoopMerge))
        .expect("loop header");
    let merge = main[header]
        .insts
        .iter()
        .find(|i| i.op == Op::LoopMerge)
        .map(|i| at(i.args[0]))
        .expect("loop merge");
    let hot = (header..merge)
        .max_by_key(|&b| main[b].insts.len())
        .expect("a loop body");
    // The hot block ends in the early-reject branch: `if (candidate) { ... }`.
    let selection = main[hot]
        .insts
        .iter()
        .find(|i| i.op == Op::SelectionMerge)
        .map(|i| at(i.args[0]))
        .expect("the early-reject branch");
    let taken = main[hot]
        .insts
        .iter()
        .find(|i| i.op == Op::BranchConditional)
        .map(|i| at(i.args[1]))
        .expect("the early-reject branch");
    let every: Vec<&Block> = (header..merge)
        .filter(|b| !(taken..selection).contains(b))
        .map(|b| &main[b])
        .collect();
    let candidate: Vec<&Block> = (taken..selection).map(|b| &main[b]).collect();
    (
        count(&every, &functions, &constants),
        count(&candidate, &functions, &constants),
    )
}

/// SPIR-V for the kernel at the default pipeline constants, as wgpu's Vulkan backend builds it.
fn spirv() -> Vec<u32> {
    let module = naga::front::wgsl::parse_str(SHADER).expect("WGSL parses");
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .expect("WGSL validates");
    let mut constants = naga::back::PipelineConstants::default();
    constants.insert("WORKGROUP_SIZE".to_string(), 256.0);
    constants.insert("NONCES_PER_INVOCATION".to_string(), 8.0);
    let (module, info) = naga::back::pipeline_constants::process_overrides(
        &module,
        &info,
        Some((naga::ShaderStage::Compute, "main")),
        &constants,
    )
    .expect("overrides resolve");
    naga::back::spv::write_vec(
        &module,
        &info,
        &naga::back::spv::Options::default(),
        Some(&naga::back::spv::PipelineOptions {
            shader_stage: naga::ShaderStage::Compute,
            entry_point: "main".to_string(),
        }),
    )
    .expect("SPIR-V")
}

#[test]
fn the_kernel_costs_at_most_the_tracked_integer_ops_per_nonce() {
    let (every, candidate) = per_nonce(&spirv());
    println!("integer operations per nonce in the SPIR-V naga emits for shaders/sha256d.wgsl:");
    for (class, n) in &every.by_class {
        println!("  {class:>16}: {n}");
    }
    let total = every.total();
    println!("  {:>16}: {total}", "total");
    println!(
        "  {:>16}: {} (each a shift pair + OR; fused into one funnel shift: {} ops)",
        "rotates",
        every.rotates,
        every.fused_rotates()
    );
    println!(
        "  {:>16}: {} more ops fold into three-input logic and adds (greedy estimate): {} ops",
        "3-input",
        every.absorbed,
        every.fused_three_input()
    );
    println!(
        "candidate path (taken ~once per 2^32 nonces at a real target): {} ops",
        candidate.total()
    );
    // Every rotate has literal amounts, so a driver can map it to one funnel shift.
    assert_eq!(every.variable_shifts, 0, "shifts by a run-time amount");
    // Both hashes: 6 rotates per round in about 120 rounds, 4 per schedule word in about 94.
    assert!(
        every.rotates > 900,
        "only {} rotates recognised: are they still literal shift pairs?",
        every.rotates
    );
    assert!(
        total <= MAX_OPS_PER_NONCE,
        "{total} integer ops per nonce, above the tracked {MAX_OPS_PER_NONCE}: the kernel does \
         more work per nonce than it did (see BENCHMARKS.md)"
    );
    assert!(
        total - 2 * every.rotates <= MAX_FUSED_OPS_PER_NONCE,
        "{} ops per nonce with rotates fused, above the tracked {MAX_FUSED_OPS_PER_NONCE}",
        total - 2 * every.rotates
    );
    assert!(
        every.fused_three_input() <= MAX_THREE_INPUT_OPS_PER_NONCE,
        "{} ops per nonce with three-input ops formed, above the tracked \
         {MAX_THREE_INPUT_OPS_PER_NONCE}",
        every.fused_three_input()
    );
    // The candidate path finishes the hash: at least the 3 to 7 rounds it redoes.
    assert!(candidate.total() > 100, "{}", candidate.total());
}

#[test]
fn the_counter_finds_rotates_and_the_candidate_path_in_a_small_kernel() {
    // The counter itself, on a hand-written kernel with known counts: one rotate (3 ops), an
    // add, a compare, and a candidate branch with one xor.
    let module = naga::front::wgsl::parse_str(
        "@group(0) @binding(0) var<storage, read_write> out: array<u32>;
         @compute @workgroup_size(1)
         fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
             var x = gid.x;
             for (var i = 0u; i < 4u; i++) {
                 x = ((x >> 7u) | (x << 25u)) + 5u;
                 if (x < 9u) { out[0] = x ^ 3u; }
             }
         }",
    )
    .expect("WGSL parses");
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .expect("WGSL validates");
    let words =
        naga::back::spv::write_vec(&module, &info, &naga::back::spv::Options::default(), None)
            .expect("SPIR-V");
    let (functions, constants) = parse(&words);
    let all: Vec<&Block> = functions.values().flatten().collect();
    let c = count(&all, &functions, &constants);
    assert_eq!(c.rotates, 1);
    assert_eq!(c.variable_shifts, 0);
    assert_eq!(c.by_class.get("shift"), Some(&2));
    // The rotate's OR and the candidate's XOR.
    assert_eq!(c.by_class.get("and/or/xor/not"), Some(&2));
    // Nothing there folds into a three-input op: the rotate is a funnel shift, and the XOR
    // reads a stored value.
    assert_eq!(c.absorbed, 0);
}

#[test]
fn the_counter_folds_three_input_logic_and_adds_but_not_four_inputs() {
    let words = |body: &str| {
        let src = format!(
            "@group(0) @binding(0) var<storage, read_write> out: array<u32>;
             @compute @workgroup_size(1)
             fn main(@builtin(global_invocation_id) gid: vec3<u32>) {{
                 let a = out[0]; let b = out[1]; let c = out[2]; let d = out[3];
                 {body}
             }}"
        );
        let module = naga::front::wgsl::parse_str(&src).expect("WGSL parses");
        let info = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .expect("WGSL validates");
        let spv =
            naga::back::spv::write_vec(&module, &info, &naga::back::spv::Options::default(), None)
                .expect("SPIR-V");
        let (functions, constants) = parse(&spv);
        let all: Vec<&Block> = functions.values().flatten().collect();
        count(&all, &functions, &constants).absorbed
    };
    // Ch(a, b, c) = c ^ (a & (b ^ c)): three inputs, one LOP3, so two of its three ops fold.
    assert_eq!(words("out[4] = c ^ (a & (b ^ c));"), 2);
    // a + b + c: one IADD3.
    assert_eq!(words("out[4] = a + b + c;"), 1);
    // a + b + c + d: four inputs, two ops at best.
    assert_eq!(words("out[4] = a + b + c + d;"), 1);
    // (a ^ b) ^ (c ^ d): four distinct inputs, two ops.
    assert_eq!(words("out[4] = (a ^ b) ^ (c ^ d);"), 1);
    // a ^ b used twice cannot fold into either user.
    assert_eq!(words("let x = a ^ b; out[4] = x & c; out[5] = x | d;"), 0);
}
