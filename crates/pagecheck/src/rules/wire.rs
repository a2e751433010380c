//! From the analysis to the third-step rules and back: fills the [`Model`] from the call
//! graph, the roots, the driver's power policy and the [`Facts`], names things for messages
//! from the image and the PDB, and turns [`Finding`]s into the report's violations.

use pagewise_roles::Role;
use routine_contracts::Irql;

use super::answer::ThirdStep;
use super::model::{Call, Entry, External, Func, Model, Placement, Runs};
use super::scan::{Facts, routine_name};
use super::{Finding, Names};
use crate::callgraph::EdgeKind;
use crate::checks::{Graph, Link, Violation};
use crate::flow::Flow;
use crate::image::Residency;
use crate::pdb::{SymbolKind, Symbols};
use crate::roots::{Origin, Root};

/// Callback slots that run at the device's interrupt level when not passive-level.
const AT_DIRQL: &[&str] = &[
    "EvtInterruptIsr",
    "EvtInterruptEnable",
    "EvtInterruptDisable",
    "EvtInterruptSynchronize",
];

/// Lock acquires that raise to the device's interrupt level.
const TO_DIRQL: &[&str] = &["WdfInterruptAcquireLock", "KeAcquireInterruptSpinLock"];

/// How a root runs, for the rules.
fn runs_of(graph: &Graph<'_>, root: &Root) -> Runs {
    match root.role {
        Role::Dispatch => {
            let slot = root
                .registration
                .and_then(|i| graph.registrations.list.get(i))
                .map(|r| r.slot);
            let dirql = slot.is_some_and(|s| AT_DIRQL.contains(&s))
                || root.acquires.is_some_and(|a| TO_DIRQL.contains(&a));
            Runs::Raised(if dirql { Irql::Dirql } else { Irql::Dispatch })
        }
        Role::PowerUp => Runs::PowerUp {
            strict: graph.policy.may_be_nonpageable() || root.declared(),
        },
        Role::PowerDown => Runs::PowerDown,
        Role::Paged => Runs::Passive,
        Role::Init => Runs::Init,
    }
}

/// The model of the analysed image. Every function has its placement; only those the roots
/// reach through direct calls and jumps have their calls, external calls and data filled in:
/// the rules walk from the roots and see nothing else, and resolving every call of every
/// function to its target cost more than the rules themselves on a large image.
#[must_use]
pub fn model(graph: &Graph<'_>, roots: &[Root], facts: &Facts) -> Model {
    let functions = graph.functions;
    let mut model = Model {
        functions: functions
            .list
            .iter()
            .map(|function| {
                Func::new(match function.residency {
                    Residency::Resident => Placement::Resident,
                    Residency::Pageable if graph.policy.lock_of(function.section).is_some() => {
                        Placement::Locked
                    }
                    Residency::Pageable => Placement::Pageable,
                    Residency::Discardable => Placement::Discardable,
                })
            })
            .collect(),
        entries: Vec::new(),
        nonpageable: graph.policy.may_be_nonpageable(),
        guarded: facts.guarded.clone(),
    };
    let mut filled = vec![false; functions.len()];
    let mut pending: Vec<usize> = roots.iter().map(|r| r.function).collect();
    while let Some(f) = pending.pop() {
        if f >= filled.len() || filled[f] {
            continue;
        }
        filled[f] = true;
        let func = &mut model.functions[f];
        fill(graph, facts, f, func);
        pending.extend(func.calls.iter().map(|c| c.target));
    }
    for (index, root) in roots.iter().enumerate() {
        let region = (root.origin == Origin::Lock).then(|| {
            graph
                .held
                .get(&root.function)
                .map(|held| held.iter().map(|h| h.site).collect())
                .unwrap_or_default()
        });
        let slot = root
            .registration
            .and_then(|i| graph.registrations.list.get(i))
            .map(|r| r.slot);
        model.entries.push(Entry {
            function: root.function,
            runs: runs_of(graph, root),
            region,
            root: index,
            callers_irql: slot == Some("EvtIoInCallerContext"),
            declared_only: root.registration.is_none() && root.declared(),
        });
    }
    model
}

