//! Registration inference: which function the image hands the framework for which callback,
//! read from the registration calls the dataflow pass found ([`crate::flow`]), and what the
//! driver does that decides how strict the power paths must be (power-nonpageable devices,
//! sections it locks).

use pagewise_roles::Role;
use pagewise_roles::slot::Need;
use serde::Serialize;

use crate::callgraph::{CallGraph, External};
use crate::dataflow::{Budget, RegArg, RegCall, Sets, Value};
use crate::functions::Functions;
use crate::image::Image;
use crate::kmdf::{self, Arg, Runs};

/// One callback the image registers.
#[derive(Clone, Debug, Serialize)]
pub struct Registration {
    /// The registered function (index into the function table).
    #[serde(skip)]
    pub function: usize,
    /// Its name.
    pub symbol: String,
    /// The callback it is registered as (the structure field or argument name).
    pub slot: &'static str,
    /// Where the slot is: a configuration structure, an object's attributes, or an argument.
    pub structure: String,
    /// The framework method that takes it.
    pub method: &'static str,
    /// RVA of the framework call.
    pub site: u32,
    /// Call sites of the helpers the structure came through, innermost first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub via: Vec<u32>,
    /// When the callback runs.
    pub runs: Runs,
    /// True when only some paths to the call register this function.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub possible: bool,
}

/// What [`Registration::structure`] holds for a callback passed as an argument of the call.
pub const ARGUMENT: &str = "argument";

impl Registration {
    /// The slot as messages name it: `EvtIoRead of WDF_IO_QUEUE_CONFIG`, or for a callback
    /// passed directly, `EvtIoQueueState (an argument)`.
    #[must_use]
    pub fn slot_phrase(&self) -> String {
        if self.structure == ARGUMENT {
            format!("{} (an argument)", self.slot)
        } else {
            format!("{} of {}", self.slot, self.structure)
        }
    }

    /// The role a function needs to serve this slot.
    #[must_use]
    pub fn role(&self) -> Role {
        self.runs.role()
    }

    /// What a placement must give to serve this slot.
    #[must_use]
    pub fn need(&self) -> Need {
        match self.runs {
            Runs::Passive => Need::Passive,
            Runs::PowerDown => Need::PowerDown,
            Runs::PowerUp => Need::PowerUp,
            Runs::Dispatch => Need::Resident,
        }
    }
}

/// A registration call pagecheck could not read completely.
#[derive(Clone, Debug, Serialize)]
pub struct Unreadable {
    /// The framework method.
    pub method: &'static str,
    /// RVA of the framework call.
    pub site: u32,
    /// Helper call sites, innermost first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub via: Vec<u32>,
    /// What could not be read: field names, or the structure argument as a whole.
    pub what: Vec<String>,
    /// The analysis budget that ran out in the function that makes the call, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<String>,
}

/// Everything registration inference found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Registrations {
    /// The callbacks, in call order.
    pub list: Vec<Registration>,
    /// Calls with arguments or fields that could not be read.
    pub unreadable: Vec<Unreadable>,
    /// True when every device and queue the image creates runs at `PASSIVE_LEVEL`: then
    /// `WdfObjectAcquireLock` takes a mutex, not a spin lock.
    pub object_locks_passive: bool,
    /// Functions handed to the framework where the model reads no callback (one entry per
    /// hand-over, sorted): reported unreadable, and, like registered ones, not targets of the
    /// driver's own indirect calls.
    #[serde(skip)]
    pub handed: Vec<usize>,
    /// `(function, index in list)`, sorted: a driver with thousands of registered callbacks is
    /// asked about each of them, so looking one up must not scan the list.
    #[serde(skip)]
    by_function: Vec<(usize, usize)>,
}

impl Registrations {
    /// Registrations from a list (in call order).
    #[must_use]
    pub fn new(list: Vec<Registration>, unreadable: Vec<Unreadable>) -> Self {
        let mut by_function: Vec<(usize, usize)> = list
            .iter()
            .enumerate()
            .map(|(i, r)| (r.function, i))
            .collect();
        by_function.sort_unstable();
        Registrations {
            list,
            unreadable,
            object_locks_passive: false,
            handed: Vec::new(),
            by_function,
        }
    }

