//! The fixed-point engine: a forward dataflow over one function's basic blocks.
//!
//! The blocks come from the decoded instructions: a block starts at the function's entry, at
//! every address a branch, jump table or in-function call targets (the joins), and after every
//! instruction that does not simply continue (a jump, a return, a trap). The engine keeps the
//! state each block is entered with, the meet of what its predecessors bring, and works
//! through a worklist in address order until no state changes: then every state is what all
//! paths to its block agree on. A last pass steps every block once more from its settled
//! state with findings recorded.
//!
//! Work is bounded per function ([`Limits`]): instructions stepped while iterating, bytes of
//! join states held, and blocks. A function over a budget is still walked once, with what
//! is known forgotten at every join as in the linear pass, so everything it does is still
//! seen; what that cannot read is reported with the budget's name ([`Budget`]).

use std::collections::BTreeSet;

use iced_x86::{FlowControl, Instruction};

use crate::callgraph::CallGraph;
use crate::view::View;

use super::state::{Guard, Machine};
use super::summary::{Budget, FlowOut};
use super::transfer::{Control, Effects, Transfer};
use super::value::Sets;

/// The budgets of one function's fixed point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Instructions stepped while iterating, per instruction of the function.
    pub steps_per_instruction: u64,
    /// And never more than this.
    pub max_steps: u64,
    /// Bytes of join states held at once.
    pub max_state_bytes: usize,
    /// Basic blocks.
    pub max_blocks: usize,
}

impl Limits {
    /// The budgets `cargo pagecheck` uses: generous for real functions (the corpus's largest
    /// settle in a few passes), small enough that a pathological one costs well under a
    /// second and tens of megabytes.
    pub const DEFAULT: Limits = Limits {
        steps_per_instruction: 48,
        max_steps: 4_000_000,
        max_state_bytes: 64 << 20,
        max_blocks: 50_000,
    };
}

/// How a solve ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Solved {
    /// Every block was stepped with findings recorded.
    Done,
    /// A jump table led to an address inside a block: the caller adds it to the joins
    /// (it is in [`Transfer::table_targets`]) and solves again.
    NewJoins,
}

/// The function's basic blocks: instruction index ranges.
struct Blocks {
    /// First instruction of each block, ascending; one past the last instruction at the end.
    starts: Vec<usize>,
    /// RVA of each block's first instruction.
    rvas: Vec<u32>,
    /// Whether the code shows a way into each block: the function's entry, a branch, jump
    /// table or call target, or the fall-through of the instruction before it. A block the
    /// fixed point never reached although it has one is dead (its only ways in are branches
    /// the analysis proved never taken); one without any is entered some way the image does
    /// not show (an exception handler, an unresolved jump).
    shown: Vec<bool>,
}

impl Blocks {
    fn build<V: View>(tr: &Transfer<'_, V>, code: &[Instruction], joins: &[u32]) -> Blocks {
        let mut starts = Vec::new();
        let mut rvas = Vec::new();
        let mut shown = Vec::new();
        let mut next_join = 0;
        let mut boundary = true;
        let mut falls_in = true;
        let mut expected = None;
        for (i, instr) in code.iter().enumerate() {
            let rva = tr.site(instr);
            let contiguous = expected.is_none_or(|e| e == rva);
            let mut joined = false;
            while let Some(&j) = joins.get(next_join)
                && j <= rva
            {
                joined |= j == rva;
                next_join += 1;
            }
            if boundary || !contiguous || joined {
                starts.push(i);
                rvas.push(rva);
                shown.push(joined || (falls_in && contiguous));
            }
            #[allow(clippy::cast_possible_truncation)]
            {
                expected = Some(rva.wrapping_add(instr.len() as u32));
            }
            boundary = instr.is_invalid() || ends_block(instr);
            falls_in = instr.is_invalid() || falls_into_next(instr);
        }
        starts.push(code.len());
        Blocks {
            starts,
            rvas,
            shown,
        }
    }

    fn len(&self) -> usize {
        self.rvas.len()
    }

    fn range(&self, b: usize) -> std::ops::Range<usize> {
        self.starts[b]..self.starts[b + 1]
    }

    /// The block that starts at `rva`.
    fn at(&self, rva: u32) -> Option<usize> {
        self.rvas.binary_search(&rva).ok()
    }
}

