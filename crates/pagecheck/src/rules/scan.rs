//! What the third-step rules need beyond the call graph, read from the functions' code by a
//! linear pass of their own: the references to pageable and discardable data, and the value of
//! the argument a routine's contract names at each call
//! ([`routine_contracts::argument_of_interest`]).
//!
//! Both are exact where they are given. A rip-relative operand names its target by itself.
//! Argument values are followed only within straight-line code: everything known is forgotten
//! at every instruction another one may jump to (a branch or jump-table target, or the
//! instruction after one that does not fall through) and the volatile registers at every
//! call, so a value is reported only when every path to the call sets it. Values computed or
//! passed in from callers are unknown, and the rules then never assume the worse one.

use std::collections::{HashMap, HashSet};

use iced_x86::{
    Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpAccess,
    OpKind, Register,
};

use super::model::{DataAccess, DataPlace, DataRef};
use crate::decode::{CallGraph, External};
use crate::functions::Functions;
use crate::image::{Image, Residency};
use crate::pdb::{SymbolKind, Symbols};
use crate::registration::Policy;

/// The facts the rules read, per call or data site.
#[derive(Debug, Default)]
pub struct Facts {
    /// Value of the deciding argument at an external call site.
    pub arguments: HashMap<u32, u64>,
    /// Data references, per function.
    pub data: HashMap<usize, Vec<DataRef>>,
    /// Sites the `WdfDevStateIsNP` guard protects.
    pub guarded: HashSet<u32>,
}

/// The data sections whose references count: non-code `PAGE*` and `INIT` sections, and a code
/// section of those names that the PDB says holds a variable (a table placed in `PAGE` or
/// `INIT` next to code).
fn data_sections(image: &Image, symbols: &Symbols) -> Vec<(usize, DataPlace)> {
    let mut out = Vec::new();
    for (i, s) in image.sections.iter().enumerate() {
        let place = match s.residency {
            Residency::Resident => continue,
            Residency::Pageable => DataPlace::Pageable { locked: false },
            Residency::Discardable => DataPlace::Init,
        };
        let holds_variable = || {
            symbols
                .symbols
                .iter()
                .any(|sym| sym.kind == SymbolKind::Data && s.contains(sym.rva))
        };
        if !s.is_code() || holds_variable() {
            out.push((i, place));
        }
    }
    out
}

/// The routine an external call reaches, as the contract table names it.
#[must_use]
pub fn routine_name(image: &Image, external: External) -> Option<String> {
    match external {
        External::Import(slot) => image
            .import_at(slot)
            .map(|n| n.rsplit_once('!').map_or(n, |(_, name)| name).to_owned()),
        External::Wdf(index) => {
            index.and_then(|i| crate::wdf::function_name(u64::from(i)).map(str::to_owned))
        }
    }
}

/// The register that holds argument `position` of a call (Microsoft x64 convention).
const fn argument_register(position: u8) -> Option<Register> {
    match position {
        0 => Some(Register::RCX),
        1 => Some(Register::RDX),
        2 => Some(Register::R8),
        3 => Some(Register::R9),
        _ => None,
    }
}

/// Reads the facts for every function that needs them.
#[must_use]
pub fn scan(
    image: &Image,
    functions: &Functions,
    calls: &CallGraph,
    policy: &Policy,
    symbols: &Symbols,
) -> Facts {
    let sections: Vec<(usize, DataPlace)> = data_sections(image, symbols)
        .into_iter()
        .map(|(i, place)| match place {
            DataPlace::Pageable { .. } => (
                i,
                DataPlace::Pageable {
                    locked: policy.lock_of(i).is_some(),
                },
            ),
            DataPlace::Init => (i, place),
        })
        .collect();
    let mut facts = Facts::default();
    let mut info = InstructionInfoFactory::new();
    let mut buffer: Vec<Instruction> = Vec::new();
    for (f, function) in functions.list.iter().enumerate() {
        // The call sites whose argument decides something, with the argument.
        let wanted: HashMap<u32, u8> = calls
            .externals_of(f)
            .iter()
            .filter_map(|&(site, external)| {
                let name = routine_name(image, external)?;
                routine_contracts::argument_of_interest(&name).map(|p| (site, p))
            })
            .collect();
        // INIT code may use INIT data and runs before anything pageable matters.
        let wants_data = !sections.is_empty() && function.residency != Residency::Discardable;
        if wanted.is_empty() && !wants_data {
            continue;
        }
        decode_function(
            image,
            function.start,
            function.end,
            function.section,
            &mut buffer,
        );
        if wants_data {
            let refs = data_refs(image, functions, &sections, &buffer, &mut info);
            if !refs.is_empty() {
                facts.data.insert(f, refs);
            }
        }
        if !wanted.is_empty() {
            let joins: HashSet<u32> = calls
                .edges_of(f)
                .iter()
                .filter(|e| e.target >= function.start && e.target < function.end)
                .map(|e| e.target)
                .collect();
            constant_arguments(
                image.image_base,
                &buffer,
                &wanted,
                &joins,
                &mut info,
                &mut facts.arguments,
            );
        }
    }
    facts
}

