//! Loads and stores: what the tracked memory and registers hold after a `mov` from or to
//! memory, an SSE move, a conditional move, `rep movs`/`rep stos`, and any other instruction
//! that writes what the analysis does not follow.

use iced_x86::{Instruction, Mnemonic, OpAccess, OpKind, Register};

use crate::view::{Special, View};

use super::super::memory::{Content, MAX_TRACKED, address_of};
use super::super::state::{Machine, RAX, RCX, RDI, RSI, gpr, xmm};
use super::super::value::Value;
use super::calls::wdf_index;
use super::{Transfer, memory_size};

impl<V: View> Transfer<'_, V> {
    /// The value a memory operand read of `size` bytes gives.
    pub(super) fn load(&self, m: &Machine, instr: &Instruction, size: u32) -> Value {
        let view = self.view;
        if instr.is_ip_rel_memory_operand() {
            let Some(slot) = view.rva_of_va(instr.ip_rel_memory_address()) else {
                return Value::Unknown;
            };
            if size == 8 && view.is_wdf_table(slot) {
                return Value::WdfTable;
            }
            if size == 8 && view.is_import_slot(slot) {
                return Value::Import(slot);
            }
            match view.special_slot(slot) {
                Some(Special::GuardDispatch) if size == 8 => return Value::GuardDispatch,
                Some(Special::GuardCheck) if size == 8 => return Value::GuardCheck,
                _ => {}
            }
            if !view.is_read_only(slot) {
                return Value::Unknown;
            }
            if size == 8
                && let Some(target) = view.pointer_at(slot)
            {
                return Value::Address(target);
            }
            let mut bytes = [0u8; 8];
            return if size <= 8 && view.read_bytes(slot, &mut bytes[..size as usize]) {
                Value::Const(u64::from_le_bytes(bytes))
            } else {
                Value::Unknown
            };
        }
        match m.value(instr.memory_base()) {
            Value::WdfTable if size == 8 => Value::WdfSlot(wdf_index(instr)),
            Value::Address(base)
                if instr.memory_index() != Register::None && instr.memory_index_scale() == 4 =>
            {
                // `mov r32, [base + idx*4 + disp]` (MSVC: RVA entries off __ImageBase) or
                // `movsxd r64, [base + idx*4]` (LLVM: entries relative to the table).
                #[allow(clippy::cast_possible_truncation)]
                let table = base.wrapping_add(instr.memory_displacement64() as u32);
                Value::TableEntry {
                    table,
                    signed: instr.mnemonic() == Mnemonic::Movsxd,
                }
            }
            Value::Stack(_) | Value::Param { .. } if self.flow => {
                match address_of(m.address(instr)) {
                    Some(at) if size == 8 => m.mem.read_value(at, view),
                    Some(at) => m.mem.value_at(at, size).unwrap_or_else(|| {
                        m.mem
                            .read_bytes(at, size, view)
                            .map_or(Value::Unknown, Value::Const)
                    }),
                    None => Value::Unknown,
                }
            }
            _ => Value::Unknown,
        }
    }

    /// Dataflow mode: SSE moves and string stores that build structures, and for everything
    /// else, forgetting every register and memory byte the instruction writes.
    #[allow(clippy::too_many_lines)]
    pub(super) fn step_other(&mut self, m: &mut Machine, instr: &Instruction) {
        m.xmm_written = true;
        let mnemonic = instr.mnemonic();
        let (k0, k1) = (
            instr.op0_kind(),
            instr.op_count().checked_sub(1).map(|_| instr.op1_kind()),
        );
        let x0 = if k0 == OpKind::Register {
            xmm(instr.op0_register())
        } else {
            None
        };
        let x1 = if k1 == Some(OpKind::Register) {
            xmm(instr.op1_register())
        } else {
            None
        };
        match mnemonic {
            Mnemonic::Movups
            | Mnemonic::Movaps
            | Mnemonic::Movdqu
            | Mnemonic::Movdqa
            | Mnemonic::Movupd
            | Mnemonic::Movapd
            | Mnemonic::Lddqu => {
                if let Some(d) = x0 {
                    m.xmm[d] = match (k1, x1) {
                        (_, Some(s)) => m.xmm[s],
                        (Some(OpKind::Memory), _) => self.load_xmm(m, instr),
                        _ => [Value::Unknown; 2],
                    };
                    return;
                }
                if k0 == OpKind::Memory
                    && let Some(s) = x1
                {
                    let halves = m.xmm[s];
                    store_halves(m, instr, &halves);
                    return;
                }
            }
            Mnemonic::Movq | Mnemonic::Movsd | Mnemonic::Movd if x0.is_some() || x1.is_some() => {
                match (x0, k1, x1) {
                    // xmm <- xmm (movsd keeps the upper half, movq zeroes it)
                    (Some(d), _, Some(s)) => {
                        let low = m.xmm[s][0];
                        m.xmm[d] = if mnemonic == Mnemonic::Movsd {
                            [low, m.xmm[d][1]]
                        } else {
                            [low, Value::Const(0)]
                        };
                    }
                    (Some(d), Some(OpKind::Register), None) => {
                        let v = m.value(instr.op1_register());
                        m.xmm[d] = [
                            if mnemonic == Mnemonic::Movd {
                                Value::Unknown
                            } else {
                                v
                            },
                            Value::Const(0),
                        ];
                    }
                    (Some(d), Some(OpKind::Memory), None) => {
                        let v = self.load(m, instr, memory_size(instr));
                        m.xmm[d] = [v, Value::Const(0)];
                    }
                    (None, _, Some(s)) if k0 == OpKind::Register => {
                        let v = if instr.op0_register().size() == 8 {
                            m.xmm[s][0]
                        } else {
                            Value::Unknown
                        };
                        m.set(instr.op0_register(), v);
                    }
                    (None, _, Some(s)) if k0 == OpKind::Memory => {
                        let size = memory_size(instr);
                        let content = content_of(m.xmm[s][0], size);
                        store(m, instr, size, content);
                    }
                    _ => self.forget_written(m, instr),
                }
                return;
            }
            Mnemonic::Xorps | Mnemonic::Xorpd | Mnemonic::Pxor if x0.is_some() && x0 == x1 => {
                if let Some(d) = x0 {
                    m.xmm[d] = [Value::Const(0); 2];
                }
                return;
            }
            Mnemonic::Punpcklqdq | Mnemonic::Movlhps | Mnemonic::Unpcklpd => {
                if let (Some(d), Some(s)) = (x0, x1) {
                    m.xmm[d][1] = m.xmm[s][0];
                    return;
                }
            }
            Mnemonic::Cmova
            | Mnemonic::Cmovae
            | Mnemonic::Cmovb
            | Mnemonic::Cmovbe
            | Mnemonic::Cmove
            | Mnemonic::Cmovg
            | Mnemonic::Cmovge
            | Mnemonic::Cmovl
            | Mnemonic::Cmovle
            | Mnemonic::Cmovne
            | Mnemonic::Cmovno
            | Mnemonic::Cmovnp
            | Mnemonic::Cmovns
            | Mnemonic::Cmovo
            | Mnemonic::Cmovp
            | Mnemonic::Cmovs
                if k0 == OpKind::Register =>
            {
                // Either value, as at a join: a function chosen on one condition is a
                // possible one.
                let dst = instr.op0_register();
                let src = match k1 {
                    Some(OpKind::Register) => m.value(instr.op1_register()),
                    Some(OpKind::Memory) => self.load(m, instr, memory_size(instr)),
                    _ => Value::Unknown,
                };
                let value = if dst.size() == 8 {
                    m.value(dst).meet(src, self.sets)
                } else {
                    Value::Unknown
                };
                m.set(dst, value);
                return;
            }
            Mnemonic::Movsb | Mnemonic::Movsq | Mnemonic::Movsd | Mnemonic::Movsw
                if instr.has_rep_prefix() =>
            {
                self.rep_copy(m, instr);
                return;
            }
            Mnemonic::Stosb | Mnemonic::Stosq | Mnemonic::Stosd | Mnemonic::Stosw
                if instr.has_rep_prefix() =>
            {
                rep_fill(m, instr);
                return;
            }
            _ => {}
        }
        self.forget_written(m, instr);
    }

    /// Two eight-byte halves read by an SSE load.
    pub(super) fn load_xmm(&self, m: &Machine, instr: &Instruction) -> [Value; 2] {
        let view = self.view;
        if instr.memory_size().size() != 16 {
            return [Value::Unknown; 2];
        }
        if instr.is_ip_rel_memory_operand() {
            let Some(rva) = view.rva_of_va(instr.ip_rel_memory_address()) else {
                return [Value::Unknown; 2];
            };
            if !view.is_read_only(rva) {
                return [Value::Unknown; 2];
            }
            let word = |at: u32| {
                if let Some(t) = view.pointer_at(at) {
                    return Value::Address(t);
                }
                let mut b = [0u8; 8];
                if view.read_bytes(at, &mut b) {
                    Value::Const(u64::from_le_bytes(b))
                } else {
                    Value::Unknown
                }
            };
            return [word(rva), word(rva.wrapping_add(8))];
        }
        match address_of(m.address(instr)) {
            Some(at) => [m.mem.read_value(at, view), m.mem.read_value(at + 8, view)],
            None => [Value::Unknown; 2],
        }
    }

    /// `rep movs`: a copy of `rcx` elements from `rsi` to `rdi`.
    pub(super) fn rep_copy(&self, m: &mut Machine, instr: &Instruction) {
        let element = u64::from(memory_size(instr));
        let (dst, src, count) = (m.regs[RDI], m.regs[RSI], m.regs[RCX]);
        if let Value::Const(n) = count {
            self.copy(m, dst, src, n.saturating_mul(element));
        } else {
            forget_at(m, dst, MAX_TRACKED);
        }
        for r in [RCX, RSI, RDI] {
            m.regs[r] = Value::Unknown;
        }
    }

    /// A `memcpy` of `len` bytes from `src` to `dst`.
    pub(super) fn copy(&self, m: &mut Machine, dst: Value, src: Value, len: u64) {
        let Ok(len) = u32::try_from(len) else {
            forget_at(m, dst, MAX_TRACKED);
            return;
        };
        let Some(d) = address_of(dst) else {
            return;
        };
        match (src, address_of(src)) {
            (_, Some(s)) => m.mem.copy_within(d, s, len.min(MAX_TRACKED)),
            (Value::Address(rva), None) if self.view.is_read_only(rva) => {
                m.mem.write(d, len, Content::Image(rva));
            }
            _ => m.mem.forget(d, len.min(MAX_TRACKED)),
        }
    }

    /// Forgets every general-purpose and SSE register the instruction writes, and the memory
    /// bytes it stores to.
    pub(super) fn forget_written(&mut self, m: &mut Machine, instr: &Instruction) {
        let Some(factory) = self.info.as_mut() else {
            m.reset();
            return;
        };
        let info = factory.info(instr);
        let writes = |access: OpAccess| {
            matches!(
                access,
                OpAccess::Write
                    | OpAccess::ReadWrite
                    | OpAccess::CondWrite
                    | OpAccess::ReadCondWrite
            )
        };
        for used in info.used_registers() {
            if writes(used.access()) {
                let reg = used.register();
                if let Some(i) = gpr(reg) {
                    m.regs[i] = Value::Unknown;
                } else if let Some(i) = xmm(reg) {
                    m.xmm[i] = [Value::Unknown; 2];
                }
            }
        }
        for used in info.used_memory() {
            if !writes(used.access()) {
                continue;
            }
            let size = u32::try_from(used.memory_size().size())
                .unwrap_or(MAX_TRACKED)
                .clamp(1, MAX_TRACKED);
            let base = m.value(used.base());
            if used.index() == Register::None {
                #[allow(clippy::cast_possible_wrap)]
                if let Some(at) = address_of(base.offset(used.displacement() as i64)) {
                    m.mem.forget(at, size);
                }
            } else if matches!(base, Value::Stack(_)) {
                // An indexed store into the frame: somewhere in it.
                m.mem.clear_frame();
            }
        }
    }
}