/// Whether control may not simply continue after `instr`, so that the next instruction starts
/// a block.
fn ends_block(instr: &Instruction) -> bool {
    matches!(
        instr.flow_control(),
        FlowControl::UnconditionalBranch
            | FlowControl::IndirectBranch
            | FlowControl::ConditionalBranch
            | FlowControl::Return
            | FlowControl::Interrupt
            | FlowControl::Exception
            | FlowControl::XbeginXabortXend
    )
}

/// Whether the instruction after `instr` can be reached by falling through it.
fn falls_into_next(instr: &Instruction) -> bool {
    !matches!(
        instr.flow_control(),
        FlowControl::UnconditionalBranch
            | FlowControl::IndirectBranch
            | FlowControl::Return
            | FlowControl::Exception
    ) && !matches!(
        instr.mnemonic(),
        iced_x86::Mnemonic::Int3 | iced_x86::Mnemonic::Hlt
    )
}

/// An estimate of the heap and inline bytes a state holds.
fn state_bytes(m: &Machine) -> usize {
    std::mem::size_of::<Machine>()
        + std::mem::size_of_val(m.mem.cells())
        + std::mem::size_of_val(m.mem.written())
}

/// Iterates the function `code` (its joins sorted in `joins`, the addresses in-function calls
/// enter at in `entries`) to a fixed point, then steps it once more recording into `graph`
/// and `out`. Unless `allow_restart`, a jump table entry that is not a join is not followed
/// rather than asking for another walk.
#[allow(clippy::too_many_arguments)]
pub fn solve<V: View>(
    tr: &mut Transfer<'_, V>,
    code: &[Instruction],
    joins: &[u32],
    entries: &[u32],
    limits: Limits,
    allow_restart: bool,
    graph: &mut CallGraph,
    out: &mut FlowOut,
) -> Solved {
    let blocks = Blocks::build(tr, code, joins);
    let states = if blocks.len() > limits.max_blocks {
        Err(Budget::Blocks(limits.max_blocks))
    } else {
        let joins = if allow_restart { joins } else { &[] };
        match iterate(tr, code, &blocks, joins, entries, limits, graph) {
            Ok(Some(states)) => Ok(states),
            Ok(None) => return Solved::NewJoins,
            Err(budget) => Err(budget),
        }
    };
    if let Err(budget) = states {
        out.budget = Some(budget);
    }
    record(tr, code, &blocks, states.ok().as_deref(), graph, out);
    Solved::Done
}

/// The settled entry state of every block (`None`: no known path reaches it), or `Ok(None)`
/// when a jump table needs new joins, or the budget that ran out.
fn iterate<V: View>(
    tr: &mut Transfer<'_, V>,
    code: &[Instruction],
    blocks: &Blocks,
    joins: &[u32],
    entries: &[u32],
    limits: Limits,
    graph: &mut CallGraph,
) -> Result<Option<Vec<Option<Machine>>>, Budget> {
    let mut states = States {
        entry: vec![None; blocks.len()],
        work: BTreeSet::new(),
        bytes: 0,
    };
    if blocks.len() > 0 {
        states.merge(0, Machine::entry(), tr.sets);
    }
    for &rva in entries {
        if let Some(b) = blocks.at(rva) {
            states.merge(b, Machine::unknown(), tr.sets);
        }
    }
    let instructions = u64::try_from(code.len()).unwrap_or(u64::MAX);
    let budget = instructions
        .saturating_mul(limits.steps_per_instruction)
        .clamp(1 << 12, limits.max_steps.max(1 << 12));
    let mut steps = 0u64;
    let mut fx = Effects {
        graph,
        out: None,
        record: false,
        reached: true,
        at_stake: false,
    };
    while let Some(b) = states.work.pop_first() {
        let Some(mut m) = states.entry[b].clone() else {
            continue;
        };
        let range = blocks.range(b);
        steps += range.len() as u64;
        if steps > budget {
            return Err(Budget::Steps(budget));
        }
        let mut control = Control::Next;
        let mut first_target = tr.table_targets.len();
        for instr in &code[range.clone()] {
            first_target = tr.table_targets.len();
            control = if instr.is_invalid() {
                Control::Stop
            } else {
                tr.step(&mut m, instr, &mut fx)
            };
        }
        let next = (range.end < code.len()).then(|| b + 1);
        let Some(successors) = successors(
            control,
            next,
            blocks,
            joins,
            &tr.table_targets[first_target..],
        ) else {
            return Ok(None);
        };
        let last = successors.len().saturating_sub(1);
        for (k, (s, guard)) in successors.into_iter().enumerate() {
            let mut incoming = if k == last {
                std::mem::replace(&mut m, Machine::unknown())
            } else {
                m.clone()
            };
            if let Some(guard) = guard {
                incoming.np = guard;
            }
            states.merge(s, incoming, tr.sets);
        }
        if states.bytes > limits.max_state_bytes {
            return Err(Budget::States(limits.max_state_bytes));
        }
    }
    Ok(Some(states.entry))
}