/// Decodes `[start, end)` into `out`.
fn decode_function(
    image: &Image,
    start: u32,
    end: u32,
    section: usize,
    out: &mut Vec<Instruction>,
) {
    out.clear();
    let s = &image.sections[section];
    let data = image.section_data(section);
    let from = (start - s.rva) as usize;
    let to = ((end - s.rva) as usize).min(data.len());
    if from >= to {
        return;
    }
    let mut decoder = Decoder::with_ip(
        64,
        &data[from..to],
        image.image_base.wrapping_add(u64::from(start)),
        DecoderOptions::NONE,
    );
    let mut instr = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut instr);
        out.push(instr);
    }
}

/// RVA of an instruction of an image loaded at `image_base`.
fn rva(image_base: u64, instr: &Instruction) -> u32 {
    // Functions lie inside the image, so the difference fits.
    #[allow(clippy::cast_possible_truncation)]
    let rva = instr.ip().wrapping_sub(image_base) as u32;
    rva
}

/// The references of one function's instructions to the data sections.
fn data_refs(
    image: &Image,
    functions: &Functions,
    sections: &[(usize, DataPlace)],
    code: &[Instruction],
    info: &mut InstructionInfoFactory,
) -> Vec<DataRef> {
    let mut out = Vec::new();
    for instr in code {
        if instr.is_invalid() || !instr.is_ip_rel_memory_operand() {
            continue;
        }
        let Some(target) = image.rva_of_va(instr.ip_rel_memory_address()) else {
            continue;
        };
        let Some(&(_, place)) = sections
            .iter()
            .find(|(i, _)| image.sections[*i].contains(target))
        else {
            continue;
        };
        let access = if instr.mnemonic() == Mnemonic::Lea {
            // The address of a function in a PAGE or INIT code section is not data: the code
            // rules judge it.
            if functions.containing(target).is_some() {
                continue;
            }
            DataAccess::Address
        } else {
            let written = info.info(instr).used_memory().iter().any(|m| {
                matches!(
                    m.access(),
                    OpAccess::Write
                        | OpAccess::ReadWrite
                        | OpAccess::CondWrite
                        | OpAccess::ReadCondWrite
                )
            });
            if written {
                DataAccess::Write
            } else {
                DataAccess::Read
            }
        };
        out.push(DataRef {
            site: rva(image.image_base, instr),
            target,
            place,
            access,
        });
    }
    out
}

/// The value each register holds, where known.
#[derive(Default)]
struct Known {
    registers: HashMap<Register, u64>,
    /// `[rsp+offset]` slots.
    stack: HashMap<i64, u64>,
}

impl Known {
    fn forget(&mut self) {
        self.registers.clear();
        self.stack.clear();
    }
}

