//! What a dataflow walk reports beyond the call graph: the registration calls it read
//! ([`RegCall`]), the calls made while a spin lock is held ([`Held`]), and the function's
//! [`Summary`], the part of its behaviour its callers need (what it leaves in the structures
//! they pass it, the registrations it makes with them, the locks it returns holding).

use crate::kmdf;

use super::memory::{Content, ImageBytes, Memory, as_param};
use super::value::Value;

/// A resource a function's analysis ran out of. The analysis of that function stops there
/// (what it read until then stands; joins are no longer merged) and the registrations it could
/// not read say which budget it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Budget {
    /// Instructions stepped while iterating to the fixed point.
    Steps(u64),
    /// Bytes of join states kept at once.
    States(usize),
    /// Memory cells tracked at one point ([`super::memory::MAX_CELLS`]).
    Cells(usize),
    /// Basic blocks of one function.
    Blocks(usize),
}

impl Budget {
    /// How messages name it.
    #[must_use]
    pub fn describe(self) -> String {
        match self {
            Budget::Steps(n) => format!("the dataflow budget of {n} instruction steps"),
            Budget::States(n) => format!("the dataflow budget of {} MiB of join states", n >> 20),
            Budget::Cells(n) => format!("the budget of {n} tracked memory cells"),
            Budget::Blocks(n) => format!("the budget of {n} basic blocks per function"),
        }
    }
}

/// The part of a function's behaviour its callers need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// `(argument, offset, length, content)`: what the bytes an incoming pointer points to
    /// hold when the function returns; `None` where some path changed them to something the
    /// analysis does not know.
    pub writes: Vec<(u8, i32, u32, Option<Content>)>,
    /// Registration calls whose structure (or callback) is an incoming argument.
    pub forwards: Vec<RegCall>,
    /// The function may return holding a spin lock it took (the name of the acquire): in its
    /// callers, calling it takes the lock.
    pub acquires: Option<&'static str>,
    /// The function releases a spin lock it did not take: in its callers, calling it releases.
    pub releases: bool,
    /// What every return leaves in `rax`, when it is something callers use: a device power
    /// state, or `WdfDevStateIsNP` of one.
    pub returns: Option<Value>,
}

/// Most forwarded registrations one summary carries; a chain of helpers deeper than
/// [`MAX_VIA`] is not followed further (its registrations are reported unreadable there).
pub const MAX_FORWARDS: usize = 64;
/// Most helper levels a forwarded registration passes through.
pub const MAX_VIA: usize = 16;

impl Summary {
    /// True when callers have nothing to apply.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
            && self.forwards.is_empty()
            && self.acquires.is_none()
            && !self.releases
            && self.returns.is_none()
    }

    /// The writes a function leaves in its callers' memory, from the meet of its memory at
    /// every return: each byte range some path wrote, with what every path agrees it holds
    /// there.
    #[must_use]
    pub fn writes_of(returned: &Memory) -> Vec<(u8, i32, u32, Option<Content>)> {
        let mut out = Vec::new();
        let cells = returned.cells();
        for &(start, end) in returned.written() {
            let Some((index, offset)) = as_param(start) else {
                continue;
            };
            let mut at = start;
            let first = cells.partition_point(|c| c.at + i64::from(c.len) <= start);
            for cell in cells[first..].iter().take_while(|c| c.at < end) {
                if cell.at < at || cell.at + i64::from(cell.len) > end {
                    continue;
                }
                if cell.at > at {
                    out.push(gap(index, offset, start, at, cell.at));
                }
                let portable = match cell.content {
                    Content::Value(v) => v.is_portable(),
                    _ => true,
                };
                #[allow(clippy::cast_possible_truncation)]
                out.push((
                    index,
                    offset + (cell.at - start) as i32,
                    cell.len,
                    portable.then_some(cell.content),
                ));
                at = cell.at + i64::from(cell.len);
            }
            if at < end {
                out.push(gap(index, offset, start, at, end));
            }
        }
        out
    }
}

