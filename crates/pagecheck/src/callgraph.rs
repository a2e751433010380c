//! The call graph the decoder builds: per function, its direct edges (calls, jumps, jump-table
//! entries, taken addresses), its calls out of the image (imports and KMDF framework methods),
//! the indirect transfers it could not resolve, and its references to data in pageable or
//! discardable sections. Stored flat, one vector per kind with offsets per function, so that a
//! 40,000-function image costs a few allocations, not one per function.

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

/// How an instruction uses data it names by address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataAccess {
    /// The instruction reads it.
    Read,
    /// The instruction writes it (or reads and writes it).
    Write,
    /// `lea`: the address is taken (and may be read or written through later).
    Address,
}

/// A reference to data in a pageable (`PAGE*`) or discardable (`INIT`) section: the only data
/// whose residency can be wrong, so the only data references kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataRef {
    /// RVA of the instruction.
    pub site: u32,
    /// RVA of the data.
    pub target: u32,
    /// How.
    pub access: DataAccess,
}

/// The call graph, stored flat: the items of function `i` are
/// `items[offsets[i]..offsets[i + 1]]` for each kind.
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
    /// References to pageable or discardable data.
    pub data_refs: Vec<DataRef>,
    data_ref_offsets: Vec<u32>,
    /// Instructions decoded.
    pub instructions: u64,
    /// Bytes decoded.
    pub code_bytes: u64,
    /// Per function: whether the linear pass saw something the dataflow pass must look at.
    pub(crate) at_stake: Vec<bool>,
}

impl CallGraph {
    /// An empty graph with room for `n` functions.
    #[must_use]
    pub(crate) fn with_capacity(n: usize) -> CallGraph {
        CallGraph {
            edge_offsets: Vec::with_capacity(n + 1),
            external_offsets: Vec::with_capacity(n + 1),
            unresolved_offsets: Vec::with_capacity(n + 1),
            data_ref_offsets: Vec::with_capacity(n + 1),
            at_stake: Vec::with_capacity(n),
            ..CallGraph::default()
        }
    }

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

    /// References of function `f` to pageable or discardable data.
    #[must_use]
    pub fn data_refs_of(&self, f: usize) -> &[DataRef] {
        &self.data_refs[self.data_ref_offsets[f] as usize..self.data_ref_offsets[f + 1] as usize]
    }

    /// Number of functions the graph has items for.
    #[must_use]
    pub fn function_count(&self) -> usize {
        self.edge_offsets.len().saturating_sub(1)
    }

    /// Closes the current function's item lists (call after its items are pushed, and once
    /// before the first function).
    pub fn close_function(&mut self) {
        // The flat vectors hold at most a few items per instruction of a <4 GiB image.
        #[allow(clippy::cast_possible_truncation)]
        {
            self.edge_offsets.push(self.edges.len() as u32);
            self.external_offsets.push(self.externals.len() as u32);
            self.unresolved_offsets.push(self.unresolved.len() as u32);
            self.data_ref_offsets.push(self.data_refs.len() as u32);
        }
    }

    /// Lengths of the item vectors, to roll a function's items back with [`Self::truncate`].
    pub(crate) fn marks(&self) -> [usize; 4] {
        [
            self.edges.len(),
            self.externals.len(),
            self.unresolved.len(),
            self.data_refs.len(),
        ]
    }

    /// Drops every item pushed since `marks`.
    pub(crate) fn truncate(&mut self, marks: [usize; 4]) {
        self.edges.truncate(marks[0]);
        self.externals.truncate(marks[1]);
        self.unresolved.truncate(marks[2]);
        self.data_refs.truncate(marks[3]);
    }

    /// Rebuilds the graph with the items of some functions replaced (by the dataflow pass);
    /// each replacement holds one function's items.
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
            data_refs: Vec::with_capacity(self.data_refs.len()),
            instructions: self.instructions,
            code_bytes: self.code_bytes,
            at_stake: self.at_stake.clone(),
            ..CallGraph::with_capacity(n)
        };
        for f in 0..n {
            out.close_function();
            let g = replaced.get(&f);
            let (source, index) = match g {
                Some(g) => (g, 0),
                None => (&self, f),
            };
            out.edges.extend_from_slice(source.edges_of(index));
            out.externals.extend_from_slice(source.externals_of(index));
            out.unresolved
                .extend_from_slice(source.unresolved_of(index));
            out.data_refs.extend_from_slice(source.data_refs_of(index));
        }
        out.close_function();
        out
    }
}
