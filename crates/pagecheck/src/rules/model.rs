//! The small program model the third-step rules read: functions with their calls, external
//! calls and data references, the entry points with the IRQL and path they run on, and the
//! sites the `WdfDevStateIsNP` guard protects. Plain data, so each rule is tested on
//! synthetic programs, and the model is filled from whatever the analysis knows
//! ([`super::wire`]).

use std::collections::{HashSet, VecDeque};

use routine_contracts::{Contract, Irql};

/// Where a function's code is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// A resident section.
    Resident,
    /// A `PAGE*` section the driver locks in memory.
    Locked,
    /// A `PAGE*` section.
    Pageable,
    /// `INIT`.
    Discardable,
}

/// A direct call or jump to another function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    /// RVA of the instruction.
    pub site: u32,
    /// The function called (index into [`Model::functions`]).
    pub target: usize,
}

/// A call that leaves the image: a kernel import or a framework method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct External {
    /// RVA of the instruction.
    pub site: u32,
    /// The routine: an import's name without its DLL, or the framework method's name.
    pub routine: String,
    /// The value of the argument its contract says decides it
    /// ([`routine_contracts::argument_of_interest`]), when the same on every path.
    pub argument: Option<u64>,
}

/// Where referenced data lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataPlace {
    /// A `PAGE*` section; `locked` when the driver locks it.
    Pageable {
        /// The driver locks the section with `MmLockPagable*Section`.
        locked: bool,
    },
    /// `INIT`, freed when `DriverEntry` returns.
    Init,
}

/// What an instruction does with the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataAccess {
    /// Reads it.
    Read,
    /// Writes it.
    Write,
    /// Takes its address.
    Address,
}

impl DataAccess {
    /// As messages say it.
    #[must_use]
    pub const fn verb(self) -> &'static str {
        match self {
            DataAccess::Read => "reads",
            DataAccess::Write => "writes",
            DataAccess::Address => "takes the address of",
        }
    }
}

/// A reference to data in a pageable or discardable section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataRef {
    /// RVA of the instruction.
    pub site: u32,
    /// RVA of the data.
    pub target: u32,
    /// Its section's kind.
    pub place: DataPlace,
    /// Read, write or address.
    pub access: DataAccess,
}

/// One function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Func {
    /// Where its code is.
    pub placement: Placement,
    /// Its direct calls and jumps to other functions.
    pub calls: Vec<Call>,
    /// Its calls out of the image.
    pub externals: Vec<External>,
    /// Its references to pageable and discardable data.
    pub data: Vec<DataRef>,
    /// How many calls and jumps it makes whose target the image does not tell.
    pub indirect: usize,
}

impl Func {
    /// A function with nothing in it yet.
    #[must_use]
    pub fn new(placement: Placement) -> Func {
        Func {
            placement,
            calls: Vec::new(),
            externals: Vec::new(),
            data: Vec::new(),
            indirect: 0,
        }
    }
}

/// When an entry point's code runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runs {
    /// At up to this IRQL, which is `DISPATCH_LEVEL` or above (queue, timer, DPC and interrupt
    /// callbacks, code holding a spin lock).
    Raised(Irql),
    /// The return to D0. `strict` when a pageable touch there is an error (the driver can be
    /// power-nonpageable, or the placement was declared resident), not a slow resume.
    PowerUp {
        /// A fault is an error, not only a slow resume.
        strict: bool,
    },
    /// Leaving D0.
    PowerDown,
    /// At `PASSIVE_LEVEL` after `DriverEntry` returned, off the power path.
    Passive,
    /// During `DriverEntry`.
    Init,
}

/// An entry point: a root of the analysis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The function (index into [`Model::functions`]).
    pub function: usize,
    /// When it runs.
    pub runs: Runs,
    /// For code that runs raised only while it holds a lock: the sites of the calls it makes
    /// while holding it. Only those are followed from this entry.
    pub region: Option<Vec<u32>>,
    /// Index of the root this entry stands for, for the caller's messages.
    pub root: usize,
    /// Only a placement attribute or `--root` says it runs on this path: the image does not
    /// register it. Such a function is usually a helper of a registered callback, and is then
    /// judged through that callback's calls (where a guard may cover it), not on its own.
    pub declared_only: bool,
    /// It runs at its caller's IRQL, so the routines it calls are held to the caller's
    /// (`EvtIoInCallerContext`: `PASSIVE_LEVEL` for an application's request, where the
    /// passive-only routines it exists to call are right).
    pub callers_irql: bool,
}