/// A range some path changed to something unknown.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn gap(index: u8, offset: i32, start: i64, from: i64, to: i64) -> (u8, i32, u32, Option<Content>) {
    (
        index,
        offset + (from - start) as i32,
        (to - from).min(i64::from(super::memory::MAX_TRACKED)) as u32,
        None,
    )
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
    /// Code addresses passed to framework methods in argument positions the model does not
    /// read: `(site, method, address)`.
    pub unmodelled: Vec<(u32, &'static str, u32)>,
    /// Direct callees handed a pointer into this function's memory whose summary is not known
    /// yet: the dataflow pass walks them next.
    pub wanted: Vec<u32>,
    /// The meet of the memory at every return.
    pub returned: Option<Memory>,
    /// The meet of `rax` at every return.
    pub returned_rax: Option<Value>,
    /// Calls (of imports, of the framework, of the image's own functions) made only where
    /// `WdfDevStateIsNP` returned FALSE.
    pub not_np: Vec<u32>,
    /// `(site, argument position, value when constant)` at each call of a routine whose
    /// contract depends on one argument (`routine_contracts::argument_of_interest`).
    pub arguments: Vec<(u32, u8, Option<u64>)>,
    /// The budget the walk ran out of, if it did.
    pub budget: Option<Budget>,
}

impl FlowOut {
    /// A return (or tail call): a lock still held is the callers' to release, and what the
    /// memory holds is what the callers see.
    pub fn returning(
        &mut self,
        memory: &Memory,
        rax: Value,
        holding: Option<&'static str>,
        sets: &mut super::value::Sets,
    ) {
        self.returned_rax = Some(match self.returned_rax {
            Some(before) => before.meet(rax, sets),
            None => rax,
        });
        if let Some(name) = holding {
            self.summary.acquires = Some(name);
        }
        self.returned = Some(match self.returned.take() {
            Some(before) => before.meet(memory, sets),
            None => memory.clone(),
        });
    }

    /// Closes the walk: the summary's writes from what every return left.
    pub fn finish(&mut self) {
        if let Some(returned) = &self.returned {
            self.summary.writes = Summary::writes_of(returned);
        }
        self.summary.returns = self
            .returned_rax
            .filter(|v| matches!(v, Value::DevState | Value::NpBit { .. }));
        if let Some(budget) = self.budget {
            for call in self
                .calls
                .iter_mut()
                .chain(self.summary.forwards.iter_mut())
            {
                call.budget.get_or_insert(budget);
            }
        }
    }

    /// Files a finished registration call in the function's calls, and one that still
    /// depends on its caller's arguments in its summary (unless the helper chain is too deep
    /// or the summary full: then it stays here, where its open arguments read as unknown).
    pub fn file(&mut self, call: RegCall) {
        if call.is_open() && call.via.len() < MAX_VIA && self.summary.forwards.len() < MAX_FORWARDS
        {
            if !self.summary.forwards.contains(&call) {
                self.summary.forwards.push(call);
            }
        } else if !self.calls.contains(&call) {
            self.calls.push(call);
        }
    }
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
    /// The budget the analysis of the function that read the call ran out of.
    pub budget: Option<Budget>,
}

impl RegCall {
    /// True while an argument still depends on the caller's arguments.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.args.iter().any(|(_, a)| match a {
            RegArg::Param { .. } | RegArg::Callback(Value::Param { .. }) => true,
            RegArg::Read { fields, .. } => {
                fields.iter().any(|(_, v)| matches!(v, Value::Param { .. }))
            }
            _ => false,
        })
    }
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
    /// A number argument, when constant (an IRP major function).
    Number(Option<u64>),
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

/// Where a structure lies: in the memory the function tracks (its frame, or what an argument
/// points to), or in the image (a constant structure in read-only data).
#[derive(Clone, Copy)]
enum Place {
    Memory(i64),
    Image(u32),
}

impl Place {
    fn of(value: Value) -> Option<Place> {
        match value {
            Value::Address(rva) => Some(Place::Image(rva)),
            v => super::memory::address_of(v).map(Place::Memory),
        }
    }

    /// The eight bytes at `off` as a value.
    fn word(self, image: &impl ImageBytes, mem: &Memory, off: u16) -> Value {
        match self {
            Place::Memory(at) => mem.read_value(at + i64::from(off), image),
            Place::Image(rva) => {
                let at = rva.wrapping_add(u32::from(off));
                image.pointer_at(at).map_or_else(
                    || {
                        self.bytes(image, mem, off, 8)
                            .map_or(Value::Unknown, Value::Const)
                    },
                    Value::Address,
                )
            }
        }
    }

