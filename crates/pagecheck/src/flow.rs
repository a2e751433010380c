//! The dataflow pass across functions: which functions the fixed-point engine walks, and in
//! which order.
//!
//! Only functions where something is at stake are walked: those the linear pass flagged (they
//! call the framework, take or release a spin lock, change the IRQL, or make an indirect call
//! it could not resolve), the helpers they hand a pointer into their memory (whose summaries
//! say what they leave there), and the callers of helpers that take a lock, release one or
//! register a structure they were given. A function that only reads globals or calls other
//! functions is decoded once, by the linear pass.
//!
//! Registrations often pass through helpers: a function that fills a configuration structure
//! its caller passed in (`WDF_IO_QUEUE_CONFIG_INIT` when the compiler did not inline it, a Rust
//! function returning a structure by value), or one that hands its caller's structure to the
//! framework. Each walk leaves a [`Summary`] of such behaviour, and callers are walked (again)
//! once the summaries of their callees are known, until nothing changes or [`MAX_ROUNDS`]
//! rounds have run.

use std::collections::{BTreeSet, HashMap};

use iced_x86::{Decoder, DecoderOptions};

use crate::callgraph::{CallGraph, EdgeKind};
use crate::dataflow::{Budget, FlowOut, Held, Limits, RegCall, Sets, Summary, Value};
use crate::decode::{self, FlowArgs, Scratch};
use crate::view::Context;

/// Rounds of re-walking callers before giving up on deeper helper chains; real drivers
/// settle in two or three.
const MAX_ROUNDS: usize = 16;

