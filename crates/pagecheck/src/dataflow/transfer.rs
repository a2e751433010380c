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

use std::collections::HashMap;

use iced_x86::Instruction;
use iced_x86::{InstructionInfoFactory, Mnemonic, OpAccess, OpKind, Register};

use crate::callgraph::{CallGraph, DataAccess, DataRef, Edge, EdgeKind, External, Unresolved};
use crate::view::{Special, View};
use crate::{kmdf, locks};

use super::memory::{Content, MAX_TRACKED, address_of};
use super::state::{
    ARGUMENT_REGISTERS, Cond, Machine, R8, RAX, RBP, RCX, RDI, RDX, RSI, RSP, STACK_ARGUMENTS,
    VOLATILE, gpr, xmm,
};
use super::summary::{FlowOut, Held, RegArg, RegCall, Summary, read_arg};
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

/// Longest jump table read when no `cmp index, N` bounds it.
const MAX_TABLE_ENTRIES: u32 = 4096;

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
                // An immediate: a 32-bit destination zero-extends it.
                let reg = instr.op0_register();
                let value = match reg.size() {
                    8 => Value::Const(instr.immediate(1)),
                    4 => Value::Const(instr.immediate(1) & 0xffff_ffff),
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
            };
        }
        // A conditional jump out of the function is a conditional tail call.
        if taken && !is_loop && !matches!(mnemonic, Mnemonic::Jrcxz | Mnemonic::Jecxz) {
            fx.edge(site, target, EdgeKind::Jump);
        }
        if fall { Control::Next } else { Control::Stop }
    }

    /// `call` and `jmp`.
    #[allow(clippy::too_many_lines)]
    fn transfer(
        &mut self,
        m: &mut Machine,
        instr: &Instruction,
        site: u32,
        fx: &mut Effects<'_>,
    ) -> Control {
        let is_call = instr.mnemonic() == Mnemonic::Call;
        let kind = if is_call {
            EdgeKind::Call
        } else {
            EdgeKind::Jump
        };
        // Whatever this transfers to runs with the lock held: at DISPATCH_LEVEL.
        if m.holds()
            && let Some(out) = fx.out()
        {
            let (acquire, acquire_site) = m.acquired.unwrap_or(("a spin lock", site));
            out.held.push(Held {
                site,
                acquire,
                acquire_site,
            });
        }
        // The framework or helper call whose arguments the dataflow pass reads.
        let mut wdf_call = None;
        let mut direct = None;
        let mut special = None;
        let mut control = if is_call {
            Control::Next
        } else {
            Control::Stop
        };
        match instr.op0_kind() {
            OpKind::NearBranch64 => {
                if let Some(target) = self.view.rva_of_va(instr.near_branch_target()) {
                    if is_call || !self.inside(target) {
                        fx.edge(site, target, kind);
                        direct = Some(target);
                    } else {
                        control = Control::Goto(target);
                    }
                }
            }
            OpKind::Register => {
                let mut value = m.value(instr.op0_register());
                match value {
                    // Control Flow Guard with its pointer kept in a register.
                    Value::GuardCheck => return Control::Next,
                    Value::GuardDispatch => value = m.regs[RAX],
                    _ => {}
                }
                (wdf_call, control) = self.transfer_to(m, site, is_call, value, fx, control);
                special = self.special_import(value);
            }
            OpKind::Memory if instr.is_ip_rel_memory_operand() => {
                let slot = self.view.rva_of_va(instr.ip_rel_memory_address());
                let slot_special = slot.and_then(|s| self.view.special_slot(s));
                if slot_special == Some(Special::GuardCheck) {
                    // Validates the target in rcx and returns: nothing to track.
                    return Control::Next;
                }
                if slot_special == Some(Special::GuardDispatch) {
                    // Control Flow Guard: the real target is in rax.
                    let value = m.regs[RAX];
                    (wdf_call, control) = self.transfer_to(m, site, is_call, value, fx, control);
                    special = self.special_import(value);
                } else if let Some(slot) = slot.filter(|&s| self.view.is_import_slot(s)) {
                    fx.external(site, External::Import(slot));
                    special = slot_special;
                } else if let Some(target) = slot.and_then(|s| self.view.constant_code_pointer(s)) {
                    fx.edge(site, target, kind);
                    direct = Some(target);
                } else if let Value::WdfSlot(index) = m.regs[RAX] {
                    // An image without symbols for its Control Flow Guard pointer:
                    // `call [rip+X]` with a framework entry in rax.
                    fx.at_stake = true;
                    fx.external(site, External::Wdf(index));
                    wdf_call = index;
                } else {
                    fx.unresolved(site, is_call, true);
                }
            }
            OpKind::Memory => {
                if m.value(instr.memory_base()) == Value::WdfTable {
                    fx.at_stake = true;
                    let (index, other) = wdf_indices(m, instr);
                    fx.external(site, External::Wdf(index));
                    if let Some(other) = other {
                        // The index is one of two: the call is either method.
                        fx.external(site, External::Wdf(Some(other)));
                    }
                    wdf_call = index;
                } else if self.flow
                    && let Value::Stack(_) = m.address(instr)
                {
                    // A function pointer kept in a local (unoptimised code).
                    let value = m.read(m.address(instr), self.view);
                    (wdf_call, control) = self.transfer_to(m, site, is_call, value, fx, control);
                } else {
                    fx.unresolved(site, is_call, true);
                }
            }
            _ => {}
        }
        if let Some(target) = direct
            && special.is_none()
        {
            special = self.view.special_function(target);
        }
        if special.is_some_and(|s| matches!(s, Special::Irql(_) | Special::LockSection)) {
            fx.at_stake = true;
        }
        if self.flow {
            if let Some(name) = wdf_call.and_then(|i| crate::wdf::function_name(u64::from(i))) {
                self.framework_call(m, name, site, fx);
            }
            if let Some(s) = special {
                self.special_call(m, site, s, fx);
            } else if let Some(target) = direct {
                self.callee(m, site, target, fx);
            }
        }
        if !is_call && control == Control::Stop {
            // A tail call: the function returns from there.
            self.returning(m, fx);
        }
        if is_call {
            for r in VOLATILE {
                m.regs[r] = Value::Unknown;
            }
            if self.flow {
                for x in &mut m.xmm[..6] {
                    *x = [Value::Unknown; 2];
                }
            }
        }
        m.bound = None;
        control
    }

    /// A call or jump through a register holding `value`: the framework index it calls, if
    /// any, and where control goes.
    fn transfer_to(
        &mut self,
        m: &Machine,
        site: u32,
        is_call: bool,
        value: Value,
        fx: &mut Effects<'_>,
        control: Control,
    ) -> (Option<u32>, Control) {
        let kind = if is_call {
            EdgeKind::Call
        } else {
            EdgeKind::Jump
        };
        match value {
            Value::WdfSlot(index) => {
                fx.at_stake = true;
                fx.external(site, External::Wdf(index));
                return (index, control);
            }
            Value::Import(slot) => fx.external(site, External::Import(slot)),
            Value::TableTarget {
                table,
                base,
                signed,
            } if !is_call => {
                return (None, self.resolve_table(m, site, table, base, signed, fx));
            }
            Value::Address(target) if self.view.is_code(target) => {
                fx.edge(site, target, kind);
            }
            Value::MaybeAddress(_) | Value::AnyOf { .. } => {
                let mut exact = matches!(value, Value::AnyOf { exact: true, .. });
                for &target in value.possible_addresses(self.sets) {
                    if self.view.is_code(target) {
                        fx.edge(site, target, kind);
                    } else {
                        exact = false;
                    }
                }
                if !exact {
                    fx.unresolved(site, is_call, false);
                }
            }
            _ => fx.unresolved(site, is_call, false),
        }
        (None, control)
    }

    /// A call through a register holding a special import (`memcpy` loaded from the import
    /// address table into a register).
    fn special_import(&self, value: Value) -> Option<Special> {
        match value {
            Value::Import(slot) => self.view.special_slot(slot),
            _ => None,
        }
    }

    /// Dataflow mode: a call of the framework method `name`: the registration it makes, the
    /// code addresses it is handed where the model reads no callback (reported, not dropped),
    /// and the lock it takes or releases.
    fn framework_call(
        &mut self,
        m: &mut Machine,
        name: &'static str,
        site: u32,
        fx: &mut Effects<'_>,
    ) {
        let method = kmdf::method_named(name);
        if let Some(method) = method {
            let call = self.registration(m, method, site);
            if let Some(out) = fx.out() {
                out.file(call);
            }
        }
        if fx.record && !kmdf::NOT_REGISTRATIONS.contains(&name) {
            let count = crate::wdf::index_of(name).and_then(crate::wdf::argument_count);
            let read = method.map_or(&[][..], |m| m.args);
            let unmodelled = kmdf::UNMODELLED.contains(&name);
            // Only the method's own arguments: the registers beyond them hold whatever earlier
            // code left there.
            for position in 1..count.unwrap_or(1) {
                if read.iter().any(|&(p, _)| p == position) {
                    continue;
                }
                let value = m.argument(position, self.view);
                let mut passed: Vec<u32> = value
                    .possible_addresses(self.sets)
                    .iter()
                    .copied()
                    .filter(|&rva| self.view.is_code(rva))
                    .collect();
                if passed.is_empty() && unmodelled {
                    passed.extend(self.code_in_structure(m, value));
                }
                if let Some(out) = fx.out() {
                    out.unmodelled
                        .extend(passed.into_iter().map(|rva| (site, name, rva)));
                }
            }
        }
        if let Some(effect) = locks::effect_of(name) {
            lock_effect(m, effect, site, fx);
        }
    }

    /// The code addresses a structure of a layout the model does not know holds, within the
    /// `Size` its first member gives.
    fn code_in_structure(&self, m: &Machine, pointer: Value) -> Vec<u32> {
        let Some(at) = address_of(pointer) else {
            return Vec::new();
        };
        let Some(size) = m.mem.read_bytes(at, 4, self.view) else {
            return Vec::new();
        };
        let end = at + i64::try_from(size.min(u64::from(kmdf::INTERFACE_MAX_SIZE))).unwrap_or(0);
        m.mem
            .cells()
            .iter()
            .filter(|c| c.at >= at && c.at + 8 <= end)
            .flat_map(|c| match c.content {
                Content::Value(v) => v.possible_addresses(self.sets).to_vec(),
                _ => Vec::new(),
            })
            .filter(|&rva| self.view.is_code(rva))
            .collect()
    }

    /// Dataflow mode: a direct call of the image's own function at `target`: its summary, or,
    /// when it has none yet and is handed a pointer into this function's memory, a request to
    /// walk it.
    fn callee(&mut self, m: &mut Machine, site: u32, target: u32, fx: &mut Effects<'_>) {
        if let Some(summary) = self.summaries.and_then(|s| s.get(&target)) {
            self.apply_summary(m, site, summary, fx);
            return;
        }
        let hands_memory = ARGUMENT_REGISTERS
            .iter()
            .any(|&r| matches!(m.regs[r], Value::Stack(_) | Value::Param { .. }));
        if hands_memory && let Some(out) = fx.out() {
            out.wanted.push(target);
        }
    }

    /// A return, or a tail call: the function's callers continue from here.
    fn returning(&mut self, m: &Machine, fx: &mut Effects<'_>) {
        let holding = m
            .holds()
            .then(|| m.acquired.map_or("a spin lock", |(name, _)| name));
        if fx.reached
            && let Some(out) = fx.out()
        {
            out.returning(&m.mem, holding, self.sets);
        }
    }

    /// The value a memory operand read of `size` bytes gives.
    fn load(&self, m: &Machine, instr: &Instruction, size: u32) -> Value {
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
                    Some(at) => m
                        .mem
                        .read_bytes(at, size, view)
                        .map_or(Value::Unknown, Value::Const),
                    None => Value::Unknown,
                }
            }
            _ => Value::Unknown,
        }
    }

    /// Dataflow mode: SSE moves and string stores that build structures, and for everything
    /// else, forgetting every register and memory byte the instruction writes.
    #[allow(clippy::too_many_lines)]
    fn step_other(&mut self, m: &mut Machine, instr: &Instruction) {
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
    fn load_xmm(&self, m: &Machine, instr: &Instruction) -> [Value; 2] {
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
    fn rep_copy(&self, m: &mut Machine, instr: &Instruction) {
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
    fn copy(&self, m: &mut Machine, dst: Value, src: Value, len: u64) {
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

    /// A call of a [`Special`] function (by import or the image's own copy): its effect on the
    /// state, from the argument registers.
    fn special_call(&mut self, m: &mut Machine, site: u32, special: Special, fx: &mut Effects<'_>) {
        match special {
            Special::LockSection => {
                let address = m.regs[RCX];
                if let Some(out) = fx.out() {
                    out.locks.push((site, address));
                }
            }
            Special::Irql(effect) => lock_effect(m, effect, site, fx),
            Special::Copy | Special::Fill => {
                let (dst, src, len) = (m.regs[RCX], m.regs[RDX], m.regs[R8]);
                let Value::Const(len) = len else {
                    forget_at(m, dst, MAX_TRACKED);
                    return;
                };
                match (special, src) {
                    (Special::Copy, _) => self.copy(m, dst, src, len),
                    #[allow(clippy::cast_possible_truncation)]
                    (_, Value::Const(b)) => fill(m, dst, b as u8, len),
                    _ => forget_at(m, dst, MAX_TRACKED),
                }
            }
            Special::GuardDispatch | Special::GuardCheck => {}
        }
    }

    /// Forgets every general-purpose and SSE register the instruction writes, and the memory
    /// bytes it stores to.
    fn forget_written(&mut self, m: &mut Machine, instr: &Instruction) {
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

    /// The registration a framework call makes, read from the arguments now.
    fn registration(&self, m: &Machine, method: &'static kmdf::Method, site: u32) -> RegCall {
        let args = method
            .args
            .iter()
            .map(|&(position, arg)| {
                let value = m.argument(position, self.view);
                (position, read_arg(self.view, &m.mem, arg, value))
            })
            .collect();
        RegCall {
            method,
            site,
            via: Vec::new(),
            args,
            budget: m
                .mem
                .over_budget()
                .then_some(super::summary::Budget::Cells(super::memory::MAX_CELLS)),
        }
    }

    /// Applies a callee's summary at a call: what it leaves in the memory passed, the
    /// registrations it makes with it, the locks it takes or releases.
    fn apply_summary(
        &mut self,
        m: &mut Machine,
        site: u32,
        summary: &Summary,
        fx: &mut Effects<'_>,
    ) {
        if let Some(name) = summary.acquires {
            lock_effect(m, locks::Effect::Acquire(name), site, fx);
        }
        if summary.releases {
            lock_effect(m, locks::Effect::Release, site, fx);
        }
        let args: Vec<Value> = (0..4 + STACK_ARGUMENTS)
            .map(|p| m.argument(p, self.view))
            .collect();
        let substitute = |v: Value| match v {
            Value::Param { index, offset } => args
                .get(usize::from(index))
                .map_or(Value::Unknown, |a| a.offset(i64::from(offset))),
            v => v,
        };
        for &(index, offset, len, content) in &summary.writes {
            let dst = args
                .get(usize::from(index))
                .map_or(Value::Unknown, |a| a.offset(i64::from(offset)));
            let Some(at) = address_of(dst) else {
                continue;
            };
            let content = match content {
                Some(Content::Value(v)) => match substitute(v) {
                    Value::Unknown => None,
                    v => Some(Content::Value(v)),
                },
                c => c,
            };
            match content {
                Some(c) => m.mem.write(at, len, c),
                None => m.mem.forget(at, len),
            }
        }
        if summary.forwards.is_empty() || !fx.record {
            return;
        }
        for forward in &summary.forwards {
            let mut call = forward.clone();
            call.via.push(site);
            for (position, arg) in &mut call.args {
                let kind = call
                    .method
                    .args
                    .iter()
                    .find(|(p, _)| p == position)
                    .map(|&(_, a)| a);
                let resolved = match (&*arg, kind) {
                    (RegArg::Param { index, offset }, Some(kind)) => {
                        let value = substitute(Value::Param {
                            index: *index,
                            offset: *offset,
                        });
                        Some(read_arg(self.view, &m.mem, kind, value))
                    }
                    (RegArg::Callback(v), _) => Some(RegArg::Callback(substitute(*v))),
                    (
                        RegArg::Read {
                            size,
                            fields,
                            level,
                            flag,
                        },
                        _,
                    ) => Some(RegArg::Read {
                        size: *size,
                        fields: fields.iter().map(|&(o, v)| (o, substitute(v))).collect(),
                        level: *level,
                        flag: *flag,
                    }),
                    _ => None,
                };
                if let Some(resolved) = resolved {
                    *arg = resolved;
                }
            }
            if let Some(out) = fx.out() {
                out.file(call);
            }
        }
    }

    /// Reads a jump table: entries of 4 bytes at `table`, each added to `base` (signed for
    /// LLVM's table-relative entries, unsigned RVAs for MSVC's `__ImageBase`-relative ones).
    fn resolve_table(
        &mut self,
        m: &Machine,
        site: u32,
        table: u32,
        base: u32,
        signed: bool,
        fx: &mut Effects<'_>,
    ) -> Control {
        let count = m.bound.unwrap_or(MAX_TABLE_ENTRIES).min(MAX_TABLE_ENTRIES);
        let mut resolved = 0;
        for i in 0..count {
            let Some(raw) = self.view.read_u32(table.wrapping_add(i * 4)) else {
                break;
            };
            let target = if signed {
                base.wrapping_add_signed(raw.cast_signed())
            } else {
                base.wrapping_add(raw)
            };
            // Without a bound the table ends where entries stop pointing into this function.
            if !self.view.is_code(target) || (m.bound.is_none() && !self.inside(target)) {
                break;
            }
            if self.inside(target) {
                self.table_targets.push(target);
            } else {
                fx.edge(site, target, EdgeKind::JumpTable);
            }
            resolved += 1;
        }
        if resolved == 0 {
            fx.unresolved(site, false, false);
            return Control::Stop;
        }
        if self.inside(table) {
            let range = (table, table.saturating_add(resolved * 4).min(self.end));
            if !self.tables.contains(&range) {
                self.tables.push(range);
            }
        }
        Control::Table
    }
}

/// The content a register holds, as a store of `size` bytes writes it.
fn content_of(value: Value, size: u32) -> Option<Content> {
    match (value, size) {
        (Value::Unknown, _) => None,
        (Value::Const(c), 1..=7) => Some(Content::Bytes(c & ((1u64 << (8 * size)) - 1))),
        (v, 8) => Some(Content::Value(v)),
        _ => None,
    }
}

/// Dataflow mode: records that the memory operand of `instr` (`size` bytes) now holds
/// `content` (`None`: something the tracker does not follow).
fn store(m: &mut Machine, instr: &Instruction, size: u32, content: Option<Content>) {
    if let Some(at) = address_of(m.address(instr)) {
        match content {
            Some(content) => m.mem.write(at, size, content),
            None => m.mem.forget(at, size),
        }
    }
}

/// A 16-byte SSE store of two halves.
fn store_halves(m: &mut Machine, instr: &Instruction, halves: &[Value; 2]) {
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
fn rep_fill(m: &mut Machine, instr: &Instruction) {
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
fn fill(m: &mut Machine, dst: Value, byte: u8, len: u64) {
    let Some(d) = address_of(dst) else {
        return;
    };
    match u32::try_from(len) {
        Ok(len) => m.mem.write(d, len, Content::Fill(byte)),
        Err(_) => m.mem.forget(d, MAX_TRACKED),
    }
}

fn forget_at(m: &mut Machine, dst: Value, len: u32) {
    if let Some(d) = address_of(dst) {
        m.mem.forget(d, len);
    }
}

/// The table indices `[table + disp]` or `[table + reg*scale + disp]` can name: one, two
/// when the index register holds one of two constants, none when it is unknown.
fn wdf_indices(m: &Machine, instr: &Instruction) -> (Option<u32>, Option<u32>) {
    let index = instr.memory_index();
    if index == Register::None {
        return (wdf_index(instr), None);
    }
    let slot = |v: u64| {
        let offset = v
            .checked_mul(u64::from(instr.memory_index_scale()))?
            .checked_add(instr.memory_displacement64())?;
        offset
            .is_multiple_of(8)
            .then(|| u32::try_from(offset / 8).ok())
            .flatten()
    };
    match m.value(index) {
        Value::Const(c) => (slot(c), None),
        Value::Pair(a, b) => match (slot(u64::from(a)), slot(u64::from(b))) {
            (Some(a), Some(b)) => (Some(a), Some(b)),
            _ => (None, None),
        },
        _ => (None, None),
    }
}

/// The table index of `[reg + disp]`; unknown when an index register is involved.
fn wdf_index(instr: &Instruction) -> Option<u32> {
    if instr.memory_index() != Register::None {
        return None;
    }
    let disp = instr.memory_displacement64();
    disp.is_multiple_of(8)
        .then(|| u32::try_from(disp / 8).ok())
        .flatten()
}

/// A spin lock taken or released at `site`.
fn lock_effect(m: &mut Machine, effect: locks::Effect, site: u32, fx: &mut Effects<'_>) {
    match effect {
        locks::Effect::Acquire(name) => m.acquire(name, site),
        locks::Effect::Release => {
            if !m.release()
                && let Some(out) = fx.out()
            {
                // Releases a lock its caller took.
                out.summary.releases = true;
            }
        }
    }
}