/// Fills in what function `f` does: its calls and jumps to other functions, its calls out of
/// the image, its indirect calls and its references to pageable data.
fn fill(graph: &Graph<'_>, facts: &Facts, f: usize, func: &mut Func) {
    for edge in graph.calls.edges_of(f) {
        if edge.kind == EdgeKind::AddressTaken {
            continue;
        }
        if let Some(target) = graph.functions.containing(edge.target)
            && target != f
        {
            func.calls.push(Call {
                site: edge.site,
                target,
            });
        }
    }
    for &(site, external) in graph.calls.externals_of(f) {
        if let Some(routine) = routine_name(graph.image, external) {
            func.externals.push(External {
                site,
                routine,
                argument: facts.arguments.get(&site).copied(),
            });
        }
    }
    func.indirect = graph.calls.unresolved_of(f).len();
    if let Some(data) = facts.data.get(&f) {
        func.data.clone_from(data);
    }
}

/// Names from the image and the PDB.
pub struct ImageNames<'a> {
    /// The graph.
    pub graph: &'a Graph<'a>,
    /// The roots the entries stand for.
    pub roots: &'a [Root],
    /// The PDB's symbols, for variable names.
    pub symbols: &'a Symbols,
}

impl Names for ImageNames<'_> {
    fn function(&self, function: usize) -> String {
        self.graph.functions.list[function].name.to_string()
    }

    fn entry(&self, entry: &Entry) -> String {
        let name = self.function(entry.function);
        match self.roots.get(entry.root) {
            Some(root) => format!("`{name}` ({})", self.graph.describe(root)),
            None => format!("`{name}`"),
        }
    }

    fn place(&self, site: u32) -> String {
        self.graph.code_place(site)
    }

    fn data(&self, rva: u32) -> String {
        let place = self.graph.place(rva);
        let section = self.graph.image.section_of(rva);
        // The variable that holds the address: the nearest data symbol at or before it in
        // the same section.
        let end = self.symbols.symbols.partition_point(|s| s.rva <= rva);
        let variable = self.symbols.symbols[..end]
            .iter()
            .rev()
            .filter(|s| s.kind == SymbolKind::Data)
            .take_while(|s| self.graph.image.section_of(s.rva) == section)
            .next();
        match variable {
            Some(v) if v.rva == rva => format!("`{}` ({place})", v.name),
            Some(v) => format!("`{}`+{:#x} ({place})", v.name, rva - v.rva),
            None => format!("data at {place}"),
        }
    }

    fn nonpageable(&self) -> String {
        self.graph.policy.nonpageable.first().map_or_else(
            || "no call makes it so".to_owned(),
            |&(site, call)| format!("{call} at {}", self.graph.code_place(site)),
        )
    }
}

/// A finding as the report's violation: one link per function of its path, each at its site,
/// and for data the data itself (without a site, so that the referencing instruction stays
/// the finding's primary location).
#[must_use]
pub fn violation(graph: &Graph<'_>, finding: Finding) -> Violation {
    let mut chain: Vec<Link> = finding
        .path
        .iter()
        .map(|&(f, site)| graph.link(f, Some(site)))
        .collect();
    if let Some(target) = finding.data {
        chain.push(Link {
            symbol: format!("<data at {}>", graph.place(target)),
            rva: target,
            section: graph
                .image
                .section_of(target)
                .map_or_else(|| "?".to_owned(), |s| graph.image.sections[s].name.clone()),
            site: None,
            mangled: None,
            source: None,
        });
    }
    Violation {
        rule: finding.rule,
        level: finding.level,
        message: finding.message,
        chain,
    }
}

/// Runs the three rules and answers the third step, with what the dataflow pass found.
#[must_use]
pub fn run(
    graph: &Graph<'_>,
    roots: &[Root],
    flow: &Flow,
    symbols: &Symbols,
) -> (Vec<Violation>, ThirdStep) {
    let facts = super::scan::facts(
        graph.image,
        graph.functions,
        graph.calls,
        flow,
        graph.policy,
        symbols,
    );
    let model = model(graph, roots, &facts);
    let names = ImageNames {
        graph,
        roots,
        symbols,
    };
    let mut findings = super::irql::check(&model, &names);
    findings.extend(super::power_access::check(&model, &names));
    findings.extend(super::pageable_data::check(&model, &names));
    let violations = findings.into_iter().map(|f| violation(graph, f)).collect();
    (violations, super::answer::answer(&model, &names))
}