/// A 16-byte SSE store of two halves.
pub(super) fn store_halves(m: &mut Machine, instr: &Instruction, halves: &[Value; 2]) {
    let Some(at) = address_of(m.address(instr)) else {
        return;
    };
    if instr.memory_size().size() != 16 {
        m.mem.forget(at, 16);
        return;
    }
    for (k, half) in (0i64..).zip(halves) {
        match content_of(*half, 8) {
            Some(c) => m.mem.write(at + 8 * k, 8, c),
            None => m.mem.forget(at + 8 * k, 8),
        }
    }
}

/// `rep stos`: `rcx` elements of `al`/`eax`/`rax` to `rdi`.
pub(super) fn rep_fill(m: &mut Machine, instr: &Instruction) {
    let element = u64::from(memory_size(instr));
    let (dst, value, count) = (m.regs[RDI], m.regs[RAX], m.regs[RCX]);
    let byte = match value {
        Value::Const(0) => Some(0),
        #[allow(clippy::cast_possible_truncation)]
        Value::Const(c) if element == 1 => Some(c as u8),
        _ => None,
    };
    match (count, byte) {
        (Value::Const(n), Some(b)) => fill(m, dst, b, n.saturating_mul(element)),
        _ => forget_at(m, dst, MAX_TRACKED),
    }
    for r in [RCX, RDI] {
        m.regs[r] = Value::Unknown;
    }
}

