//! One linear pass of a real x64 decoder (iced-x86) over every function, producing the
//! call graph ([`CallGraph`]): direct calls and jumps (tail calls included), resolved jump
//! tables, calls through the import address table, KMDF framework calls, addresses of code
//! taken with `lea`, references to pageable data, and indirect calls that stay unresolved.
//!
//! Each function is decoded once (again when a jump table lies inside it), with one `Decoder`
//! per code section, into an instruction buffer reused across functions: no allocation per
//! instruction or per function, only per item found. The buffer is scanned for the function's
//! joins (targets of its own branches) before it is walked.
//!
//! The linear pass steps the instructions in order with the transfer function of
//! [`crate::dataflow::transfer`], forgetting what it knows at every join and after every
//! instruction that does not fall through, which costs next to nothing. It also notes which
//! functions are *at stake*: they call the framework, take or release a spin lock, change the
//! IRQL or make an indirect call it cannot resolve. Only those (and the helpers they need) are
//! walked again by [`crate::flow`] with the fixed-point engine ([`crate::dataflow::engine`]),
//! through the same [`decode_range`].

use std::collections::HashMap;

use iced_x86::{Decoder, DecoderOptions, Instruction, OpKind};

use crate::callgraph::CallGraph;
use crate::dataflow::engine::{self, Limits, Solved};
use crate::dataflow::state::Machine;
use crate::dataflow::transfer::{Effects, Transfer};
use crate::dataflow::{FlowOut, Sets, Summary};
use crate::view::{Context, View};

/// Decodes every function once and builds the call graph (the linear pass), on as many
/// threads as the machine has (up to eight) for images large enough to be worth it: each
/// decodes a contiguous run of functions, and the runs' graphs are joined in order.
#[must_use]
pub fn build(ctx: &Context<'_>) -> CallGraph {
    /// Functions per thread below which one thread is faster than several.
    const PER_THREAD: usize = 4096;
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(8)
        .min(ctx.functions().len() / PER_THREAD);
    build_on(ctx, threads)
}

/// [`build`] on `threads` threads (at least one, at most one per function).
#[must_use]
pub fn build_on(ctx: &Context<'_>, threads: usize) -> CallGraph {
    let n = ctx.functions().len();
    let threads = threads.min(n).max(1);
    if threads == 1 {
        return build_range(ctx, 0..n);
    }
    let chunk = n.div_ceil(threads);
    let parts: Vec<CallGraph> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| scope.spawn(move || build_range(ctx, t * chunk..((t + 1) * chunk).min(n))))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut parts = parts.into_iter();
    let mut graph = parts.next().unwrap_or_default();
    for part in parts {
        graph.append(part);
    }
    graph
}

/// The linear pass over the functions `range` of the table: their call graph (function `i`
/// of the range is the graph's function `i - range.start`).
fn build_range(ctx: &Context<'_>, range: std::ops::Range<usize>) -> CallGraph {
    let image = ctx.image();
    let functions = &ctx.functions().list[range];
    let mut graph = CallGraph::with_capacity(functions.len());
    let mut scratch = Scratch::default();
    let mut current_section = usize::MAX;
    let mut decoder: Option<Decoder<'_>> = None;
    let mut section_rva = 0u32;
    let mut section_len = 0usize;
    for function in functions {
        graph.close_function();
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
            graph.at_stake.push(false);
            continue;
        };
        let start = (function.start - section_rva) as usize;
        let end = ((function.end - section_rva) as usize).min(section_len);
        if start >= end || decoder.set_position(start).is_err() {
            graph.at_stake.push(false);
            continue;
        }
        decoder.set_ip(image.image_base.wrapping_add(u64::from(function.start)));
        let at_stake = decode_range(
            ctx,
            decoder,
            &mut scratch,
            end,
            (function.start, function.end),
            &mut graph,
            None,
        );
        graph.at_stake.push(at_stake);
        graph.code_bytes += (end - start) as u64;
    }
    graph.close_function();
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
    /// Sorted RVAs inside the function that its own `call`s enter at.
    entries: Vec<u32>,
    /// Jump tables inside the function found by an earlier walk: skipped when decoding.
    tables: Vec<(u32, u32)>,
    /// In-function targets of resolved jump tables: joins a rel-branch scan cannot see.
    table_targets: Vec<u32>,
}

/// Walks over one function before giving up on its jump tables: each walk can only add joins
/// and tables, so this bound is never reached by real code.
const MAX_WALKS: usize = 8;

