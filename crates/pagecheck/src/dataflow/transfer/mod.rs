//! The transfer function: what one instruction does to the analysis state ([`Machine`]), what
//! it adds to the call graph and the walk's findings ([`Effects`]), and where control goes
//! next ([`Control`]).
//!
//! One function serves both passes. The *linear* pass ([`crate::decode`]) steps every
//! function once with the state forgotten at joins; the *dataflow* engine
//! ([`super::engine`]) steps the functions at stake until the states at their joins settle,
//! then once more to collect what they do. Dataflow mode additionally follows the function's
//! memory ([`super::memory`]), the SSE registers, the spin locks held, and the summaries of the
//! helpers it calls.
//!
//! This module steps the instructions that move and combine register values and the
//! conditional branches; [`calls`] the calls and jumps (the framework, summaries, the
//! specially modelled functions), [`moves`] loads, stores, SSE moves and `rep` string
//! instructions, [`tables`] jump tables.

mod calls;
mod moves;
mod tables;

use std::collections::HashMap;

use iced_x86::{Instruction, InstructionInfoFactory, Mnemonic, OpKind, Register};

use crate::callgraph::{CallGraph, DataAccess, DataRef, Edge, EdgeKind, External, Unresolved};
use crate::locks;
use crate::view::View;

use calls::lock_effect;
use moves::{content_of, store};

use super::guard;
use super::state::{Cond, Guard, Machine, RBP, RCX, RSP};
use super::summary::{FlowOut, Summary};
use super::value::{Sets, Value};

/// Where control goes after an instruction, inside the function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// To the next instruction.
    Next,
    /// Nowhere in this function (a return, a jump out, a trap).
    Stop,
    /// To this address of the function only.
    Goto(u32),
    /// A conditional jump to this address of the function: `taken` when the jump can be
    /// taken, `fall` when execution can continue at the next instruction.
    Branch {
        /// The target.
        target: u32,
        /// The jump can be taken.
        taken: bool,
        /// The next instruction can follow.
        fall: bool,
        /// What each way out implies of `WdfDevStateIsNP`, when the jump tests it:
        /// `(taken, fall-through)`.
        guards: Option<(Guard, Guard)>,
    },
    /// A jump through a resolved table: to the in-function targets the step left in
    /// [`Transfer::table_targets`].
    Table,
}

impl Control {
    /// Whether execution can continue at the next instruction.
    #[must_use]
    pub fn falls_through(self) -> bool {
        matches!(self, Control::Next | Control::Branch { fall: true, .. })
    }
}

/// Where a step's findings go. While the engine iterates to a fixed point nothing is
/// recorded (`record` is off): only the state matters until it settles.
pub struct Effects<'g> {
    /// The call graph items of the function.
    pub graph: &'g mut CallGraph,
    /// Dataflow mode: the walk's findings.
    pub out: Option<&'g mut FlowOut>,
    /// Record findings (off while iterating).
    pub record: bool,
    /// The code being stepped is reached from the function's entry (the engine steps code
    /// only the walk cannot see the way into, too: its returns say nothing of the function's).
    pub reached: bool,
    /// Linear mode: something here needs the dataflow pass.
    pub at_stake: bool,
}

impl Effects<'_> {
    fn edge(&mut self, site: u32, target: u32, kind: EdgeKind) {
        if self.record {
            self.graph.edges.push(Edge { site, target, kind });
        }
    }

    fn external(&mut self, site: u32, external: External) {
        if self.record {
            self.graph.externals.push((site, external));
        }
    }

    fn unresolved(&mut self, site: u32, is_call: bool, through_memory: bool) {
        // An indirect transfer the dataflow pass may resolve.
        self.at_stake = true;
        if self.record {
            self.graph.unresolved.push(Unresolved {
                site,
                is_call,
                through_memory,
            });
        }
    }

    /// The walk's findings, when they are being recorded.
    fn out(&mut self) -> Option<&mut FlowOut> {
        if self.record {
            self.out.as_deref_mut()
        } else {
            None
        }
    }
}

