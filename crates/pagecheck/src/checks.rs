//! The four checks of issue 3: image section rules, reachability from resident roots,
//! INIT discipline, and the footprint with its resident slack.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;

use pagewise_roles::Role;
use serde::Serialize;

use crate::callgraph::{CallGraph, EdgeKind};
use crate::dataflow::Held;
use crate::functions::{Function, Functions};
use crate::image::{self, Image, Residency};
use crate::pdb::SourceLine;
use crate::registration::{Policy, Registrations};
use crate::roots::{Origin, Root};

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
    /// PC006: a role record or `--root` disagrees with the slot the image registers the
    /// function in.
    #[serde(rename = "PC006")]
    DeclaredRoleMismatch,
    /// PC007: a registration call whose structure or callback fields could not be read.
    #[serde(rename = "PC007")]
    UnreadableRegistration,
    /// PC008: the return to D0 of a power-pageable driver runs pageable code: legal, but
    /// resume waits for the paging disk.
    #[serde(rename = "PC008")]
    SlowResume,
    /// PC009: code that may run at `DISPATCH_LEVEL` reaches a pageable section the driver
    /// locks: safe only while it is locked.
    #[serde(rename = "PC009")]
    LockedSection,
    /// PC010: code that may run at `DISPATCH_LEVEL` or above calls a routine its reference
    /// page allows only lower ([`crate::rules::irql`]).
    #[serde(rename = "PC010")]
    RoutineAboveIrql,
    /// PC011: a power callback of a driver that can be power-nonpageable reaches file,
    /// registry or paged-pool access outside a `WdfDevStateIsNP` guard
    /// ([`crate::rules::power_access`]).
    #[serde(rename = "PC011")]
    PowerPathPageableAccess,
    /// PC012: code that must not fault uses pageable data, or code after `DriverEntry` uses
    /// `INIT` data ([`crate::rules::pageable_data`]).
    #[serde(rename = "PC012")]
    PageableDataFromResident,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 12] = [
        Rule::SectionFlags,
        Rule::ResidentReachesPageable,
        Rule::ResidentRootNotResident,
        Rule::InitUseAfterDiscard,
        Rule::UnresolvedIndirect,
        Rule::DeclaredRoleMismatch,
        Rule::UnreadableRegistration,
        Rule::SlowResume,
        Rule::LockedSection,
        Rule::RoutineAboveIrql,
        Rule::PowerPathPageableAccess,
        Rule::PageableDataFromResident,
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
            Rule::DeclaredRoleMismatch => "PC006",
            Rule::UnreadableRegistration => "PC007",
            Rule::SlowResume => "PC008",
            Rule::LockedSection => "PC009",
            Rule::RoutineAboveIrql => "PC010",
            Rule::PowerPathPageableAccess => "PC011",
            Rule::PageableDataFromResident => "PC012",
        }
    }

    /// True for the rules whose findings are warnings by default.
    #[must_use]
    pub const fn is_warning(self) -> bool {
        matches!(
            self,
            Rule::UnresolvedIndirect
                | Rule::UnreadableRegistration
                | Rule::SlowResume
                | Rule::LockedSection
        )
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
            Rule::DeclaredRoleMismatch => "declared-role-mismatch",
            Rule::UnreadableRegistration => "unreadable-registration",
            Rule::SlowResume => "slow-resume",
            Rule::LockedSection => "locked-section",
            Rule::RoutineAboveIrql
            | Rule::PowerPathPageableAccess
            | Rule::PageableDataFromResident => match crate::rules::about(self) {
                Some((name, _, _)) => name,
                None => "",
            },
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
                "A callback is placed in a section its slot cannot be served from: code that may run at DISPATCH_LEVEL \
                 in PAGE* or INIT, the return to D0 in pageable code of a driver that can be power-nonpageable, or the \
                 power-down path of such a driver in a pageable section it does not lock."
            }
            Rule::InitUseAfterDiscard => {
                "INIT is freed when DriverEntry returns: no code or data outside INIT may call, jump to or keep the \
                 address of INIT code."
            }
            Rule::UnresolvedIndirect => {
                "An indirect call in resident code whose target cannot be determined from the image; it may reach \
                 pageable code."
            }
            Rule::DeclaredRoleMismatch => {
                "The role a placement attribute (role record) or --root declares for a function does not serve the \
                 callback slot the image registers it in: the declaration is wrong, or the wrong function is \
                 registered."
            }
            Rule::UnreadableRegistration => {
                "A framework call that takes callbacks, whose configuration structure or callback could not be read \
                 from the image: the callbacks it registers are not checked."
            }
            Rule::SlowResume => {
                "The return to D0 of a power-pageable driver runs pageable code. Allowed, because the paging device \
                 is then in D0, but resume waits until the code is paged back in."
            }
            Rule::LockedSection => {
                "Code that may run at DISPATCH_LEVEL reaches a pageable section the driver locks with \
                 MmLockPagableCodeSection: safe only while the lock is in place, so every path to it must run \
                 between the lock and the unlock."
            }
            Rule::RoutineAboveIrql
            | Rule::PowerPathPageableAccess
            | Rule::PageableDataFromResident => match crate::rules::about(self) {
                Some((_, description, _)) => description,
                None => "",
            },
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
    /// The source line of the site (or of the function's first instruction).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceLine>,
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

