//! One linear pass of a real x64 decoder (iced-x86) over every function, producing the
//! call graph: direct calls and jumps (tail calls included), resolved jump tables, calls
//! through the import address table (external), KMDF framework calls, addresses of code
//! taken with `lea`, and indirect calls that stay unresolved.
//!
//! Each function is decoded once (twice when a jump table lies inside it), with one `Decoder`
//! per code section, into an instruction buffer reused across functions: no allocation per
//! instruction or per function, only per edge found. The buffer is scanned for the function's
//! joins (targets of its own branches) before the register tracker walks it.
//!
//! The tracker runs in one of two modes. The first pass over every function is *linear*:
//! what it knows about registers ends at each join and after each instruction that does not
//! fall through, which costs next to nothing. Functions where more is at stake (they call the
//! framework, take addresses, copy constant data or make indirect calls) are walked again by
//! [`crate::flow`] in *dataflow* mode: the state at a join is what every path into it agrees
//! on (a forward dataflow over the function's control-flow graph, iterated to a fixed point
//! for loops), and the tracker also follows the function's own stack frame ([`Frame`]) and
//! the SSE registers, so that the configuration structures a driver hands to KMDF can be read
//! back at the call.

use iced_x86::{
    Decoder, DecoderOptions, Instruction, InstructionInfoFactory, Mnemonic, OpAccess, OpKind,
    Register,
};

use crate::frame::{Content, Frame, ImageBytes, MAX_TRACKED};
use crate::functions::Functions;
use crate::image::Image;
use crate::{kmdf, locks};

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
    /// Per function: whether the linear pass saw something the dataflow pass must look at.
    pub(crate) wants_flow: Vec<bool>,
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

    /// Number of functions the graph has items for.
    #[must_use]
    pub fn function_count(&self) -> usize {
        self.edge_offsets.len().saturating_sub(1)
    }

    /// Rebuilds the graph with the items of some functions replaced (by the dataflow pass).
    #[must_use]
    pub(crate) fn with_replaced(
        self,
        replaced: &std::collections::HashMap<usize, CallGraph>,
    ) -> CallGraph {
        if replaced.is_empty() {
            return self;
        }
        let n = self.function_count();
        let mut out = CallGraph {
            edges: Vec::with_capacity(self.edges.len()),
            externals: Vec::with_capacity(self.externals.len()),
            unresolved: Vec::with_capacity(self.unresolved.len()),
            edge_offsets: Vec::with_capacity(n + 1),
            external_offsets: Vec::with_capacity(n + 1),
            unresolved_offsets: Vec::with_capacity(n + 1),
            instructions: self.instructions,
            code_bytes: self.code_bytes,
            wants_flow: self.wants_flow.clone(),
        };
        for f in 0..n {
            push_offsets(&mut out);
            let (edges, externals, unresolved) = match replaced.get(&f) {
                Some(g) => (g.edges_of(0), g.externals_of(0), g.unresolved_of(0)),
                None => (
                    self.edges_of(f),
                    self.externals_of(f),
                    self.unresolved_of(f),
                ),
            };
            out.edges.extend_from_slice(edges);
            out.externals.extend_from_slice(externals);
            out.unresolved.extend_from_slice(unresolved);
        }
        push_offsets(&mut out);
        out
    }
}

/// What the tracker knows about a general-purpose register (or an eight-byte slot of the
/// frame) inside one function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// Anything.
    Unknown,
    /// Dataflow mode only: no path has reached this point yet (the optimistic start of a
    /// loop head); it becomes what the paths bring.
    Top,
    /// An address inside the image, from `lea reg, [rip+x]` or a relocated constant.
    Address(u32),
    /// An [`Value::Address`] that reached a join on one path only: the others may bring
    /// anything. A call through it may reach that code (an edge) and may go anywhere else
    /// (unresolved).
    MaybeAddress(u32),
    /// A number.
    Const(u64),
    /// One of two small numbers (the paths into a join disagree on a constant): enough for a
    /// framework call whose index is chosen by a branch.
    Pair(u32, u32),
    /// An address in the function's own frame: the stack pointer at entry plus this.
    Stack(i32),
    /// The function's incoming argument `index` (0 = `rcx`), plus `offset` when it is
    /// used as a pointer.
    Param {
        /// Argument position.
        index: u8,
        /// Added to the argument.
        offset: i32,
    },
    /// The address of an imported function, loaded from its import address table slot.
    Import(u32),
    /// Control Flow Guard's dispatch function, loaded from its pointer: a call through it
    /// goes to `rax`.
    GuardDispatch,
    /// Control Flow Guard's check function, loaded from its pointer: a call through it only
    /// validates `rcx`.
    GuardCheck,
    /// The KMDF function table pointer, loaded from `WdfFunctions_01xxx`.
    WdfTable,
    /// A slot of that table (`None`: the index is in a register).
    WdfSlot(Option<u32>),
    /// A jump-table entry: 4 bytes read at `table + index*4`.
    TableEntry {
        /// The table.
        table: u32,
        /// `movsxd` (LLVM) rather than `mov` (MSVC).
        signed: bool,
    },
    /// A jump-table entry plus the base it is relative to.
    TableTarget {
        /// The table.
        table: u32,
        /// What the entries are added to.
        base: u32,
        /// As in [`Value::TableEntry`].
        signed: bool,
    },
}

impl Value {
    /// What two paths into a join agree on. Code addresses that only one path brings
    /// survive as possibilities; two different addresses do not (neither is certain, and a
    /// possibility must name every target it stands for).
    #[must_use]
    pub fn meet(self, other: Value) -> Value {
        match (self, other) {
            (Value::Top, v) | (v, Value::Top) => v,
            (a, b) if a == b => a,
            (
                Value::Address(a) | Value::MaybeAddress(a),
                Value::Address(b) | Value::MaybeAddress(b),
            ) => {
                if a == b {
                    Value::MaybeAddress(a)
                } else {
                    Value::Unknown
                }
            }
            (Value::Address(a) | Value::MaybeAddress(a), _)
            | (_, Value::Address(a) | Value::MaybeAddress(a)) => Value::MaybeAddress(a),
            (Value::Const(a), Value::Const(b)) => match (u32::try_from(a), u32::try_from(b)) {
                (Ok(a), Ok(b)) => Value::Pair(a.min(b), a.max(b)),
                _ => Value::Unknown,
            },
            (Value::Pair(a, b), Value::Const(c)) | (Value::Const(c), Value::Pair(a, b))
                if c == u64::from(a) || c == u64::from(b) =>
            {
                Value::Pair(a, b)
            }
            _ => Value::Unknown,
        }
    }

    /// The value plus `by`, for the kinds where that is still an address or a number.
    #[must_use]
    pub fn offset(self, by: i64) -> Value {
        match self {
            Value::Const(c) => Value::Const(c.wrapping_add_signed(by)),
            Value::Stack(o) => {
                i32::try_from(i64::from(o) + by).map_or(Value::Unknown, Value::Stack)
            }
            Value::Param { index, offset } => i32::try_from(i64::from(offset) + by)
                .map_or(Value::Unknown, |offset| Value::Param { index, offset }),
            Value::Address(a) if by == 0 => Value::Address(a),
            Value::Address(a) => {
                u32::try_from(i64::from(a) + by).map_or(Value::Unknown, Value::Address)
            }
            Value::Top => Value::Top,
            _ => Value::Unknown,
        }
    }

    /// True for values that mean the same in a caller (summaries may carry them).
    fn is_portable(self) -> bool {
        matches!(
            self,
            Value::Address(_) | Value::MaybeAddress(_) | Value::Const(_) | Value::Param { .. }
        )
    }
}

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

/// Maps `xmm0`..`xmm15` (and the `ymm`/`zmm` registers that contain them) to 0..16.
fn xmm(reg: Register) -> Option<usize> {
    (reg.is_xmm() || reg.is_ymm() || reg.is_zmm())
        .then(|| reg.number())
        .filter(|&n| n < 16)
}

/// Registers a call may clobber in the Microsoft x64 convention.
const VOLATILE: [usize; 7] = [0, 1, 2, 8, 9, 10, 11];
/// The first four integer arguments: `rcx`, `rdx`, `r8`, `r9`.
const ARGUMENT_REGISTERS: [usize; 4] = [1, 2, 8, 9];
const RSP: usize = 4;
const RBP: usize = 5;
/// Incoming arguments tracked beyond the four in registers (on the stack above the home
/// space).
const STACK_ARGUMENTS: u8 = 4;

/// What a call or an indirect slot is, beyond an ordinary function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    /// `memcpy`/`memmove`: `rcx` destination, `rdx` source, `r8` length.
    Copy,
    /// `memset`: `rcx` destination, `dl` byte, `r8` length.
    Fill,
    /// Control Flow Guard's dispatch pointer: the call goes to `rax`.
    GuardDispatch,
    /// Control Flow Guard's check pointer: validates `rcx`, changes nothing else.
    GuardCheck,
    /// `MmLockPagableDataSection` (`MmLockPagableCodeSection` is a macro for it): locks the
    /// pageable section that holds the address in `rcx`.
    LockSection,
    /// Takes or releases a spin lock ([`crate::locks`]).
    Irql(locks::Effect),
}

/// What the decoder asks about the image while classifying instructions. [`Context`] answers
/// from a real image; the unit tests answer from hand-assembled bytes.
pub trait View: ImageBytes {
    /// Preferred image base.
    fn image_base(&self) -> u64;
    /// The RVA of an absolute address inside the image.
    fn rva_of_va(&self, va: u64) -> Option<u32>;
    /// Four bytes at `rva`, little-endian.
    fn read_u32(&self, rva: u32) -> Option<u32>;
    /// Whether `rva` lies in a code section.
    fn is_code(&self, rva: u32) -> bool;
    /// Whether `rva` lies in a section the image never writes.
    fn is_read_only(&self, rva: u32) -> bool;
    /// Whether `rva` is an import address table slot.
    fn is_import_slot(&self, rva: u32) -> bool;
    /// Whether `rva` is a `WdfFunctions_01xxx` table pointer variable.
    fn is_wdf_table(&self, rva: u32) -> bool;
    /// The code a relocated pointer in read-only data at `slot` points to.
    fn constant_code_pointer(&self, slot: u32) -> Option<u32>;
    /// What calling through the pointer (import or data) at `slot` does, if special.
    fn special_slot(&self, slot: u32) -> Option<Special>;
    /// What calling the image's own function at `rva` does, if special (`memcpy`...).
    fn special_function(&self, rva: u32) -> Option<Special>;
}