/// The instruction semantics of one function.
pub struct Transfer<'a, V: View> {
    /// The image.
    pub view: &'a V,
    /// First byte of the function.
    pub start: u32,
    /// One past its last byte.
    pub end: u32,
    /// Dataflow mode.
    pub flow: bool,
    /// Dataflow mode: the summaries of the functions called, by start.
    pub summaries: Option<&'a HashMap<u32, Summary>>,
    /// The analysis' address sets.
    pub sets: &'a mut Sets,
    /// Resolved jump tables inside the function, as RVA ranges: data, not code.
    pub tables: Vec<(u32, u32)>,
    /// In-function targets of the jump tables resolved so far (the engine takes the ones
    /// a step adds as that step's successors).
    pub table_targets: Vec<u32>,
    /// Dataflow mode: what an instruction writes, for the instructions not modelled.
    info: Option<Box<InstructionInfoFactory>>,
}

/// The byte size of an instruction's memory operand.
fn memory_size(instr: &Instruction) -> u32 {
    u32::try_from(instr.memory_size().size()).unwrap_or(0)
}

impl<'a, V: View> Transfer<'a, V> {
    /// The semantics of the function spanning `start..end`; dataflow mode when `summaries`
    /// is given.
    pub fn new(
        view: &'a V,
        start: u32,
        end: u32,
        summaries: Option<&'a HashMap<u32, Summary>>,
        sets: &'a mut Sets,
    ) -> Self {
        let flow = summaries.is_some();
        Transfer {
            view,
            start,
            end,
            flow,
            summaries,
            sets,
            tables: Vec::new(),
            table_targets: Vec::new(),
            info: flow.then(|| Box::new(InstructionInfoFactory::new())),
        }
    }

    fn inside(&self, rva: u32) -> bool {
        rva >= self.start && rva < self.end
    }

    /// The RVA of an instruction (decoded IPs are image base + RVA of a byte inside the image).
    #[must_use]
    pub fn site(&self, instr: &Instruction) -> u32 {
        #[allow(clippy::cast_possible_truncation)]
        let site = instr.ip().wrapping_sub(self.view.image_base()) as u32;
        site
    }