/// Follows constants through straight-line code and records, at each wanted call, the value of
/// its deciding argument.
fn constant_arguments(
    image_base: u64,
    code: &[Instruction],
    wanted: &HashMap<u32, u8>,
    joins: &HashSet<u32>,
    info: &mut InstructionInfoFactory,
    out: &mut HashMap<u32, u64>,
) {
    // Every target of a branch inside the function, and every instruction after one that does
    // not fall through, may be reached with other values.
    let mut resets: HashSet<u32> = joins.clone();
    for (i, instr) in code.iter().enumerate() {
        match instr.op0_kind() {
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
                // Functions lie inside the image: the difference fits.
                #[allow(clippy::cast_possible_truncation)]
                resets.insert(instr.near_branch_target().wrapping_sub(image_base) as u32);
            }
            _ => {}
        }
        if matches!(
            instr.flow_control(),
            FlowControl::UnconditionalBranch
                | FlowControl::IndirectBranch
                | FlowControl::Return
                | FlowControl::Interrupt
        ) && let Some(next) = code.get(i + 1)
        {
            resets.insert(rva(image_base, next));
        }
    }
    let mut known = Known::default();
    for instr in code {
        let site = rva(image_base, instr);
        if resets.contains(&site) || instr.is_invalid() {
            known.forget();
        }
        if instr.flow_control() == FlowControl::Call
            || instr.flow_control() == FlowControl::IndirectCall
        {
            if let Some(&position) = wanted.get(&site) {
                let value = match argument_register(position) {
                    Some(reg) => known.registers.get(&reg).copied(),
                    // Stack arguments sit above the 32-byte home area at the call.
                    None => known
                        .stack
                        .get(&(0x20 + 8 * (i64::from(position) - 4)))
                        .copied(),
                };
                if let Some(value) = value {
                    out.insert(site, value);
                }
            }
            for reg in [
                Register::RAX,
                Register::RCX,
                Register::RDX,
                Register::R8,
                Register::R9,
                Register::R10,
                Register::R11,
            ] {
                known.registers.remove(&reg);
            }
            continue;
        }
        step(instr, &mut known, info);
    }
}

/// The transfer of one instruction on the known constants.
fn step(instr: &Instruction, known: &mut Known, info: &mut InstructionInfoFactory) {
    if !constant_move(instr, known) {
        forget_written(instr, known, info);
    }
}

/// A move of a constant (or of a register or stack slot holding one) into a register or a
/// stack slot: tracked, and true. False for every other instruction.
fn constant_move(instr: &Instruction, known: &mut Known) -> bool {
    let dest = instr.op0_register();
    let full = dest.full_register();
    let rsp_slot = |i: &Instruction| {
        (i.memory_base() == Register::RSP && i.memory_index() == Register::None)
            .then(|| i.memory_displacement64().cast_signed())
    };
    match (instr.mnemonic(), instr.op0_kind(), instr.op1_kind()) {
        // AH..DH are bits 8-15: not modelled.
        (_, OpKind::Register, _)
            if matches!(
                dest,
                Register::AH | Register::BH | Register::CH | Register::DH
            ) =>
        {
            false
        }
        (
            Mnemonic::Mov,
            OpKind::Register,
            OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate32to64,
        ) => {
            let value = written(
                dest,
                known.registers.get(&full).copied(),
                instr.immediate(1),
            );
            known.registers.insert(full, value);
            true
        }
        (Mnemonic::Xor | Mnemonic::Sub, OpKind::Register, OpKind::Register)
            if instr.op1_register() == dest && dest.size() >= 4 =>
        {
            known.registers.insert(full, 0);
            true
        }
        (Mnemonic::Mov, OpKind::Register, source @ (OpKind::Register | OpKind::Memory))
            if dest.size() >= 4 =>
        {
            let from = match source {
                OpKind::Register => known
                    .registers
                    .get(&instr.op1_register().full_register())
                    .copied(),
                _ => rsp_slot(instr).and_then(|slot| known.stack.get(&slot).copied()),
            };
            match from {
                Some(v) => known.registers.insert(full, written(dest, None, v)),
                None => known.registers.remove(&full),
            };
            true
        }
        (Mnemonic::Mov, OpKind::Memory, source) if rsp_slot(instr).is_some() => {
            let value = match source {
                OpKind::Immediate8
                | OpKind::Immediate16
                | OpKind::Immediate32
                | OpKind::Immediate32to64
                | OpKind::Immediate64 => Some(instr.immediate(1)),
                OpKind::Register => known
                    .registers
                    .get(&instr.op1_register().full_register())
                    .copied(),
                _ => None,
            };
            if let Some(slot) = rsp_slot(instr) {
                match value {
                    Some(v) => known.stack.insert(slot, v),
                    None => known.stack.remove(&slot),
                };
            }
            true
        }
        _ => false,
    }
}

/// The register's value after `value` is written to `dest`, whose full register held `old`.
fn written(dest: Register, old: Option<u64>, value: u64) -> u64 {
    match dest.size() {
        // A 32-bit write zero-extends; a sign-extended 32-bit immediate is what it says.
        4 => value & 0xffff_ffff,
        8 => value,
        // A byte or word write keeps the rest of the register: known only if the rest is.
        // Otherwise the callee of a BOOLEAN or enumeration argument reads only what was
        // written, and the rest counts as zero.
        size => {
            let mask = (1u64 << (8 * size)) - 1;
            old.map_or(value & mask, |old| (old & !mask) | (value & mask))
        }
    }
}