    /// `len` bytes at `off` as a number.
    fn bytes(self, image: &impl ImageBytes, mem: &Memory, off: u16, len: u32) -> Option<u64> {
        match self {
            Place::Memory(at) => mem.read_bytes(at + i64::from(off), len, image),
            Place::Image(rva) => {
                let mut b = [0u8; 8];
                let out = b.get_mut(..len as usize)?;
                image
                    .read_bytes(rva.wrapping_add(u32::from(off)), out)
                    .then(|| u64::from_le_bytes(b))
            }
        }
    }
}

/// Reads one registration argument holding `value`, with `mem` the memory at the call.
pub fn read_arg(image: &impl ImageBytes, mem: &Memory, arg: kmdf::Arg, value: Value) -> RegArg {
    let (fields, structure): (&[kmdf::Field], Option<&kmdf::Structure>) = match arg {
        kmdf::Arg::Config(s) => (s.fields, Some(s)),
        kmdf::Arg::Attributes(o) => (o.attribute_fields(), None),
        kmdf::Arg::MajorFunction => {
            return RegArg::Number(match value {
                // A `UCHAR` argument: only the low byte is defined.
                Value::Const(c) => Some(c & 0xff),
                Value::Low { low, .. } => Some(u64::from(low) & 0xff),
                _ => None,
            });
        }
        kmdf::Arg::Callback(_) => {
            return match value {
                Value::Const(0) => RegArg::Null,
                v @ (Value::Address(_)
                | Value::MaybeAddress(_)
                | Value::AnyOf { .. }
                | Value::Param { .. }) => RegArg::Callback(v),
                _ => RegArg::Unknown,
            };
        }
    };
    if let Value::Param { index, offset } = value
        && !mem_holds(mem, index)
    {
        // The caller's structure: read where the caller is walked.
        return RegArg::Param { index, offset };
    }
    if value == Value::Const(0) {
        return RegArg::Null;
    }
    // A structure the function filled in its frame or in its caller's memory (a helper that
    // fills the structure it was given and registers it), or a constant one in the image.
    let Some(place) = Place::of(value) else {
        return RegArg::Unknown;
    };
    let mut read: Vec<(u16, Value)> = fields
        .iter()
        .map(|f| (f.offset, place.word(image, mem, f.offset)))
        .collect();
    if let Some(at) = structure.and_then(|s| s.interface) {
        read.extend(interface_routines(image, mem, place.word(image, mem, at)));
    }
    RegArg::Read {
        #[allow(clippy::cast_possible_truncation)]
        size: place.bytes(image, mem, 0, 4).map(|s| s as u32),
        fields: read,
        level: matches!(arg, kmdf::Arg::Attributes(_))
            .then(|| place.bytes(image, mem, kmdf::EXECUTION_LEVEL_OFFSET, 4))
            .flatten(),
        flag: structure
            .and_then(|s| s.passive_flag)
            .and_then(|at| place.bytes(image, mem, at, 1)),
    }
}

/// The routines of the interface `pointer` points to, as fields at
/// [`kmdf::INTERFACE_FIELDS`] plus their byte offset: every eight-byte slot from
/// `InterfaceReference` to the interface's `Size`. An interface whose size cannot be read
/// gives one unknown routine (reported unreadable).
fn interface_routines(image: &impl ImageBytes, mem: &Memory, pointer: Value) -> Vec<(u16, Value)> {
    let unknown = vec![(
        kmdf::INTERFACE_FIELDS + kmdf::INTERFACE_FIRST_ROUTINE,
        Value::Unknown,
    )];
    if pointer == Value::Const(0) {
        return Vec::new();
    }
    let Some(place) = Place::of(pointer) else {
        return unknown;
    };
    let Some(size) = place.bytes(image, mem, 0, 2) else {
        return unknown;
    };
    let end = u16::try_from(size)
        .unwrap_or(u16::MAX)
        .min(kmdf::INTERFACE_MAX_SIZE);
    (kmdf::INTERFACE_FIRST_ROUTINE..end)
        .step_by(8)
        .take_while(|k| k + 8 <= end)
        .map(|k| (kmdf::INTERFACE_FIELDS + k, place.word(image, mem, k)))
        .collect()
}

/// Whether the function wrote anything into what argument `index` points to (else a structure
/// passed through it is entirely the caller's, read where the caller is walked).
fn mem_holds(mem: &Memory, index: u8) -> bool {
    mem.written()
        .iter()
        .any(|&(s, _)| super::memory::region(s) == Some(index))
}