/// A `memset` of `len` bytes at `dst` to `byte`.
pub(super) fn fill(m: &mut Machine, dst: Value, byte: u8, len: u64) {
    let Some(d) = address_of(dst) else {
        return;
    };
    match u32::try_from(len) {
        Ok(len) => m.mem.write(d, len, Content::Fill(byte)),
        Err(_) => m.mem.forget(d, MAX_TRACKED),
    }
}

pub(super) fn forget_at(m: &mut Machine, dst: Value, len: u32) {
    if let Some(d) = address_of(dst) {
        m.mem.forget(d, len);
    }
}

/// The content a register holds, as a store of `size` bytes writes it.
pub(super) fn content_of(value: Value, size: u32) -> Option<Content> {
    match (value, size) {
        (Value::Unknown, _) => None,
        // A boolean or a power state kept in a narrow stack slot.
        (Value::NpBit { .. } | Value::DevState, 1..=8) => Some(Content::Value(value)),
        (Value::Const(c), 1..=7) => Some(Content::Bytes(c & ((1u64 << (8 * size)) - 1))),
        (v, 8) => Some(Content::Value(v)),
        _ => None,
    }
}

/// Dataflow mode: records that the memory operand of `instr` (`size` bytes) now holds
/// `content` (`None`: something the tracker does not follow).
pub(super) fn store(m: &mut Machine, instr: &Instruction, size: u32, content: Option<Content>) {
    if let Some(at) = address_of(m.address(instr)) {
        match content {
            Some(content) => m.mem.write(at, size, content),
            None => m.mem.forget(at, size),
        }
    }
}
