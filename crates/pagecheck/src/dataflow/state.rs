//! The state domain: what the analysis knows at one point of a function (registers, SSE
//! registers, memory, the spin locks held, what the last test established), and how two
//! paths' states meet at a join.

use iced_x86::{Instruction, Register};

use super::memory::{ImageBytes, Memory, address_of};
use super::value::{Sets, Value};

/// Registers a call may clobber in the Microsoft x64 convention.
pub const VOLATILE: [usize; 7] = [0, 1, 2, 8, 9, 10, 11];
/// The first four integer arguments: `rcx`, `rdx`, `r8`, `r9`.
pub const ARGUMENT_REGISTERS: [usize; 4] = [1, 2, 8, 9];
/// `rax`.
pub const RAX: usize = 0;
/// `rcx`.
pub const RCX: usize = 1;
/// `rdx`.
pub const RDX: usize = 2;
/// `rsp`.
pub const RSP: usize = 4;
/// `rbp`.
pub const RBP: usize = 5;
/// `rsi`.
pub const RSI: usize = 6;
/// `rdi`.
pub const RDI: usize = 7;
/// `r8`.
pub const R8: usize = 8;
/// Incoming arguments tracked beyond the four in registers (on the stack above the home
/// space).
pub const STACK_ARGUMENTS: u8 = 4;

/// Maps a general-purpose register of any width to 0..16 (`al`, `ah`, `ax`, `eax` and `rax`
/// to 0), or `None` for anything else. One table lookup (iced's own register table): the
/// transfer function asks this several times for every instruction of the image.
#[must_use]
#[inline]
pub fn gpr(reg: Register) -> Option<usize> {
    let full = reg.full_register() as usize;
    (Register::RAX as usize..=Register::R15 as usize)
        .contains(&full)
        .then(|| full - Register::RAX as usize)
}

/// Maps `xmm0`..`xmm15` (and the `ymm`/`zmm` registers that contain them) to 0..16.
#[must_use]
pub fn xmm(reg: Register) -> Option<usize> {
    (reg.is_xmm() || reg.is_ymm() || reg.is_zmm())
        .then(|| reg.number())
        .filter(|&n| n < 16)
}

/// What the flags say after the last instruction that set them, when that decides a branch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cond {
    /// Nothing the analysis uses.
    #[default]
    None,
    /// A pointer that cannot be null was tested against itself (a framework table entry, an
    /// import): `ZF` is clear.
    NonNull,
    /// `WdfDevStateIsNP` was tested: the result is nonzero (`ZF` clear) exactly when the device
    /// is in a nonpageable state, or, unless `nonzero_is_np`, exactly when it is not.
    Np {
        /// `ZF` clear means nonpageable.
        nonzero_is_np: bool,
    },
    /// `bt state, 15`: `CF` is the nonpageable bit.
    NpCarry,
}

/// What the paths to a point know of `WdfDevStateIsNP`: whether the code runs only where it
/// returned TRUE, only where it returned FALSE, or either.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Guard {
    /// No test, or paths that disagree.
    #[default]
    Unknown,
    /// Only where the device is in a nonpageable state.
    Np,
    /// Only where it is not: pageable data may be touched.
    NotNp,
}

impl Guard {
    /// What two paths agree on.
    #[must_use]
    pub fn meet(self, other: Guard) -> Guard {
        if self == other { self } else { Guard::Unknown }
    }
}

/// The analysis state at one point of a function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// General-purpose registers, by [`gpr`] number.
    pub regs: [Value; 16],
    /// Dataflow mode: the two eight-byte halves of each SSE register.
    pub xmm: [[Value; 2]; 16],
    /// Dataflow mode: the frame and what the arguments point to.
    pub mem: Memory,
    /// `cmp reg, imm` just seen: the bound of a following jump table.
    pub bound: Option<u32>,
    /// Dataflow mode: how many spin locks are held here.
    pub held: u8,
    /// The acquire of the innermost lock held, and where.
    pub acquired: Option<(&'static str, u32)>,
    /// Dataflow mode: some SSE register holds something else than [`Value::Unknown`].
    pub xmm_written: bool,
    /// What the last flag-setting instruction established.
    pub cond: Cond,
    /// What the paths here know of `WdfDevStateIsNP`.
    pub np: Guard,
}

/// Most locks counted as held at once; deeper nesting stays at this count.
const MAX_HELD: u8 = 16;

impl Machine {
    /// Nothing known.
    #[must_use]
    pub fn unknown() -> Machine {
        Machine {
            regs: [Value::Unknown; 16],
            xmm: [[Value::Unknown; 2]; 16],
            mem: Memory::default(),
            bound: None,
            held: 0,
            acquired: None,
            xmm_written: false,
            cond: Cond::None,
            np: Guard::Unknown,
        }
    }

    /// Whether a lock is held on some path to here.
    #[must_use]
    pub fn holds(&self) -> bool {
        self.held > 0
    }

