//! One linear pass of a real x64 decoder (iced-x86) over every function, producing the
//! call graph: direct calls and jumps (tail calls included), resolved jump tables, calls
//! through the import address table (external), KMDF framework calls, addresses of code
//! taken with `lea`, and indirect calls that stay unresolved.
//!
//! Each function is decoded once (twice when a jump table lies inside it), with one `Decoder`
//! per code section, into an instruction buffer reused across functions: no allocation per
//! instruction or per function, only per edge found. The buffer is scanned for the function's
//! joins (targets of its own branches) before the register tracker walks it, so what the
//! tracker knows never crosses a join or an instruction that does not fall through.

use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

use crate::functions::Functions;
use crate::image::Image;

/// How a function reaches another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EdgeKind {
    /// `call target`.
    Call,
    /// `jmp`/`jcc` out of the function: a tail call or a jump into another function.
    Jump,
    /// A jump-table entry.
    JumpTable,
    /// `lea reg, [rip+target]` or a pointer in read-only data: the address is taken.
    AddressTaken,
}

/// One edge of the call graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    /// RVA of the instruction.
    pub site: u32,
    /// RVA of the target.
    pub target: u32,
    /// How.
    pub kind: EdgeKind,
}

/// A call that leaves the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum External {
    /// Through the import address table slot at this RVA.
    Import(u32),
    /// Through the KMDF function table, with the index when it is a constant.
    Wdf(Option<u32>),
}

/// A call or jump whose target is not known statically.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unresolved {
    /// RVA of the instruction.
    pub site: u32,
    /// `call` or `jmp`.
    pub is_call: bool,
    /// Through a register (`call rax`) or through memory (`call [rax+8]`).
    pub through_memory: bool,
}

/// The call graph, stored flat: the items of function `i` are
/// `items[offsets[i]..offsets[i + 1]]` for each of the three kinds.
#[derive(Debug, Default)]
pub struct CallGraph {
    /// Direct edges.
    pub edges: Vec<Edge>,
    edge_offsets: Vec<u32>,
    /// External calls `(site, what)`.
    pub externals: Vec<(u32, External)>,
    external_offsets: Vec<u32>,
    /// Unresolved indirect transfers.
    pub unresolved: Vec<Unresolved>,
    unresolved_offsets: Vec<u32>,
    /// Instructions decoded.
    pub instructions: u64,
    /// Bytes decoded.
    pub code_bytes: u64,
}

impl CallGraph {
    /// Edges out of function `f`.
    #[must_use]
    pub fn edges_of(&self, f: usize) -> &[Edge] {
        &self.edges[self.edge_offsets[f] as usize..self.edge_offsets[f + 1] as usize]
    }

    /// External calls of function `f`.
    #[must_use]
    pub fn externals_of(&self, f: usize) -> &[(u32, External)] {
        &self.externals[self.external_offsets[f] as usize..self.external_offsets[f + 1] as usize]
    }

    /// Unresolved transfers of function `f`.
    #[must_use]
    pub fn unresolved_of(&self, f: usize) -> &[Unresolved] {
        &self.unresolved
            [self.unresolved_offsets[f] as usize..self.unresolved_offsets[f + 1] as usize]
    }
}

/// What the tracker knows about a general-purpose register inside one function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Value {
    Unknown,
    /// An address inside the image, from `lea reg, [rip+x]`.
    Address(u32),
    /// An [`Value::Address`] that reached a join by falling through: one path brings it,
    /// the others may bring anything. A call through it may reach that code (an edge) and
    /// may go anywhere else (unresolved).
    MaybeAddress(u32),
    /// The KMDF function table pointer, loaded from `WdfFunctions_01xxx`.
    WdfTable,
    /// A slot of that table (`None`: the index is in a register).
    WdfSlot(Option<u32>),
    /// A jump-table entry: 4 bytes read at `table + index*4`.
    TableEntry {
        table: u32,
        signed: bool,
    },
    /// A jump-table entry plus the base it is relative to.
    TableTarget {
        table: u32,
        base: u32,
        signed: bool,
    },
}

/// Longest jump table read when no `cmp index, N` bounds it.
const MAX_TABLE_ENTRIES: u32 = 4096;

/// Maps a general-purpose register to 0..16, or `None` for anything else.
fn gpr(reg: Register) -> Option<usize> {
    let r = reg as usize;
    let in_range = |lo: Register, hi: Register| {
        (lo as usize..=hi as usize)
            .contains(&r)
            .then(|| r - lo as usize)
    };
    in_range(Register::RAX, Register::R15)
        .or_else(|| in_range(Register::EAX, Register::R15D))
        .or_else(|| in_range(Register::AX, Register::R15W))
        .or_else(|| in_range(Register::R8L, Register::R15L).map(|i| i + 8))
        .or_else(|| in_range(Register::SPL, Register::DIL).map(|i| i + 4))
        .or_else(|| in_range(Register::AL, Register::BL))
        .or_else(|| in_range(Register::AH, Register::BH))
}

/// Registers a call may clobber in the Microsoft x64 convention.
const VOLATILE: [usize; 7] = [0, 1, 2, 8, 9, 10, 11];

/// What the decoder asks about the image while classifying instructions. [`Context`] answers
/// from a real image; the unit tests answer from hand-assembled bytes.
pub trait View {
    /// Preferred image base.
    fn image_base(&self) -> u64;
    /// The RVA of an absolute address inside the image.
    fn rva_of_va(&self, va: u64) -> Option<u32>;
    /// Four bytes at `rva`, little-endian.
    fn read_u32(&self, rva: u32) -> Option<u32>;
    /// Whether `rva` lies in a code section.
    fn is_code(&self, rva: u32) -> bool;
    /// Whether `rva` is an import address table slot.
    fn is_import_slot(&self, rva: u32) -> bool;
    /// Whether `rva` is a `WdfFunctions_01xxx` table pointer variable.
    fn is_wdf_table(&self, rva: u32) -> bool;
    /// The code a relocated pointer in read-only data at `slot` points to.
    fn constant_code_pointer(&self, slot: u32) -> Option<u32>;
}