/// The refined call graph and the registrations found.
#[derive(Debug, Default)]
pub struct Flow {
    /// Registration calls, in function order.
    pub calls: Vec<RegCall>,
    /// `MmLockPagable*Section` calls: `(site, the address passed)`.
    pub locks: Vec<(u32, Value)>,
    /// Code addresses passed to framework methods in positions the model does not read.
    pub unmodelled: Vec<(u32, &'static str, u32)>,
    /// Calls and jumps made while a spin lock is held, by function.
    pub held: Vec<(usize, Held)>,
    /// Functions walked in dataflow mode (for the report's counts).
    pub walked: usize,
    /// True when helper summaries were still changing after [`MAX_ROUNDS`].
    pub unsettled: bool,
    /// Functions whose walk ran out of a budget, with the budget.
    pub over_budget: Vec<(usize, Budget)>,
    /// The address sets the values found refer to.
    pub sets: Sets,
    /// Sites of calls made only where `WdfDevStateIsNP` returned FALSE, sorted.
    pub not_np: Vec<u32>,
    /// `(site, argument position, value when constant)` at each call of a routine whose
    /// contract depends on one argument, sorted by site.
    pub arguments: Vec<(u32, u8, Option<u64>)>,
}

/// Runs the dataflow pass over `graph` (the linear pass's result) and returns the refined
/// graph with what it found.
#[must_use]
pub fn refine(ctx: &Context<'_>, graph: CallGraph) -> (CallGraph, Flow) {
    refine_with(ctx, graph, Limits::DEFAULT)
}

/// [`refine`] with the given budgets.
#[must_use]
pub fn refine_with(ctx: &Context<'_>, graph: CallGraph, limits: Limits) -> (CallGraph, Flow) {
    let functions = ctx.functions();
    let n = functions.len();
    if !graph.at_stake.iter().any(|&w| w) {
        return (graph, Flow::default());
    }
    // Who calls (or tail-jumps to) each function start.
    let mut callers: HashMap<u32, Vec<usize>> = HashMap::new();
    for f in 0..n {
        for e in graph.edges_of(f) {
            if matches!(e.kind, EdgeKind::Call | EdgeKind::Jump) {
                callers.entry(e.target).or_default().push(f);
            }
        }
    }
    let mut summaries: HashMap<u32, Summary> = HashMap::new();
    let mut results: HashMap<usize, (CallGraph, FlowOut)> = HashMap::new();
    let mut todo: BTreeSet<usize> = (0..n).filter(|&f| graph.at_stake[f]).collect();
    let mut scratch = Scratch::default();
    let mut flow = Flow::default();
    for _ in 0..MAX_ROUNDS {
        if todo.is_empty() {
            break;
        }
        let mut next: BTreeSet<usize> = BTreeSet::new();
        for &f in &todo {
            let Some((items, mut out)) =
                walk(ctx, f, &summaries, limits, &mut scratch, &mut flow.sets)
            else {
                continue;
            };
            for &target in &out.wanted {
                if let Some(callee) = functions.containing(target)
                    && functions.list[callee].start == target
                    && !results.contains_key(&callee)
                    && !todo.contains(&callee)
                {
                    next.insert(callee);
                }
            }
            let start = functions.list[f].start;
            if summaries.get(&start).unwrap_or(&Summary::default()) != &out.summary {
                let summary = std::mem::take(&mut out.summary);
                // Callers must be walked for what they cannot do without: a lock taken or
                // released, a structure registered for them. Stores alone matter only to
                // callers walked anyway.
                let compelling = !summary.forwards.is_empty()
                    || summary.acquires.is_some()
                    || summary.releases
                    || summaries
                        .get(&start)
                        .is_some_and(|old| !old.forwards.is_empty() || old.acquires.is_some());
                for &caller in callers.get(&start).map_or(&[][..], Vec::as_slice) {
                    if compelling || results.contains_key(&caller) || caller == f {
                        next.insert(caller);
                    }
                }
                if summary.is_empty() {
                    summaries.remove(&start);
                } else {
                    summaries.insert(start, summary);
                }
            }
            results.insert(f, (items, out));
        }
        todo = next;
    }
    flow.unsettled = !todo.is_empty();
    // A helper that hands its caller's structure to the framework, with no direct caller to
    // resolve it (called through a pointer): its registrations stay open, and are reported as
    // unreadable rather than dropped.
    let mut orphans: Vec<(u32, RegCall)> = summaries
        .iter()
        .filter(|(start, _)| callers.get(start).is_none_or(Vec::is_empty))
        .flat_map(|(&start, summary)| summary.forwards.iter().map(move |c| (start, c.clone())))
        .collect();
    orphans.sort_by_key(|(start, c)| (*start, c.site));
    flow.walked = results.len();
    let mut ordered: Vec<usize> = results.keys().copied().collect();
    ordered.sort_unstable();
    let mut replaced: HashMap<usize, CallGraph> = HashMap::with_capacity(results.len());
    for f in ordered {
        if let Some((items, out)) = results.remove(&f) {
            flow.calls.extend(out.calls);
            flow.locks.extend(out.locks);
            flow.unmodelled.extend(out.unmodelled);
            flow.held.extend(out.held.into_iter().map(|h| (f, h)));
            flow.not_np.extend(out.not_np);
            flow.arguments.extend(out.arguments);
            if let Some(budget) = out.budget {
                flow.over_budget.push((f, budget));
            }
            replaced.insert(f, items);
        }
    }
    flow.calls.extend(orphans.into_iter().map(|(_, c)| c));
    flow.not_np.sort_unstable();
    flow.not_np.dedup();
    flow.arguments.sort_unstable();
    flow.arguments.dedup();
    (graph.with_replaced(&replaced), flow)
}

/// Walks function `f` in dataflow mode with the helper summaries known so far; `None` when its
/// bytes cannot be decoded from where the table says it starts.
fn walk(
    ctx: &Context<'_>,
    f: usize,
    summaries: &HashMap<u32, Summary>,
    limits: Limits,
    scratch: &mut Scratch,
    sets: &mut Sets,
) -> Option<(CallGraph, FlowOut)> {
    let image = ctx.image();
    let function = &ctx.functions().list[f];
    let section = &image.sections[function.section];
    let data = image.section_data(function.section);
    let start = (function.start - section.rva) as usize;
    let end = ((function.end - section.rva) as usize).min(data.len());
    if start >= end {
        return None;
    }
    let mut decoder = Decoder::with_ip(
        64,
        data,
        image.image_base.wrapping_add(u64::from(section.rva)),
        DecoderOptions::NONE,
    );
    decoder.set_position(start).ok()?;
    decoder.set_ip(image.image_base.wrapping_add(u64::from(function.start)));
    let mut items = CallGraph::default();
    items.close_function();
    let mut out = FlowOut::default();
    decode::decode_range(
        ctx,
        &mut decoder,
        scratch,
        end,
        (function.start, function.end),
        &mut items,
        Some(FlowArgs {
            summaries,
            limits,
            out: &mut out,
            sets,
        }),
    );
    items.close_function();
    Some((items, out))
}
