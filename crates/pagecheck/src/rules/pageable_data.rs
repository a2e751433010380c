//! PC012 `pageable-data-from-resident`: code that must not fault reads, writes or takes the
//! address of data in a pageable section (`PAGE*` data: tables, constants and strings placed
//! there), or code that runs after `DriverEntry` returns uses data in `INIT`.
//!
//! "Must not fault" is what PC002 and PC003 mean for code: dispatch-level code (queue, timer,
//! DPC and interrupt callbacks, lock regions), the return to D0, and the power-down path of a
//! driver that can be power-nonpageable. Data in a section the driver locks serves the
//! power-down path; at `DISPATCH_LEVEL` it is safe only while locked (PC009), and on the
//! return to D0 of a power-pageable driver pageable data is legal but slow (PC008), as for
//! code.

use std::collections::HashSet;

use super::model::{Across, DataPlace, Func, Model, Placement, Runs, Walk};
use super::{Finding, Names};
use crate::checks::{Level, Rule};

/// The rule.
pub const RULE: Rule = Rule::PageableDataFromResident;
/// Its name.
pub const NAME: &str = "pageable-data-from-resident";
/// What it protects.
pub const DESCRIPTION: &str = "Code that must not fault (dispatch-level code, the return to D0, the power-down path of \
     a driver that can be power-nonpageable) must not read, write or take the address of data in a PAGE* section, and \
     no code that runs after DriverEntry returns may use data in INIT.";
/// How to fix a finding.
pub const FIX: &str =
    "move the data to a resident section (.data, .rdata), or use it only from pageable code";
/// Microsoft's page on pageable data sections.
pub const HELP: &str =
    "https://learn.microsoft.com/en-us/windows-hardware/drivers/kernel/making-drivers-pageable";

/// How a pageable data reference is judged from an entry that runs as `runs`, or `None` when
/// it is allowed.
fn judge(runs: Runs, locked: bool, nonpageable: bool) -> Option<(Rule, Level, &'static str)> {
    match (runs, locked) {
        (Runs::Raised(_), false) => Some((
            RULE,
            Level::Error,
            "it may run at DISPATCH_LEVEL, where a page fault is a bug check",
        )),
        (Runs::Raised(_), true) => Some((
            Rule::LockedSection,
            Level::Warning,
            "the driver locks that section, so it is safe only while it is locked",
        )),
        (Runs::PowerUp { strict: true }, false) => Some((
            RULE,
            Level::Error,
            "it returns the device to D0, and the paging device may still be off",
        )),
        (Runs::PowerUp { strict: true }, true) => Some((
            Rule::SlowResume,
            Level::Warning,
            "it returns the device to D0, and resume waits for the paging disk whenever the section is not locked",
        )),
        (Runs::PowerUp { strict: false }, _) => Some((
            Rule::SlowResume,
            Level::Warning,
            "it returns the device to D0, so resume waits for the data to be paged in",
        )),
        (Runs::PowerDown, false) if nonpageable => Some((
            RULE,
            Level::Error,
            "it runs while the device leaves D0, and the driver can be power-nonpageable",
        )),
        _ => None,
    }
}

/// The functions whose data references count for an entry: those whose own code serves it, as
/// the code rules decide (a function that cannot serve is already a PC002 finding).
fn serves(runs: Runs, f: &Func) -> bool {
    match runs {
        Runs::PowerUp { strict: false } => f.placement == Placement::Resident,
        _ => matches!(f.placement, Placement::Resident | Placement::Locked),
    }
}