/// Everything the decoder needs to know about the image to classify one instruction.
pub struct Context<'a> {
    image: &'a Image,
    functions: &'a Functions,
    /// RVAs of the `WdfFunctions_01xxx` pointer variables.
    wdf_tables: Vec<u32>,
    /// Slots and functions with a [`Special`] meaning, sorted by RVA.
    specials: Vec<(u32, Special)>,
}

/// Names of the functions and pointer variables [`Special`] stands for: the C memory
/// functions (the kernel exports them; Rust's `compiler_builtins` defines them in the image)
/// and the Control Flow Guard pointers (`__guard_xfg_*` are the XFG variants).
const SPECIAL_NAMES: &[(&str, Special)] = &[
    ("memcpy", Special::Copy),
    ("memmove", Special::Copy),
    ("RtlCopyMemory", Special::Copy),
    ("RtlMoveMemory", Special::Copy),
    ("memset", Special::Fill),
    ("RtlFillMemory", Special::Fill),
    ("__guard_dispatch_icall_fptr", Special::GuardDispatch),
    ("__guard_xfg_dispatch_icall_fptr", Special::GuardDispatch),
    ("__guard_check_icall_fptr", Special::GuardCheck),
    ("__guard_xfg_check_icall_fptr", Special::GuardCheck),
    ("MmLockPagableDataSection", Special::LockSection),
    ("MmLockPagableCodeSection", Special::LockSection),
];

/// The [`Special`] a symbol or import name stands for (`dll!name` for imports).
#[must_use]
pub fn special_of(name: &str) -> Option<Special> {
    let name = name.rsplit_once('!').map_or(name, |(_, n)| n);
    if let Some(effect) = locks::effect_of(name) {
        return Some(Special::Irql(effect));
    }
    let name = name
        .strip_prefix("compiler_builtins::mem::")
        .unwrap_or(name);
    SPECIAL_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, s)| s)
}

impl<'a> Context<'a> {
    /// A context for `image`; `wdf_tables` are the RVAs of the KMDF table variables.
    #[must_use]
    pub fn new(image: &'a Image, functions: &'a Functions, wdf_tables: Vec<u32>) -> Context<'a> {
        let mut specials: Vec<(u32, Special)> = image
            .imports
            .iter()
            .filter_map(|(slot, name)| special_of(name).map(|s| (*slot, s)))
            .chain(
                functions
                    .list
                    .iter()
                    .filter_map(|f| special_of(&f.name).map(|s| (f.start, s))),
            )
            .chain(
                image
                    .guard_dispatch
                    .iter()
                    .map(|&rva| (rva, Special::GuardDispatch)),
            )
            .chain(
                image
                    .guard_check
                    .iter()
                    .map(|&rva| (rva, Special::GuardCheck)),
            )
            .collect();
        // Import thunks (`jmp [rip+__imp_X]`, what the linker makes for a call to an import
        // not declared dllimport) stand for their import.
        for f in &functions.list {
            if let Some(b) = image.read_at(f.start, 6)
                && b[0] == 0xff
                && b[1] == 0x25
            {
                let disp = i32::from_le_bytes([b[2], b[3], b[4], b[5]]);
                let slot = f.start.wrapping_add(6).wrapping_add_signed(disp);
                if let Some(special) = image.import_at(slot).and_then(special_of) {
                    specials.push((f.start, special));
                }
            }
        }
        specials.sort_unstable_by_key(|&(rva, _)| rva);
        specials.dedup_by_key(|&mut (rva, _)| rva);
        Context {
            image,
            functions,
            wdf_tables,
            specials,
        }
    }

    /// Adds special slots known from symbols (the Control Flow Guard pointers of an image
    /// whose load configuration does not name them).
    pub fn add_special(&mut self, rva: u32, special: Special) {
        if let Err(at) = self.specials.binary_search_by_key(&rva, |&(r, _)| r) {
            self.specials.insert(at, (rva, special));
        }
    }

    /// The functions.
    #[must_use]
    pub fn functions(&self) -> &Functions {
        self.functions
    }

    /// The image.
    #[must_use]
    pub fn image(&self) -> &Image {
        self.image
    }

    fn special_at(&self, rva: u32) -> Option<Special> {
        self.specials
            .binary_search_by_key(&rva, |&(r, _)| r)
            .ok()
            .map(|i| self.specials[i].1)
    }
}

impl ImageBytes for Context<'_> {
    fn read_bytes(&self, rva: u32, out: &mut [u8]) -> bool {
        match self.image.read_at(rva, out.len()) {
            Some(bytes) => {
                out.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }

    fn pointer_at(&self, rva: u32) -> Option<u32> {
        self.image.dir64_relocations.binary_search(&rva).ok()?;
        let bytes = self.image.read_at(rva, 8)?;
        self.image
            .rva_of_va(u64::from_le_bytes(bytes.try_into().ok()?))
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

    fn is_read_only(&self, rva: u32) -> bool {
        self.image.section_of(rva).is_some_and(|s| {
            self.image.sections[s].characteristics & object::pe::IMAGE_SCN_MEM_WRITE == 0
        })
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
        if !self.is_read_only(slot) {
            return None;
        }
        let rva = self.pointer_at(slot)?;
        self.is_code(rva).then_some(rva)
    }

    fn special_slot(&self, slot: u32) -> Option<Special> {
        self.special_at(slot)
    }

    fn special_function(&self, rva: u32) -> Option<Special> {
        self.special_at(rva).filter(|s| {
            matches!(
                s,
                Special::Copy | Special::Fill | Special::Irql(_) | Special::LockSection
            )
        })
    }
}

/// Decodes every function of `functions` once and builds the call graph (the linear pass).
#[must_use]
pub fn build(ctx: &Context<'_>) -> CallGraph {
    let image = ctx.image;
    let n = ctx.functions.len();
    let mut graph = CallGraph {
        edge_offsets: Vec::with_capacity(n + 1),
        external_offsets: Vec::with_capacity(n + 1),
        unresolved_offsets: Vec::with_capacity(n + 1),
        wants_flow: Vec::with_capacity(n),
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
            graph.wants_flow.push(false);
            continue;
        };
        let start = (function.start - section_rva) as usize;
        let end = ((function.end - section_rva) as usize).min(section_len);
        if start >= end || decoder.set_position(start).is_err() {
            graph.wants_flow.push(false);
            continue;
        }
        decoder.set_ip(image.image_base.wrapping_add(u64::from(function.start)));
        let wants = decode_range(
            ctx,
            decoder,
            &mut scratch,
            end,
            function.start,
            function.end,
            &mut graph,
            None,
        );
        graph.wants_flow.push(wants);
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

/// What the dataflow mode adds to a walk: the summaries of the functions this one calls, and
/// where the walk reports what it learns beyond the call graph.
pub struct FlowEnv<'s> {
    /// Callee summaries, by function start.
    pub summaries: &'s std::collections::HashMap<u32, Summary>,
    /// Out: the registration calls found, and this function's own summary.
    pub out: FlowOut,
}

/// The part of a function's behaviour its callers need: what it stores through the pointers
/// it is given, and the registrations it makes with structures they pass in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// `(argument, offset, length, content)`: a store through an incoming pointer.
    pub writes: Vec<(u8, i32, u32, Content)>,
    /// Registration calls whose structure (or callback) is an incoming argument.
    pub forwards: Vec<RegCall>,
    /// The function may return holding a spin lock it took (the name of the acquire): in its
    /// callers, calling it takes the lock.
    pub acquires: Option<&'static str>,
    /// The function releases a spin lock it did not take: in its callers, calling it releases.
    pub releases: bool,
}

impl Summary {
    /// True when callers have nothing to apply.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
            && self.forwards.is_empty()
            && self.acquires.is_none()
            && !self.releases
    }
}

/// A call or jump made while a spin lock is held: it runs at `DISPATCH_LEVEL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    /// RVA of the call or jump.
    pub site: u32,
    /// The acquire that took the lock.
    pub acquire: &'static str,
    /// RVA of the acquire (or of the call of the helper that took it).
    pub acquire_site: u32,
}

/// What a dataflow walk found beyond the call graph.
#[derive(Clone, Debug, Default)]
pub struct FlowOut {
    /// Registration calls made here, or through helpers this function calls.
    pub calls: Vec<RegCall>,
    /// `MmLockPagable*Section` calls: `(site, the address passed)`.
    pub locks: Vec<(u32, Value)>,
    /// Calls and jumps made while a spin lock is held.
    pub held: Vec<Held>,
    /// This function's summary.
    pub summary: Summary,
    /// Code addresses passed to the methods of [`kmdf::UNMODELLED_CALLBACK_ARGS`]:
    /// `(site, method, address)`.
    pub unmodelled: Vec<(u32, &'static str, u32)>,
}

/// A call of a KMDF method that takes callbacks, with what its arguments hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegCall {
    /// The method.
    pub method: &'static kmdf::Method,
    /// RVA of the framework call.
    pub site: u32,
    /// Call sites of the helpers that took a structure from their caller, innermost first.
    pub via: Vec<u32>,
    /// The arguments that matter, by position.
    pub args: Vec<(u8, RegArg)>,
}