    /// The registrations of `function` with their indices in `list`, in call order.
    pub fn indexed_of(&self, function: usize) -> impl Iterator<Item = (usize, &Registration)> {
        let first = self.by_function.partition_point(|&(f, _)| f < function);
        self.by_function[first..]
            .iter()
            .take_while(move |&&(f, _)| f == function)
            .map(|&(_, i)| (i, &self.list[i]))
    }

    /// How many times `function` is handed to the framework: registered, or passed where the
    /// model reads no callback.
    #[must_use]
    pub fn handed_over(&self, function: usize) -> usize {
        let first = self.handed.partition_point(|&f| f < function);
        let passed = self.handed[first..]
            .iter()
            .take_while(|&&f| f == function)
            .count();
        self.indexed_of(function).count() + passed
    }

    /// The registrations of `function`, in call order.
    pub fn of(&self, function: usize) -> impl Iterator<Item = &Registration> {
        self.indexed_of(function).map(|(_, r)| r)
    }

    /// The registration of `function` with the strictest needs (where it is checked from),
    /// with its index; of equally strict ones, the last in call order.
    #[must_use]
    pub fn strictest(&self, function: usize) -> Option<(usize, &Registration)> {
        self.indexed_of(function).reduce(|best, next| {
            if next.1.runs >= best.1.runs {
                next
            } else {
                best
            }
        })
    }
}