/// The pageable-data and INIT-data findings, once per referencing instruction.
#[must_use]
pub fn check(model: &Model, names: &dyn Names) -> Vec<Finding> {
    if !model.references_data() {
        return Vec::new();
    }
    let mut seen: HashSet<u32> = HashSet::new();
    let mut out = Vec::new();
    let power_entries: HashSet<usize> = model.power_entries().into_iter().collect();
    let is_power = |runs: Runs| matches!(runs, Runs::PowerUp { .. } | Runs::PowerDown);
    // A declared helper of a registered power callback is judged through its caller.
    let checks_pageable = |index: usize| {
        let runs = model.entries[index].runs;
        (!is_power(runs) || power_entries.contains(&index))
            && (matches!(runs, Runs::Raised(_) | Runs::PowerUp { .. })
                || (runs == Runs::PowerDown && model.nonpageable))
    };
    // Entries that run alike enter the same functions and are judged alike: one walk each.
    let mut classes: Vec<(Runs, Vec<usize>)> = Vec::new();
    for index in (0..model.entries.len()).filter(|&i| checks_pageable(i)) {
        let runs = model.entries[index].runs;
        match classes.iter_mut().find(|(r, _)| *r == runs) {
            Some((_, members)) => members.push(index),
            None => classes.push((runs, vec![index])),
        }
    }
    for (runs, members) in classes {
        let power = is_power(runs);
        let enter = |f: &Func| serves(runs, f);
        let walk = model.walk(
            &members,
            Across {
                enter: &enter,
                respect_guard: power,
            },
        );
        report(
            model,
            names,
            &walk,
            power,
            &mut seen,
            &mut out,
            |place| match place {
                DataPlace::Pageable { locked } => judge(runs, locked, model.nonpageable),
                DataPlace::Init => None,
            },
        );
    }
    // INIT data from anything that runs after DriverEntry returned. A lock region may be part
    // of DriverEntry's work, so it is judged only through the callbacks that reach it.
    let after_init: Vec<usize> = (0..model.entries.len())
        .filter(|&i| model.entries[i].runs != Runs::Init && model.entries[i].region.is_none())
        .collect();
    let enter = |f: &Func| f.placement != Placement::Discardable;
    let walk = model.walk(
        &after_init,
        Across {
            enter: &enter,
            respect_guard: false,
        },
    );
    report(model, names, &walk, false, &mut seen, &mut out, |place| {
        (place == DataPlace::Init).then_some((
            RULE,
            Level::Error,
            "it runs after DriverEntry returns, when INIT is freed",
        ))
    });
    out
}