/// What an instruction writes is no longer known (a write through `rsp` or to `rsp` itself
/// forgets the stack slots).
fn forget_written(instr: &Instruction, known: &mut Known, info: &mut InstructionInfoFactory) {
    let writes = |access: OpAccess| {
        matches!(
            access,
            OpAccess::Write | OpAccess::ReadWrite | OpAccess::CondWrite | OpAccess::ReadCondWrite
        )
    };
    let used = info.info(instr);
    for r in used.used_registers() {
        if writes(r.access()) {
            let reg = r.register().full_register();
            known.registers.remove(&reg);
            if reg == Register::RSP {
                known.stack.clear();
            }
        }
    }
    if used
        .used_memory()
        .iter()
        .any(|m| m.base() == Register::RSP && writes(m.access()))
    {
        known.stack.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x1_4000_0000;

    /// Decodes `bytes` as a function at RVA 0x1000 and returns the deciding argument found at
    /// each call that `wanted` lists.
    fn arguments(bytes: &[u8], wanted: &[(u32, u8)]) -> HashMap<u32, u64> {
        let mut decoder = Decoder::with_ip(64, bytes, BASE + 0x1000, DecoderOptions::NONE);
        let code: Vec<Instruction> = decoder.iter().collect();
        let mut out = HashMap::new();
        constant_arguments(
            BASE,
            &code,
            &wanted.iter().copied().collect(),
            &HashSet::new(),
            &mut InstructionInfoFactory::new(),
            &mut out,
        );
        out
    }

    #[test]
    fn a_constant_in_the_argument_register_reaches_the_call() {
        // mov ecx, 0x100 ; xor edx, edx ; call [rip+0x100]
        let code = [
            0xb9, 0x00, 0x01, 0x00, 0x00, 0x31, 0xd2, 0xff, 0x15, 0x00, 0x01, 0x00, 0x00,
        ];
        assert_eq!(
            arguments(&code, &[(0x1007, 0)]),
            HashMap::from([(0x1007, 0x100)])
        );
        assert_eq!(
            arguments(&code, &[(0x1007, 1)]),
            HashMap::from([(0x1007, 0)])
        );
        // r8 was never set.
        assert!(arguments(&code, &[(0x1007, 2)]).is_empty());
    }

    #[test]
    fn byte_moves_registers_and_stack_slots_carry_the_value() {
        // mov r8b, 1 ; mov eax, 7 ; mov [rsp+0x20], rax ; mov r9d, eax ; call rax
        let code = [
            0x41, 0xb0, 0x01, 0xb8, 0x07, 0x00, 0x00, 0x00, 0x48, 0x89, 0x44, 0x24, 0x20, 0x41,
            0x89, 0xc1, 0xff, 0xd0,
        ];
        let call = 0x1010;
        assert_eq!(arguments(&code, &[(call, 2)]), HashMap::from([(call, 1)]));
        assert_eq!(arguments(&code, &[(call, 3)]), HashMap::from([(call, 7)]));
        assert_eq!(arguments(&code, &[(call, 4)]), HashMap::from([(call, 7)]));
    }

    #[test]
    fn a_join_or_a_call_forgets_what_was_known() {
        // mov ecx, 0x100 ; jmp +0 (the next instruction is a branch target) ; call [rip+0x100]
        let joined = [
            0xb9, 0x00, 0x01, 0x00, 0x00, 0xeb, 0x00, 0xff, 0x15, 0x00, 0x01, 0x00, 0x00,
        ];
        assert!(arguments(&joined, &[(0x1007, 0)]).is_empty());
        // mov ecx, 0x100 ; call rax ; call [rip+0x100]: the first call clobbers rcx.
        let clobbered = [
            0xb9, 0x00, 0x01, 0x00, 0x00, 0xff, 0xd0, 0xff, 0x15, 0x00, 0x01, 0x00, 0x00,
        ];
        assert!(arguments(&clobbered, &[(0x1007, 0)]).is_empty());
        // mov ecx, 0x100 ; add ecx, edx ; call [rip+0x100]: computed, unknown.
        let computed = [
            0xb9, 0x00, 0x01, 0x00, 0x00, 0x01, 0xd1, 0xff, 0x15, 0x00, 0x01, 0x00, 0x00,
        ];
        assert!(arguments(&computed, &[(0x1007, 0)]).is_empty());
    }
}