    /// Steps one instruction.
    #[allow(clippy::too_many_lines)]
    pub fn step(&mut self, m: &mut Machine, instr: &Instruction, fx: &mut Effects<'_>) -> Control {
        let site = self.site(instr);
        // The flags this instruction leaves, unless it sets them to something known.
        let cond = std::mem::take(&mut m.cond);
        if instr.is_ip_rel_memory_operand() {
            self.data_ref(instr, site, fx);
        } else if self.flow && guard::step(m, instr, cond) {
            // The `WdfDevStateIsNP` guard is a dataflow fact: the linear pass records no
            // guarded sites, so it does not follow the test.
            return Control::Next;
        }
        let mnemonic = instr.mnemonic();
        match mnemonic {
            Mnemonic::Call | Mnemonic::Jmp => return self.transfer(m, instr, site, fx),
            Mnemonic::Ret | Mnemonic::Retf => {
                self.returning(m, fx);
                return Control::Stop;
            }
            Mnemonic::Iretq
            | Mnemonic::Iretd
            | Mnemonic::Ud0
            | Mnemonic::Ud1
            | Mnemonic::Ud2
            | Mnemonic::Int3
            | Mnemonic::Hlt => return Control::Stop,
            // `int 0x29` is `__fastfail`.
            Mnemonic::Int if instr.immediate8() == 0x29 => return Control::Stop,
            Mnemonic::Lea if instr.op0_kind() == OpKind::Register => {
                let reg = instr.op0_register();
                if instr.is_ip_rel_memory_operand() {
                    match self.view.rva_of_va(instr.ip_rel_memory_address()) {
                        Some(target) => {
                            if self.view.is_code(target) && !self.inside(target) {
                                fx.edge(site, target, EdgeKind::AddressTaken);
                            }
                            m.set(reg, Value::Address(target));
                        }
                        None => m.set(reg, Value::Unknown),
                    }
                } else if instr.memory_index() == Register::None {
                    #[allow(clippy::cast_possible_wrap)]
                    let disp = instr.memory_displacement64() as i64;
                    let value = m.value(instr.memory_base()).offset(disp);
                    m.set(reg, value);
                } else {
                    m.set(reg, Value::Unknown);
                }
            }
            Mnemonic::Mov | Mnemonic::Movsxd
                if instr.op0_kind() == OpKind::Register && instr.op1_kind() == OpKind::Memory =>
            {
                let mut value = self.load(m, instr, memory_size(instr));
                if mnemonic == Mnemonic::Movsxd && !matches!(value, Value::TableEntry { .. }) {
                    value = match value {
                        #[allow(clippy::cast_possible_truncation)]
                        Value::Const(c) => Value::Const(i64::from(c as i32).cast_unsigned()),
                        _ => Value::Unknown,
                    };
                }
                m.set(instr.op0_register(), value);
            }
            Mnemonic::Mov
                if instr.op0_kind() == OpKind::Register && instr.op1_kind() == OpKind::Register =>
            {
                let (dst, src) = (instr.op0_register(), instr.op1_register());
                let value = m.value(src);
                if dst == Register::CR8 {
                    // The inline KeRaiseIrql/KeLowerIrql.
                    fx.at_stake = true;
                    let constant = match value {
                        Value::Const(c) => Some(c),
                        _ => None,
                    };
                    if self.flow
                        && let Some(effect) = locks::cr8_effect(constant, m.holds())
                    {
                        lock_effect(m, effect, site, fx);
                    }
                }
                let value = if dst.size() == 8 {
                    value
                } else {
                    match value {
                        Value::Const(c) if dst.size() == 4 => Value::Const(c & 0xffff_ffff),
                        _ => Value::Unknown,
                    }
                };
                m.set(dst, value);
            }
            Mnemonic::Mov if instr.op0_kind() == OpKind::Register => {
                // An immediate: a 32-bit destination zero-extends it, a narrower one keeps the
                // register's other bytes.
                let reg = instr.op0_register();
                let imm = instr.immediate(1);
                let value = match (reg.size(), m.value(reg)) {
                    (8, _) => Value::Const(imm),
                    (4, _) => Value::Const(imm & 0xffff_ffff),
                    (n @ (1 | 2), Value::Const(old)) if !is_high_byte(reg) => {
                        let mask = (1u64 << (8 * n)) - 1;
                        Value::Const((old & !mask) | (imm & mask))
                    }
                    #[allow(clippy::cast_possible_truncation)]
                    (n @ (1 | 2), _) if !is_high_byte(reg) => Value::Low {
                        low: imm as u16,
                        bytes: n as u8,
                    },
                    _ => Value::Unknown,
                };
                m.set(reg, value);
            }
            Mnemonic::Mov if instr.op0_kind() == OpKind::Memory => {
                if self.flow {
                    let width = memory_size(instr);
                    let content = if instr.op1_kind() == OpKind::Register {
                        content_of(m.value(instr.op1_register()), width)
                    } else {
                        content_of(Value::Const(instr.immediate(1)), width)
                    };
                    store(m, instr, width, content);
                }
            }
            Mnemonic::Xor | Mnemonic::Sub
                if instr.op0_kind() == OpKind::Register
                    && instr.op1_kind() == OpKind::Register
                    && instr.op0_register() == instr.op1_register()
                    && instr.op0_register().size() >= 4 =>
            {
                m.set(instr.op0_register(), Value::Const(0));
            }
            Mnemonic::Add | Mnemonic::Sub
                if instr.op0_kind() == OpKind::Register
                    && matches!(
                        instr.op1_kind(),
                        OpKind::Immediate8to64
                            | OpKind::Immediate32to64
                            | OpKind::Immediate8to32
                            | OpKind::Immediate32
                    ) =>
            {
                let reg = instr.op0_register();
                let imm = instr.immediate(1).cast_signed();
                let by = if mnemonic == Mnemonic::Add {
                    imm
                } else {
                    imm.wrapping_neg()
                };
                let value = if reg.size() == 8 {
                    m.value(reg).offset(by)
                } else {
                    Value::Unknown
                };
                m.set(reg, value);
            }
            Mnemonic::Add
                if instr.op0_kind() == OpKind::Register && instr.op1_kind() == OpKind::Register =>
            {
                let combined = match (m.value(instr.op0_register()), m.value(instr.op1_register()))
                {
                    (Value::TableEntry { table, signed }, Value::Address(base))
                    | (Value::Address(base), Value::TableEntry { table, signed }) => {
                        Value::TableTarget {
                            table,
                            base,
                            signed,
                        }
                    }
                    (Value::Const(a), Value::Const(b)) => Value::Const(a.wrapping_add(b)),
                    (v, Value::Const(c)) | (Value::Const(c), v) => v.offset(c.cast_signed()),
                    _ => Value::Unknown,
                };
                m.set(instr.op0_register(), combined);
            }
            Mnemonic::Sub
                if instr.op0_kind() == OpKind::Register && instr.op1_kind() == OpKind::Register =>
            {
                // `sub rsp, rax` after a stack probe for a large frame.
                let value = match m.value(instr.op1_register()) {
                    Value::Const(c) => m
                        .value(instr.op0_register())
                        .offset(c.cast_signed().wrapping_neg()),
                    _ => Value::Unknown,
                };
                m.set(instr.op0_register(), value);
            }
            Mnemonic::And
                if instr.op0_kind() == OpKind::Register
                    && instr.op_count() == 2
                    && instr.op1_kind() != OpKind::Register
                    && instr.op1_kind() != OpKind::Memory =>
            {
                // A mask of the low bits bounds an index as `cmp` does (`table[code & 3]`).
                let reg = instr.op0_register();
                let mask = instr.immediate(1);
                let value = match m.value(reg) {
                    Value::Const(c) => Value::Const(c & mask),
                    _ => Value::Unknown,
                };
                m.set(reg, value);
                m.bound = mask
                    .checked_add(1)
                    .filter(|n| n.is_power_of_two())
                    .and_then(|n| u32::try_from(n).ok());
            }
            Mnemonic::Cmp if instr.op0_kind() == OpKind::Register => {
                m.bound = match instr.op1_kind() {
                    OpKind::Immediate8
                    | OpKind::Immediate8to32
                    | OpKind::Immediate8to64
                    | OpKind::Immediate32
                    | OpKind::Immediate32to64 => u32::try_from(instr.immediate(1))
                        .ok()
                        .map(|v| v.saturating_add(1)),
                    _ => None,
                };
            }
            Mnemonic::Test
                if instr.op0_kind() == OpKind::Register
                    && instr.op1_kind() == OpKind::Register
                    && instr.op0_register() == instr.op1_register() =>
            {
                // The framework fills its table before DriverEntry (a driver that checks it
                // fails to load otherwise) and the loader binds every import: the "missing
                // entry" branches the bindings emit after this test are never taken.
                if self.flow
                    && matches!(
                        m.value(instr.op0_register()),
                        Value::WdfSlot(_) | Value::Import(_) | Value::GuardDispatch
                    )
                {
                    m.cond = Cond::NonNull;
                }
            }
            Mnemonic::Cmp | Mnemonic::Test | Mnemonic::Bt | Mnemonic::Nop => {}
            Mnemonic::Push => {
                if self.flow {
                    let value = match instr.op0_kind() {
                        OpKind::Register => m.value(instr.op0_register()),
                        OpKind::Immediate8to64 | OpKind::Immediate32to64 => {
                            Value::Const(instr.immediate(0))
                        }
                        _ => Value::Unknown,
                    };
                    let sp = m.regs[RSP].offset(-8);
                    m.regs[RSP] = sp;
                    if let Value::Stack(off) = sp {
                        match content_of(value, 8) {
                            Some(c) => m.mem.write(i64::from(off), 8, c),
                            None => m.mem.forget(i64::from(off), 8),
                        }
                    }
                }
            }
            Mnemonic::Pop => {
                if self.flow {
                    let sp = m.regs[RSP];
                    let value = m.read(sp, self.view);
                    m.regs[RSP] = sp.offset(8);
                    if instr.op0_kind() == OpKind::Register {
                        m.set(instr.op0_register(), value);
                    }
                } else if instr.op0_kind() == OpKind::Register {
                    m.set(instr.op0_register(), Value::Unknown);
                }
            }
            Mnemonic::Leave => {
                let frame_pointer = m.regs[RBP];
                m.regs[RBP] = if self.flow {
                    m.read(frame_pointer, self.view)
                } else {
                    Value::Unknown
                };
                m.regs[RSP] = frame_pointer.offset(8);
            }
            Mnemonic::Ja
            | Mnemonic::Jae
            | Mnemonic::Jb
            | Mnemonic::Jbe
            | Mnemonic::Je
            | Mnemonic::Jg
            | Mnemonic::Jge
            | Mnemonic::Jl
            | Mnemonic::Jle
            | Mnemonic::Jne
            | Mnemonic::Jno
            | Mnemonic::Jnp
            | Mnemonic::Jns
            | Mnemonic::Jo
            | Mnemonic::Jp
            | Mnemonic::Js
            | Mnemonic::Jrcxz
            | Mnemonic::Jecxz
            | Mnemonic::Loop
            | Mnemonic::Loope
            | Mnemonic::Loopne => return self.branch(m, instr, site, cond, fx),
            _ if self.flow => self.step_other(m, instr),
            _ => {
                if instr.op_count() > 0 && instr.op0_kind() == OpKind::Register {
                    m.set(instr.op0_register(), Value::Unknown);
                }
            }
        }
        Control::Next
    }

