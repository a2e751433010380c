//! The four checks of issue 3: image section rules, reachability from resident roots,
//! INIT discipline, and the footprint with its resident slack.

use std::collections::VecDeque;

use serde::Serialize;

use crate::decode::{CallGraph, EdgeKind};
use crate::functions::Functions;
use crate::image::{self, Image, Residency};
use crate::roots::Root;

/// A rule, with its stable identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Rule {
    /// PC001: a section's characteristics contradict its residency.
    #[serde(rename = "PC001")]
    SectionFlags,
    /// PC002: a resident root reaches `PAGE*` or `INIT` code.
    #[serde(rename = "PC002")]
    ResidentReachesPageable,
    /// PC003: a resident root itself lies in `PAGE*` or `INIT`.
    #[serde(rename = "PC003")]
    ResidentRootNotResident,
    /// PC004: code or data outside `INIT` calls, jumps to or holds the address of `INIT` code.
    #[serde(rename = "PC004")]
    InitUseAfterDiscard,
    /// PC005: an indirect call in code reachable from a resident root (fails only with
    /// `--fail-on-unresolved`).
    #[serde(rename = "PC005")]
    UnresolvedIndirect,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 5] = [
        Rule::SectionFlags,
        Rule::ResidentReachesPageable,
        Rule::ResidentRootNotResident,
        Rule::InitUseAfterDiscard,
        Rule::UnresolvedIndirect,
    ];

    /// `PC00n`.
    #[must_use]
    pub const fn id(self) -> &'static str {
        match self {
            Rule::SectionFlags => "PC001",
            Rule::ResidentReachesPageable => "PC002",
            Rule::ResidentRootNotResident => "PC003",
            Rule::InitUseAfterDiscard => "PC004",
            Rule::UnresolvedIndirect => "PC005",
        }
    }

    /// A short kebab-case name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Rule::SectionFlags => "section-flags",
            Rule::ResidentReachesPageable => "resident-reaches-pageable",
            Rule::ResidentRootNotResident => "resident-root-not-resident",
            Rule::InitUseAfterDiscard => "init-use-after-discard",
            Rule::UnresolvedIndirect => "unresolved-indirect-call",
        }
    }

    /// One sentence on what the rule protects.
    #[must_use]
    pub const fn description(self) -> &'static str {
        match self {
            Rule::SectionFlags => {
                "Sections other than PAGE* and INIT must be not-paged as link.exe /DRIVER marks them, INIT must be \
                 discardable, pageable names must be upper-case PAGE, and no section may have empty characteristics."
            }
            Rule::ResidentReachesPageable => {
                "Code that must stay resident (power-up path, DISPATCH_LEVEL) must not call or jump into PAGE* or \
                 INIT code: a page fault there stalls resume or bugchecks at raised IRQL."
            }
            Rule::ResidentRootNotResident => {
                "A function registered for a resident role (power-up, dispatch) is itself placed in a PAGE* or INIT \
                 section."
            }
            Rule::InitUseAfterDiscard => {
                "INIT is freed when DriverEntry returns: no code or data outside INIT may call, jump to or keep the \
                 address of INIT code."
            }
            Rule::UnresolvedIndirect => {
                "An indirect call in resident code whose target cannot be determined from the image; it may reach \
                 pageable code."
            }
        }
    }
}

/// Severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fails the check.
    Error,
    /// Reported only.
    Warning,
}

/// One step of a call chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Link {
    /// Function (or data) symbol.
    pub symbol: String,
    /// RVA of the function start.
    pub rva: u32,
    /// Section name.
    pub section: String,
    /// RVA of the instruction (or data slot) in this function that leads to the next link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<u32>,
    /// The name as the PDB stores it, when it differs from `symbol` (a mangled Rust name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mangled: Option<String>,
}

/// One finding.
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    /// Which rule.
    pub rule: Rule,
    /// Error or warning.
    pub level: Level,
    /// One line.
    pub message: String,
    /// From the root (or the offending caller) to the offending code; empty for PC001.
    pub chain: Vec<Link>,
}

/// Code bytes per residency and per function.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Footprint {
    /// Bytes of functions in resident code sections.
    pub resident: u64,
    /// Bytes of functions in `PAGE*`.
    pub pageable: u64,
    /// Bytes of functions in `INIT`.
    pub discardable: u64,
    /// Every function, largest first.
    pub functions: Vec<FunctionSize>,
}

/// A function's size.
#[derive(Clone, Debug, Serialize)]
pub struct FunctionSize {
    /// Symbol.
    pub symbol: String,
    /// RVA.
    pub rva: u32,
    /// Section.
    pub section: String,
    /// Residency of the section.
    pub residency: Residency,
    /// Bytes.
    pub size: u32,
}