/// The program as the rules see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    /// Every function.
    pub functions: Vec<Func>,
    /// The entry points.
    pub entries: Vec<Entry>,
    /// The driver can make a device power-nonpageable.
    pub nonpageable: bool,
    /// Call and external-call sites that lie only on paths where a `WdfDevStateIsNP` test
    /// returned FALSE: what they reach runs only while the device is in a pageable state.
    pub guarded: HashSet<u32>,
}

/// A path from an entry: each function with the site in it that leads to the next one (the
/// last one's site is the offending instruction).
pub type Path = Vec<(usize, u32)>;

/// One function as a walk reached it: the whole function, or only the lock region of the entry
/// that starts there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reached {
    /// The function (index into [`Model::functions`]).
    pub function: usize,
    /// The entry the walk reached it from (index into [`Model::entries`]).
    pub entry: usize,
    /// The node in the walk's tree: the function's index, or past the functions for the start
    /// of a lock region.
    node: usize,
}

/// What a breadth-first walk from a list of entries found. The entries share one walk: a
/// function the walk reached from an earlier entry is not entered again from a later one,
/// so the walk is linear in the program however many entries there are. A rule that judges
/// every site once, from the first entry that reaches it, gets the same findings as from a
/// walk per entry; where the judgement depends on the entry, the rule walks each class of
/// entries on its own (or orders them, strongest first).
pub struct Walk {
    /// For each node, the node and site it was first reached from.
    parent: Vec<Option<(usize, u32)>>,
    /// The function of each node.
    function_of: Vec<usize>,
    /// Whether each function was reached as a whole.
    whole: Vec<bool>,
    /// Everything reached, in the order it was reached.
    pub order: Vec<Reached>,
}

impl Walk {
    /// The path from the entry that reached `at` to `site` in it.
    #[must_use]
    pub fn path_to(&self, at: Reached, site: u32) -> Path {
        let mut path = vec![(at.function, site)];
        let mut node = at.node;
        // The walk's tree is acyclic; the bound guards against a broken table.
        for _ in 0..self.parent.len() {
            let Some((caller, call_site)) = self.parent[node] else {
                break;
            };
            path.push((self.function_of[caller], call_site));
            node = caller;
        }
        path.reverse();
        path
    }

    /// Whether the walk reached `function` as a whole (not only a lock region in it).
    #[must_use]
    pub fn reached(&self, function: usize) -> bool {
        self.whole.get(function).copied().unwrap_or(false)
    }
}

/// How a walk crosses calls.
#[derive(Clone, Copy)]
pub struct Across<'a> {
    /// Whether a function is entered (its own sites are still looked at by the caller of the
    /// walk when it is reached).
    pub enter: &'a dyn Fn(&Func) -> bool,
    /// Do not cross call sites the `WdfDevStateIsNP` guard protects.
    pub respect_guard: bool,
}

impl Model {
    /// The power-up and power-down entries to judge: every registered one, and a declared-only
    /// one when no registered power entry calls it (a helper a registered callback calls is
    /// judged through that call, where a `WdfDevStateIsNP` test may cover it).
    #[must_use]
    pub fn power_entries(&self) -> Vec<usize> {
        let power = |e: &Entry| matches!(e.runs, Runs::PowerUp { .. } | Runs::PowerDown);
        let every = |_: &Func| true;
        let registered: Vec<usize> = (0..self.entries.len())
            .filter(|&i| power(&self.entries[i]) && !self.entries[i].declared_only)
            .collect();
        let covered = self.walk(
            &registered,
            Across {
                enter: &every,
                respect_guard: false,
            },
        );
        (0..self.entries.len())
            .filter(|&i| {
                let e = &self.entries[i];
                power(e) && !(e.declared_only && covered.reached(e.function))
            })
            .collect()
    }

