//! Calls and jumps: where control goes, the edges and external calls they add, and what the
//! framework methods, the helpers' summaries and the specially modelled functions (memory
//! copies, locks, section locking) do to the state.

use iced_x86::{Instruction, Mnemonic, OpKind, Register};

use crate::callgraph::{EdgeKind, External};
use crate::view::{Special, View};
use crate::{kmdf, locks};

use super::super::memory::{Content, MAX_TRACKED, address_of};
use super::super::state::{
    ARGUMENT_REGISTERS, Guard, Machine, R8, RAX, RCX, RDX, STACK_ARGUMENTS, VOLATILE,
};
use super::super::summary::{Held, RegArg, RegCall, Summary, read_arg};
use super::super::value::Value;
use super::moves::{fill, forget_at};
use super::{Control, Effects, Transfer};

impl<V: View> Transfer<'_, V> {
    /// `call` and `jmp`.
    #[allow(clippy::too_many_lines)]
    pub(super) fn transfer(
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
        let mut import = None;
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
                if let Value::Import(slot) = value {
                    import = Some(slot);
                }
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
                    if let Value::Import(slot) = value {
                        import = Some(slot);
                    }
                } else if let Some(slot) = slot.filter(|&s| self.view.is_import_slot(s)) {
                    fx.external(site, External::Import(slot));
                    special = slot_special;
                    import = Some(slot);
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
        let wdf_name = wdf_call.and_then(|i| crate::wdf::function_name(u64::from(i)));
        let external = wdf_name.or_else(|| {
            import
                .and_then(|slot| self.view.import_name(slot))
                .map(|n| n.rsplit_once('!').map_or(n, |(_, name)| name))
        });
        if let Some(name) = external {
            self.contract_argument(m, name, site, fx);
        }
        // Whatever this call reaches runs only where `WdfDevStateIsNP` said FALSE.
        if m.np == Guard::NotNp
            && (external.is_some() || direct.is_some())
            && let Some(out) = fx.out()
        {
            out.not_np.push(site);
        }
        let mut result = None;
        if self.flow {
            if let Some(name) = wdf_name {
                result = self.framework_call(m, name, site, fx);
            }
            if let Some(s) = special {
                self.special_call(m, site, s, fx);
            } else if let Some(target) = direct {
                result = self.callee(m, site, target, fx);
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
            if let Some(value) = result {
                m.regs[RAX] = value;
            }
        }
        m.bound = None;
        control
    }

    /// A call of a routine whose contract depends on one argument's value (a pool type, a
    /// `Wait`): the function is at stake, and the dataflow records that value.
    pub(super) fn contract_argument(
        &self,
        m: &Machine,
        name: &str,
        site: u32,
        fx: &mut Effects<'_>,
    ) {
        let Some(position) = routine_contracts::argument_of_interest(name) else {
            return;
        };
        fx.at_stake = true;
        if !self.flow {
            return;
        }
        let value = match m.argument(position, self.view) {
            Value::Const(c) => Some(c),
            _ => None,
        };
        if let Some(out) = fx.out() {
            out.arguments.push((site, position, value));
        }
    }

    /// A call or jump through a register holding `value`: the framework index it calls, if
    /// any, and where control goes.
    pub(super) fn transfer_to(
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
    pub(super) fn special_import(&self, value: Value) -> Option<Special> {
        match value {
            Value::Import(slot) => self.view.special_slot(slot),
            _ => None,
        }
    }

    /// Dataflow mode: a call of the framework method `name`: the registration it makes, the
    /// code addresses it is handed where the model reads no callback (reported, not dropped),
    /// and the lock it takes or releases.
    pub(super) fn framework_call(
        &mut self,
        m: &mut Machine,
        name: &'static str,
        site: u32,
        fx: &mut Effects<'_>,
    ) -> Option<Value> {
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
        // What `WdfDevStateIsNP` is applied to.
        matches!(
            name,
            "WdfDeviceGetDevicePowerState" | "WdfDeviceGetDevicePowerPolicyState"
        )
        .then_some(Value::DevState)
    }

    /// The code addresses a structure of a layout the model does not know holds, within the
    /// `Size` its first member gives.
    pub(super) fn code_in_structure(&self, m: &Machine, pointer: Value) -> Vec<u32> {
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

    /// Dataflow mode: a direct call of the image's own function at `target`: its summary (and
    /// what it returns, when the summary knows), or, when it has none yet and is handed a
    /// pointer into this function's memory, a request to walk it.
    pub(super) fn callee(
        &mut self,
        m: &mut Machine,
        site: u32,
        target: u32,
        fx: &mut Effects<'_>,
    ) -> Option<Value> {
        if let Some(summary) = self.summaries.and_then(|s| s.get(&target)) {
            self.apply_summary(m, site, summary, fx);
            return summary.returns;
        }
        let hands_memory = ARGUMENT_REGISTERS
            .iter()
            .any(|&r| matches!(m.regs[r], Value::Stack(_) | Value::Param { .. }));
        if hands_memory && let Some(out) = fx.out() {
            out.wanted.push(target);
        }
        None
    }

    /// A return, or a tail call: the function's callers continue from here.
    pub(super) fn returning(&mut self, m: &Machine, fx: &mut Effects<'_>) {
        let holding = m
            .holds()
            .then(|| m.acquired.map_or("a spin lock", |(name, _)| name));
        if fx.reached
            && let Some(out) = fx.out()
        {
            out.returning(&m.mem, m.regs[RAX], holding, self.sets);
        }
    }

    /// A call of a [`Special`] function (by import or the image's own copy): its effect on the
    /// state, from the argument registers.
    pub(super) fn special_call(
        &mut self,
        m: &mut Machine,
        site: u32,
        special: Special,
        fx: &mut Effects<'_>,
    ) {
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

    /// The registration a framework call makes, read from the arguments now.
    pub(super) fn registration(
        &self,
        m: &Machine,
        method: &'static kmdf::Method,
        site: u32,
    ) -> RegCall {
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
                .then_some(super::super::summary::Budget::Cells(
                    super::super::memory::MAX_CELLS,
                )),
        }
    }

    /// Applies a callee's summary at a call: what it leaves in the memory passed, the
    /// registrations it makes with it, the locks it takes or releases.
    pub(super) fn apply_summary(
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
}

/// The table indices `[table + disp]` or `[table + reg*scale + disp]` can name: one, two
/// when the index register holds one of two constants, none when it is unknown.
pub(super) fn wdf_indices(m: &Machine, instr: &Instruction) -> (Option<u32>, Option<u32>) {
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
pub(super) fn wdf_index(instr: &Instruction) -> Option<u32> {
    if instr.memory_index() != Register::None {
        return None;
    }
    let disp = instr.memory_displacement64();
    disp.is_multiple_of(8)
        .then(|| u32::try_from(disp / 8).ok())
        .flatten()
}

/// A spin lock taken or released at `site`.
pub(super) fn lock_effect(m: &mut Machine, effect: locks::Effect, site: u32, fx: &mut Effects<'_>) {
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