/// What the dataflow mode needs: the summaries of the functions called, the budgets, and
/// where the walk's findings go.
pub struct FlowArgs<'a> {
    /// Callee summaries, by function start.
    pub summaries: &'a HashMap<u32, Summary>,
    /// The budgets.
    pub limits: Limits,
    /// The analysis' address sets.
    pub sets: &'a mut Sets,
    /// Out: what the walk found.
    pub out: &'a mut FlowOut,
}

/// Decodes one function: from the decoder's position up to byte `end` of its buffer, the
/// function spanning RVAs `span.0..span.1`. Its items are appended to `graph`; `flow` selects
/// the dataflow mode. Returns whether the function is at stake (linear mode).
///
/// A resolved jump table can reveal joins (its entries) and data to skip (a table inside the
/// function): then the function is walked again with them, after dropping what the previous
/// walk appended.
pub fn decode_range<V: View>(
    view: &V,
    decoder: &mut Decoder<'_>,
    scratch: &mut Scratch,
    end: usize,
    span: (u32, u32),
    graph: &mut CallGraph,
    flow: Option<FlowArgs<'_>>,
) -> bool {
    let (start, stop) = span;
    let position = decoder.position();
    let ip = decoder.ip();
    let marks = graph.marks();
    let instructions_before = graph.instructions;
    scratch.tables.clear();
    scratch.table_targets.clear();
    // The linear pass never meets two states, so it makes no sets.
    let mut unused = Sets::default();
    let (summaries, limits, mut out, sets) = match flow {
        Some(FlowArgs {
            summaries,
            limits,
            out,
            sets,
        }) => (Some(summaries), limits, Some(out), sets),
        None => (None, Limits::DEFAULT, None, &mut unused),
    };
    let mut tr = Transfer::new(view, start, stop, summaries, sets);
    let mut decode = true;
    let mut at_stake = false;
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
        graph.truncate(marks);
        graph.instructions = instructions_before + scratch.instructions.len() as u64;
        tr.table_targets.clear();
        let last = walk == MAX_WALKS;
        match out.as_deref_mut() {
            Some(out) => {
                *out = FlowOut::default();
                let solved = engine::solve(
                    &mut tr,
                    &scratch.instructions,
                    &scratch.joins,
                    &scratch.entries,
                    limits,
                    !last,
                    graph,
                    out,
                );
                if solved == Solved::NewJoins {
                    learn_joins(&tr, scratch);
                    decode = false;
                    continue;
                }
                out.finish();
            }
            None => at_stake = walk_linear(&mut tr, scratch, graph),
        }
        let new_joins = learn_joins(&tr, scratch);
        let new_tables = learn_tables(&tr, scratch);
        if !new_joins && !new_tables {
            break;
        }
        decode = new_tables;
    }
    at_stake
}

/// Moves the in-function targets of the tables resolved in the last walk into the joins;
/// true when there were new ones.
fn learn_joins<V: View>(tr: &Transfer<'_, V>, scratch: &mut Scratch) -> bool {
    let mut new = false;
    for &target in &tr.table_targets {
        if scratch.joins.binary_search(&target).is_err() {
            scratch.table_targets.push(target);
            scratch.joins.push(target);
            scratch.joins.sort_unstable();
            new = true;
        }
    }
    new
}

/// Moves the tables found inside the function into the ranges to skip; true when there were
/// new ones (decode again).
fn learn_tables<V: View>(tr: &Transfer<'_, V>, scratch: &mut Scratch) -> bool {
    let mut new = false;
    for &table in &tr.tables {
        if !scratch.tables.contains(&table) {
            scratch.tables.push(table);
            new = true;
        }
    }
    new
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
    scratch.entries.clear();
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
            if instr.mnemonic() == iced_x86::Mnemonic::Call {
                scratch.entries.push(target);
            }
        }
    }
    scratch.joins.extend_from_slice(&scratch.table_targets);
    scratch.joins.sort_unstable();
    scratch.joins.dedup();
    scratch.entries.sort_unstable();
    scratch.entries.dedup();
}