/// Everything the decoder needs to know about the image to classify one instruction.
pub struct Context<'a> {
    image: &'a Image,
    functions: &'a Functions,
    /// RVAs of the `WdfFunctions_01xxx` pointer variables.
    wdf_tables: Vec<u32>,
}

impl<'a> Context<'a> {
    /// A context for `image`; `wdf_tables` are the RVAs of the KMDF table variables.
    #[must_use]
    pub fn new(image: &'a Image, functions: &'a Functions, wdf_tables: Vec<u32>) -> Context<'a> {
        Context {
            image,
            functions,
            wdf_tables,
        }
    }
}

impl View for Context<'_> {
    fn image_base(&self) -> u64 {
        self.image.image_base
    }

    fn rva_of_va(&self, va: u64) -> Option<u32> {
        self.image.rva_of_va(va)
    }

    fn read_u32(&self, rva: u32) -> Option<u32> {
        let b = self.image.read_at(rva, 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn is_code(&self, rva: u32) -> bool {
        self.image
            .section_of(rva)
            .is_some_and(|s| self.image.sections[s].is_code())
    }

    fn is_import_slot(&self, rva: u32) -> bool {
        self.image.import_at(rva).is_some()
    }

    fn is_wdf_table(&self, rva: u32) -> bool {
        self.wdf_tables.contains(&rva)
    }

    /// A pointer to code stored in read-only data (a relocated constant function pointer):
    /// `call [rip+slot]` through it is a direct call in all but form.
    fn constant_code_pointer(&self, slot: u32) -> Option<u32> {
        let section = &self.image.sections[self.image.section_of(slot)?];
        if section.characteristics & object::pe::IMAGE_SCN_MEM_WRITE != 0 {
            return None;
        }
        self.image.dir64_relocations.binary_search(&slot).ok()?;
        let bytes = self.image.read_at(slot, 8)?;
        let va = u64::from_le_bytes(bytes.try_into().ok()?);
        let rva = self.image.rva_of_va(va)?;
        self.is_code(rva).then_some(rva)
    }
}

/// Decodes every function of `functions` once and builds the call graph.
#[must_use]
pub fn build(ctx: &Context<'_>) -> CallGraph {
    let image = ctx.image;
    let n = ctx.functions.len();
    let mut graph = CallGraph {
        edge_offsets: Vec::with_capacity(n + 1),
        external_offsets: Vec::with_capacity(n + 1),
        unresolved_offsets: Vec::with_capacity(n + 1),
        ..CallGraph::default()
    };
    let mut scratch = Scratch::default();
    let mut current_section = usize::MAX;
    let mut decoder: Option<Decoder<'_>> = None;
    let mut section_rva = 0u32;
    let mut section_len = 0usize;
    for function in &ctx.functions.list {
        push_offsets(&mut graph);
        if function.section != current_section {
            current_section = function.section;
            let data = image.section_data(function.section);
            section_rva = image.sections[function.section].rva;
            section_len = data.len();
            decoder = Some(Decoder::with_ip(
                64,
                data,
                image.image_base.wrapping_add(u64::from(section_rva)),
                DecoderOptions::NONE,
            ));
        }
        let Some(decoder) = decoder.as_mut() else {
            continue;
        };
        let start = (function.start - section_rva) as usize;
        let end = ((function.end - section_rva) as usize).min(section_len);
        if start >= end || decoder.set_position(start).is_err() {
            continue;
        }
        decoder.set_ip(image.image_base.wrapping_add(u64::from(function.start)));
        decode_range(
            ctx,
            decoder,
            &mut scratch,
            end,
            function.start,
            function.end,
            &mut graph,
        );
        graph.code_bytes += (end - start) as u64;
    }
    push_offsets(&mut graph);
    graph
}

/// Buffers reused across functions, so decoding a function allocates nothing once they have
/// grown to the largest function.
#[derive(Default)]
pub struct Scratch {
    /// The function's instructions, decoded once.
    instructions: Vec<Instruction>,
    /// Sorted RVAs inside the function where control flow joins: register knowledge ends there.
    joins: Vec<u32>,
    /// Jump tables inside the function found by an earlier walk: skipped when decoding.
    tables: Vec<(u32, u32)>,
    /// In-function targets of resolved jump tables: joins a rel-branch scan cannot see.
    table_targets: Vec<u32>,
}

/// Walks over one function before giving up on its jump tables: each walk can only add joins
/// and tables, so this bound is never reached by real code.
const MAX_WALKS: usize = 8;

/// Decodes one function: from the decoder's position up to byte `end` of its buffer, the
/// function spanning RVAs `start..stop`. Results are appended to `graph`.
///
/// Register knowledge holds only inside a basic block: it is forgotten after every instruction
/// that does not fall through and at every join, an address of the function that a branch,
/// `loop` or jump-table entry targets. The joins are collected from the decoded instructions
/// before they are walked. A resolved jump table can reveal joins (its entries) and data to
/// skip (a table inside the function): then the function is walked again with them, after
/// dropping what the previous walk appended.
pub fn decode_range<V: View>(
    view: &V,
    decoder: &mut Decoder<'_>,
    scratch: &mut Scratch,
    end: usize,
    start: u32,
    stop: u32,
    graph: &mut CallGraph,
) {
    let position = decoder.position();
    let ip = decoder.ip();
    let marks = (
        graph.edges.len(),
        graph.externals.len(),
        graph.unresolved.len(),
        graph.instructions,
    );
    scratch.tables.clear();
    scratch.table_targets.clear();
    let mut state = FunctionState::new(start, stop);
    let mut decode = true;
    for walk in 0..=MAX_WALKS {
        if decode {
            // A table inside the function is data, and bytes decoded across it are not the
            // instructions that follow it: decode again, skipping it.
            if decoder.set_position(position).is_err() {
                break;
            }
            decoder.set_ip(ip);
            decode_all(view, decoder, scratch, end, start, stop);
        }
        graph.edges.truncate(marks.0);
        graph.externals.truncate(marks.1);
        graph.unresolved.truncate(marks.2);
        graph.instructions = marks.3 + scratch.instructions.len() as u64;
        state.start_walk(walk == MAX_WALKS);
        walk_function(view, scratch, &mut state, graph);
        let (new_joins, new_tables) = state.learned(scratch);
        if !new_joins && !new_tables {
            break;
        }
        decode = new_tables;
    }
}

/// Decodes the function into `scratch.instructions`, skipping the known tables, and collects
/// the targets of its in-function rel branches plus the known jump-table targets as joins.
fn decode_all<V: View>(
    view: &V,
    decoder: &mut Decoder<'_>,
    scratch: &mut Scratch,
    end: usize,
    start: u32,
    stop: u32,
) {
    scratch.instructions.clear();
    scratch.joins.clear();
    while decoder.position() < end && decoder.can_decode() {
        if !scratch.tables.is_empty() {
            skip_table(view, decoder, &scratch.tables);
            if decoder.position() >= end {
                break;
            }
        }
        // Decoded in place: copying a freshly decoded `Instruction` into the buffer reads
        // back its narrow stores with wide loads, a store-forwarding stall that doubled the
        // cost of the pass.
        scratch.instructions.push(Instruction::default());
        let Some(instr) = scratch.instructions.last_mut() else {
            break;
        };
        decoder.decode_out(instr);
        if matches!(
            instr.op0_kind(),
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
        ) && let Some(target) = view.rva_of_va(instr.near_branch_target())
            && target >= start
            && target < stop
        {
            // Every rel branch counts, `call` included: a call into the middle of the
            // function is another way in.
            scratch.joins.push(target);
        }
    }
    scratch.joins.extend_from_slice(&scratch.table_targets);
    scratch.joins.sort_unstable();
    scratch.joins.dedup();
}

/// One walk over the decoded function with the register tracker, reset at joins and after
/// instructions that do not fall through.
fn walk_function<V: View>(
    view: &V,
    scratch: &Scratch,
    state: &mut FunctionState,
    graph: &mut CallGraph,
) {
    let mut next_join = 0;
    let mut expected = None;
    for instr in &scratch.instructions {
        // Decoded IPs are image_base + RVA of an instruction inside the image: the difference
        // fits.
        #[allow(clippy::cast_possible_truncation)]
        let site = instr.ip().wrapping_sub(view.image_base()) as u32;
        // A skipped table, or a branch target inside an earlier instruction (the bytes are
        // decoded two ways), ends what the tracker knows. A join at this instruction keeps
        // only the code addresses that fall through into it, as possibilities.
        let mut reset = state.every_instruction || expected.is_some_and(|e| e != site);
        let mut join = false;
        #[allow(clippy::cast_possible_truncation)]
        {
            expected = Some(site.wrapping_add(instr.len() as u32));
        }
        while let Some(&t) = scratch.joins.get(next_join)
            && t <= site
        {
            reset |= t < site;
            join = true;
            next_join += 1;
        }
        if reset {
            state.reset();
        } else if join {
            state.weaken();
        }
        if instr.is_invalid() {
            // Data or padding inside the range: resynchronise on the next byte.
            state.reset();
            continue;
        }
        state.step(view, instr, graph);
        if !falls_through(instr) {
            state.reset();
        }
    }
}

/// Whether execution can continue at the next instruction. `int 0x29` is `__fastfail`; a call
/// to a function that does not return is not recognised (the next instruction is then
/// usually a join anyway).
fn falls_through(instr: &Instruction) -> bool {
    match instr.mnemonic() {
        Mnemonic::Jmp
        | Mnemonic::Ret
        | Mnemonic::Retf
        | Mnemonic::Iretq
        | Mnemonic::Iretd
        | Mnemonic::Ud0
        | Mnemonic::Ud1
        | Mnemonic::Ud2
        | Mnemonic::Int3
        | Mnemonic::Hlt => false,
        Mnemonic::Int => instr.immediate8() != 0x29,
        _ => true,
    }
}

/// Moves the decoder past a jump table that lies inside the function (clang puts the tables of
/// a COFF function in its own section, right after its code): decoding the entries as
/// instructions would invent calls and indirect jumps.
fn skip_table<V: View>(view: &V, decoder: &mut Decoder<'_>, tables: &[(u32, u32)]) {
    #[allow(clippy::cast_possible_truncation)]
    let rva = decoder.ip().wrapping_sub(view.image_base()) as u32;
    if let Some(&(_, table_end)) = tables.iter().find(|&&(s, e)| rva >= s && rva < e) {
        let skip = table_end - rva;
        let position = decoder.position() + skip as usize;
        if decoder.set_position(position).is_ok() {
            decoder.set_ip(decoder.ip().wrapping_add(u64::from(skip)));
        } else {
            // The table runs to the end of the buffer: nothing decodable follows.
            let len = decoder.max_position();
            let _ = decoder.set_position(len);
        }
    }
}

/// Closes the current function's item lists (call after its [`decode_range`]).
pub fn push_offsets(graph: &mut CallGraph) {
    // The flat vectors hold at most a few edges per instruction of a <4 GiB image.
    #[allow(clippy::cast_possible_truncation)]
    {
        graph.edge_offsets.push(graph.edges.len() as u32);
        graph.external_offsets.push(graph.externals.len() as u32);
        graph.unresolved_offsets.push(graph.unresolved.len() as u32);
    }
}

struct FunctionState {
    start: u32,
    end: u32,
    regs: [Value; 16],
    /// `cmp reg, imm` just seen: the bound of a following jump table.
    bound: Option<u32>,
    /// Resolved jump tables inside this function, as RVA ranges: data, not code.
    tables: Vec<(u32, u32)>,
    /// In-function targets of the jump tables resolved in this walk.
    table_targets: Vec<u32>,
    /// Forget everything at every instruction: the last resort when walks do not settle.
    every_instruction: bool,
}

impl FunctionState {
    fn new(start: u32, end: u32) -> FunctionState {
        FunctionState {
            start,
            end,
            regs: [Value::Unknown; 16],
            bound: None,
            tables: Vec::new(),
            table_targets: Vec::new(),
            every_instruction: false,
        }
    }

    fn start_walk(&mut self, every_instruction: bool) {
        self.reset();
        self.tables.clear();
        self.table_targets.clear();
        self.every_instruction = every_instruction;
    }

    /// Moves what this walk learned about jump tables into `scratch`: whether it found new
    /// joins (walk again) and new tables inside the function (decode again).
    fn learned(&self, scratch: &mut Scratch) -> (bool, bool) {
        let mut new_joins = false;
        for &target in &self.table_targets {
            if scratch.joins.binary_search(&target).is_err() {
                scratch.table_targets.push(target);
                scratch.joins.push(target);
                new_joins = true;
            }
        }
        if new_joins {
            scratch.joins.sort_unstable();
            scratch.joins.dedup();
        }
        let mut new_tables = false;
        for &table in &self.tables {
            if !scratch.tables.contains(&table) {
                scratch.tables.push(table);
                new_tables = true;
            }
        }
        (new_joins, new_tables)
    }

    fn reset(&mut self) {
        self.regs = [Value::Unknown; 16];
        self.bound = None;
    }

    /// At a join reached by falling through: only code addresses survive, as possibilities.
    /// Forgetting them would turn a real call of a paged function on the fall-through path
    /// into a mere unresolved warning. Kept out of line: joins are rare next to instructions,
    /// and inlined into the walk this loop slowed the whole pass.
    #[inline(never)]
    fn weaken(&mut self) {
        for value in &mut self.regs {
            *value = match *value {
                Value::Address(a) | Value::MaybeAddress(a) => Value::MaybeAddress(a),
                _ => Value::Unknown,
            };
        }
        self.bound = None;
    }

    fn inside(&self, rva: u32) -> bool {
        rva >= self.start && rva < self.end
    }

    fn value(&self, reg: Register) -> Value {
        gpr(reg).map_or(Value::Unknown, |i| self.regs[i])
    }

    fn set(&mut self, reg: Register, value: Value) {
        if let Some(i) = gpr(reg) {
            self.regs[i] = value;
        }
    }

    #[allow(clippy::too_many_lines)]
    fn step<V: View>(&mut self, ctx: &V, instr: &Instruction, graph: &mut CallGraph) {
        let image = ctx;
        // The instruction's address: the decoder's IP is image_base + RVA, and functions lie
        // inside the image, so the difference fits.
        #[allow(clippy::cast_possible_truncation)]
        let site = instr.ip().wrapping_sub(image.image_base()) as u32;
        let mnemonic = instr.mnemonic();
        match mnemonic {
            Mnemonic::Call | Mnemonic::Jmp => {
                let is_call = mnemonic == Mnemonic::Call;
                match instr.op0_kind() {
                    OpKind::NearBranch64 => {
                        if let Some(target) = image.rva_of_va(instr.near_branch_target())
                            && (is_call || !self.inside(target))
                        {
                            let kind = if is_call {
                                EdgeKind::Call
                            } else {
                                EdgeKind::Jump
                            };
                            graph.edges.push(Edge { site, target, kind });
                        }
                    }
                    OpKind::Register => {
                        let reg = instr.op0_register();
                        match self.value(reg) {
                            Value::WdfSlot(index) => {
                                graph.externals.push((site, External::Wdf(index)));
                            }
                            Value::TableTarget {
                                table,
                                base,
                                signed,
                            } if !is_call => {
                                self.resolve_table(ctx, site, table, base, signed, graph);
                            }
                            Value::Address(target) if ctx.is_code(target) => {
                                let kind = if is_call {
                                    EdgeKind::Call
                                } else {
                                    EdgeKind::Jump
                                };
                                graph.edges.push(Edge { site, target, kind });
                            }
                            Value::MaybeAddress(target) if ctx.is_code(target) => {
                                let kind = if is_call {
                                    EdgeKind::Call
                                } else {
                                    EdgeKind::Jump
                                };
                                graph.edges.push(Edge { site, target, kind });
                                graph.unresolved.push(Unresolved {
                                    site,
                                    is_call,
                                    through_memory: false,
                                });
                            }
                            _ => graph.unresolved.push(Unresolved {
                                site,
                                is_call,
                                through_memory: false,
                            }),
                        }
                    }
                    OpKind::Memory => {
                        if instr.is_ip_rel_memory_operand() {
                            let slot = image.rva_of_va(instr.ip_rel_memory_address());
                            if let Some(slot) = slot.filter(|&s| image.is_import_slot(s)) {
                                graph.externals.push((site, External::Import(slot)));
                            } else if let Some(target) =
                                slot.and_then(|s| ctx.constant_code_pointer(s))
                            {
                                let kind = if is_call {
                                    EdgeKind::Call
                                } else {
                                    EdgeKind::Jump
                                };
                                graph.edges.push(Edge { site, target, kind });
                            } else if let Value::WdfSlot(index) = self.regs[0] {
                                // Control Flow Guard: `call [__guard_dispatch_icall_fptr]`
                                // with the real target in rax.
                                graph.externals.push((site, External::Wdf(index)));
                            } else {
                                graph.unresolved.push(Unresolved {
                                    site,
                                    is_call,
                                    through_memory: true,
                                });
                            }
                        } else if self.value(instr.memory_base()) == Value::WdfTable {
                            graph
                                .externals
                                .push((site, External::Wdf(wdf_index(instr))));
                        } else {
                            graph.unresolved.push(Unresolved {
                                site,
                                is_call,
                                through_memory: true,
                            });
                        }
                    }
                    _ => {}
                }
                if is_call {
                    for r in VOLATILE {
                        self.regs[r] = Value::Unknown;
                    }
                }
                self.bound = None;
            }
            Mnemonic::Lea if instr.op0_kind() == OpKind::Register => {
                let reg = instr.op0_register();
                if instr.is_ip_rel_memory_operand() {
                    match image.rva_of_va(instr.ip_rel_memory_address()) {
                        Some(target) => {
                            if ctx.is_code(target) && !self.inside(target) {
                                graph.edges.push(Edge {
                                    site,
                                    target,
                                    kind: EdgeKind::AddressTaken,
                                });
                            }
                            self.set(reg, Value::Address(target));
                        }
                        None => self.set(reg, Value::Unknown),
                    }
                } else {
                    self.set(reg, Value::Unknown);
                }
            }
            Mnemonic::Mov | Mnemonic::Movsxd
                if instr.op0_kind() == OpKind::Register && instr.op1_kind() == OpKind::Memory =>
            {
                let reg = instr.op0_register();
                let value = if instr.is_ip_rel_memory_operand() {
                    match image.rva_of_va(instr.ip_rel_memory_address()) {
                        Some(slot) if ctx.is_wdf_table(slot) => Value::WdfTable,
                        _ => Value::Unknown,
                    }
                } else {
                    match self.value(instr.memory_base()) {
                        Value::WdfTable => Value::WdfSlot(wdf_index(instr)),
                        Value::Address(base)
                            if instr.memory_index() != Register::None
                                && instr.memory_index_scale() == 4 =>
                        {
                            // `mov r32, [base + idx*4 + disp]` (MSVC: RVA entries off
                            // __ImageBase) or `movsxd r64, [base + idx*4]` (LLVM: entries
                            // relative to the table).
                            #[allow(clippy::cast_possible_truncation)]
                            let table = base.wrapping_add(instr.memory_displacement64() as u32);
                            Value::TableEntry {
                                table,
                                signed: mnemonic == Mnemonic::Movsxd,
                            }
                        }
                        _ => Value::Unknown,
                    }
                };
                self.set(reg, value);
            }
            Mnemonic::Mov
                if instr.op0_kind() == OpKind::Register && instr.op1_kind() == OpKind::Register =>
            {
                let value = self.value(instr.op1_register());
                self.set(instr.op0_register(), value);
            }
            Mnemonic::Add
                if instr.op0_kind() == OpKind::Register && instr.op1_kind() == OpKind::Register =>
            {
                let combined = match (
                    self.value(instr.op0_register()),
                    self.value(instr.op1_register()),
                ) {
                    (Value::TableEntry { table, signed }, Value::Address(base))
                    | (Value::Address(base), Value::TableEntry { table, signed }) => {
                        Value::TableTarget {
                            table,
                            base,
                            signed,
                        }
                    }
                    _ => Value::Unknown,
                };
                self.set(instr.op0_register(), combined);
            }
            Mnemonic::Cmp if instr.op0_kind() == OpKind::Register => {
                self.bound = match instr.op1_kind() {
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
            Mnemonic::Cmp | Mnemonic::Test | Mnemonic::Push | Mnemonic::Bt => {}
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
            | Mnemonic::Js => {
                // Conditional jumps: a `jcc` out of the function is a conditional tail call.
                if instr.op0_kind() == OpKind::NearBranch64
                    && let Some(target) = image.rva_of_va(instr.near_branch_target())
                    && !self.inside(target)
                {
                    graph.edges.push(Edge {
                        site,
                        target,
                        kind: EdgeKind::Jump,
                    });
                }
            }
            _ => {
                if instr.op_count() > 0 && instr.op0_kind() == OpKind::Register {
                    self.set(instr.op0_register(), Value::Unknown);
                }
            }
        }
    }

    /// Reads a jump table: entries of 4 bytes at `table`, each added to `base` (signed for
    /// LLVM's table-relative entries, unsigned RVAs for MSVC's `__ImageBase`-relative ones).
    fn resolve_table(
        &mut self,
        ctx: &impl View,
        site: u32,
        table: u32,
        base: u32,
        signed: bool,
        graph: &mut CallGraph,
    ) {
        let count = self
            .bound
            .unwrap_or(MAX_TABLE_ENTRIES)
            .min(MAX_TABLE_ENTRIES);
        let mut resolved = 0;
        for i in 0..count {
            let Some(raw) = ctx.read_u32(table.wrapping_add(i * 4)) else {
                break;
            };
            let target = if signed {
                base.wrapping_add_signed(raw.cast_signed())
            } else {
                base.wrapping_add(raw)
            };
            // Without a bound the table ends where entries stop pointing into this function.
            if !ctx.is_code(target) || (self.bound.is_none() && !self.inside(target)) {
                break;
            }
            if self.inside(target) {
                self.table_targets.push(target);
            } else {
                graph.edges.push(Edge {
                    site,
                    target,
                    kind: EdgeKind::JumpTable,
                });
            }
            resolved += 1;
        }
        if resolved == 0 {
            graph.unresolved.push(Unresolved {
                site,
                is_call: false,
                through_memory: false,
            });
        } else if self.inside(table) {
            self.tables
                .push((table, table.saturating_add(resolved * 4).min(self.end)));
        }
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const BASE: u64 = 0x1_4000_0000;
    const CODE: std::ops::Range<u32> = 0x1000..0x2000;

    /// An image with code at `CODE`, four-byte data words where the test puts them, one IAT
    /// slot and one `WdfFunctions` variable.
    struct Fake {
        words: HashMap<u32, u32>,
        import_slot: u32,
        wdf_table: u32,
    }

    impl View for Fake {
        fn image_base(&self) -> u64 {
            BASE
        }
        fn rva_of_va(&self, va: u64) -> Option<u32> {
            va.checked_sub(BASE)
                .and_then(|r| u32::try_from(r).ok())
                .filter(|&r| r < 0x10000)
        }
        fn read_u32(&self, rva: u32) -> Option<u32> {
            self.words.get(&rva).copied()
        }
        fn is_code(&self, rva: u32) -> bool {
            CODE.contains(&rva)
        }
        fn is_import_slot(&self, rva: u32) -> bool {
            rva == self.import_slot
        }
        fn is_wdf_table(&self, rva: u32) -> bool {
            rva == self.wdf_table
        }
        fn constant_code_pointer(&self, _slot: u32) -> Option<u32> {
            None
        }
    }

    /// rel32 from the end of an instruction (`next`) to `target`.
    fn rel(target: u32, next: u32) -> [u8; 4] {
        target.wrapping_sub(next).to_le_bytes()
    }

    fn decode(view: &Fake, code: &[u8]) -> CallGraph {
        let mut graph = CallGraph::default();
        push_offsets(&mut graph);
        let mut decoder = Decoder::with_ip(64, code, BASE + 0x1000, DecoderOptions::NONE);
        let mut scratch = Scratch::default();
        let stop = 0x1000 + u32::try_from(code.len()).expect("small");
        decode_range(
            view,
            &mut decoder,
            &mut scratch,
            code.len(),
            0x1000,
            stop,
            &mut graph,
        );
        push_offsets(&mut graph);
        graph
    }

    /// Function 0's edges as `(site, target, kind)`, in the order the decoder found them.
    fn edge_triples(graph: &CallGraph) -> Vec<(u32, u32, EdgeKind)> {
        graph
            .edges_of(0)
            .iter()
            .map(|e| (e.site, e.target, e.kind))
            .collect()
    }

    fn fake(words: &[(u32, u32)]) -> Fake {
        Fake {
            words: words.iter().copied().collect(),
            import_slot: 0x4000,
            wdf_table: 0x2000,
        }
    }

    #[test]
    fn llvm_jump_table_relative_to_table() {
        // cmp ecx,2; ja .ret; lea rdx,[rip+T]; movsxd rax,[rdx+rcx*4]; add rax,rdx; jmp rax; .ret: ret
        let mut code = vec![0x83, 0xf9, 0x02, 0x77, 0x10, 0x48, 0x8d, 0x15];
        code.extend(rel(0x3000, 0x100c));
        code.extend([0x48, 0x63, 0x04, 0x8a, 0x48, 0x01, 0xd0, 0xff, 0xe0, 0xc3]);
        let entry = |target: u32| target.wrapping_sub(0x3000);
        let view = fake(&[
            (0x3000, entry(0x1015)),
            (0x3004, entry(0x1800)),
            (0x3008, entry(0x1900)),
            (0x300c, entry(0x1a00)),
        ]);
        let graph = decode(&view, &code);
        let edges = edge_triples(&graph);
        // Three entries (cmp bound 2 + 1): the one inside the function is no edge, the fourth
        // word is past the bound.
        assert_eq!(
            edges,
            vec![
                (0x1013, 0x1800, EdgeKind::JumpTable),
                (0x1013, 0x1900, EdgeKind::JumpTable)
            ]
        );
        assert!(graph.unresolved_of(0).is_empty());
    }

    #[test]
    fn msvc_jump_table_of_rvas_off_image_base() {
        // cmp eax,2; ja .ret; lea rdx,[__ImageBase]; mov ecx,[rdx+rax*4+0x3000]; add rcx,rdx; jmp rcx; .ret: ret
        let mut code = vec![0x83, 0xf8, 0x02, 0x77, 0x13, 0x48, 0x8d, 0x15];
        code.extend(rel(0, 0x100c));
        code.extend([
            0x8b, 0x8c, 0x82, 0x00, 0x30, 0x00, 0x00, 0x48, 0x01, 0xd1, 0xff, 0xe1, 0xc3,
        ]);
        let view = fake(&[(0x3000, 0x1018), (0x3004, 0x1800), (0x3008, 0x1900)]);
        let graph = decode(&view, &code);
        let targets: Vec<u32> = graph.edges_of(0).iter().map(|e| e.target).collect();
        assert_eq!(targets, vec![0x1800, 0x1900]);
        assert!(graph.unresolved_of(0).is_empty());
    }

    #[test]
    fn unbounded_table_stops_at_first_entry_outside_the_function() {
        // Same LLVM shape without the cmp: only in-function entries count, so no edge, and
        // the jump is still resolved.
        let mut code = vec![0x48, 0x8d, 0x15];
        code.extend(rel(0x3000, 0x1007));
        code.extend([0x48, 0x63, 0x04, 0x8a, 0x48, 0x01, 0xd0, 0xff, 0xe0, 0xc3]);
        let entry = |target: u32| target.wrapping_sub(0x3000);
        let view = fake(&[(0x3000, entry(0x1010)), (0x3004, entry(0x1800))]);
        let graph = decode(&view, &code);
        assert!(graph.edges_of(0).is_empty());
        assert!(graph.unresolved_of(0).is_empty());
    }

    /// clang's COFF layout of a two-entry jump table: `cmp ecx,1; ja; lea rdx,[table];
    /// movsxd rax,[rdx+rcx*4]; add rax,rdx; jmp rax; ret; int3; int3`, then the table itself
    /// at 0x1018, inside the function's range, with entries to 0x1015 and `second`.
    fn clang_table_in_function(second: u32) -> (Vec<u8>, Fake) {
        let mut code = vec![0x83, 0xf9, 0x01, 0x77, 0x10, 0x48, 0x8d, 0x15];
        code.extend(rel(0x1018, 0x100c));
        code.extend([
            0x48, 0x63, 0x04, 0x8a, 0x48, 0x01, 0xd0, 0xff, 0xe0, 0xc3, 0xcc, 0xcc,
        ]);
        let entry = |target: u32| target.wrapping_sub(0x1018);
        code.extend(entry(0x1015).to_le_bytes());
        code.extend(entry(second).to_le_bytes());
        let view = fake(&[(0x1018, entry(0x1015)), (0x101c, entry(second))]);
        (code, view)
    }

    #[test]
    fn table_inside_the_function_is_skipped_not_decoded() {
        // The table follows the code in the same section and range.
        let (code, view) = clang_table_in_function(0x1016);
        let graph = decode(&view, &code);
        // cmp, ja, lea, movsxd, add, jmp, ret, int3, int3: the 8 table bytes are not decoded.
        assert_eq!(graph.instructions, 9);
        assert!(graph.edges_of(0).is_empty());
        assert!(graph.unresolved_of(0).is_empty());
    }

    #[test]
    fn table_entry_back_into_the_dispatch_is_a_join() {
        // As above, but the second entry targets the `movsxd` at 0x100c: that address is also
        // reached from the table, where rdx is not known to hold the base, so the second walk
        // forgets the `lea` there and the `jmp rax` is unresolved. The table stays skipped.
        let (code, view) = clang_table_in_function(0x100c);
        let graph = decode(&view, &code);
        assert_eq!(graph.instructions, 9);
        assert_eq!(
            graph.unresolved_of(0),
            &[Unresolved {
                site: 0x1013,
                is_call: false,
                through_memory: false
            }]
        );
    }

    #[test]
    fn wdf_table_loaded_on_one_path_is_not_known_at_the_join() {
        // test ecx,ecx; jne .join; mov rax,[rip+WdfFunctions]; .join: call [rax+0x258]; ret.
        // Through the jne, rax is whatever the caller passed: not a framework call.
        let mut code = vec![0x85, 0xc9, 0x75, 0x07, 0x48, 0x8b, 0x05];
        code.extend(rel(0x2000, 0x100b));
        code.extend([0xff, 0x90, 0x58, 0x02, 0x00, 0x00, 0xc3]);
        let graph = decode(&fake(&[]), &code);
        assert!(graph.externals_of(0).is_empty());
        assert_eq!(
            graph.unresolved_of(0),
            &[Unresolved {
                site: 0x100b,
                is_call: true,
                through_memory: true
            }]
        );
    }

    #[test]
    fn loop_head_is_a_join() {
        // mov rax,[rip+WdfFunctions]; .loop: call [rax+0x258]; mov rax,[rcx]; jmp .loop.
        // The back edge brings another rax to the loop head.
        let mut code = vec![0x48, 0x8b, 0x05];
        code.extend(rel(0x2000, 0x1007));
        code.extend([
            0xff, 0x90, 0x58, 0x02, 0x00, 0x00, 0x48, 0x8b, 0x01, 0xeb, 0xf5,
        ]);
        let graph = decode(&fake(&[]), &code);
        assert!(graph.externals_of(0).is_empty());
        assert_eq!(graph.unresolved_of(0).len(), 1);
        assert_eq!(graph.unresolved_of(0)[0].site, 0x1007);
    }

    #[test]
    fn tracking_resumes_inside_the_block_after_a_join() {
        // test ecx,ecx; jne .next; .next: mov rax,[rip+WdfFunctions]; call [rax+0x258]; ret.
        // The join is before the load: the load and the call share one block.
        let mut code = vec![0x85, 0xc9, 0x75, 0x00, 0x48, 0x8b, 0x05];
        code.extend(rel(0x2000, 0x100b));
        code.extend([0xff, 0x90, 0x58, 0x02, 0x00, 0x00, 0xc3]);
        let graph = decode(&fake(&[]), &code);
        assert_eq!(graph.externals_of(0), &[(0x100b, External::Wdf(Some(75)))]);
        assert!(graph.unresolved_of(0).is_empty());
    }

    /// `test ecx,ecx; jne .other` (when `branch`), `lea rax,[rip+0x1800]`, then `stop` (an
    /// instruction that does not fall through), `.other: call rax; ret`.
    fn lea_then_call_after(branch: bool, stop: &[u8]) -> CallGraph {
        let mut code = Vec::new();
        if branch {
            let skip = 7 + u8::try_from(stop.len()).expect("short");
            code.extend([0x85, 0xc9, 0x75, skip]);
        }
        let lea_end = 0x1000 + u32::try_from(code.len()).expect("small") + 7;
        code.extend([0x48, 0x8d, 0x05]);
        code.extend(rel(0x1800, lea_end));
        code.extend(stop);
        code.extend([0xff, 0xd0, 0xc3]);
        decode(&fake(&[]), &code)
    }

    #[test]
    fn code_address_falling_into_a_join_is_a_possible_target() {
        // test ecx,ecx; jne .join; lea rax,[rip+0x1800]; .join: call rax; ret. Through the
        // fall-through the call reaches 0x1800 (an edge), through the jne anything (unresolved).
        let mut code = vec![0x85, 0xc9, 0x75, 0x07, 0x48, 0x8d, 0x05];
        code.extend(rel(0x1800, 0x100b));
        code.extend([0xff, 0xd0, 0xc3]);
        let graph = decode(&fake(&[]), &code);
        let edges = edge_triples(&graph);
        assert_eq!(
            edges,
            vec![
                (0x1004, 0x1800, EdgeKind::AddressTaken),
                (0x100b, 0x1800, EdgeKind::Call)
            ]
        );
        assert_eq!(
            graph.unresolved_of(0),
            &[Unresolved {
                site: 0x100b,
                is_call: true,
                through_memory: false
            }]
        );
    }

    #[test]
    fn code_address_does_not_cross_a_join_or_a_dead_end() {
        // jmp over the call (to the ret), reached from the jne: the call is no direct edge.
        for (branch, stop) in [
            (true, &[0xeb, 0x02][..]),
            (false, &[0xeb, 0x02][..]),
            (false, &[0x0f, 0x0b][..]),
            (false, &[0xcc][..]),
            (false, &[0xc3][..]),
        ] {
            let graph = lea_then_call_after(branch, stop);
            let kinds: Vec<EdgeKind> = graph.edges_of(0).iter().map(|e| e.kind).collect();
            assert_eq!(kinds, vec![EdgeKind::AddressTaken], "{branch} {stop:x?}");
            assert_eq!(graph.unresolved_of(0).len(), 1, "{branch} {stop:x?}");
            assert!(graph.unresolved_of(0)[0].is_call);
        }
        // The same `lea; call rax` in one block is a direct call.
        let graph = lea_then_call_after(false, &[]);
        let kinds: Vec<EdgeKind> = graph.edges_of(0).iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![EdgeKind::AddressTaken, EdgeKind::Call]);
        assert!(graph.unresolved_of(0).is_empty());
    }

    #[test]
    fn unreadable_table_is_unresolved() {
        let mut code = vec![0x48, 0x8d, 0x15];
        code.extend(rel(0x3000, 0x1007));
        code.extend([0x48, 0x63, 0x04, 0x8a, 0x48, 0x01, 0xd0, 0xff, 0xe0]);
        let graph = decode(&fake(&[]), &code);
        assert_eq!(
            graph.unresolved_of(0),
            &[Unresolved {
                site: 0x100e,
                is_call: false,
                through_memory: false
            }]
        );
    }

    #[test]
    fn wdf_imports_indirect_calls_and_tail_jumps() {
        let mut code = vec![0x48, 0x8b, 0x05];
        code.extend(rel(0x2000, 0x1007)); // mov rax,[rip+WdfFunctions]
        code.extend([0xff, 0x90, 0x58, 0x02, 0x00, 0x00]); // call [rax+0x258]: index 75
        code.extend([0x48, 0x8b, 0x05]);
        code.extend(rel(0x2000, 0x1014)); // mov rax,[rip+WdfFunctions]
        code.extend([0x48, 0x8b, 0x80, 0x18, 0x04, 0x00, 0x00]); // mov rax,[rax+0x418]: index 131
        code.extend([0xff, 0xd0]); // call rax
        code.extend([0xff, 0x15]);
        code.extend(rel(0x4000, 0x1023)); // call [rip+IAT]
        code.extend([0xff, 0xd0]); // call rax: clobbered by the calls, unresolved
        code.extend([0xff, 0x51, 0x08]); // call [rcx+8]: unresolved
        code.extend([0x48, 0x8d, 0x0d]);
        code.extend(rel(0x1900, 0x102f)); // lea rcx,[rip+code]: address taken
        code.push(0xe9);
        code.extend(rel(0x1800, 0x1034)); // jmp: tail call
        let graph = decode(&fake(&[]), &code);
        assert_eq!(
            graph.externals_of(0),
            &[
                (0x1007, External::Wdf(Some(75))),
                (0x101b, External::Wdf(Some(131))),
                (0x101d, External::Import(0x4000))
            ]
        );
        assert_eq!(crate::wdf::function_name(75), Some("WdfDeviceCreate"));
        assert_eq!(
            crate::wdf::function_name(131),
            Some("WdfFdoQueryForInterface")
        );
        assert_eq!(
            graph.unresolved_of(0),
            &[
                Unresolved {
                    site: 0x1023,
                    is_call: true,
                    through_memory: false
                },
                Unresolved {
                    site: 0x1025,
                    is_call: true,
                    through_memory: true
                },
            ]
        );
        let edges = edge_triples(&graph);
        assert_eq!(
            edges,
            vec![
                (0x1028, 0x1900, EdgeKind::AddressTaken),
                (0x102f, 0x1800, EdgeKind::Jump)
            ]
        );
    }

    #[test]
    fn gpr_maps_every_width_to_one_slot() {
        assert_eq!(gpr(Register::RCX), Some(1));
        assert_eq!(gpr(Register::ECX), Some(1));
        assert_eq!(gpr(Register::CX), Some(1));
        assert_eq!(gpr(Register::CL), Some(1));
        assert_eq!(gpr(Register::R9D), Some(9));
        assert_eq!(gpr(Register::R9L), Some(9));
        assert_eq!(gpr(Register::SIL), Some(6));
        assert_eq!(gpr(Register::XMM0), None);
    }
}