/// Reads the registration calls into registrations. A framework call whose method cannot be
/// named (its index computed at run time) may take callbacks: it is reported unreadable.
#[must_use]
pub fn resolve(
    image: &Image,
    functions: &Functions,
    calls: &[RegCall],
    unmodelled: &[(u32, &'static str, u32)],
    graph: &CallGraph,
    sets: &Sets,
) -> Registrations {
    // Devices inherit the driver's execution level, and queues the device's: when every
    // device the image creates is passive, so are the queues that do not say otherwise.
    let driver_passive = calls
        .iter()
        .filter(|c| c.method.name == "WdfDriverCreate")
        .any(|c| execution_level(c) == Level::Passive);
    let level_of_all = |method: &str, inherited: bool| {
        let mut creates = calls.iter().filter(|c| c.method.name == method).peekable();
        creates.peek().is_some()
            && creates.all(|c| match execution_level(c) {
                Level::Passive => true,
                Level::Inherit => inherited,
                Level::Other => false,
            })
    };
    let devices_passive = level_of_all("WdfDeviceCreate", driver_passive);
    let reader = Reader {
        image,
        functions,
        sets,
    };
    let mut list = Vec::new();
    let mut unreadable = Vec::new();
    for call in calls {
        let passive = execution_level_passive(call, devices_passive);
        let what = reader.read(call, passive, &mut list);
        if !what.is_empty() {
            unreadable.push(Unreadable {
                method: call.method.name,
                site: call.site,
                via: call.via.clone(),
                what,
                budget: call.budget.map(Budget::describe),
            });
        }
    }
    unreadable.extend(unnamed_methods(graph));
    let (passed, handed) = unmodelled_callbacks(image, functions, unmodelled);
    unreadable.extend(passed);
    let mut registrations = Registrations::new(list, unreadable);
    registrations.handed = handed;
    // `WdfObjectAcquireLock` takes a device's or a queue's lock: a mutex (PASSIVE_LEVEL, in a
    // critical region) when the object's execution level is passive, a spin lock otherwise.
    registrations.object_locks_passive =
        devices_passive && level_of_all("WdfIoQueueCreate", devices_passive);
    registrations
}

/// Reads one registration call's arguments into registrations.
struct Reader<'a> {
    image: &'a Image,
    functions: &'a Functions,
    sets: &'a Sets,
}

impl Reader<'_> {
    /// The function whose code holds `rva`.
    fn code_function(&self, rva: u32) -> Option<usize> {
        self.image
            .section_of(rva)
            .filter(|&s| self.image.sections[s].is_code())
            .and_then(|_| self.functions.containing(rva))
    }

    /// Adds what `call` registers to `list` (`passive`: the object it creates runs its
    /// callbacks at `PASSIVE_LEVEL`); returns what could not be read.
    fn read(&self, call: &RegCall, passive: bool, list: &mut Vec<Registration>) -> Vec<String> {
        let mut what = Vec::new();
        // A WDM callback runs at the IRQL its major function's IRPs arrive at.
        let passive_major = call.args.iter().any(|(_, a)| {
            matches!(a, RegArg::Number(Some(major)) if kmdf::major_function_is_passive(*major))
        });
        for &(position, kind) in call.method.args {
            let Some((_, arg)) = call.args.iter().find(|(p, _)| *p == position) else {
                continue;
            };
            let (fields, structure): (&[kmdf::Field], String) = match kind {
                Arg::Config(s) => (s.fields, s.name.to_owned()),
                Arg::Attributes(o) => (
                    o.attribute_fields(),
                    format!("WDF_OBJECT_ATTRIBUTES of the {}", o.name()),
                ),
                Arg::Callback(f) => (std::slice::from_ref(f), ARGUMENT.to_owned()),
                Arg::MajorFunction => continue,
            };
            let passive = passive
                || passive_by_flag(kind, arg)
                || (matches!(kind, Arg::Callback(_)) && passive_major);
            let values: Vec<(u16, Value)> = match arg {
                RegArg::Null => continue,
                // A field past the structure's `Size` is not part of it (an older, shorter
                // version of the structure); an interface's routines are bounded by its own.
                RegArg::Read {
                    size, fields: read, ..
                } => read
                    .iter()
                    .filter(|(offset, _)| {
                        *offset >= kmdf::INTERFACE_FIELDS
                            || size.is_none_or(|s| u32::from(*offset) + 8 <= s)
                    })
                    .copied()
                    .collect(),
                RegArg::Callback(v) => vec![(0, *v)],
                RegArg::Param { .. } | RegArg::Unknown | RegArg::Number(_) => {
                    what.push(match kind {
                        Arg::Callback(f) => f.name.to_owned(),
                        _ => format!("the {structure} argument"),
                    });
                    continue;
                }
            };
            for (offset, value) in values {
                let interface_data = offset >= kmdf::INTERFACE_FIELDS + INTERFACE_HEADER_SIZE;
                let field = if offset >= kmdf::INTERFACE_FIELDS {
                    Some(&kmdf::INTERFACE_ROUTINE)
                } else {
                    fields.iter().find(|f| f.offset == offset)
                };
                let Some(field) = field else {
                    continue;
                };
                if value == Value::Const(0) {
                    continue;
                }
                // One function, or one of a few that paths into the call disagree on (each
                // then only possibly registered).
                let targets = value.possible_addresses(self.sets);
                if targets.is_empty() {
                    // A number after the interface's header is one of its data members.
                    if !(interface_data && matches!(value, Value::Const(_))) {
                        what.push(field.name.to_owned());
                    }
                    continue;
                }
                let possible = value != Value::Address(targets[0]);
                for &target in targets {
                    let Some(function) = self.code_function(target) else {
                        // So is a pointer to data there; in a callback field it is a mistake.
                        if !interface_data {
                            what.push(format!("{} (points outside the code)", field.name));
                        }
                        continue;
                    };
                    list.push(Registration {
                        function,
                        symbol: self.functions.list[function].name.to_string(),
                        slot: field.name,
                        structure: structure.clone(),
                        method: call.method.name,
                        site: call.site,
                        via: call.via.clone(),
                        runs: if passive { field.passive } else { field.runs },
                        possible,
                    });
                }
            }
        }
        what
    }
}

/// Bytes of the `INTERFACE` header (`Size`, `Version`, `Context`, `InterfaceReference`,
/// `InterfaceDereference`). What a driver's interface adds after it may be routines or data
/// (a version, a count, a pointer to shared state): there a number or an address outside the
/// code is a data member, not an unreadable routine.
const INTERFACE_HEADER_SIZE: u16 = 32;

