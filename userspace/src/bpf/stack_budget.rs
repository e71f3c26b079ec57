//! A guard on the kernel's stack limit, checked on the embedded object without loading
//! it: the verifier refuses a program whose deepest chain of BPF-to-BPF calls needs more
//! than 512 stack bytes (each frame rounded up to 16 with the JIT, as here; to 32, and
//! at least 32, under the interpreter). How much stack a function takes
//! is the compiler's choice, and a new toolchain once grew `sys_exit` from under the
//! limit to 560 bytes with no change to the source; this test fails first, with the
//! chain, while there is still a margin.

use std::collections::{BTreeMap, BTreeSet};

use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget};

/// A function's place: its section's index and its offset there.
type At = (usize, u64);

/// What the verifier allows a program and its callees together.
const KERNEL_LIMIT: u64 = 512;
/// What this build may use: the rest is a margin for another compiler's choices.
const BUDGET: u64 = 480;

const BPF_CALL: u8 = 0x85;
const BPF_LD_IMM64: u8 = 0x18;
const BPF_MOV64_X: u8 = 0xbf;
const BPF_ADD64_K: u8 = 0x07;
const PSEUDO_CALL: u8 = 1;
const PSEUDO_FUNC: u8 = 4;
const FRAME_POINTER: u8 = 10;

/// A function of the object: where it is, and what its own frame and callees are.
#[derive(Debug, Default)]
struct Function {
    name: String,
    frame: u64,
    calls: BTreeSet<At>,
}

/// The instruction at byte `at` of `code`: opcode, dst, src, offset, immediate.
fn insn(code: &[u8], at: usize) -> (u8, u8, u8, i16, i32) {
    let b = &code[at..at + 8];
    (
        b[0],
        b[1] & 0x0f,
        b[1] >> 4,
        i16::from_le_bytes([b[2], b[3]]),
        i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
    )
}

/// Every function of the object by (section, offset), with its own frame size (the
/// deepest byte below the frame pointer it touches) and the functions it calls or
/// hands to a helper as a callback.
fn functions(elf: &object::File) -> BTreeMap<At, Function> {
    let mut found = BTreeMap::new();
    for sym in elf.symbols() {
        let (Some(section), object::SymbolKind::Text) = (sym.section_index(), sym.kind()) else {
            continue;
        };
        if sym.size() == 0 {
            continue;
        }
        let Ok(data) = elf.section_by_index(section).and_then(|s| s.data()) else {
            continue;
        };
        let relocated: BTreeMap<u64, At> = elf
            .section_by_index(section)
            .map(|s| {
                s.relocations()
                    .filter_map(|(at, r)| {
                        let RelocationTarget::Symbol(target) = r.target() else {
                            return None;
                        };
                        let target = elf.symbol_by_index(target).ok()?;
                        Some((at, (target.section_index()?.0, target.address())))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (start, end) = (
            sym.address() as usize,
            (sym.address() + sym.size()) as usize,
        );
        let code = &data[start..end.min(data.len())];
        let mut f = Function {
            name: sym.name().unwrap_or("?").to_owned(),
            ..Function::default()
        };
        let mut from_fp: BTreeSet<u8> = BTreeSet::new();
        let mut at = 0;
        while at + 8 <= code.len() {
            let (op, dst, src, off, imm) = insn(code, at);
            let pc = (start + at) as u64;
            if (src == FRAME_POINTER || dst == FRAME_POINTER) && off < 0 {
                f.frame = f.frame.max(u64::from(off.unsigned_abs()));
            }
            if op == BPF_MOV64_X && src == FRAME_POINTER {
                from_fp.insert(dst);
            } else if op == BPF_ADD64_K && from_fp.contains(&dst) && imm < 0 {
                f.frame = f.frame.max(u64::from(imm.unsigned_abs()));
            } else if dst != FRAME_POINTER {
                from_fp.remove(&dst);
            }
            let call = (op == BPF_CALL && src == PSEUDO_CALL)
                || (op == BPF_LD_IMM64 && src == PSEUDO_FUNC);
            if call {
                // Relocated against a symbol (another section, or a section symbol
                // plus the immediate), or relative to the next instruction.
                let slots = i64::from(imm) + 1;
                let target = match relocated.get(&pc) {
                    Some(&(s, base)) => (s, base.wrapping_add_signed(slots * 8)),
                    None => (section.0, (pc + 8).wrapping_add_signed((slots - 1) * 8)),
                };
                f.calls.insert(target);
            }
            at += if op == BPF_LD_IMM64 { 16 } else { 8 };
        }
        found.insert((section.0, sym.address()), f);
    }
    found
}

/// The deepest chain from `at`, as the verifier counts it with the JIT (frames rounded
/// up to 16), with the names along it.
fn deepest(all: &BTreeMap<At, Function>, at: At, depth: usize) -> (u64, Vec<String>) {
    let Some(f) = all.get(&at) else {
        return (0, vec![format!("<unknown function at {at:?}>")]);
    };
    let own = f.frame.div_ceil(16) * 16;
    let mut best = (0, Vec::new());
    if depth < 8 {
        for &callee in &f.calls {
            let below = deepest(all, callee, depth + 1);
            if below.0 > best.0 {
                best = below;
            }
        }
    }
    let mut chain = vec![format!("{} ({own})", f.name)];
    chain.extend(best.1);
    (own + best.0, chain)
}

#[test]
fn every_program_stays_inside_the_verifiers_stack_limit_with_a_margin() {
    let elf = object::File::parse(super::loader::OBJECT).expect("the embedded object is ELF");
    let all = functions(&elf);
    let programs: Vec<_> = elf
        .symbols()
        .filter(|s| s.is_global() && s.kind() == object::SymbolKind::Text)
        .filter(|s| {
            s.section_index()
                .and_then(|i| elf.section_by_index(i).ok())
                .and_then(|sec| sec.name().ok().map(|n| n != ".text"))
                .unwrap_or(false)
        })
        .filter_map(|s| Some((s.section_index()?.0, s.address())))
        .collect();
    assert!(
        programs.len() >= 10,
        "found only {} programs in the object",
        programs.len()
    );
    let mut over = Vec::new();
    for program in programs {
        let (bytes, chain) = deepest(&all, program, 0);
        assert!(
            !chain.iter().any(|c| c.starts_with("<unknown")),
            "{chain:?}"
        );
        if bytes > BUDGET {
            over.push(format!("{bytes} bytes: {}", chain.join(" -> ")));
        }
    }
    assert!(
        over.is_empty(),
        "programs past the {BUDGET}-byte budget (the kernel refuses past {KERNEL_LIMIT}):\n{}",
        over.join("\n")
    );
}

#[test]
fn the_frame_reader_sees_a_known_frame() {
    // `act` writes its record into the ring buffer and builds its repeat key in a
    // scratch map: a frame far from zero and from the limit.
    let elf = object::File::parse(super::loader::OBJECT).expect("the embedded object is ELF");
    let all = functions(&elf);
    let act = all
        .values()
        .find(|f| f.name.contains("report3act"))
        .expect("syscalls::act in the object");
    assert!(act.frame > 32 && act.frame < 320, "{act:?}");
    let exit = all
        .values()
        .find(|f| f.name == "sys_exit")
        .expect("sys_exit in the object");
    assert!(
        !exit.calls.is_empty(),
        "sys_exit calls subprograms: {exit:?}"
    );
}