/// One walk over the decoded function in linear mode: what is known ends at each join and
/// after each instruction that does not fall through. Returns whether the function is at
/// stake.
fn walk_linear<V: View>(
    tr: &mut Transfer<'_, V>,
    scratch: &Scratch,
    graph: &mut CallGraph,
) -> bool {
    let mut fx = Effects {
        graph,
        out: None,
        record: true,
        reached: true,
        at_stake: false,
    };
    let mut m = Machine::unknown();
    let mut next_join = 0;
    let mut expected = None;
    for instr in &scratch.instructions {
        let site = tr.site(instr);
        // A skipped table, or a branch target inside an earlier instruction (the bytes are
        // decoded two ways), ends what the tracker knows.
        let mut reset = expected.is_some_and(|e| e != site);
        let mut join = false;
        #[allow(clippy::cast_possible_truncation)]
        {
            expected = Some(site.wrapping_add(instr.len() as u32));
        }
        while let Some(&t) = scratch.joins.get(next_join)
            && t <= site
        {
            reset |= t < site;
            join |= t == site;
            next_join += 1;
        }
        if reset {
            m.reset();
        } else if join {
            // A join keeps only the code addresses that fall through into it, as
            // possibilities: forgetting them would turn a real call of a paged function on
            // the fall-through path into a mere unresolved warning.
            m.weaken();
        }
        if instr.is_invalid() {
            // Data or padding inside the range: resynchronise on the next byte.
            m.reset();
            continue;
        }
        if !tr.step(&mut m, instr, &mut fx).falls_through() {
            m.reset();
        }
    }
    fx.at_stake
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::callgraph::{EdgeKind, External, Unresolved};
    use crate::dataflow::{ImageBytes, RegArg, Value};
    use crate::view::Special;

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
        /// Words at 0x5000 and above stand for relocated pointers to the RVA they hold.
        fn pointer_at(&self, rva: u32) -> Option<u32> {
            (rva >= 0x5000)
                .then(|| self.words.get(&rva).copied())
                .flatten()
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
        fn is_paged_data(&self, _rva: u32) -> bool {
            false
        }
        fn import_name(&self, slot: u32) -> Option<&str> {
            (slot == self.import_slot).then_some("ntoskrnl.exe!KeQueryPerformanceCounter")
        }
    }

    /// rel32 from the end of an instruction (`next`) to `target`.
    fn rel(target: u32, next: u32) -> [u8; 4] {
        target.wrapping_sub(next).to_le_bytes()
    }

    /// Decodes `code` at 0x1000, in dataflow mode when `out` is given.
    fn decode_with(view: &Fake, code: &[u8], out: Option<&mut FlowOut>) -> CallGraph {
        decode_into(view, code, out, &mut Sets::default())
    }

    /// [`decode_with`], with the address sets the values refer to kept in `sets`.
    fn decode_into(
        view: &Fake,
        code: &[u8],
        out: Option<&mut FlowOut>,
        sets: &mut Sets,
    ) -> CallGraph {
        let mut graph = CallGraph::default();
        graph.close_function();
        let mut decoder = Decoder::with_ip(64, code, BASE + 0x1000, DecoderOptions::NONE);
        let mut scratch = Scratch::default();
        let stop = 0x1000 + u32::try_from(code.len()).expect("small");
        let summaries = HashMap::new();
        decode_range(
            view,
            &mut decoder,
            &mut scratch,
            code.len(),
            (0x1000, stop),
            &mut graph,
            out.map(|out| FlowArgs {
                summaries: &summaries,
                limits: Limits::DEFAULT,
                out,
                sets,
            }),
        );
        graph.close_function();
        graph
    }

    fn decode(view: &Fake, code: &[u8]) -> CallGraph {
        decode_with(view, code, None)
    }

    /// [`decode_flow`], with the address sets the values refer to.
    fn decode_flow_sets(view: &Fake, code: &[u8]) -> (CallGraph, FlowOut, Sets) {
        let mut out = FlowOut::default();
        let mut sets = Sets::default();
        let graph = decode_into(view, code, Some(&mut out), &mut sets);
        (graph, out, sets)
    }

    /// Decodes `code` at 0x1000 in dataflow mode; returns the graph and what the walk found.
    fn decode_flow(view: &Fake, code: &[u8]) -> (CallGraph, FlowOut) {
        let mut out = FlowOut::default();
        let graph = decode_with(view, code, Some(&mut out));
        (graph, out)
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
    fn calls_where_the_device_is_not_nonpageable_are_known() {
        //   mov rax,[rip+WdfFunctions]; call [rax+0x160]   (WdfDeviceGetDevicePowerState)
        //   test eax,0x8000; jne .np
        //   call [rip+IAT]          ; only where WdfDevStateIsNP is FALSE
        //   .np: call [rip+IAT]     ; on both paths
        //   ret
        let mut code = vec![0x48, 0x8b, 0x05];
        code.extend(rel(0x2000, 0x1007));
        code.extend([0xff, 0x90, 0x60, 0x01, 0x00, 0x00]);
        code.extend([0xa9, 0x00, 0x80, 0x00, 0x00, 0x75, 0x06]);
        code.extend([0xff, 0x15]);
        code.extend(rel(0x4000, 0x101a));
        code.extend([0xff, 0x15]);
        code.extend(rel(0x4000, 0x1020));
        code.push(0xc3);
        let (graph, out) = decode_flow(&fake(&[]), &code);
        assert_eq!(graph.externals_of(0).len(), 3);
        assert_eq!(out.not_np, [0x1014]);
        // The same code with the jump reversed (je): the first call is on the NP path.
        code[0x12] = 0x74;
        let (_, out) = decode_flow(&fake(&[]), &code);
        assert!(out.not_np.is_empty(), "{:x?}", out.not_np);
    }

    #[test]
    fn a_callback_picked_from_a_table_of_pointers_is_one_of_its_entries() {
        // cmp ecx,2; ja .out; movsxd rax,ecx; lea rdx,[rip+0x5000]; mov r8,[rdx+rax*8]
        // mov rax,[rip+WdfFunctions]; call [rax+0x478] (WdfInterruptSynchronize); .out: ret
        let mut code = vec![
            0x83, 0xf9, 0x02, 0x77, 0x1b, 0x48, 0x63, 0xc1, 0x48, 0x8d, 0x15,
        ];
        code.extend(rel(0x5000, 0x100f));
        code.extend([0x4c, 0x8b, 0x04, 0xc2, 0x48, 0x8b, 0x05]);
        code.extend(rel(0x2000, 0x101a));
        code.extend([0xff, 0x90, 0x78, 0x04, 0x00, 0x00, 0xc3]);
        let table = [
            (0x5000, 0x1800),
            (0x5008, 0x1900),
            (0x5010, 0x1a00),
            (0x5018, 0x1b00),
        ];
        let (_, out) = decode_flow(&fake(&table), &code);
        assert_eq!(out.calls.len(), 1);
        let RegArg::Callback(Value::AnyOf { exact, .. }) = out.calls[0].args[0].1 else {
            panic!("{:?}", out.calls[0].args);
        };
        // `cmp ecx, 2` bounds the index: exactly one of the first three entries.
        assert!(exact);
        let (_, out, sets) = decode_flow_sets(&fake(&table), &code);
        let RegArg::Callback(value) = out.calls[0].args[0].1 else {
            unreachable!()
        };
        assert_eq!(value.possible_addresses(&sets), [0x1800, 0x1900, 0x1a00]);
        // `and ecx, 1` (with a nop to keep the length) bounds it too: one of the first two.
        code[..5].copy_from_slice(&[0x83, 0xe1, 0x01, 0x90, 0x90]);
        let (_, out, sets) = decode_flow_sets(&fake(&table), &code);
        let RegArg::Callback(value) = out.calls[0].args[0].1 else {
            panic!("{:?}", out.calls[0].args);
        };
        assert!(matches!(value, Value::AnyOf { exact: true, .. }));
        assert_eq!(value.possible_addresses(&sets), [0x1800, 0x1900]);
    }

    #[test]
    fn gpr_maps_every_width_to_one_slot() {
        use crate::dataflow::state::gpr;
        use iced_x86::Register;
        assert_eq!(gpr(Register::RCX), Some(1));
        assert_eq!(gpr(Register::ECX), Some(1));
        assert_eq!(gpr(Register::CX), Some(1));
        assert_eq!(gpr(Register::CL), Some(1));
        assert_eq!(gpr(Register::R9D), Some(9));
        assert_eq!(gpr(Register::R9L), Some(9));
        assert_eq!(gpr(Register::SIL), Some(6));
        assert_eq!(gpr(Register::XMM0), None);
        // Every register iced knows, against the layout of its enum: the four widths of the
        // sixteen registers and the high bytes map to their register, nothing else maps.
        let range = |lo: Register, hi: Register, r: Register| {
            (lo as usize..=hi as usize)
                .contains(&(r as usize))
                .then(|| r as usize - lo as usize)
        };
        for r in Register::values() {
            let expected = range(Register::RAX, Register::R15, r)
                .or_else(|| range(Register::EAX, Register::R15D, r))
                .or_else(|| range(Register::AX, Register::R15W, r))
                .or_else(|| range(Register::R8L, Register::R15L, r).map(|i| i + 8))
                .or_else(|| range(Register::SPL, Register::DIL, r).map(|i| i + 4))
                .or_else(|| range(Register::AL, Register::BL, r))
                .or_else(|| range(Register::AH, Register::BH, r));
            assert_eq!(gpr(r), expected, "{r:?}");
        }
    }
}