/// The blocks' entry states, the worklist, and the bytes the states hold.
struct States {
    entry: Vec<Option<Machine>>,
    work: BTreeSet<usize>,
    bytes: usize,
}

impl States {
    /// Meets `incoming` into block `b`'s entry state; queues the block when that changed.
    fn merge(&mut self, b: usize, incoming: Machine, sets: &mut Sets) {
        let merged = match self.entry[b].take() {
            Some(old) => {
                let merged = old.meet(&incoming, sets);
                if merged == old {
                    self.entry[b] = Some(old);
                    return;
                }
                self.bytes -= state_bytes(&old);
                merged
            }
            None => incoming,
        };
        self.bytes += state_bytes(&merged);
        self.entry[b] = Some(merged);
        self.work.insert(b);
    }
}

/// The blocks control may go to after a block ending in `control` (`next`: the block after
/// it), each with what the way there implies of `WdfDevStateIsNP`, or `None` when a jump
/// table leads to an address the joins do not have yet (the caller adds it and solves again;
/// on the last walk `joins` is empty and such entries are not followed).
fn successors(
    control: Control,
    next: Option<usize>,
    blocks: &Blocks,
    joins: &[u32],
    table_targets: &[u32],
) -> Option<Vec<(usize, Option<Guard>)>> {
    let mut out = Vec::with_capacity(2);
    match control {
        Control::Next => out.extend(next.map(|b| (b, None))),
        Control::Stop => {}
        // A branch into the middle of an instruction goes to bytes decoded another way,
        // which this walk does not have: nothing to follow.
        Control::Goto(target) => out.extend(blocks.at(target).map(|b| (b, None))),
        Control::Branch {
            target,
            taken,
            fall,
            guards,
        } => {
            if taken {
                out.extend(blocks.at(target).map(|b| (b, guards.map(|g| g.0))));
            }
            if fall {
                out.extend(next.map(|b| (b, guards.map(|g| g.1))));
            }
        }
        Control::Table => {
            for &t in table_targets {
                match blocks.at(t) {
                    Some(s) => out.push((s, None)),
                    None if !joins.is_empty() && joins.binary_search(&t).is_err() => return None,
                    None => {}
                }
            }
        }
    }
    Some(out)
}

/// Steps every block once with findings recorded: from its settled state, or, without
/// settled states (a budget ran out), from what the block before it leaves when it falls
/// through, kept only as the linear pass keeps it across a join.
fn record<V: View>(
    tr: &mut Transfer<'_, V>,
    code: &[Instruction],
    blocks: &Blocks,
    states: Option<&[Option<Machine>]>,
    graph: &mut CallGraph,
    out: &mut FlowOut,
) {
    let mut fx = Effects {
        graph,
        out: Some(out),
        record: true,
        reached: true,
        at_stake: false,
    };
    let mut carried: Option<Machine> = None;
    for b in 0..blocks.len() {
        let mut m = match states {
            // Dead code: reached only through branches proven never taken (the bindings'
            // missing-table-entry paths). What it would do is not what the driver does.
            Some(states) if states[b].is_none() && blocks.shown[b] && b > 0 => continue,
            Some(states) => {
                fx.reached = states[b].is_some();
                states[b].clone().unwrap_or_else(Machine::unknown)
            }
            None if b == 0 => Machine::entry(),
            None => carried.take().map_or_else(Machine::unknown, |mut m| {
                m.forget_at_join();
                m
            }),
        };
        let mut control = Control::Next;
        for instr in &code[blocks.range(b)] {
            control = if instr.is_invalid() {
                m.reset();
                Control::Next
            } else {
                tr.step(&mut m, instr, &mut fx)
            };
        }
        if control.falls_through() {
            carried = Some(m);
        }
    }
}