    /// A reference to data in a pageable or discardable section.
    fn data_ref(&self, instr: &Instruction, site: u32, fx: &mut Effects<'_>) {
        let Some(target) = self.view.rva_of_va(instr.ip_rel_memory_address()) else {
            return;
        };
        if !fx.record || !self.view.is_paged_data(target) {
            return;
        }
        let access = if instr.mnemonic() == Mnemonic::Lea {
            DataAccess::Address
        } else if instr.op_count() > 0 && instr.op0_kind() == OpKind::Memory {
            DataAccess::Write
        } else {
            DataAccess::Read
        };
        fx.graph.data_refs.push(DataRef {
            site,
            target,
            access,
        });
    }

    /// A conditional jump (or `loop`, `jrcxz`).
    fn branch(
        &mut self,
        m: &mut Machine,
        instr: &Instruction,
        site: u32,
        cond: Cond,
        fx: &mut Effects<'_>,
    ) -> Control {
        let mnemonic = instr.mnemonic();
        let is_loop = matches!(
            mnemonic,
            Mnemonic::Loop | Mnemonic::Loope | Mnemonic::Loopne
        );
        if is_loop {
            m.regs[RCX] = Value::Unknown;
        }
        // A test of a pointer that is never null decides the branch.
        let (taken, fall) = match (cond, mnemonic) {
            (Cond::NonNull, Mnemonic::Je) => (false, true),
            (Cond::NonNull, Mnemonic::Jne) => (true, false),
            _ => (true, true),
        };
        if instr.op0_kind() != OpKind::NearBranch64 {
            return Control::Next;
        }
        let Some(target) = self.view.rva_of_va(instr.near_branch_target()) else {
            return Control::Next;
        };
        if self.inside(target) {
            return Control::Branch {
                target,
                taken,
                fall,
                guards: guard::branch(cond, mnemonic),
            };
        }
        // A conditional jump out of the function is a conditional tail call.
        if taken && !is_loop && !matches!(mnemonic, Mnemonic::Jrcxz | Mnemonic::Jecxz) {
            fx.edge(site, target, EdgeKind::Jump);
        }
        if fall { Control::Next } else { Control::Stop }
    }
}

/// `ah`, `bh`, `ch`, `dh`: the second byte of a register, not its low one.
fn is_high_byte(reg: Register) -> bool {
    matches!(
        reg,
        Register::AH | Register::BH | Register::CH | Register::DH
    )
}