/// One argument of a [`RegCall`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegArg {
    /// A structure read at the call.
    Read {
        /// Its `Size` field, when known.
        size: Option<u32>,
        /// `(field offset, value)` for every callback field.
        fields: Vec<(u16, Value)>,
        /// For object attributes: the `ExecutionLevel` field, when known.
        level: Option<u64>,
        /// For a structure with a [`kmdf::Structure::passive_flag`]: that byte, when known.
        flag: Option<u64>,
    },
    /// A null pointer (no structure, no callback).
    Null,
    /// A callback passed directly.
    Callback(Value),
    /// The caller's argument: resolved where the caller is walked.
    Param {
        /// Argument position.
        index: u8,
        /// Added to it.
        offset: i32,
    },
    /// Not traceable from the image.
    Unknown,
}

/// Decodes one function: from the decoder's position up to byte `end` of its buffer, the
/// function spanning RVAs `start..stop`. Results are appended to `graph`; `flow` selects the
/// dataflow mode. Returns whether the function wants the dataflow pass (linear mode).
///
/// Linear mode: register knowledge holds only inside a basic block; it is forgotten after
/// every instruction that does not fall through and at every join, an address of the function
/// that a branch, `loop` or jump-table entry targets. The joins are collected from the decoded
/// instructions before they are walked. A resolved jump table can reveal joins (its entries)
/// and data to skip (a table inside the function): then the function is walked again with
/// them, after dropping what the previous walk appended. Dataflow mode walks again as well
/// while a loop's back edge changes what its head knows.
#[allow(clippy::too_many_arguments)]
pub fn decode_range<V: View>(
    view: &V,
    decoder: &mut Decoder<'_>,
    scratch: &mut Scratch,
    end: usize,
    start: u32,
    stop: u32,
    graph: &mut CallGraph,
    mut flow: Option<&mut FlowEnv<'_>>,
) -> bool {
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
    let mut state = FunctionState::new(start, stop, flow.is_some());
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
            state.joins_changed(scratch.joins.len());
        }
        graph.edges.truncate(marks.0);
        graph.externals.truncate(marks.1);
        graph.unresolved.truncate(marks.2);
        graph.instructions = marks.3 + scratch.instructions.len() as u64;
        if let Some(env) = flow.as_deref_mut() {
            env.out = FlowOut::default();
        }
        state.start_walk(walk == MAX_WALKS);
        walk_function(view, scratch, &mut state, graph, flow.as_deref_mut());
        let (new_joins, new_tables) = state.learned(scratch);
        if !new_joins && !new_tables && !state.dirty {
            break;
        }
        decode = new_tables;
        if new_joins && !new_tables {
            state.joins_changed(scratch.joins.len());
        }
    }
    state.wants_flow
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