/// Resident code that no resident root reaches.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Slack {
    /// Total bytes.
    pub total: u64,
    /// The functions, largest first.
    pub functions: Vec<FunctionSize>,
}

/// Check 1: section characteristics.
#[must_use]
pub fn section_rules(image: &Image) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut flag = |message: String| {
        out.push(Violation {
            rule: Rule::SectionFlags,
            level: Level::Error,
            message,
            chain: Vec::new(),
        });
    };
    for s in &image.sections {
        let c = s.characteristics;
        if c == 0 {
            flag(format!(
                "section `{}` has empty characteristics: the loader's treatment of it is undefined (lld's `.retplne` \
                 case)",
                s.name
            ));
            continue;
        }
        // Bytes, not str slicing: a name read from the image need not be UTF-8.
        if s.name
            .as_bytes()
            .get(..4)
            .is_some_and(|b| b.eq_ignore_ascii_case(b"PAGE"))
            && !s.name.starts_with("PAGE")
        {
            flag(format!(
                "section `{}` looks pageable but is not upper-case `PAGE`: the loader keeps it resident and warns",
                s.name
            ));
        }
        match s.residency {
            Residency::Discardable => {
                if c & image::SCN_DISCARDABLE == 0 {
                    flag(format!(
                        "section `{}` is not discardable ({c:#010x}): link with /SECTION:INIT,d so it is freed after \
                         DriverEntry",
                        s.name
                    ));
                }
            }
            Residency::Pageable => {
                if c & image::SCN_NOT_PAGED != 0 {
                    flag(format!(
                        "section `{}` is named pageable but marked not-paged ({c:#010x})",
                        s.name
                    ));
                }
            }
            Residency::Resident => {
                // Discardable sections (.reloc, .pwrole) are freed, not paged: no rule.
                if c & image::SCN_CONTENT != 0
                    && c & image::SCN_DISCARDABLE == 0
                    && c & image::SCN_NOT_PAGED == 0
                {
                    flag(format!(
                        "section `{}` holds {} but is not marked not-paged ({c:#010x}): link.exe /DRIVER sets \
                         IMAGE_SCN_MEM_NOT_PAGED, without it the kernel may page it",
                        s.name,
                        if c & image::SCN_CODE != 0 {
                            "code"
                        } else {
                            "data"
                        }
                    ));
                }
            }
        }
    }
    out
}

/// Everything the graph checks share.
pub struct Graph<'a> {
    /// The image.
    pub image: &'a Image,
    /// The functions.
    pub functions: &'a Functions,
    /// The decoded call graph.
    pub calls: &'a CallGraph,
}

/// The result of the graph checks.
#[derive(Debug, Default)]
pub struct GraphFindings {
    /// PC002, PC003, PC004, PC005.
    pub violations: Vec<Violation>,
    /// Functions reached from a resident root through calls and jumps.
    pub reached: Vec<bool>,
    /// Functions reached through calls, jumps or taken addresses (for the slack).
    pub referenced: Vec<bool>,
}