/// Adds a finding for every data reference in the walk that `judge` objects to.
fn report(
    model: &Model,
    names: &dyn Names,
    walk: &Walk,
    respect_guard: bool,
    seen: &mut HashSet<u32>,
    out: &mut Vec<Finding>,
    judge: impl Fn(DataPlace) -> Option<(Rule, Level, &'static str)>,
) {
    for &at in &walk.order {
        if model.functions[at.function].placement == Placement::Discardable {
            continue;
        }
        let entry = &model.entries[at.entry];
        for data in &model.functions[at.function].data {
            if !model.counts(at, data.site, respect_guard) || seen.contains(&data.site) {
                continue;
            }
            let Some((rule, level, why)) = judge(data.place) else {
                continue;
            };
            seen.insert(data.site);
            let fix = match (rule, data.place) {
                (_, DataPlace::Init) => {
                    "move the data out of INIT, or use it only during DriverEntry"
                }
                (Rule::LockedSection, _) => {
                    "make sure every path to it runs between the lock and the unlock, or move the data to a resident section"
                }
                _ => FIX,
            };
            out.push(Finding {
                rule,
                level,
                entry: at.entry,
                path: walk.path_to(at, data.site),
                data: Some(data.target),
                message: format!(
                    "{} {} {} at {}: {why}; {fix}",
                    names.entry(entry),
                    data.access.verb(),
                    names.data(data.target),
                    names.place(data.site),
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use routine_contracts::Irql;

    use super::*;
    use crate::rules::model::{Call, DataAccess, DataRef, Entry};
    use crate::rules::tests::TestNames;

    /// Root (0) calls helper (1) at 0x10; the helper reads data at 0x20.
    fn program(runs: Runs, helper: Placement, place: DataPlace, nonpageable: bool) -> Model {
        let mut root = Func::new(Placement::Resident);
        root.calls.push(Call {
            site: 0x10,
            target: 1,
        });
        let mut helper = Func::new(helper);
        helper.data.push(DataRef {
            site: 0x20,
            target: 0x9000,
            place,
            access: DataAccess::Read,
        });
        Model {
            functions: vec![root, helper],
            entries: vec![Entry {
                function: 0,
                runs,
                region: None,
                root: 0,
                callers_irql: false,
                declared_only: false,
            }],
            nonpageable,
            guarded: HashSet::new(),
        }
    }

    const PAGED: DataPlace = DataPlace::Pageable { locked: false };

    fn rules(m: &Model) -> Vec<(Rule, Level)> {
        check(m, &TestNames)
            .iter()
            .map(|f| (f.rule, f.level))
            .collect()
    }

    #[test]
    fn dispatch_code_reading_pageable_data_is_an_error() {
        let m = program(
            Runs::Raised(Irql::Dispatch),
            Placement::Resident,
            PAGED,
            false,
        );
        let found = check(&m, &TestNames);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rule, RULE);
        assert_eq!(found[0].path, vec![(0, 0x10), (1, 0x20)]);
        assert_eq!(found[0].data, Some(0x9000));
        assert!(
            found[0].message.contains("reads <data 0x9000>"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn resident_data_and_paged_helpers_are_not_this_rule() {
        let mut m = program(
            Runs::Raised(Irql::Dispatch),
            Placement::Resident,
            PAGED,
            false,
        );
        m.functions[1].data.clear();
        assert!(rules(&m).is_empty());
        // A paged helper is PC002's: its data is not looked at again.
        let m = program(
            Runs::Raised(Irql::Dispatch),
            Placement::Pageable,
            PAGED,
            false,
        );
        assert!(rules(&m).is_empty());
    }

    #[test]
    fn locked_sections_and_power_paths() {
        let locked = DataPlace::Pageable { locked: true };
        let at = |runs, place, nonpageable| {
            rules(&program(runs, Placement::Resident, place, nonpageable))
        };
        assert_eq!(
            at(Runs::Raised(Irql::Dispatch), locked, true),
            vec![(Rule::LockedSection, Level::Warning)]
        );
        assert_eq!(at(Runs::PowerDown, locked, true), vec![]);
        assert_eq!(at(Runs::PowerDown, PAGED, true), vec![(RULE, Level::Error)]);
        assert_eq!(at(Runs::PowerDown, PAGED, false), vec![]);
        assert_eq!(
            at(Runs::PowerUp { strict: true }, PAGED, true),
            vec![(RULE, Level::Error)]
        );
        assert_eq!(
            at(Runs::PowerUp { strict: false }, PAGED, false),
            vec![(Rule::SlowResume, Level::Warning)]
        );
        assert_eq!(at(Runs::Passive, PAGED, true), vec![]);
    }

    #[test]
    fn init_data_after_driver_entry() {
        let at = |runs| rules(&program(runs, Placement::Pageable, DataPlace::Init, false));
        assert_eq!(at(Runs::Passive), vec![(RULE, Level::Error)]);
        assert_eq!(at(Runs::PowerDown), vec![(RULE, Level::Error)]);
        assert_eq!(at(Runs::Init), vec![]);
        // INIT code may use INIT data.
        let m = program(
            Runs::Passive,
            Placement::Discardable,
            DataPlace::Init,
            false,
        );
        assert!(rules(&m).is_empty());
    }

    #[test]
    fn the_guard_covers_power_paths_only() {
        let mut m = program(Runs::PowerDown, Placement::Resident, PAGED, true);
        m.guarded.insert(0x10);
        assert!(rules(&m).is_empty());
        m.entries[0].runs = Runs::Raised(Irql::Dispatch);
        assert_eq!(rules(&m), vec![(RULE, Level::Error)]);
    }
}