/// One walk over the decoded function with the register tracker.
fn walk_function<V: View>(
    view: &V,
    scratch: &Scratch,
    state: &mut FunctionState,
    graph: &mut CallGraph,
    mut flow: Option<&mut FlowEnv<'_>>,
) {
    let mut next_join = 0;
    let mut expected = None;
    let mut live = true;
    for instr in &scratch.instructions {
        // Decoded IPs are image_base + RVA of an instruction inside the image: the difference
        // fits.
        #[allow(clippy::cast_possible_truncation)]
        let site = instr.ip().wrapping_sub(view.image_base()) as u32;
        // A skipped table, or a branch target inside an earlier instruction (the bytes are
        // decoded two ways), ends what the tracker knows.
        let mut reset = state.every_instruction || expected.is_some_and(|e| e != site);
        let mut join = None;
        #[allow(clippy::cast_possible_truncation)]
        {
            expected = Some(site.wrapping_add(instr.len() as u32));
        }
        while let Some(&t) = scratch.joins.get(next_join)
            && t <= site
        {
            reset |= t < site;
            if t == site {
                join = Some(next_join);
            }
            next_join += 1;
        }
        if state.flow && !state.every_instruction {
            if reset {
                state.machine.reset();
            } else if let Some(j) = join {
                state.enter_join(j, live);
            } else if !live {
                // After a jump, with no branch to here: reached only through something the
                // walk cannot see (an unresolved jump, an exception handler).
                state.machine.reset();
            }
        } else if reset {
            state.machine.reset();
        } else if join.is_some() {
            // A join keeps only the code addresses that fall through into it, as
            // possibilities: forgetting them would turn a real call of a paged function on
            // the fall-through path into a mere unresolved warning.
            state.machine.weaken();
        }
        if instr.is_invalid() {
            // Data or padding inside the range: resynchronise on the next byte.
            state.machine.reset();
            live = true;
            continue;
        }
        state.step(view, scratch, instr, graph, flow.as_deref_mut());
        live = falls_through(instr) && !std::mem::take(&mut state.dead_fallthrough);
        if !live && !state.flow {
            state.machine.reset();
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

/// The tracker's knowledge at one point of a function.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Machine {
    regs: [Value; 16],
    /// Dataflow mode: the two eight-byte halves of each SSE register.
    xmm: [[Value; 2]; 16],
    /// Dataflow mode: the function's frame.
    frame: Frame,
    /// `cmp reg, imm` just seen: the bound of a following jump table.
    bound: Option<u32>,
    /// Dataflow mode: how many spin locks are held here ([`HELD_TOP`] before any path came).
    held: u8,
    /// The acquire of the innermost lock held, and where.
    acquired: Option<(&'static str, u32)>,
    /// Dataflow mode: some SSE register holds something else than [`Value::Unknown`].
    xmm_written: bool,
}

/// [`Machine::held`] at a join no path has reached yet.
const HELD_TOP: u8 = u8::MAX;

impl Machine {
    fn unknown() -> Machine {
        Machine {
            regs: [Value::Unknown; 16],
            xmm: [[Value::Unknown; 2]; 16],
            frame: Frame::default(),
            bound: None,
            held: 0,
            acquired: None,
            xmm_written: false,
        }
    }

    /// No path has come here yet.
    fn top() -> Machine {
        Machine {
            regs: [Value::Top; 16],
            xmm: [[Value::Top; 2]; 16],
            frame: Frame::default(),
            bound: None,
            held: HELD_TOP,
            acquired: None,
            xmm_written: true,
        }
    }

    /// Whether a lock is held on some path to here.
    fn holds(&self) -> bool {
        self.held > 0 && self.held != HELD_TOP
    }

    /// The state at a function's entry (dataflow mode): the stack pointer at offset 0, the
    /// arguments in `rcx`, `rdx`, `r8`, `r9` and above the return address and home space.
    fn entry() -> Machine {
        let mut m = Machine::unknown();
        m.regs[RSP] = Value::Stack(0);
        for (index, &reg) in (0u8..).zip(ARGUMENT_REGISTERS.iter()) {
            m.regs[reg] = Value::Param { index, offset: 0 };
        }
        for k in 0..STACK_ARGUMENTS {
            m.frame.write(
                0x28 + 8 * i32::from(k),
                8,
                Content::Value(Value::Param {
                    index: 4 + k,
                    offset: 0,
                }),
            );
        }
        m
    }

    fn reset(&mut self) {
        self.regs = [Value::Unknown; 16];
        self.bound = None;
        // The linear pass never writes the frame or the SSE registers: keep its resets cheap.
        if !self.frame.cells().is_empty() {
            self.frame.clear();
        }
        if self.xmm_written {
            self.xmm = [[Value::Unknown; 2]; 16];
            self.xmm_written = false;
        }
    }

    /// Linear mode, at a join reached by falling through: only code addresses survive, as
    /// possibilities. Kept out of line: joins are rare next to instructions, and inlined into
    /// the walk this loop slowed the whole pass.
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

    fn meet(&self, other: &Machine) -> Machine {
        let mut out = Machine::unknown();
        for i in 0..16 {
            out.regs[i] = self.regs[i].meet(other.regs[i]);
            out.xmm[i] = [
                self.xmm[i][0].meet(other.xmm[i][0]),
                self.xmm[i][1].meet(other.xmm[i][1]),
            ];
        }
        out.xmm_written = self.xmm_written || other.xmm_written;
        // A lock held on either path is held here: what runs next may run at DISPATCH_LEVEL.
        out.held = match (self.held, other.held) {
            (HELD_TOP, h) | (h, HELD_TOP) => h,
            (a, b) => a.max(b),
        };
        out.acquired = self.acquired.or(other.acquired);
        // The frame offsets of two paths line up only when their stack pointers do.
        out.frame = if self.regs[RSP] == Value::Top {
            other.frame.clone()
        } else if other.regs[RSP] == Value::Top {
            self.frame.clone()
        } else {
            self.frame.meet(&other.frame)
        };
        out
    }

    fn value(&self, reg: Register) -> Value {
        gpr(reg).map_or(Value::Unknown, |i| self.regs[i])
    }

    fn set(&mut self, reg: Register, value: Value) {
        if let Some(i) = gpr(reg) {
            self.regs[i] = value;
        }
    }

    /// The frame or pointer address of a memory operand without an index register.
    fn address(&self, instr: &Instruction) -> Value {
        if instr.memory_index() != Register::None || instr.is_ip_rel_memory_operand() {
            return Value::Unknown;
        }
        #[allow(clippy::cast_possible_wrap)]
        let disp = instr.memory_displacement64() as i64;
        match self.value(instr.memory_base()) {
            v @ (Value::Stack(_) | Value::Param { .. }) => v.offset(disp),
            _ => Value::Unknown,
        }
    }

    /// Argument `position` of a call about to be made (0 = `rcx`).
    fn argument(&self, position: u8, image: &impl ImageBytes) -> Value {
        match ARGUMENT_REGISTERS.get(usize::from(position)) {
            Some(&reg) => self.regs[reg],
            None => match self.regs[RSP] {
                Value::Stack(sp) => self
                    .frame
                    .read_value(sp + 0x20 + 8 * (i32::from(position) - 4), image),
                _ => Value::Unknown,
            },
        }
    }
}

// The flags are independent facts about one walk, not a state machine in disguise.
#[allow(clippy::struct_excessive_bools)]
struct FunctionState {
    start: u32,
    end: u32,
    machine: Machine,
    /// Dataflow mode.
    flow: bool,
    /// Dataflow mode: the state each join is entered with (what the paths seen so far agree
    /// on), and whether this walk has already entered it.
    join_states: Vec<Option<Machine>>,
    entered: Vec<bool>,
    /// A back edge changed the state of a join this walk had already entered: walk again.
    dirty: bool,
    /// Resolved jump tables inside this function, as RVA ranges: data, not code.
    tables: Vec<(u32, u32)>,
    /// In-function targets of the jump tables resolved in this walk.
    table_targets: Vec<u32>,
    /// Forget everything at every instruction: the last resort when walks do not settle.
    every_instruction: bool,
    /// Linear mode: something here needs the dataflow pass.
    wants_flow: bool,
    /// Dataflow mode: the last instruction tested a pointer that cannot be null (a
    /// framework table entry, an import): a `je` on it is never taken, a `jne` always.
    tested_nonnull: bool,
    /// Dataflow mode: this instruction's fall-through cannot happen.
    dead_fallthrough: bool,
    /// Dataflow mode: what an instruction writes, for the instructions not modelled.
    info: Option<Box<InstructionInfoFactory>>,
}

impl FunctionState {
    fn new(start: u32, end: u32, flow: bool) -> FunctionState {
        FunctionState {
            start,
            end,
            machine: Machine::unknown(),
            flow,
            join_states: Vec::new(),
            entered: Vec::new(),
            dirty: false,
            tables: Vec::new(),
            table_targets: Vec::new(),
            every_instruction: false,
            wants_flow: false,
            tested_nonnull: false,
            dead_fallthrough: false,
            info: flow.then(|| Box::new(InstructionInfoFactory::new())),
        }
    }

    /// The joins were recomputed: what was known about the old ones no longer lines up.
    fn joins_changed(&mut self, count: usize) {
        if self.flow {
            self.join_states = vec![None; count];
        }
    }

    fn start_walk(&mut self, every_instruction: bool) {
        self.machine = if self.flow && !every_instruction {
            Machine::entry()
        } else {
            Machine::unknown()
        };
        self.tables.clear();
        self.table_targets.clear();
        self.every_instruction = every_instruction;
        self.dirty = false;
        self.entered.clear();
        self.entered.resize(self.join_states.len(), false);
    }

    /// Dataflow mode: control reaches join `j`, falling through into it when `live`.
    fn enter_join(&mut self, j: usize, live: bool) {
        if live {
            let current = std::mem::replace(&mut self.machine, Machine::unknown());
            self.contribute_index(j, &current);
        }
        self.entered[j] = true;
        self.machine = self.join_states[j].clone().unwrap_or_else(Machine::top);
    }

    /// Dataflow mode: the current state flows to the in-function address `target`.
    fn contribute(&mut self, scratch: &Scratch, target: u32) {
        if let Ok(j) = scratch.joins.binary_search(&target) {
            let current = self.machine.clone();
            self.contribute_index(j, &current);
        }
    }

    fn contribute_index(&mut self, j: usize, state: &Machine) {
        let Some(slot) = self.join_states.get_mut(j) else {
            return;
        };
        let merged = match slot {
            Some(old) => old.meet(state),
            None => state.clone(),
        };
        if slot.as_ref() != Some(&merged) {
            // A back edge lowers a state the walk already used.
            if self.entered.get(j).copied().unwrap_or(false) {
                self.dirty = true;
            }
            *slot = Some(merged);
        }
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

    fn inside(&self, rva: u32) -> bool {
        rva >= self.start && rva < self.end
    }

    fn unresolved(
        &mut self,
        graph: &mut CallGraph,
        site: u32,
        is_call: bool,
        through_memory: bool,
    ) {
        self.wants_flow = true;
        graph.unresolved.push(Unresolved {
            site,
            is_call,
            through_memory,
        });
    }

    /// A call or jump through a register holding `value`.
    fn transfer_to<V: View>(
        &mut self,
        ctx: &V,
        scratch: &Scratch,
        site: u32,
        is_call: bool,
        value: Value,
        graph: &mut CallGraph,
    ) {
        let kind = if is_call {
            EdgeKind::Call
        } else {
            EdgeKind::Jump
        };
        match value {
            Value::WdfSlot(index) => {
                self.wants_flow = true;
                graph.externals.push((site, External::Wdf(index)));
            }
            Value::Import(slot) => graph.externals.push((site, External::Import(slot))),
            Value::TableTarget {
                table,
                base,
                signed,
            } if !is_call => {
                self.resolve_table(ctx, scratch, site, table, base, signed, graph);
            }
            Value::Address(target) if ctx.is_code(target) => {
                graph.edges.push(Edge { site, target, kind });
            }
            Value::MaybeAddress(target) if ctx.is_code(target) => {
                graph.edges.push(Edge { site, target, kind });
                self.unresolved(graph, site, is_call, false);
            }
            _ => self.unresolved(graph, site, is_call, false),
        }
    }

    /// The value a memory operand read of `size` bytes gives, or `None` when the operand is
    /// not one the tracker follows.
    fn load<V: View>(&self, ctx: &V, instr: &Instruction, size: u32) -> Value {
        if instr.is_ip_rel_memory_operand() {
            let Some(slot) = ctx.rva_of_va(instr.ip_rel_memory_address()) else {
                return Value::Unknown;
            };
            if size == 8 && ctx.is_wdf_table(slot) {
                return Value::WdfTable;
            }
            if size == 8 && ctx.is_import_slot(slot) {
                return Value::Import(slot);
            }
            match ctx.special_slot(slot) {
                Some(Special::GuardDispatch) if size == 8 => return Value::GuardDispatch,
                Some(Special::GuardCheck) if size == 8 => return Value::GuardCheck,
                _ => {}
            }
            if !ctx.is_read_only(slot) {
                return Value::Unknown;
            }
            if size == 8
                && let Some(target) = ctx.pointer_at(slot)
            {
                return Value::Address(target);
            }
            let mut bytes = [0u8; 8];
            return if size <= 8 && ctx.read_bytes(slot, &mut bytes[..size as usize]) {
                Value::Const(u64::from_le_bytes(bytes))
            } else {
                Value::Unknown
            };
        }
        let base = self.machine.value(instr.memory_base());
        match base {
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
            Value::Stack(_) if self.flow => match self.machine.address(instr) {
                Value::Stack(off) if size == 8 => self.machine.frame.read_value(off, ctx),
                Value::Stack(off) => self
                    .machine
                    .frame
                    .read_bytes(off, size, ctx)
                    .map_or(Value::Unknown, Value::Const),
                _ => Value::Unknown,
            },
            _ => Value::Unknown,
        }
    }

    /// Dataflow mode: records that the memory operand of `instr` (`size` bytes) now holds
    /// `content` (`None`: something the tracker does not follow).
    fn store(
        &mut self,
        instr: &Instruction,
        size: u32,
        content: Option<Content>,
        out: Option<&mut FlowOut>,
    ) {
        match self.machine.address(instr) {
            Value::Stack(off) => match content {
                Some(content) => self.machine.frame.write(off, size, content),
                None => self.machine.frame.forget(off, size),
            },
            Value::Param { index, offset } => {
                if let (Some(content), Some(out)) = (content, out) {
                    let portable = match content {
                        Content::Value(v) => v.is_portable(),
                        _ => true,
                    };
                    if portable && size <= MAX_TRACKED {
                        out.summary.writes.push((index, offset, size, content));
                    }
                }
            }
            _ => {}
        }
    }

    /// The content a register holds, as a store of `size` bytes writes it.
    fn content_of(value: Value, size: u32) -> Option<Content> {
        match (value, size) {
            (Value::Unknown | Value::Top, _) => None,
            (Value::Const(c), 1..=7) => Some(Content::Bytes(c & ((1u64 << (8 * size)) - 1))),
            (v, 8) => Some(Content::Value(v)),
            _ => None,
        }
    }

    #[allow(clippy::too_many_lines)]
    fn step<V: View>(
        &mut self,
        ctx: &V,
        scratch: &Scratch,
        instr: &Instruction,
        graph: &mut CallGraph,
        mut flow: Option<&mut FlowEnv<'_>>,
    ) {
        let image = ctx;
        // The instruction's address: the decoder's IP is image_base + RVA, and functions lie
        // inside the image, so the difference fits.
        #[allow(clippy::cast_possible_truncation)]
        let site = instr.ip().wrapping_sub(image.image_base()) as u32;
        // Set by this instruction if it is such a test; flags it left otherwise are gone.
        let nonnull = std::mem::take(&mut self.tested_nonnull);
        let mnemonic = instr.mnemonic();
        match mnemonic {
            Mnemonic::Call | Mnemonic::Jmp => {
                let is_call = mnemonic == Mnemonic::Call;
                // Whatever this transfers to runs with the lock held: at DISPATCH_LEVEL.
                if let Some(env) = flow.as_deref_mut()
                    && self.machine.holds()
                {
                    let (acquire, acquire_site) =
                        self.machine.acquired.unwrap_or(("a spin lock", site));
                    env.out.held.push(Held {
                        site,
                        acquire,
                        acquire_site,
                    });
                }
                let leaves = is_call
                    || instr.op0_kind() != OpKind::NearBranch64
                    || image
                        .rva_of_va(instr.near_branch_target())
                        .is_none_or(|t| !self.inside(t));
                // The framework or helper call the dataflow pass reads arguments for.
                let mut wdf_call = None;
                let mut direct = None;
                match instr.op0_kind() {
                    OpKind::NearBranch64 => {
                        if let Some(target) = image.rva_of_va(instr.near_branch_target()) {
                            if is_call || !self.inside(target) {
                                let kind = if is_call {
                                    EdgeKind::Call
                                } else {
                                    EdgeKind::Jump
                                };
                                graph.edges.push(Edge { site, target, kind });
                                direct = Some(target);
                            } else if self.flow {
                                self.contribute(scratch, target);
                            }
                        }
                    }
                    OpKind::Register => {
                        let mut value = self.machine.value(instr.op0_register());
                        match value {
                            // Control Flow Guard with its pointer kept in a register.
                            Value::GuardCheck => return,
                            Value::GuardDispatch => value = self.machine.regs[0],
                            _ => {}
                        }
                        if let Value::WdfSlot(Some(index)) = value {
                            wdf_call = Some(index);
                        }
                        self.transfer_to(ctx, scratch, site, is_call, value, graph);
                        self.special_import(ctx, site, value, flow.as_deref_mut());
                    }
                    OpKind::Memory => {
                        if instr.is_ip_rel_memory_operand() {
                            let slot = image.rva_of_va(instr.ip_rel_memory_address());
                            let special = slot.and_then(|s| ctx.special_slot(s));
                            if special == Some(Special::GuardCheck) {
                                // Validates the target in rcx and returns: nothing to track.
                                return;
                            }
                            if special == Some(Special::GuardDispatch) {
                                // Control Flow Guard: the real target is in rax.
                                let value = self.machine.regs[0];
                                if let Value::WdfSlot(Some(index)) = value {
                                    wdf_call = Some(index);
                                }
                                self.transfer_to(ctx, scratch, site, is_call, value, graph);
                                self.special_import(ctx, site, value, flow.as_deref_mut());
                            } else if let Some(slot) = slot.filter(|&s| image.is_import_slot(s)) {
                                graph.externals.push((site, External::Import(slot)));
                                if let Some(s) = special {
                                    self.special_call(ctx, site, s, flow.as_deref_mut());
                                }
                            } else if let Some(target) =
                                slot.and_then(|s| ctx.constant_code_pointer(s))
                            {
                                let kind = if is_call {
                                    EdgeKind::Call
                                } else {
                                    EdgeKind::Jump
                                };
                                graph.edges.push(Edge { site, target, kind });
                                direct = Some(target);
                            } else if let Value::WdfSlot(index) = self.machine.regs[0] {
                                // An image without symbols for its Control Flow Guard
                                // pointer: `call [rip+X]` with a framework entry in rax.
                                self.wants_flow = true;
                                graph.externals.push((site, External::Wdf(index)));
                                wdf_call = index;
                            } else {
                                self.unresolved(graph, site, is_call, true);
                            }
                        } else if self.machine.value(instr.memory_base()) == Value::WdfTable {
                            self.wants_flow = true;
                            let (index, other) = self.wdf_indices(instr);
                            graph.externals.push((site, External::Wdf(index)));
                            if let Some(other) = other {
                                // The index is one of two: the call is either method.
                                graph.externals.push((site, External::Wdf(Some(other))));
                            }
                            wdf_call = index;
                        } else if self.flow
                            && let Value::Stack(off) = self.machine.address(instr)
                        {
                            // A function pointer kept in a local (unoptimised code).
                            let value = self.machine.frame.read_value(off, ctx);
                            if let Value::WdfSlot(Some(index)) = value {
                                wdf_call = Some(index);
                            }
                            self.transfer_to(ctx, scratch, site, is_call, value, graph);
                        } else {
                            self.unresolved(graph, site, is_call, true);
                        }
                    }
                    _ => {}
                }
                if let Some(env) = flow.as_deref_mut() {
                    if let Some(name) =
                        wdf_call.and_then(|index| crate::wdf::function_name(u64::from(index)))
                    {
                        if let Some(method) = kmdf::method_named(name) {
                            let call = self.registration(ctx, method, site);
                            file_call(env, call);
                        } else if let Some(position) = kmdf::unmodelled_callback_position(name) {
                            // A callback whose IRQL the model does not know: reported rather
                            // than dropped.
                            if let Value::Address(rva) = self.machine.argument(position, ctx)
                                && ctx.is_code(rva)
                            {
                                env.out.unmodelled.push((site, name, rva));
                            }
                        }
                        if let Some(effect) = locks::effect_of(name) {
                            self.lock_effect(effect, site, env);
                        }
                    }
                    if let Some(target) = direct {
                        let summaries = env.summaries;
                        if let Some(s) = ctx.special_function(target) {
                            self.special_call(ctx, site, s, Some(env));
                        } else if let Some(summary) = summaries.get(&target) {
                            self.apply_summary(ctx, site, summary, env);
                        }
                    }
                } else if let Some(target) = direct
                    && ctx.special_function(target).is_some()
                {
                    self.wants_flow = true;
                }
                if !is_call
                    && leaves
                    && let Some(env) = flow.as_deref_mut()
                {
                    // A tail call: the function returns from there.
                    self.returning(env);
                }
                if is_call {
                    for r in VOLATILE {
                        self.machine.regs[r] = Value::Unknown;
                    }
                    if self.flow {
                        for x in &mut self.machine.xmm[..6] {
                            *x = [Value::Unknown; 2];
                        }
                    }
                }
                self.machine.bound = None;
            }
            Mnemonic::Ret => {
                if let Some(env) = flow.as_deref_mut() {
                    self.returning(env);
                }
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
                            self.wants_flow = true;
                            self.machine.set(reg, Value::Address(target));
                        }
                        None => self.machine.set(reg, Value::Unknown),
                    }
                } else if instr.memory_index() == Register::None {
                    #[allow(clippy::cast_possible_wrap)]
                    let disp = instr.memory_displacement64() as i64;
                    let value = self.machine.value(instr.memory_base()).offset(disp);
                    self.machine.set(reg, value);
                } else {
                    self.machine.set(reg, Value::Unknown);
                }
            }
            Mnemonic::Mov | Mnemonic::Movsxd
                if instr.op0_kind() == OpKind::Register && instr.op1_kind() == OpKind::Memory =>
            {
                let width = u32::try_from(instr.memory_size().size()).unwrap_or(0);
                let mut value = self.load(ctx, instr, width);
                if matches!(value, Value::Address(_)) && instr.is_ip_rel_memory_operand() {
                    // A relocated constant, perhaps a structure's callback: worth a closer look.
                    self.wants_flow = true;
                }
                if mnemonic == Mnemonic::Movsxd && !matches!(value, Value::TableEntry { .. }) {
                    value = match value {
                        #[allow(clippy::cast_possible_truncation)]
                        Value::Const(c) => Value::Const(i64::from(c as i32).cast_unsigned()),
                        _ => Value::Unknown,
                    };
                }
                self.machine.set(instr.op0_register(), value);
            }
            Mnemonic::Mov
                if instr.op0_kind() == OpKind::Register && instr.op1_kind() == OpKind::Register =>
            {
                let (dst, src) = (instr.op0_register(), instr.op1_register());
                let value = self.machine.value(src);
                if dst == Register::CR8
                    && let Some(env) = flow.as_deref_mut()
                {
                    // The inline KeRaiseIrql/KeLowerIrql.
                    let constant = match value {
                        Value::Const(c) => Some(c),
                        _ => None,
                    };
                    if let Some(effect) = locks::cr8_effect(constant, self.machine.holds()) {
                        self.lock_effect(effect, site, env);
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
                self.machine.set(dst, value);
            }
            Mnemonic::Mov if instr.op0_kind() == OpKind::Register => {
                // An immediate: a 32-bit destination zero-extends it.
                let reg = instr.op0_register();
                let value = match reg.size() {
                    8 => Value::Const(instr.immediate(1)),
                    4 => Value::Const(instr.immediate(1) & 0xffff_ffff),
                    _ => Value::Unknown,
                };
                self.machine.set(reg, value);
            }
            Mnemonic::Mov if instr.op0_kind() == OpKind::Memory => {
                if self.flow {
                    let width = u32::try_from(instr.memory_size().size()).unwrap_or(0);
                    let content = if instr.op1_kind() == OpKind::Register {
                        Self::content_of(self.machine.value(instr.op1_register()), width)
                    } else {
                        Self::content_of(Value::Const(instr.immediate(1)), width)
                    };
                    self.store(
                        instr,
                        width,
                        content,
                        flow.as_deref_mut().map(|e| &mut e.out),
                    );
                }
            }
            Mnemonic::Xor | Mnemonic::Sub
                if instr.op0_kind() == OpKind::Register
                    && instr.op1_kind() == OpKind::Register
                    && instr.op0_register() == instr.op1_register()
                    && instr.op0_register().size() >= 4 =>
            {
                self.machine.set(instr.op0_register(), Value::Const(0));
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
                    self.machine.value(reg).offset(by)
                } else {
                    Value::Unknown
                };
                self.machine.set(reg, value);
            }
            Mnemonic::Add
                if instr.op0_kind() == OpKind::Register && instr.op1_kind() == OpKind::Register =>
            {
                let combined = match (
                    self.machine.value(instr.op0_register()),
                    self.machine.value(instr.op1_register()),
                ) {
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
                self.machine.set(instr.op0_register(), combined);
            }
            Mnemonic::Sub
                if instr.op0_kind() == OpKind::Register && instr.op1_kind() == OpKind::Register =>
            {
                // `sub rsp, rax` after a stack probe for a large frame.
                let value = match self.machine.value(instr.op1_register()) {
                    Value::Const(c) => self
                        .machine
                        .value(instr.op0_register())
                        .offset(c.cast_signed().wrapping_neg()),
                    _ => Value::Unknown,
                };
                self.machine.set(instr.op0_register(), value);
            }
            Mnemonic::Cmp if instr.op0_kind() == OpKind::Register => {
                self.machine.bound = match instr.op1_kind() {
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
                if self.flow
                    && instr.op0_kind() == OpKind::Register
                    && instr.op1_kind() == OpKind::Register
                    && instr.op0_register() == instr.op1_register() =>
            {
                // The framework fills its table before DriverEntry (a driver that checks it
                // fails to load otherwise) and the loader binds every import: the "missing
                // entry" branches the bindings emit after this test are never taken.
                self.tested_nonnull = matches!(
                    self.machine.value(instr.op0_register()),
                    Value::WdfSlot(_) | Value::Import(_) | Value::GuardDispatch
                );
            }
            Mnemonic::Cmp | Mnemonic::Test | Mnemonic::Bt | Mnemonic::Nop => {}
            Mnemonic::Push => {
                if self.flow {
                    let value = match instr.op0_kind() {
                        OpKind::Register => self.machine.value(instr.op0_register()),
                        OpKind::Immediate8to64 | OpKind::Immediate32to64 => {
                            Value::Const(instr.immediate(0))
                        }
                        _ => Value::Unknown,
                    };
                    let sp = self.machine.regs[RSP].offset(-8);
                    self.machine.regs[RSP] = sp;
                    if let Value::Stack(off) = sp {
                        match Self::content_of(value, 8) {
                            Some(c) => self.machine.frame.write(off, 8, c),
                            None => self.machine.frame.forget(off, 8),
                        }
                    }
                }
            }
            Mnemonic::Pop => {
                if self.flow {
                    let sp = self.machine.regs[RSP];
                    let value = match sp {
                        Value::Stack(off) => self.machine.frame.read_value(off, ctx),
                        _ => Value::Unknown,
                    };
                    self.machine.regs[RSP] = sp.offset(8);
                    if instr.op0_kind() == OpKind::Register {
                        self.machine.set(instr.op0_register(), value);
                    }
                } else if instr.op0_kind() == OpKind::Register {
                    self.machine.set(instr.op0_register(), Value::Unknown);
                }
            }
            Mnemonic::Leave => {
                let frame_pointer = self.machine.regs[RBP];
                self.machine.regs[RBP] = match frame_pointer {
                    Value::Stack(off) if self.flow => self.machine.frame.read_value(off, ctx),
                    _ => Value::Unknown,
                };
                self.machine.regs[RSP] = frame_pointer.offset(8);
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
            | Mnemonic::Loopne => {
                // A test of a pointer that is never null decides the branch.
                if nonnull && mnemonic == Mnemonic::Je {
                    return;
                }
                if nonnull && mnemonic == Mnemonic::Jne {
                    self.dead_fallthrough = true;
                }
                // Conditional jumps: a `jcc` out of the function is a conditional tail call.
                if instr.op0_kind() == OpKind::NearBranch64
                    && let Some(target) = image.rva_of_va(instr.near_branch_target())
                {
                    if !self.inside(target) {
                        if !matches!(
                            mnemonic,
                            Mnemonic::Loop
                                | Mnemonic::Loope
                                | Mnemonic::Loopne
                                | Mnemonic::Jrcxz
                                | Mnemonic::Jecxz
                        ) {
                            graph.edges.push(Edge {
                                site,
                                target,
                                kind: EdgeKind::Jump,
                            });
                        }
                    } else if self.flow {
                        self.contribute(scratch, target);
                    }
                }
                if matches!(
                    mnemonic,
                    Mnemonic::Loop | Mnemonic::Loope | Mnemonic::Loopne
                ) {
                    self.machine.regs[1] = Value::Unknown;
                }
            }
            _ if self.flow => self.step_other(ctx, instr, flow.map(|e| &mut e.out)),
            _ => {
                if instr.op_count() > 0 && instr.op0_kind() == OpKind::Register {
                    self.machine.set(instr.op0_register(), Value::Unknown);
                }
                // An SSE copy of constant data (a structure template) and the like.
                if instr.is_ip_rel_memory_operand() {
                    self.wants_flow = true;
                }
            }
        }
    }

    /// Dataflow mode: SSE moves and string stores that build structures, and for everything
    /// else, forgetting every register and frame byte the instruction writes.
    #[allow(clippy::too_many_lines)]
    fn step_other<V: View>(&mut self, ctx: &V, instr: &Instruction, out: Option<&mut FlowOut>) {
        self.machine.xmm_written = true;
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
                    self.machine.xmm[d] = match (k1, x1) {
                        (_, Some(s)) => self.machine.xmm[s],
                        (Some(OpKind::Memory), _) => self.load_xmm(ctx, instr),
                        _ => [Value::Unknown; 2],
                    };
                    return;
                }
                if k0 == OpKind::Memory
                    && let Some(s) = x1
                {
                    let halves = self.machine.xmm[s];
                    self.store_halves(instr, &halves, out);
                    return;
                }
            }
            Mnemonic::Movq | Mnemonic::Movsd | Mnemonic::Movd if x0.is_some() || x1.is_some() => {
                match (x0, k1, x1) {
                    // xmm <- xmm (movsd keeps the upper half, movq zeroes it)
                    (Some(d), _, Some(s)) => {
                        let low = self.machine.xmm[s][0];
                        self.machine.xmm[d] = if mnemonic == Mnemonic::Movsd {
                            [low, self.machine.xmm[d][1]]
                        } else {
                            [low, Value::Const(0)]
                        };
                    }
                    (Some(d), Some(OpKind::Register), None) => {
                        let v = self.machine.value(instr.op1_register());
                        self.machine.xmm[d] = [
                            if mnemonic == Mnemonic::Movd {
                                Value::Unknown
                            } else {
                                v
                            },
                            Value::Const(0),
                        ];
                    }
                    (Some(d), Some(OpKind::Memory), None) => {
                        let size = u32::try_from(instr.memory_size().size()).unwrap_or(0);
                        let v = self.load(ctx, instr, size);
                        self.machine.xmm[d] = [v, Value::Const(0)];
                    }
                    (None, _, Some(s)) if k0 == OpKind::Register => {
                        let v = if instr.op0_register().size() == 8 {
                            self.machine.xmm[s][0]
                        } else {
                            Value::Unknown
                        };
                        self.machine.set(instr.op0_register(), v);
                    }
                    (None, _, Some(s)) if k0 == OpKind::Memory => {
                        let size = u32::try_from(instr.memory_size().size()).unwrap_or(0);
                        let content = Self::content_of(self.machine.xmm[s][0], size);
                        self.store(instr, size, content, out);
                    }
                    _ => self.forget_written(instr),
                }
                return;
            }
            Mnemonic::Xorps | Mnemonic::Xorpd | Mnemonic::Pxor if x0.is_some() && x0 == x1 => {
                if let Some(d) = x0 {
                    self.machine.xmm[d] = [Value::Const(0); 2];
                }
                return;
            }
            Mnemonic::Punpcklqdq | Mnemonic::Movlhps | Mnemonic::Unpcklpd => {
                if let (Some(d), Some(s)) = (x0, x1) {
                    self.machine.xmm[d][1] = self.machine.xmm[s][0];
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
                    Some(OpKind::Register) => self.machine.value(instr.op1_register()),
                    Some(OpKind::Memory) => {
                        let size = u32::try_from(instr.memory_size().size()).unwrap_or(0);
                        self.load(ctx, instr, size)
                    }
                    _ => Value::Unknown,
                };
                let value = if dst.size() == 8 {
                    self.machine.value(dst).meet(src)
                } else {
                    Value::Unknown
                };
                self.machine.set(dst, value);
                return;
            }
            Mnemonic::Movsb | Mnemonic::Movsq | Mnemonic::Movsd | Mnemonic::Movsw
                if instr.has_rep_prefix() =>
            {
                self.rep_copy(ctx, instr, out);
                return;
            }
            Mnemonic::Stosb | Mnemonic::Stosq | Mnemonic::Stosd | Mnemonic::Stosw
                if instr.has_rep_prefix() =>
            {
                self.rep_fill(instr, out);
                return;
            }
            _ => {}
        }
        self.forget_written(instr);
    }

    /// Two eight-byte halves read by an SSE load.
    fn load_xmm<V: View>(&self, ctx: &V, instr: &Instruction) -> [Value; 2] {
        if instr.memory_size().size() != 16 {
            return [Value::Unknown; 2];
        }
        if instr.is_ip_rel_memory_operand() {
            let Some(rva) = ctx.rva_of_va(instr.ip_rel_memory_address()) else {
                return [Value::Unknown; 2];
            };
            if !ctx.is_read_only(rva) {
                return [Value::Unknown; 2];
            }
            let word = |at: u32| {
                if let Some(t) = ctx.pointer_at(at) {
                    return Value::Address(t);
                }
                let mut b = [0u8; 8];
                if ctx.read_bytes(at, &mut b) {
                    Value::Const(u64::from_le_bytes(b))
                } else {
                    Value::Unknown
                }
            };
            return [word(rva), word(rva.wrapping_add(8))];
        }
        match self.machine.address(instr) {
            Value::Stack(off) => [
                self.machine.frame.read_value(off, ctx),
                self.machine.frame.read_value(off + 8, ctx),
            ],
            _ => [Value::Unknown; 2],
        }
    }

    fn store_halves(
        &mut self,
        instr: &Instruction,
        halves: &[Value; 2],
        mut out: Option<&mut FlowOut>,
    ) {
        if instr.memory_size().size() != 16 {
            self.forget_written(instr);
            return;
        }
        for (k, half) in halves.iter().enumerate() {
            let content = Self::content_of(*half, 8);
            match self.machine.address(instr) {
                Value::Stack(off) => {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
                    let at = off + 8 * k as i32;
                    match content {
                        Some(c) => self.machine.frame.write(at, 8, c),
                        None => self.machine.frame.forget(at, 8),
                    }
                }
                Value::Param { index, offset } => {
                    if let (Some(c @ Content::Value(v)), Some(out)) = (content, out.as_deref_mut())
                        && v.is_portable()
                    {
                        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
                        out.summary
                            .writes
                            .push((index, offset + 8 * k as i32, 8, c));
                    }
                }
                _ => {}
            }
        }
    }

    /// `rep movs`: a copy of `rcx` elements from `rsi` to `rdi`.
    fn rep_copy<V: View>(&mut self, ctx: &V, instr: &Instruction, out: Option<&mut FlowOut>) {
        let element = u64::try_from(instr.memory_size().size()).unwrap_or(0);
        let (dst, src, count) = (
            self.machine.regs[7],
            self.machine.regs[6],
            self.machine.regs[1],
        );
        if let Value::Const(n) = count {
            self.copy(ctx, dst, src, n.saturating_mul(element), out);
        } else {
            self.forget_at(dst, MAX_TRACKED);
        }
        for r in [1, 6, 7] {
            self.machine.regs[r] = Value::Unknown;
        }
    }

    /// `rep stos`: `rcx` elements of `al`/`eax`/`rax` to `rdi`.
    fn rep_fill(&mut self, instr: &Instruction, out: Option<&mut FlowOut>) {
        let element = u64::try_from(instr.memory_size().size()).unwrap_or(0);
        let (dst, value, count) = (
            self.machine.regs[7],
            self.machine.regs[0],
            self.machine.regs[1],
        );
        let byte = match value {
            Value::Const(0) => Some(0),
            #[allow(clippy::cast_possible_truncation)]
            Value::Const(c) if element == 1 => Some(c as u8),
            _ => None,
        };
        match (count, byte) {
            (Value::Const(n), Some(b)) => self.fill(dst, b, n.saturating_mul(element), out),
            _ => self.forget_at(dst, MAX_TRACKED),
        }
        for r in [1, 7] {
            self.machine.regs[r] = Value::Unknown;
        }
    }

    /// A `memcpy` of `len` bytes from `src` to `dst`.
    fn copy<V: View>(
        &mut self,
        ctx: &V,
        dst: Value,
        src: Value,
        len: u64,
        out: Option<&mut FlowOut>,
    ) {
        let Ok(len) = u32::try_from(len) else {
            self.forget_at(dst, MAX_TRACKED);
            return;
        };
        let content = match src {
            Value::Address(rva) if ctx.is_read_only(rva) => Some(Content::Image(rva)),
            _ => None,
        };
        match (dst, src) {
            (Value::Stack(d), Value::Stack(s)) => {
                self.machine.frame.copy_within(d, s, len.min(MAX_TRACKED));
            }
            (Value::Stack(d), _) => match content {
                Some(c) => self.machine.frame.write(d, len, c),
                None => self.machine.frame.forget(d, len.min(MAX_TRACKED)),
            },
            (Value::Param { index, offset }, _) => {
                if let (Some(c), Some(out)) = (content, out)
                    && len <= MAX_TRACKED
                {
                    out.summary.writes.push((index, offset, len, c));
                }
            }
            _ => {}
        }
    }

    /// A `memset` of `len` bytes at `dst` to `byte`.
    fn fill(&mut self, dst: Value, byte: u8, len: u64, out: Option<&mut FlowOut>) {
        let Ok(len) = u32::try_from(len) else {
            self.forget_at(dst, MAX_TRACKED);
            return;
        };
        match dst {
            Value::Stack(d) => self.machine.frame.write(d, len, Content::Fill(byte)),
            Value::Param { index, offset } => {
                if let Some(out) = out
                    && len <= MAX_TRACKED
                {
                    out.summary
                        .writes
                        .push((index, offset, len, Content::Fill(byte)));
                }
            }
            _ => {}
        }
    }

    fn forget_at(&mut self, dst: Value, len: u32) {
        if let Value::Stack(d) = dst {
            self.machine.frame.forget(d, len);
        }
    }

    /// A call of `memcpy`/`memset` (by import or the image's own copy): its effect on the
    /// frame, from the argument registers.
    fn special_call<V: View>(
        &mut self,
        ctx: &V,
        site: u32,
        special: Special,
        flow: Option<&mut FlowEnv<'_>>,
    ) {
        let Some(env) = flow else {
            self.wants_flow = true;
            return;
        };
        match special {
            Special::LockSection => {
                env.out.locks.push((site, self.machine.regs[1]));
                return;
            }
            Special::Irql(effect) => {
                self.lock_effect(effect, site, env);
                return;
            }
            _ => {}
        }
        let (dst, src, len) = (
            self.machine.regs[1],
            self.machine.regs[2],
            self.machine.regs[8],
        );
        let Value::Const(len) = len else {
            self.forget_at(dst, MAX_TRACKED);
            return;
        };
        match special {
            Special::Copy => self.copy(ctx, dst, src, len, Some(&mut env.out)),
            Special::Fill => match src {
                #[allow(clippy::cast_possible_truncation)]
                Value::Const(b) => self.fill(dst, b as u8, len, Some(&mut env.out)),
                _ => self.forget_at(dst, MAX_TRACKED),
            },
            Special::GuardDispatch
            | Special::GuardCheck
            | Special::LockSection
            | Special::Irql(_) => {}
        }
    }

    /// A spin lock taken or released at `site`.
    fn lock_effect(&mut self, effect: locks::Effect, site: u32, env: &mut FlowEnv<'_>) {
        match effect {
            locks::Effect::Acquire(name) => {
                self.machine.held = match self.machine.held {
                    HELD_TOP => 1,
                    h => h.saturating_add(1).min(HELD_TOP - 1),
                };
                self.machine.acquired = Some((name, site));
            }
            locks::Effect::Release => {
                if self.machine.holds() {
                    self.machine.held -= 1;
                    if self.machine.held == 0 {
                        self.machine.acquired = None;
                    }
                } else {
                    // Releases a lock its caller took.
                    env.out.summary.releases = true;
                }
            }
        }
    }

    /// The function returns from here: a lock still held is its callers' to release.
    fn returning(&self, env: &mut FlowEnv<'_>) {
        if self.machine.holds() {
            env.out.summary.acquires = Some(
                self.machine
                    .acquired
                    .map_or("a spin lock", |(name, _)| name),
            );
        }
    }

    /// A call through a register holding a special import (`memcpy` loaded from the import
    /// address table into a register).
    fn special_import<V: View>(
        &mut self,
        ctx: &V,
        site: u32,
        value: Value,
        flow: Option<&mut FlowEnv<'_>>,
    ) {
        if let Value::Import(slot) = value
            && let Some(special) = ctx.special_slot(slot)
        {
            self.special_call(ctx, site, special, flow);
        }
    }

    /// Forgets every general-purpose and SSE register the instruction writes, and the frame
    /// bytes it stores to.
    fn forget_written(&mut self, instr: &Instruction) {
        let Some(factory) = self.info.as_mut() else {
            self.machine.reset();
            return;
        };
        let info = factory.info(instr);
        for used in info.used_registers() {
            if matches!(
                used.access(),
                OpAccess::Write
                    | OpAccess::ReadWrite
                    | OpAccess::CondWrite
                    | OpAccess::ReadCondWrite
            ) {
                let reg = used.register();
                if let Some(i) = gpr(reg) {
                    self.machine.regs[i] = Value::Unknown;
                } else if let Some(i) = xmm(reg) {
                    self.machine.xmm[i] = [Value::Unknown; 2];
                }
            }
        }
        let writes_memory: Vec<(Value, u32)> = info
            .used_memory()
            .iter()
            .filter(|m| {
                matches!(
                    m.access(),
                    OpAccess::Write
                        | OpAccess::ReadWrite
                        | OpAccess::CondWrite
                        | OpAccess::ReadCondWrite
                )
            })
            .map(|m| {
                let size = u32::try_from(m.memory_size().size())
                    .unwrap_or(MAX_TRACKED)
                    .max(1);
                let base = self.machine.value(m.base());
                let address = if m.index() == Register::None {
                    #[allow(clippy::cast_possible_wrap)]
                    base.offset(m.displacement() as i64)
                } else {
                    // An indexed store into the frame: somewhere in it.
                    match base {
                        Value::Stack(_) => Value::Stack(i32::MIN),
                        _ => Value::Unknown,
                    }
                };
                (address, size)
            })
            .collect();
        for (address, size) in writes_memory {
            match address {
                Value::Stack(i32::MIN) => self.machine.frame.clear(),
                Value::Stack(off) => self.machine.frame.forget(off, size),
                _ => {}
            }
        }
    }

    /// The registration a framework call makes, read from the arguments now.
    fn registration<V: View>(&self, ctx: &V, method: &'static kmdf::Method, site: u32) -> RegCall {
        let args = method
            .args
            .iter()
            .map(|&(position, arg)| {
                let value = self.machine.argument(position, ctx);
                (position, read_arg(ctx, &self.machine.frame, arg, value))
            })
            .collect();
        RegCall {
            method,
            site,
            via: Vec::new(),
            args,
        }
    }

    /// Applies a callee's summary at a call: its stores through the pointers passed, and the
    /// registrations it makes with them.
    fn apply_summary<V: View>(
        &mut self,
        ctx: &V,
        site: u32,
        summary: &Summary,
        env: &mut FlowEnv<'_>,
    ) {
        if let Some(name) = summary.acquires {
            self.lock_effect(locks::Effect::Acquire(name), site, env);
        }
        if summary.releases {
            self.lock_effect(locks::Effect::Release, site, env);
        }
        let args: Vec<Value> = (0..4 + STACK_ARGUMENTS)
            .map(|p| self.machine.argument(p, ctx))
            .collect();
        let substitute = |v: Value| match v {
            Value::Param { index, offset } => args
                .get(usize::from(index))
                .map_or(Value::Unknown, |a| a.offset(i64::from(offset))),
            v => v,
        };
        for &(index, offset, len, content) in &summary.writes {
            let content = match content {
                Content::Value(v) => match substitute(v) {
                    Value::Unknown | Value::Top => None,
                    v => Some(Content::Value(v)),
                },
                c => Some(c),
            };
            let dst = args
                .get(usize::from(index))
                .map_or(Value::Unknown, |a| a.offset(i64::from(offset)));
            match (dst, content) {
                (Value::Stack(d), Some(c)) => self.machine.frame.write(d, len, c),
                (Value::Stack(d), None) => self.machine.frame.forget(d, len),
                (Value::Param { index, offset }, Some(c)) => {
                    let portable = match c {
                        Content::Value(v) => v.is_portable(),
                        _ => true,
                    };
                    if portable {
                        env.out.summary.writes.push((index, offset, len, c));
                    }
                }
                _ => {}
            }
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
                        Some(read_arg(ctx, &self.machine.frame, kind, value))
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
            file_call(env, call);
        }
    }

    /// Reads a jump table: entries of 4 bytes at `table`, each added to `base` (signed for
    /// LLVM's table-relative entries, unsigned RVAs for MSVC's `__ImageBase`-relative ones).
    #[allow(clippy::too_many_arguments)]
    fn resolve_table(
        &mut self,
        ctx: &impl View,
        scratch: &Scratch,
        site: u32,
        table: u32,
        base: u32,
        signed: bool,
        graph: &mut CallGraph,
    ) {
        let count = self
            .machine
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
            if !ctx.is_code(target) || (self.machine.bound.is_none() && !self.inside(target)) {
                break;
            }
            if self.inside(target) {
                self.table_targets.push(target);
                if self.flow {
                    self.contribute(scratch, target);
                }
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
            self.unresolved(graph, site, false, false);
        } else if self.inside(table) {
            self.tables
                .push((table, table.saturating_add(resolved * 4).min(self.end)));
        }
    }
}

/// Longest jump table read when no `cmp index, N` bounds it.
const MAX_TABLE_ENTRIES: u32 = 4096;

/// A finished registration call goes to the function's calls; one that still depends on its
/// caller's arguments goes to its summary.
fn file_call(env: &mut FlowEnv<'_>, call: RegCall) {
    let open = call.args.iter().any(|(_, a)| {
        matches!(a, RegArg::Param { .. })
            || matches!(a, RegArg::Callback(Value::Param { .. }))
            || matches!(a, RegArg::Read { fields, .. } if fields.iter().any(|(_, v)| matches!(v, Value::Param { .. })))
    });
    if open {
        if !env.out.summary.forwards.contains(&call) {
            env.out.summary.forwards.push(call);
        }
    } else {
        env.out.calls.push(call);
    }
}

/// Reads one registration argument holding `value`.
fn read_arg(image: &impl ImageBytes, frame: &Frame, arg: kmdf::Arg, value: Value) -> RegArg {
    let fields: &[kmdf::Field] = match arg {
        kmdf::Arg::Config(s) => s.fields,
        kmdf::Arg::Attributes(o) => o.attribute_fields(),
        kmdf::Arg::Callback(_) => {
            return match value {
                Value::Const(0) => RegArg::Null,
                v @ (Value::Address(_) | Value::MaybeAddress(_) | Value::Param { .. }) => {
                    RegArg::Callback(v)
                }
                _ => RegArg::Unknown,
            };
        }
    };
    let level_wanted = matches!(arg, kmdf::Arg::Attributes(_));
    let flag_at = match arg {
        kmdf::Arg::Config(s) => s.passive_flag,
        _ => None,
    };
    match value {
        Value::Const(0) => RegArg::Null,
        Value::Param { index, offset } => RegArg::Param { index, offset },
        Value::Stack(base) => RegArg::Read {
            #[allow(clippy::cast_possible_truncation)]
            size: frame.read_bytes(base, 4, image).map(|s| s as u32),
            fields: fields
                .iter()
                .map(|f| {
                    (
                        f.offset,
                        frame.read_value(base + i32::from(f.offset), image),
                    )
                })
                .collect(),
            level: level_wanted
                .then(|| frame.read_bytes(base + i32::from(kmdf::EXECUTION_LEVEL_OFFSET), 4, image))
                .flatten(),
            flag: flag_at.and_then(|at| frame.read_bytes(base + i32::from(at), 1, image)),
        },
        Value::Address(rva) => {
            let word = |at: u32, len: usize| {
                let mut b = [0u8; 8];
                image
                    .read_bytes(at, &mut b[..len])
                    .then(|| u64::from_le_bytes(b))
            };
            RegArg::Read {
                #[allow(clippy::cast_possible_truncation)]
                size: word(rva, 4).map(|s| s as u32),
                fields: fields
                    .iter()
                    .map(|f| {
                        let at = rva.wrapping_add(u32::from(f.offset));
                        let v = image.pointer_at(at).map_or_else(
                            || word(at, 8).map_or(Value::Unknown, Value::Const),
                            Value::Address,
                        );
                        (f.offset, v)
                    })
                    .collect(),
                level: level_wanted
                    .then(|| word(rva.wrapping_add(u32::from(kmdf::EXECUTION_LEVEL_OFFSET)), 4))
                    .flatten(),
                flag: flag_at.and_then(|at| word(rva.wrapping_add(u32::from(at)), 1)),
            }
        }
        _ => RegArg::Unknown,
    }
}

impl FunctionState {
    /// The table indices `[table + disp]` or `[table + reg*scale + disp]` can name: one, two
    /// when the index register holds one of two constants, none when it is unknown.
    fn wdf_indices(&self, instr: &Instruction) -> (Option<u32>, Option<u32>) {
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
        match self.machine.value(index) {
            Value::Const(c) => (slot(c), None),
            Value::Pair(a, b) => match (slot(u64::from(a)), slot(u64::from(b))) {
                (Some(a), Some(b)) => (Some(a), Some(b)),
                _ => (None, None),
            },
            _ => (None, None),
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

    impl ImageBytes for Fake {
        fn read_bytes(&self, rva: u32, out: &mut [u8]) -> bool {
            for (i, chunk) in out.chunks_mut(4).enumerate() {
                let at = rva + 4 * u32::try_from(i).expect("small");
                let Some(word) = self.words.get(&at) else {
                    return false;
                };
                chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
            }
            true
        }
        fn pointer_at(&self, _rva: u32) -> Option<u32> {
            None
        }
    }

    impl View for Fake {
        fn image_base(&self) -> u64 {
            BASE
        }
        fn is_read_only(&self, _rva: u32) -> bool {
            true
        }
        fn special_slot(&self, _slot: u32) -> Option<Special> {
            None
        }
        fn special_function(&self, _rva: u32) -> Option<Special> {
            None
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

    /// Decodes `code` at 0x1000, in dataflow mode when `env` is given.
    fn decode_with(view: &Fake, code: &[u8], env: Option<&mut FlowEnv<'_>>) -> CallGraph {
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
            env,
        );
        push_offsets(&mut graph);
        graph
    }

    fn decode(view: &Fake, code: &[u8]) -> CallGraph {
        decode_with(view, code, None)
    }

    /// Decodes `code` at 0x1000 in dataflow mode; returns the graph and what the walk found.
    fn decode_flow(view: &Fake, code: &[u8]) -> (CallGraph, FlowOut) {
        let summaries = std::collections::HashMap::new();
        let mut env = FlowEnv {
            summaries: &summaries,
            out: FlowOut::default(),
        };
        let graph = decode_with(view, code, Some(&mut env));
        (graph, env.out)
    }

    #[test]
    fn an_index_chosen_by_a_branch_names_both_methods() {
        // test ecx,ecx; je .a; mov eax,0x200; jmp .call; .a: mov eax,0x1f8;
        // .call: mov r8,[rip+WdfFunctions]; call [r8+rax]; ret
        let mut code = vec![
            0x85, 0xc9, 0x74, 0x07, 0xb8, 0x00, 0x02, 0x00, 0x00, 0xeb, 0x05,
        ];
        code.extend([0xb8, 0xf8, 0x01, 0x00, 0x00]);
        code.extend([0x4c, 0x8b, 0x05]);
        code.extend(rel(0x2000, 0x1017));
        code.extend([0x41, 0xff, 0x14, 0x00, 0xc3]);
        let (graph, _) = decode_flow(&fake(&[]), &code);
        let mut indices: Vec<Option<u32>> = graph
            .externals_of(0)
            .iter()
            .map(|&(_, e)| match e {
                External::Wdf(i) => i,
                External::Import(_) => None,
            })
            .collect();
        indices.sort_unstable();
        // WdfDeviceInitSetPowerNotPageable (63) or WdfDeviceInitSetPowerPageable (64).
        assert_eq!(indices, [Some(63), Some(64)]);
        // The linear pass, which forgets at the join, cannot name it.
        let linear = decode(&fake(&[]), &code);
        assert_eq!(linear.externals_of(0), &[(0x1017, External::Wdf(None))]);
    }

    #[test]
    fn a_missing_table_entry_branch_is_never_taken() {
        // The binding's shape around a lock: acquire (316), then the release entry (317) is
        // tested and, were it null, the function would return holding the lock.
        //   mov rax,[rip+W]; mov rax,[rax+0x9e0]; call rax
        //   mov rax,[rip+W]; mov rax,[rax+0x9e8]; test rax,rax; je .out; jmp rax
        //   .out: ret
        let mut code = vec![0x48, 0x8b, 0x05];
        code.extend(rel(0x2000, 0x1007));
        code.extend([0x48, 0x8b, 0x80, 0xe0, 0x09, 0x00, 0x00, 0xff, 0xd0]);
        code.extend([0x48, 0x8b, 0x05]);
        code.extend(rel(0x2000, 0x1017));
        code.extend([0x48, 0x8b, 0x80, 0xe8, 0x09, 0x00, 0x00]);
        code.extend([0x48, 0x85, 0xc0, 0x74, 0x02, 0xff, 0xe0, 0xc3]);
        let (_, out) = decode_flow(&fake(&[]), &code);
        // Every path that returns has released the lock.
        assert_eq!(out.summary.acquires, None);
        assert!(!out.summary.releases);
        // The release is a call made holding the lock (it runs at DISPATCH_LEVEL too).
        assert_eq!(out.held.len(), 1);
        assert_eq!(out.held[0].acquire, "WdfSpinLockAcquire");
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