impl Graph<'_> {
    fn section_name(&self, rva: u32) -> String {
        self.image
            .section_of(rva)
            .map_or_else(|| "?".to_owned(), |s| self.image.sections[s].name.clone())
    }

    fn residency_at(&self, rva: u32) -> Residency {
        self.image
            .section_of(rva)
            .map_or(Residency::Resident, |s| self.image.sections[s].residency)
    }

    fn link(&self, function: usize, site: Option<u32>) -> Link {
        let f = &self.functions.list[function];
        Link {
            symbol: f.name.clone(),
            rva: f.start,
            section: self.image.sections[f.section].name.clone(),
            site,
            mangled: (f.raw != f.name).then(|| f.raw.clone()),
        }
    }

    fn loose_link(&self, rva: u32) -> Link {
        Link {
            symbol: format!("<code at {rva:#x}>"),
            rva,
            section: self.section_name(rva),
            site: None,
            mangled: None,
        }
    }

    /// Check 2 (and PC005): breadth-first from every resident root through resident code;
    /// the first non-resident function on each path is a violation, reported with the
    /// shortest chain.
    #[must_use]
    pub fn reachability(&self, roots: &[Root], fail_on_unresolved: bool) -> GraphFindings {
        let n = self.functions.len();
        let mut findings = GraphFindings {
            reached: vec![false; n],
            referenced: vec![false; n],
            ..Default::default()
        };
        // parent[f] = (caller, site) on the BFS tree of the current root; generation-stamped
        // so the table is allocated once for all roots.
        let mut parent: Vec<(u32, u32)> = vec![(u32::MAX, 0); n];
        let mut stamp: Vec<u32> = vec![0; n];
        let mut queue = VecDeque::new();
        for (generation, root) in (1u32..).zip(roots.iter().filter(|r| r.role.is_resident())) {
            let rf = &self.functions.list[root.function];
            if rf.residency != Residency::Resident {
                findings.violations.push(Violation {
                    rule: Rule::ResidentRootNotResident,
                    level: Level::Error,
                    message: format!(
                        "resident root `{}` ({}) is placed in {} section `{}`",
                        rf.name,
                        root.describe(),
                        rf.residency.name(),
                        self.image.sections[rf.section].name
                    ),
                    chain: vec![self.link(root.function, None)],
                });
                continue;
            }
            stamp[root.function] = generation;
            parent[root.function] = (u32::MAX, 0);
            queue.clear();
            queue.push_back(root.function);
            let mut reported: Vec<u32> = Vec::new();
            while let Some(f) = queue.pop_front() {
                findings.reached[f] = true;
                findings.referenced[f] = true;
                for edge in self.calls.edges_of(f) {
                    let Some(target) = self.functions.containing(edge.target) else {
                        if edge.kind != EdgeKind::AddressTaken
                            && self.residency_at(edge.target) != Residency::Resident
                            && !reported.contains(&edge.target)
                        {
                            reported.push(edge.target);
                            let mut chain = self.chain(&parent, f, Some(edge.site));
                            chain.push(self.loose_link(edge.target));
                            findings.violations.push(self.reach_violation(
                                root,
                                chain,
                                edge.target,
                            ));
                        }
                        continue;
                    };
                    if edge.kind == EdgeKind::AddressTaken {
                        // Taking the address is not running it; the slack count still
                        // treats the function as needed by resident code.
                        if self.functions.list[target].residency == Residency::Resident {
                            findings.referenced[target] = true;
                        }
                        continue;
                    }
                    if stamp[target] == generation {
                        continue;
                    }
                    stamp[target] = generation;
                    #[allow(clippy::cast_possible_truncation)]
                    {
                        parent[target] = (f as u32, edge.site);
                    }
                    if self.functions.list[target].residency == Residency::Resident {
                        queue.push_back(target);
                    } else {
                        let mut chain = self.chain(&parent, f, Some(edge.site));
                        chain.push(self.link(target, None));
                        findings.violations.push(self.reach_violation(
                            root,
                            chain,
                            self.functions.list[target].start,
                        ));
                    }
                }
            }
        }
        // Address-taken resident functions are needed resident too: close `referenced` over
        // their calls so the slack list holds only code nothing resident can get to.
        let mut stack: Vec<usize> = (0..n)
            .filter(|&f| findings.referenced[f] && !findings.reached[f])
            .collect();
        while let Some(f) = stack.pop() {
            for edge in self.calls.edges_of(f) {
                if let Some(t) = self.functions.containing(edge.target)
                    && !findings.referenced[t]
                    && self.functions.list[t].residency == Residency::Resident
                {
                    findings.referenced[t] = true;
                    stack.push(t);
                }
            }
        }
        self.unresolved_in_resident(&mut findings, fail_on_unresolved);
        findings
    }

    /// PC005: every unresolved transfer in a function a resident root reaches.
    fn unresolved_in_resident(&self, findings: &mut GraphFindings, fail_on_unresolved: bool) {
        let n = self.functions.len();
        for f in (0..n).filter(|&f| findings.reached[f]) {
            for u in self.calls.unresolved_of(f) {
                let func = &self.functions.list[f];
                let what = match (u.is_call, u.through_memory) {
                    (true, false) => "call through a register",
                    (true, true) => "call through memory",
                    (false, false) => "jump through a register",
                    (false, true) => "jump through memory",
                };
                findings.violations.push(Violation {
                    rule: Rule::UnresolvedIndirect,
                    level: if fail_on_unresolved {
                        Level::Error
                    } else {
                        Level::Warning
                    },
                    message: format!(
                        "unresolved {what} in resident `{}` at {}: its target may be pageable",
                        func.name,
                        self.place(u.site)
                    ),
                    chain: vec![self.link(f, Some(u.site))],
                });
            }
        }
    }

    fn reach_violation(&self, root: &Root, chain: Vec<Link>, target_rva: u32) -> Violation {
        let target = chain.last().map_or_else(String::new, |l| l.symbol.clone());
        let residency = self.residency_at(target_rva);
        let kind = if residency == Residency::Discardable {
            "discarded (INIT)"
        } else {
            "paged"
        };
        Violation {
            rule: Rule::ResidentReachesPageable,
            level: Level::Error,
            message: format!(
                "resident root `{}` ({}) reaches {kind} code `{target}` in `{}`",
                self.functions.list[root.function].name,
                root.describe(),
                self.section_name(target_rva)
            ),
            chain,
        }
    }

    /// The chain from the BFS root to `last`, each link carrying the site of its call.
    fn chain(&self, parent: &[(u32, u32)], last: usize, last_site: Option<u32>) -> Vec<Link> {
        let mut out = vec![self.link(last, last_site)];
        let mut f = last;
        // The BFS tree of one root is acyclic; the bound guards against a corrupt table.
        for _ in 0..parent.len() {
            let (p, site) = parent[f];
            if p == u32::MAX {
                break;
            }
            f = p as usize;
            out.push(self.link(f, Some(site)));
        }
        out.reverse();
        out
    }

    /// `section+0xoffset` for an RVA.
    #[must_use]
    pub fn place(&self, rva: u32) -> String {
        place(self.image, rva)
    }

    /// Check 3: nothing outside `INIT` calls, jumps to or takes the address of `INIT` code,
    /// and no relocated pointer outside a discardable section points into it. The image
    /// entry point is exempt: it runs before `INIT` is freed and is what calls `DriverEntry`.
    #[must_use]
    pub fn init_discipline(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        let entry = self.functions.containing(self.image.entry_point);
        for (f, func) in self.functions.list.iter().enumerate() {
            if func.residency == Residency::Discardable || Some(f) == entry {
                continue;
            }
            for edge in self.calls.edges_of(f) {
                if self.residency_at(edge.target) != Residency::Discardable {
                    continue;
                }
                let verb = match edge.kind {
                    EdgeKind::Call => "calls",
                    EdgeKind::Jump | EdgeKind::JumpTable => "jumps to",
                    EdgeKind::AddressTaken => "takes the address of",
                };
                let target = self
                    .functions
                    .containing(edge.target)
                    .map_or_else(|| self.loose_link(edge.target), |t| self.link(t, None));
                out.push(Violation {
                    rule: Rule::InitUseAfterDiscard,
                    level: Level::Error,
                    message: format!(
                        "`{}` in `{}` {verb} INIT code `{}`, which is freed when DriverEntry returns",
                        func.name, self.image.sections[func.section].name, target.symbol
                    ),
                    chain: vec![self.link(f, Some(edge.site)), target],
                });
            }
        }
        for &slot in &self.image.dir64_relocations {
            let Some(section) = self.image.section_of(slot) else {
                continue;
            };
            let sec = &self.image.sections[section];
            // Role records point at every placed function, INIT ones included; only tools
            // read them, and PC001 already reports a `.pwrole` that is not discardable.
            if sec.name == pagewise_roles::section::ROLE_RECORDS {
                continue;
            }
            if sec.characteristics & image::SCN_DISCARDABLE != 0
                || sec.residency == Residency::Discardable
                || sec.is_code()
            {
                continue;
            }
            let Some(bytes) = self.image.read_at(slot, 8) else {
                continue;
            };
            let va = u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]));
            let Some(target) = self.image.rva_of_va(va) else {
                continue;
            };
            let Some(t) = self.functions.containing(target) else {
                continue;
            };
            if self.functions.list[t].residency != Residency::Discardable {
                continue;
            }
            out.push(Violation {
                rule: Rule::InitUseAfterDiscard,
                level: Level::Error,
                message: format!(
                    "data at {} holds the address of INIT code `{}`, which is freed when DriverEntry returns",
                    self.place(slot),
                    self.functions.list[t].name
                ),
                chain: vec![
                    Link { symbol: format!("<data at {}>", self.place(slot)), rva: slot, section: sec.name.clone(), site: Some(slot), mangled: None },
                    self.link(t, None),
                ],
            });
        }
        out
    }

    /// Check 4: footprint and resident slack.
    #[must_use]
    pub fn footprint(&self, referenced: &[bool]) -> (Footprint, Slack) {
        let mut footprint = Footprint::default();
        let mut slack = Slack::default();
        for (f, func) in self.functions.list.iter().enumerate() {
            let size = FunctionSize {
                symbol: func.name.clone(),
                rva: func.start,
                section: self.image.sections[func.section].name.clone(),
                residency: func.residency,
                size: func.size(),
            };
            match func.residency {
                Residency::Resident => {
                    footprint.resident += u64::from(func.size());
                    if !referenced[f] {
                        slack.total += u64::from(func.size());
                        slack.functions.push(size.clone());
                    }
                }
                Residency::Pageable => footprint.pageable += u64::from(func.size()),
                Residency::Discardable => footprint.discardable += u64::from(func.size()),
            }
            footprint.functions.push(size);
        }
        let order =
            |a: &FunctionSize, b: &FunctionSize| b.size.cmp(&a.size).then(a.rva.cmp(&b.rva));
        footprint.functions.sort_by(order);
        slack.functions.sort_by(order);
        (footprint, slack)
    }
}

/// `section+0xoffset` for an RVA.
#[must_use]
pub fn place(image: &Image, rva: u32) -> String {
    match image.section_of(rva) {
        Some(s) => format!(
            "{}+{:#x}",
            image.sections[s].name,
            rva - image.sections[s].rva
        ),
        None => format!("{rva:#x}"),
    }
}