/// A function's size. The names are shared with the function table: the footprint lists
/// every function of the image.
#[derive(Clone, Debug, Serialize)]
pub struct FunctionSize {
    /// Symbol.
    pub symbol: Arc<str>,
    /// RVA.
    pub rva: u32,
    /// Section.
    pub section: Arc<str>,
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
    /// What the image registers with the framework.
    pub registrations: &'a Registrations,
    /// Whether the driver can be power-nonpageable, and the sections it locks.
    pub policy: &'a Policy,
    /// Per function, the calls and jumps it makes while holding a spin lock.
    pub held: &'a HashMap<usize, Vec<Held>>,
    /// What an indirect call may reach.
    pub indirect: &'a IndirectTargets,
}

/// The functions an indirect call in the image may reach: those in its Control Flow Guard
/// table when it has one, otherwise those whose address it takes (a `lea` of the function, a
/// relocated pointer to it in data) other than to hand them to the framework as callbacks.
#[derive(Clone, Debug, Default)]
pub struct IndirectTargets {
    /// The functions, sorted.
    pub functions: Vec<usize>,
    /// True when they come from the Control Flow Guard table.
    pub from_guard_table: bool,
}

impl IndirectTargets {
    /// Collects the possible targets of the image's indirect calls.
    #[must_use]
    pub fn collect(
        image: &Image,
        functions: &Functions,
        calls: &CallGraph,
        registrations: &Registrations,
    ) -> IndirectTargets {
        let start = |rva: u32| {
            functions
                .containing(rva)
                .filter(|&f| functions.list[f].start == rva)
        };
        // How often each function's address is taken.
        let mut taken = vec![0u32; functions.len()];
        for e in &calls.edges {
            if e.kind == EdgeKind::AddressTaken
                && let Some(t) = start(e.target)
            {
                taken[t] += 1;
            }
        }
        for &slot in &image.dir64_relocations {
            let Some(s) = image.section_of(slot) else {
                continue;
            };
            let section = &image.sections[s];
            if section.is_code()
                || section.name == pagewise_roles::section::ROLE_RECORDS
                || section.characteristics & image::SCN_DISCARDABLE != 0
            {
                continue;
            }
            let Some(bytes) = image.read_at(slot, 8) else {
                continue;
            };
            if let Some(t) = image
                .rva_of_va(u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8])))
                .and_then(start)
            {
                taken[t] += 1;
            }
        }
        // An address taken no more often than the function is handed to the framework went to
        // the framework: the driver's own indirect calls do not reach it. With a Control Flow
        // Guard table, only the functions in it can be reached at all.
        let from_guard_table = !image.guard_functions.is_empty();
        let candidates: Vec<usize> = if from_guard_table {
            let mut list: Vec<usize> = image
                .guard_functions
                .iter()
                .filter_map(|&r| start(r))
                .collect();
            list.sort_unstable();
            list.dedup();
            list
        } else {
            (0..functions.len()).filter(|&f| taken[f] > 0).collect()
        };
        let list = candidates
            .into_iter()
            .filter(|&f| {
                let handed = registrations.handed_over(f);
                handed == 0 || usize::try_from(taken[f]).unwrap_or(usize::MAX) > handed
            })
            .collect();
        IndirectTargets {
            functions: list,
            from_guard_table,
        }
    }

    /// The possible targets not in resident code.
    pub fn pageable<'f>(&'f self, functions: &'f Functions) -> impl Iterator<Item = usize> + 'f {
        self.functions
            .iter()
            .copied()
            .filter(|&f| functions.list[f].residency != Residency::Resident)
    }
}