    /// One more lock held, taken by `name` at `site`.
    pub fn acquire(&mut self, name: &'static str, site: u32) {
        self.held = self.held.saturating_add(1).min(MAX_HELD);
        self.acquired = Some((name, site));
    }

    /// One lock released; false when none was held (the caller's lock).
    pub fn release(&mut self) -> bool {
        if !self.holds() {
            return false;
        }
        self.held -= 1;
        if self.held == 0 {
            self.acquired = None;
        }
        true
    }

    /// The state at a function's entry (dataflow mode): the stack pointer at offset 0, the
    /// arguments in `rcx`, `rdx`, `r8`, `r9` and above the return address and home space.
    #[must_use]
    pub fn entry() -> Machine {
        let mut m = Machine::unknown();
        m.regs[RSP] = Value::Stack(0);
        for (index, &reg) in (0u8..).zip(ARGUMENT_REGISTERS.iter()) {
            m.regs[reg] = Value::Param { index, offset: 0 };
        }
        for k in 0..STACK_ARGUMENTS {
            m.mem.write(
                0x28 + 8 * i64::from(k),
                8,
                super::memory::Content::Value(Value::Param {
                    index: 4 + k,
                    offset: 0,
                }),
            );
        }
        m
    }

    /// Forgets the registers and the memory (what is held stays: a lock does not go away
    /// because the analysis lost track of the registers).
    pub fn reset(&mut self) {
        self.regs = [Value::Unknown; 16];
        self.bound = None;
        self.cond = Cond::None;
        // The linear pass never writes memory or the SSE registers: keep its resets cheap.
        if !self.mem.cells().is_empty() {
            self.mem.clear();
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
    pub fn weaken(&mut self) {
        for value in &mut self.regs {
            *value = value.only_possible();
        }
        self.bound = None;
        self.cond = Cond::None;
    }

    /// At a join whose other paths are not known (a function over its dataflow budget): only
    /// code addresses survive, as possibilities, as in the linear pass; memory is forgotten;
    /// the locks held stay held (a lock does not go away because the analysis stopped).
    pub fn forget_at_join(&mut self) {
        self.weaken();
        self.mem.clear();
        if self.xmm_written {
            self.xmm = [[Value::Unknown; 2]; 16];
            self.xmm_written = false;
        }
    }

    /// What two paths into a join agree on.
    #[must_use]
    pub fn meet(&self, other: &Machine, sets: &mut Sets) -> Machine {
        let mut out = Machine::unknown();
        for i in 0..16 {
            out.regs[i] = self.regs[i].meet(other.regs[i], sets);
            out.xmm[i] = [
                self.xmm[i][0].meet(other.xmm[i][0], sets),
                self.xmm[i][1].meet(other.xmm[i][1], sets),
            ];
        }
        out.xmm_written = self.xmm_written || other.xmm_written;
        // A lock held on either path is held here: what runs next may run at DISPATCH_LEVEL.
        out.held = self.held.max(other.held);
        out.acquired = match (self.acquired, other.acquired) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        out.bound = if self.bound == other.bound {
            self.bound
        } else {
            None
        };
        out.cond = if self.cond == other.cond {
            self.cond
        } else {
            Cond::None
        };
        out.np = self.np.meet(other.np);
        // The frame offsets of two paths line up only when their stack pointers do; the
        // argument regions always do.
        out.mem = if self.regs[RSP] == other.regs[RSP] {
            self.mem.meet(&other.mem, sets)
        } else {
            let mut frameless = self.mem.clone();
            frameless.clear_frame();
            let mut theirs = other.mem.clone();
            theirs.clear_frame();
            frameless.meet(&theirs, sets)
        };
        out
    }

    /// The value of a register.
    #[must_use]
    #[inline]
    pub fn value(&self, reg: Register) -> Value {
        gpr(reg).map_or(Value::Unknown, |i| self.regs[i])
    }

    /// Sets a register.
    #[inline]
    pub fn set(&mut self, reg: Register, value: Value) {
        if let Some(i) = gpr(reg) {
            self.regs[i] = value;
        }
    }

    /// The frame or argument address of a memory operand without an index register.
    #[must_use]
    pub fn address(&self, instr: &Instruction) -> Value {
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
    #[must_use]
    pub fn argument(&self, position: u8, image: &impl ImageBytes) -> Value {
        match ARGUMENT_REGISTERS.get(usize::from(position)) {
            Some(&reg) => self.regs[reg],
            None => match self.regs[RSP] {
                Value::Stack(sp) => self
                    .mem
                    .read_value(i64::from(sp) + 0x20 + 8 * (i64::from(position) - 4), image),
                _ => Value::Unknown,
            },
        }
    }

    /// The eight bytes at `value` (a frame or argument address) as a register value.
    #[must_use]
    pub fn read(&self, value: Value, image: &impl ImageBytes) -> Value {
        address_of(value).map_or(Value::Unknown, |at| self.mem.read_value(at, image))
    }
}