/// Functions passed to methods that take a callback the model does not place: unreadable,
/// so they are said rather than dropped.
fn unmodelled_callbacks(
    image: &Image,
    functions: &Functions,
    unmodelled: &[(u32, &'static str, u32)],
) -> (Vec<Unreadable>, Vec<usize>) {
    let mut passed: Vec<(u32, &'static str, usize)> = unmodelled
        .iter()
        .filter_map(|&(site, method, rva)| {
            image
                .section_of(rva)
                .filter(|&s| image.sections[s].is_code())?;
            let f = functions.containing(rva)?;
            (functions.list[f].start == rva).then_some((site, method, f))
        })
        .collect();
    passed.sort_unstable();
    passed.dedup();
    let mut handed: Vec<usize> = passed.iter().map(|&(_, _, f)| f).collect();
    handed.sort_unstable();
    let unreadable = passed
        .into_iter()
        .map(|(site, method, f)| {
            let name = &functions.list[f].name;
            Unreadable {
                method,
                site,
                via: Vec::new(),
                what: vec![format!(
                    "`{name}` passed to a method whose callback slots pagecheck does not know; name it \
                     with --root ROLE={name}"
                )],
                budget: None,
            }
        })
        .collect();
    (unreadable, handed)
}

/// Framework calls whose method has no name (the table index is computed at run time): any of
/// them may take callbacks, so each is unreadable.
fn unnamed_methods(graph: &CallGraph) -> impl Iterator<Item = Unreadable> + '_ {
    graph
        .externals
        .iter()
        .filter(|&&(_, external)| external == External::Wdf(None))
        .map(|&(site, _)| Unreadable {
            method: "WdfFunctions[?]",
            site,
            via: Vec::new(),
            what: vec!["the method: its table index is computed at run time".to_owned()],
            budget: None,
        })
}

/// Whether a structure's own flag asks for passive handling (`PassiveHandling`). The flag is
/// trusted only when the structure's `Size` covers it: older, shorter versions leave that byte
/// undefined, and unknown means the stricter role.
fn passive_by_flag(kind: Arg, arg: &RegArg) -> bool {
    match (kind, arg) {
        (Arg::Config(st), RegArg::Read { size, flag, .. }) => {
            flag.is_some_and(|f| f != 0)
                && st
                    .passive_flag
                    .is_some_and(|at| size.is_some_and(|sz| u32::from(at) < sz))
        }
        _ => false,
    }
}

/// The execution level an object-creating call asks for in its attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    /// `WdfExecutionLevelPassive`.
    Passive,
    /// No attributes, `WdfExecutionLevelInheritFromParent` (or the zero of an unset field).
    Inherit,
    /// Dispatch, or not known.
    Other,
}

/// The execution level `call`'s attributes ask for.
fn execution_level(call: &RegCall) -> Level {
    let Some(position) = call.method.attributes_position() else {
        return Level::Other;
    };
    match call
        .args
        .iter()
        .find(|(p, _)| *p == position)
        .map(|(_, a)| a)
    {
        Some(RegArg::Read { level: Some(l), .. }) if *l == kmdf::EXECUTION_LEVEL_PASSIVE => {
            Level::Passive
        }
        Some(RegArg::Read { level: Some(l), .. }) if *l <= 1 => Level::Inherit,
        Some(RegArg::Null) => Level::Inherit,
        _ => Level::Other,
    }
}

/// Whether the object a call creates runs its callbacks at `PASSIVE_LEVEL`: its attributes
/// say `WdfExecutionLevelPassive`, or (for a queue) it inherits a passive device's level.
fn execution_level_passive(call: &RegCall, devices_passive: bool) -> bool {
    match execution_level(call) {
        Level::Passive => true,
        Level::Inherit => devices_passive && call.method.name == "WdfIoQueueCreate",
        Level::Other => false,
    }
}

/// What makes the power paths strict: calls after which a device may be power-nonpageable,
/// and the pageable sections the driver locks.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Policy {
    /// `(site, method)` of every call that can make a device power-nonpageable.
    pub nonpageable: Vec<(u32, &'static str)>,
    /// `(section index, lock call site)` of every section the driver locks in memory.
    pub locked: Vec<(usize, u32)>,
    /// Sites of `MmUnlockPagableImageSection` calls: calls through the import slot, and
    /// calls of the linker's import thunk for it.
    pub unlocks: Vec<u32>,
}

impl Policy {
    /// Reads the policy from the call graph and the lock calls of the dataflow pass.
    #[must_use]
    pub fn read(
        image: &Image,
        functions: &Functions,
        graph: &CallGraph,
        locks: &[(u32, Value)],
        sets: &Sets,
    ) -> Policy {
        let mut policy = Policy::default();
        for &(site, external) in &graph.externals {
            if let External::Wdf(Some(index)) = external
                && let Some(name) = crate::wdf::function_name(u64::from(index))
                && kmdf::NONPAGEABLE_METHODS.contains(&name)
            {
                policy.nonpageable.push((site, name));
            }
        }
        policy.nonpageable.sort_unstable();
        let mut thunks = Vec::new();
        for &(site, external) in &graph.externals {
            // The linker's import thunk (`jmp [__imp_X]` as a function of its own) is not a
            // call site: its callers are. A driver whose kernel functions are declared
            // without dllimport (wdk-sys' bindings are) calls only thunks.
            let thunk = functions
                .containing(site)
                .is_some_and(|f| functions.list[f].start == site);
            if let External::Import(slot) = external
                && image
                    .import_at(slot)
                    .is_some_and(|n| n.ends_with("!MmUnlockPagableImageSection"))
            {
                if thunk {
                    thunks.push(site);
                } else {
                    policy.unlocks.push(site);
                }
            }
        }
        policy.unlocks.extend(
            graph
                .edges
                .iter()
                .filter(|edge| thunks.contains(&edge.target))
                .map(|edge| edge.site),
        );
        policy.unlocks.sort_unstable();
        policy.unlocks.dedup();
        for &(site, value) in locks {
            for &rva in value.possible_addresses(sets) {
                if let Some(section) = image.section_of(rva)
                    && image.sections[section].residency == crate::image::Residency::Pageable
                {
                    policy.locked.push((section, site));
                }
            }
        }
        policy.locked.sort_unstable();
        policy.locked.dedup();
        policy
    }

    /// True when some device of the driver may be power-nonpageable.
    #[must_use]
    pub fn may_be_nonpageable(&self) -> bool {
        !self.nonpageable.is_empty()
    }

    /// The first call that locks `section`, if the driver locks it.
    #[must_use]
    pub fn lock_of(&self, section: usize) -> Option<u32> {
        self.locked
            .iter()
            .find(|(s, _)| *s == section)
            .map(|&(_, site)| site)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interrupt_config(size: Option<u32>, flag: Option<u64>) -> RegArg {
        RegArg::Read {
            size,
            fields: Vec::new(),
            level: None,
            flag,
        }
    }

    #[test]
    fn passive_handling_counts_only_when_the_size_covers_it() {
        let kind = Arg::Config(&kmdf::INTERRUPT_CONFIG);
        // KMDF 1.11+ layout (104 bytes) with the flag set.
        assert!(passive_by_flag(kind, &interrupt_config(Some(104), Some(1))));
        // Flag clear, flag unknown.
        assert!(!passive_by_flag(
            kind,
            &interrupt_config(Some(104), Some(0))
        ));
        assert!(!passive_by_flag(kind, &interrupt_config(Some(104), None)));
        // A shorter, older structure ends before PassiveHandling (offset 88): the byte is
        // not part of it. An unknown size is not trusted either.
        assert!(!passive_by_flag(kind, &interrupt_config(Some(88), Some(1))));
        assert!(!passive_by_flag(kind, &interrupt_config(None, Some(1))));
        // Structures without such a flag.
        assert!(!passive_by_flag(
            Arg::Config(&kmdf::TIMER_CONFIG),
            &interrupt_config(Some(40), Some(1))
        ));
    }
}