/// How a placement serves a root's code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Serves {
    Yes,
    /// Only while the driver keeps the section locked.
    WhileLocked,
    No,
}

/// How strictly a root's code must stay in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// May run at `DISPATCH_LEVEL`: resident, nothing else.
    Dispatch,
    /// The return to D0: resident. `strict` when a fault there is a mistake (the driver can be
    /// power-nonpageable, or the placement was declared resident), otherwise a slow resume.
    PowerUp { strict: bool },
    /// The power-down path of a driver that can be power-nonpageable: resident, or in a
    /// section the driver locks.
    PowerDown,
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
    /// Lock roots checked only in their lock regions.
    pub lock_holders: Vec<usize>,
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

    /// The link of `function`, at `site` when given.
    pub(crate) fn link(&self, function: usize, site: Option<u32>) -> Link {
        let f = &self.functions.list[function];
        Link {
            symbol: f.name.to_string(),
            rva: f.start,
            section: self.image.sections[f.section].name.clone(),
            site,
            mangled: (f.raw != f.name).then(|| f.raw.to_string()),
            source: None,
        }
    }

    fn loose_link(&self, rva: u32) -> Link {
        Link {
            symbol: format!("<code at {rva:#x}>"),
            rva,
            section: self.section_name(rva),
            site: None,
            mangled: None,
            source: None,
        }
    }

    /// How the code of `root` is checked, if at all.
    fn mode(&self, root: &Root) -> Option<Mode> {
        match root.role {
            Role::Dispatch => Some(Mode::Dispatch),
            Role::PowerUp => Some(Mode::PowerUp {
                strict: self.policy.may_be_nonpageable() || root.declared(),
            }),
            Role::PowerDown if self.policy.may_be_nonpageable() => Some(Mode::PowerDown),
            Role::PowerDown | Role::Paged | Role::Init => None,
        }
    }

    /// Whether code of `mode` may run `f` without a fault it must not take.
    fn serves(&self, mode: Mode, f: &Function) -> bool {
        self.serving(mode, f) != Serves::No
    }

    /// How `f`'s placement serves code of `mode`: a pageable section the driver locks keeps
    /// the power paths of a power-nonpageable driver in memory, and is safe at
    /// `DISPATCH_LEVEL` only while it is locked.
    fn serving(&self, mode: Mode, f: &Function) -> Serves {
        match f.residency {
            Residency::Resident => Serves::Yes,
            Residency::Pageable if self.policy.lock_of(f.section).is_some() => match mode {
                Mode::PowerDown => Serves::Yes,
                Mode::Dispatch | Mode::PowerUp { strict: true } => Serves::WhileLocked,
                Mode::PowerUp { strict: false } => Serves::No,
            },
            Residency::Pageable | Residency::Discardable => Serves::No,
        }
    }

    /// PC009 (PC008 on the return to D0): `f`, in a section the driver locks, serves `root`
    /// only while it is locked.
    fn while_locked(&self, root: &Root, mode: Mode, chain: Vec<Link>, f: usize) -> Violation {
        let func = &self.functions.list[f];
        let section = &self.image.sections[func.section].name;
        let lock = self
            .policy
            .lock_of(func.section)
            .map_or_else(String::new, |site| self.code_place(site));
        let unlocks: Vec<String> = self
            .policy
            .unlocks
            .iter()
            .map(|&u| self.code_place(u))
            .collect();
        let (rule, safe) = if mode == Mode::Dispatch {
            (Rule::LockedSection, "safe only while it is locked")
        } else {
            (
                Rule::SlowResume,
                "resume waits for the paging disk whenever it is not locked",
            )
        };
        Violation {
            rule,
            level: Level::Warning,
            message: format!(
                "`{}` ({}) reaches `{}` in `{section}`, a section the driver locks (MmLockPagableCodeSection at \
                 {lock}; unlocked at {}): {safe}",
                self.functions.list[root.function].name,
                self.describe(root),
                func.name,
                if unlocks.is_empty() {
                    "no site".to_owned()
                } else {
                    unlocks.join(", ")
                }
            ),
            chain,
        }
    }

    /// `function+0xoffset` for a code address (`section+0xoffset` outside every function).
    #[must_use]
    pub fn code_place(&self, rva: u32) -> String {
        match self.functions.containing(rva) {
            Some(f) => {
                let func = &self.functions.list[f];
                format!("{}+{:#x}", func.name, rva - func.start)
            }
            None => self.place(rva),
        }
    }

    /// The role of a root as messages show it, with the registration or lock that gives it.
    #[must_use]
    pub fn describe(&self, root: &Root) -> String {
        let mut text = root.role.name().to_owned();
        if let Some(call) = root.acquires {
            match self.held.get(&root.function).and_then(|h| h.first()) {
                Some(h) => {
                    let _ = write!(
                        text,
                        ": holds a spin lock taken by {call} at {}",
                        self.code_place(h.acquire_site)
                    );
                }
                None => {
                    let _ = write!(text, " (acquires {call})");
                }
            }
        }
        if let Some(r) = root
            .registration
            .and_then(|i| self.registrations.list.get(i))
        {
            let _ = write!(
                text,
                ": {}, registered by {} at {}",
                r.slot_phrase(),
                r.method,
                self.code_place(r.site)
            );
            if let Some(&outer) = r.via.last() {
                let _ = write!(text, " (called from {})", self.code_place(outer));
            }
        } else if root.declared() {
            text.push_str(match root.origin {
                Origin::Record => ", declared by its placement attribute",
                _ => ", named by --root",
            });
        }
        text
    }

    /// Why a root's own placement cannot serve it, as a finding.
    fn misplaced(&self, root: &Root, mode: Mode) -> Violation {
        let rf = &self.functions.list[root.function];
        let section = &self.image.sections[rf.section].name;
        let queue = root
            .registration
            .and_then(|i| self.registrations.list.get(i))
            .is_some_and(|r| {
                r.structure == "WDF_IO_QUEUE_CONFIG"
                    || r.structure.ends_with("WDFQUEUE")
                    || r.slot == "EvtIoQueueState"
            });
        let (rule, level, why, fix) = match mode {
            Mode::Dispatch => (
                Rule::ResidentRootNotResident,
                Level::Error,
                "it may run at DISPATCH_LEVEL, where a page fault is a bug check",
                if queue {
                    "move it to a resident section, or create its queue with ExecutionLevel = \
                     WdfExecutionLevelPassive"
                } else {
                    "move it to a resident section"
                },
            ),
            Mode::PowerUp { strict: true } => (
                Rule::ResidentRootNotResident,
                Level::Error,
                if self.policy.may_be_nonpageable() {
                    "it returns the device to D0, and the driver can be power-nonpageable (the paging device may \
                     still be off)"
                } else {
                    "it returns the device to D0 and was declared resident"
                },
                "move it to a resident section",
            ),
            Mode::PowerUp { strict: false } => (
                Rule::SlowResume,
                Level::Warning,
                "it returns the device to D0, so resume waits for the paging disk",
                "move it to a resident section for a fast wake",
            ),
            Mode::PowerDown => (
                Rule::ResidentRootNotResident,
                Level::Error,
                "it runs while the device leaves D0, and the driver can be power-nonpageable",
                "move it to a resident section, or to a section the driver locks with MmLockPagableCodeSection \
                 while the device is power-nonpageable",
            ),
        };
        let message = if rf.residency == Residency::Discardable {
            format!(
                "`{}` ({}) is placed in INIT, which is freed when DriverEntry returns: move it out of INIT",
                rf.name,
                self.describe(root)
            )
        } else {
            format!(
                "`{}` ({}) is placed in {} section `{section}`: {why}; {fix}",
                rf.name,
                self.describe(root),
                rf.residency.name(),
            )
        };
        Violation {
            rule,
            level: if rf.residency == Residency::Discardable {
                Level::Error
            } else {
                level
            },
            message,
            chain: vec![self.link(root.function, None)],
        }
    }

    /// Check 2 (and PC005, PC008, PC009): breadth-first from every root whose code must stay in memory
    /// (dispatch, power-up, and power-down while the driver can be power-nonpageable) through
    /// the code that serves it; the first function on each path that cannot is a finding,
    /// reported with the shortest chain.
    #[must_use]
    #[allow(clippy::too_many_lines)]
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
        // Reached only through a possible target of an indirect call.
        let mut via_indirect: Vec<bool> = vec![false; n];
        let mut queue = VecDeque::new();
        let checked = roots.iter().filter_map(|r| self.mode(r).map(|m| (r, m)));
        for (generation, (root, mode)) in (1u32..).zip(checked) {
            let rf = &self.functions.list[root.function];
            if self.serving(mode, rf) == Serves::WhileLocked {
                findings.violations.push(self.while_locked(
                    root,
                    mode,
                    vec![self.link(root.function, None)],
                    root.function,
                ));
            }
            if !self.serves(mode, rf) {
                // A registered callback in INIT is PC004 (cross_check) whatever its role.
                if !(rf.residency == Residency::Discardable && root.origin == Origin::Registration)
                {
                    findings.violations.push(self.misplaced(root, mode));
                }
                continue;
            }
            stamp[root.function] = generation;
            parent[root.function] = (u32::MAX, 0);
            queue.clear();
            queue.push_back(root.function);
            let mut reported: Vec<u32> = Vec::new();
            // A lock root runs at DISPATCH_LEVEL only in its lock regions: from it, follow
            // only the calls made there.
            let region: Option<&[Held]> = (root.origin == Origin::Lock)
                .then(|| self.held.get(&root.function).map(Vec::as_slice))
                .flatten();
            if region.is_some() {
                findings.lock_holders.push(root.function);
            }
            via_indirect[root.function] = false;
            let mut indirect_done = false;
            while let Some(f) = queue.pop_front() {
                let only = region.filter(|_| f == root.function);
                if only.is_none() {
                    findings.reached[f] = true;
                }
                findings.referenced[f] = true;
                // An indirect transfer may reach any possible target: follow the resident ones
                // (once per root, they are the same for every site). The pageable ones are
                // reported with the site (PC005).
                if !indirect_done
                    && let Some(u) = self
                        .calls
                        .unresolved_of(f)
                        .iter()
                        .find(|u| only.is_none_or(|held| held.iter().any(|h| h.site == u.site)))
                {
                    indirect_done = true;
                    for &t in &self.indirect.functions {
                        if stamp[t] == generation || !self.serves(mode, &self.functions.list[t]) {
                            continue;
                        }
                        stamp[t] = generation;
                        #[allow(clippy::cast_possible_truncation)]
                        {
                            parent[t] = (f as u32, u.site);
                        }
                        via_indirect[t] = true;
                        queue.push_back(t);
                    }
                }
                for edge in self.calls.edges_of(f) {
                    if let Some(held) = only
                        && !held.iter().any(|h| h.site == edge.site)
                    {
                        continue;
                    }
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
                                mode,
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
                    via_indirect[target] = via_indirect[f];
                    let serving = self.serving(mode, &self.functions.list[target]);
                    if serving == Serves::WhileLocked {
                        let mut chain = self.chain(&parent, f, Some(edge.site));
                        chain.push(self.link(target, None));
                        findings
                            .violations
                            .push(self.while_locked(root, mode, chain, target));
                    }
                    if serving == Serves::No {
                        let mut chain = self.chain(&parent, f, Some(edge.site));
                        chain.push(self.link(target, None));
                        let mut v = self.reach_violation(
                            root,
                            mode,
                            chain,
                            self.functions.list[target].start,
                        );
                        if via_indirect[f] {
                            // Only through a possible target of an indirect call: maybe.
                            v.rule = Rule::UnresolvedIndirect;
                            v.level = if fail_on_unresolved {
                                Level::Error
                            } else {
                                Level::Warning
                            };
                            v.message
                                .push_str(" through an indirect call that may reach that path");
                        }
                        findings.violations.push(v);
                    } else {
                        queue.push_back(target);
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

    /// The registration checks: a registered function in INIT (PC004), a declared role that
    /// does not serve the registered slot (PC006), and registration calls that could not be
    /// read (PC007).
    #[must_use]
    pub fn registration_checks(&self, roots: &[Root]) -> Vec<Violation> {
        let mut out = Vec::new();
        for r in &self.registrations.list {
            let f = &self.functions.list[r.function];
            let registered = format!(
                "{}, registered by {} at {}",
                r.slot_phrase(),
                r.method,
                self.code_place(r.site)
            );
            if f.residency == Residency::Discardable {
                out.push(Violation {
                    rule: Rule::InitUseAfterDiscard,
                    level: Level::Error,
                    message: format!(
                        "`{}` is in INIT but registered as {registered}: the framework calls it after DriverEntry \
                         returns, when INIT is freed",
                        f.name
                    ),
                    chain: vec![self.link_at(r.site), self.link(r.function, None)],
                });
            }
            for declared in roots
                .iter()
                .filter(|d| d.function == r.function && d.declared())
            {
                if r.need().accepts(declared.role) {
                    continue;
                }
                out.push(Violation {
                    rule: Rule::DeclaredRoleMismatch,
                    level: Level::Error,
                    message: format!(
                        "`{}` is declared {} ({}) but registered as {registered}, which needs {}: either the \
                         declaration or the registration names the wrong function",
                        f.name,
                        declared.role.name(),
                        if declared.origin == Origin::Record {
                            "its placement attribute"
                        } else {
                            "--root"
                        },
                        r.need().recommended().name()
                    ),
                    chain: vec![self.link_at(r.site), self.link(r.function, None)],
                });
            }
        }
        for u in &self.registrations.unreadable {
            let mut message = format!(
                "{} at {} registers callbacks pagecheck cannot read ({}): they are not checked",
                u.method,
                self.code_place(u.site),
                u.what.join(", ")
            );
            if let Some(budget) = &u.budget {
                let _ = write!(
                    message,
                    "; {budget} ran out in the function that makes the call"
                );
            }
            if let Some(&outer) = u.via.last() {
                let _ = write!(
                    message,
                    " (structure passed from {})",
                    self.code_place(outer)
                );
            }
            out.push(Violation {
                rule: Rule::UnreadableRegistration,
                level: Level::Warning,
                message,
                chain: vec![self.link_at(u.site)],
            });
        }
        out
    }

    /// The link of the function holding the instruction at `site`, with the site.
    fn link_at(&self, site: u32) -> Link {
        match self.functions.containing(site) {
            Some(f) => self.link(f, Some(site)),
            None => self.loose_link(site),
        }
    }

    /// PC005: every unresolved transfer in a function a resident root reaches, and those a
    /// lock holder makes while it holds the lock; each site once.
    fn unresolved_in_resident(&self, findings: &mut GraphFindings, fail_on_unresolved: bool) {
        let n = self.functions.len();
        let mut sites: Vec<(usize, crate::callgraph::Unresolved)> = Vec::new();
        for f in (0..n).filter(|&f| findings.reached[f]) {
            sites.extend(self.calls.unresolved_of(f).iter().map(|&u| (f, u)));
        }
        for &f in &findings.lock_holders {
            let held = self.held.get(&f).map_or(&[][..], Vec::as_slice);
            sites.extend(
                self.calls
                    .unresolved_of(f)
                    .iter()
                    .filter(|u| held.iter().any(|h| h.site == u.site))
                    .map(|&u| (f, u)),
            );
        }
        sites.sort_by_key(|(_, u)| u.site);
        sites.dedup_by_key(|(_, u)| u.site);
        let pageable: Vec<&str> = self
            .indirect
            .pageable(self.functions)
            .map(|t| &*self.functions.list[t].name)
            .collect();
        if pageable.is_empty() {
            // Every function an indirect call may reach is resident: bounded, nothing to say.
            return;
        }
        let shown: Vec<String> = pageable.iter().take(5).map(|n| format!("`{n}`")).collect();
        let targets = format!(
            "{}{}",
            shown.join(", "),
            if pageable.len() > shown.len() {
                format!(" and {} more", pageable.len() - shown.len())
            } else {
                String::new()
            }
        );
        let source = if self.indirect.from_guard_table {
            "the Control Flow Guard table"
        } else {
            "the functions whose address the image takes"
        };
        for (f, u) in sites {
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
                    "unresolved {what} in resident `{}` at {}: among its possible targets ({source}) are pageable \
                     {targets}",
                    func.name,
                    self.place(u.site)
                ),
                chain: vec![self.link(f, Some(u.site))],
            });
        }
    }

    fn reach_violation(
        &self,
        root: &Root,
        mode: Mode,
        chain: Vec<Link>,
        target_rva: u32,
    ) -> Violation {
        let target = chain.last().map_or_else(String::new, |l| l.symbol.clone());
        let residency = self.residency_at(target_rva);
        let kind = if residency == Residency::Discardable {
            "discarded (INIT)"
        } else {
            "paged"
        };
        let slow = mode == Mode::PowerUp { strict: false } && residency != Residency::Discardable;
        let (rule, level, what) = if slow {
            (Rule::SlowResume, Level::Warning, "power-up root")
        } else {
            (Rule::ResidentReachesPageable, Level::Error, "resident root")
        };
        let mut message = format!(
            "{what} `{}` ({}) reaches {kind} code `{target}` in `{}`",
            self.functions.list[root.function].name,
            self.describe(root),
            self.section_name(target_rva)
        );
        if slow {
            message.push_str(": resume waits for it to be paged in");
        }
        Violation {
            rule,
            level,
            message,
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
                // Taking the address to register it: `registration_checks` reports that, with
                // the slot and the framework call.
                if edge.kind == EdgeKind::AddressTaken
                    && self
                        .functions
                        .containing(edge.target)
                        .is_some_and(|t| self.registrations.of(t).next().is_some())
                {
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
                    Link {
                        symbol: format!("<data at {}>", self.place(slot)),
                        rva: slot,
                        section: sec.name.clone(),
                        site: Some(slot),
                        mangled: None,
                        source: None,
                    },
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
        let sections: Vec<Arc<str>> = self
            .image
            .sections
            .iter()
            .map(|s| Arc::from(s.name.as_str()))
            .collect();
        for (f, func) in self.functions.list.iter().enumerate() {
            let size = FunctionSize {
                symbol: Arc::clone(&func.name),
                rva: func.start,
                section: Arc::clone(&sections[func.section]),
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
        // Function starts are unique, so the order is total and an unstable sort is exact.
        footprint.functions.sort_unstable_by(order);
        slack.functions.sort_unstable_by(order);
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