    /// Whether some function references pageable or discardable data: without one, the data
    /// rules have nothing to judge and need not walk.
    #[must_use]
    pub fn references_data(&self) -> bool {
        self.functions.iter().any(|f| !f.data.is_empty())
    }

    /// Whether some function calls out of the image: without one, the rules on routines have
    /// nothing to judge and need not walk.
    #[must_use]
    pub fn calls_out(&self) -> bool {
        self.functions.iter().any(|f| !f.externals.is_empty())
    }

    /// Whether an external call or data reference at `site` of what the walk reached belongs
    /// to what its entry runs: the entry's lock region where only that was reached, and
    /// nothing the guard protects when `respect_guard`.
    #[must_use]
    pub fn counts(&self, at: Reached, site: u32, respect_guard: bool) -> bool {
        let in_region = at.node < self.functions.len()
            || self.entries[at.entry]
                .region
                .as_ref()
                .is_none_or(|r| r.contains(&site));
        in_region && !(respect_guard && self.guarded.contains(&site))
    }

    /// The calls out of the image that `walk` reached and that count for the entry that
    /// reached them ([`Model::counts`]), with the contract of each routine; routines without
    /// one are left out (the rules do not judge them).
    pub fn contracted_calls<'a>(
        &'a self,
        walk: &'a Walk,
        respect_guard: bool,
    ) -> impl Iterator<Item = (Reached, &'a External, &'static Contract)> + 'a {
        walk.order.iter().flat_map(move |&at| {
            self.functions[at.function]
                .externals
                .iter()
                .filter(move |call| self.counts(at, call.site, respect_guard))
                .filter_map(move |call| {
                    routine_contracts::lookup(&call.routine).map(|contract| (at, call, contract))
                })
        })
    }

    /// Breadth-first through direct calls and jumps from each of `entries` in turn, sharing
    /// what was reached (see [`Walk`]). An entry with a lock region follows, in its own
    /// function, only the calls made while the lock is held.
    #[must_use]
    pub fn walk(&self, entries: &[usize], across: Across<'_>) -> Walk {
        let n = self.functions.len();
        let mut walk = Walk {
            parent: vec![None; n],
            function_of: (0..n).collect(),
            whole: vec![false; n],
            order: Vec::new(),
        };
        let mut queue = VecDeque::new();
        for &index in entries {
            let Some(entry) = self.entries.get(index) else {
                continue;
            };
            let f = entry.function;
            if f >= n || walk.whole[f] {
                // Already reached as a whole: its region is a part of what was judged.
                continue;
            }
            let node = if entry.region.is_some() {
                walk.parent.push(None);
                walk.function_of.push(f);
                walk.parent.len() - 1
            } else {
                walk.whole[f] = true;
                f
            };
            let start = Reached {
                function: f,
                entry: index,
                node,
            };
            walk.order.push(start);
            queue.push_back(start);
            while let Some(at) = queue.pop_front() {
                for call in &self.functions[at.function].calls {
                    if call.target >= n
                        || walk.whole[call.target]
                        || !self.counts(at, call.site, across.respect_guard)
                        || !(across.enter)(&self.functions[call.target])
                    {
                        continue;
                    }
                    walk.whole[call.target] = true;
                    walk.parent[call.target] = Some((at.node, call.site));
                    let next = Reached {
                        function: call.target,
                        entry: index,
                        node: call.target,
                    };
                    walk.order.push(next);
                    queue.push_back(next);
                }
            }
        }
        walk
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn functions(walk: &Walk) -> Vec<usize> {
        walk.order.iter().map(|r| r.function).collect()
    }

    fn chain() -> Model {
        // 0 -> 1 (site 10, guarded) -> 2 (site 20); 0 -> 3 (site 11).
        let mut functions = vec![
            Func::new(Placement::Resident),
            Func::new(Placement::Resident),
            Func::new(Placement::Pageable),
            Func::new(Placement::Resident),
        ];
        functions[0].calls = vec![
            Call {
                site: 10,
                target: 1,
            },
            Call {
                site: 11,
                target: 3,
            },
        ];
        functions[1].calls = vec![Call {
            site: 20,
            target: 2,
        }];
        Model {
            functions,
            entries: vec![Entry {
                function: 0,
                runs: Runs::PowerDown,
                region: None,
                root: 0,
                callers_irql: false,
                declared_only: false,
            }],
            nonpageable: true,
            guarded: HashSet::from([10]),
        }
    }

    #[test]
    fn walk_follows_calls_and_builds_paths() {
        let model = chain();
        let all = |_: &Func| true;
        let walk = model.walk(
            &[0],
            Across {
                enter: &all,
                respect_guard: false,
            },
        );
        assert_eq!(functions(&walk), vec![0, 1, 3, 2]);
        assert_eq!(
            walk.path_to(walk.order[3], 99),
            vec![(0, 10), (1, 20), (2, 99)]
        );
    }

    #[test]
    fn the_guard_and_the_filter_stop_the_walk() {
        let model = chain();
        let all = |_: &Func| true;
        let guarded = model.walk(
            &[0],
            Across {
                enter: &all,
                respect_guard: true,
            },
        );
        assert!(!guarded.reached(1) && !guarded.reached(2) && guarded.reached(3));
        let resident = |f: &Func| f.placement == Placement::Resident;
        let walk = model.walk(
            &[0],
            Across {
                enter: &resident,
                respect_guard: false,
            },
        );
        assert!(walk.reached(1) && !walk.reached(2));
    }

    #[test]
    fn a_declared_helper_of_a_registered_callback_is_not_an_entry_of_its_own() {
        let mut model = chain();
        // Function 2 carries a placement attribute only; the registered entry 0 calls it
        // (through 1), so only 0 is judged.
        model.entries.push(Entry {
            function: 2,
            runs: Runs::PowerDown,
            region: None,
            root: 1,
            callers_irql: false,
            declared_only: true,
        });
        assert_eq!(model.power_entries(), vec![0]);
        // Not reached from a registered power entry: judged on its own.
        model.functions[1].calls.clear();
        assert_eq!(model.power_entries(), vec![0, 1]);
        // A passive entry is no power entry.
        model.entries[0].runs = Runs::Passive;
        assert_eq!(model.power_entries(), vec![1]);
    }

    #[test]
    fn a_lock_region_follows_only_its_sites() {
        let mut model = chain();
        model.entries[0].region = Some(vec![11]);
        let all = |_: &Func| true;
        let walk = model.walk(
            &[0],
            Across {
                enter: &all,
                respect_guard: false,
            },
        );
        assert_eq!(functions(&walk), vec![0, 3]);
        // The entry's own function counts only in its region; what it calls, wholly.
        assert!(!walk.reached(0) && walk.reached(3));
        assert!(model.counts(walk.order[0], 11, false));
        assert!(!model.counts(walk.order[0], 10, false));
        assert!(model.counts(walk.order[1], 10, false));
    }

    #[test]
    fn entries_share_one_walk() {
        let mut model = chain();
        // A second entry at function 1: everything it reaches was reached from entry 0.
        model.entries.push(Entry {
            function: 1,
            runs: Runs::PowerDown,
            region: None,
            root: 1,
            callers_irql: false,
            declared_only: false,
        });
        let all = |_: &Func| true;
        let across = Across {
            enter: &all,
            respect_guard: false,
        };
        let walk = model.walk(&[0, 1], across);
        assert_eq!(functions(&walk), vec![0, 1, 3, 2]);
        assert!(walk.order.iter().all(|r| r.entry == 0));
        // In the other order, 1 and 2 belong to entry 1, and the path to 2 starts there.
        let walk = model.walk(&[1, 0], across);
        assert_eq!(functions(&walk), vec![1, 2, 0, 3]);
        let two = walk.order[1];
        assert_eq!(two.entry, 1);
        assert_eq!(walk.path_to(two, 7), vec![(1, 20), (2, 7)]);
        // Entry 0's lock region starts a node of its own; reaching 0 whole later is another.
        model.entries[0].region = Some(vec![11]);
        model.functions[3].calls.push(Call {
            site: 30,
            target: 0,
        });
        let walk = model.walk(&[0], across);
        assert_eq!(functions(&walk), vec![0, 3, 0, 1, 2]);
        assert!(walk.reached(0));
        assert_eq!(
            walk.path_to(walk.order[4], 5),
            vec![(0, 11), (3, 30), (0, 10), (1, 20), (2, 5)]
        );
    }
}
