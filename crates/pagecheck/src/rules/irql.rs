//! PC010 `routine-above-irql`: code that may run at `DISPATCH_LEVEL` or above (queue, timer,
//! DPC and interrupt callbacks that are not passive-level, code holding a spin lock) calls,
//! through any chain of the driver's own functions, a kernel routine or framework method whose
//! reference page allows it only at a lower IRQL. A registry or file routine at
//! `DISPATCH_LEVEL`, `WdfTimerStop(.., TRUE)` in a DPC, `WdfRequestComplete` in an ISR.
//!
//! The limit comes from [`routine_contracts`]; where an argument lowers it (a `Wait` of
//! `TRUE`, a paged pool type) the argument's value at the call decides, and an unknown value
//! never lowers it. Routines the table does not know are not judged.

use std::collections::HashSet;

use routine_contracts::{Contract, Irql};

use super::model::{Across, Func, Model, Runs};
use super::{Finding, Names};
use crate::checks::{Level, Rule};

/// The rule.
pub const RULE: Rule = Rule::RoutineAboveIrql;
/// Its name.
pub const NAME: &str = "routine-above-irql";
/// What it protects.
pub const DESCRIPTION: &str = "Code that may run at DISPATCH_LEVEL or above (queue, timer, DPC and interrupt callbacks, \
     code holding a spin lock) must not call a kernel routine or framework method whose reference page allows it only at \
     a lower IRQL: registry and file routines, waits, paged pool, passive-only framework methods.";
/// How to fix a finding.
pub const FIX: &str = "move the call to code that runs at PASSIVE_LEVEL (a work item, a queue or timer created with \
     WdfExecutionLevelPassive, outside the lock), or use a routine the page allows at that IRQL";
/// Microsoft's page on IRQLs and the routines drivers may call at each.
pub const HELP: &str = "https://learn.microsoft.com/en-us/windows-hardware/drivers/kernel/managing-hardware-priorities";

/// The argument clause of a message: why the limit is lower than the page's highest.
fn argument_clause(contract: &Contract, argument: Option<u64>, limit: Irql) -> String {
    match (contract.lower, argument) {
        (Some(lower), Some(value)) if limit < contract.max_irql => {
            format!(" when argument {} is {value:#x}", lower.argument)
        }
        _ => String::new(),
    }
}

/// Every call of a routine above its IRQL limit, once per call site, from the entry that runs
/// highest.
#[must_use]
pub fn check(model: &Model, names: &dyn Names) -> Vec<Finding> {
    if !model.calls_out() {
        return Vec::new();
    }
    let mut raised: Vec<(usize, Irql)> = model
        .entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e.runs {
            Runs::Raised(level) if !e.callers_irql => Some((i, level)),
            _ => None,
        })
        .collect();
    // The highest IRQL first: an ISR and a DPC reaching the same call report it from the ISR.
    raised.sort_by_key(|&(i, level)| (std::cmp::Reverse(level), i));
    // One walk for all of them, the highest first: a call a walk reaches from a lower entry
    // after a higher one reached it was judged against the higher IRQL, a stricter limit.
    let order: Vec<usize> = raised.iter().map(|&(i, _)| i).collect();
    let level_of = |index: usize| match model.entries[index].runs {
        Runs::Raised(level) => level,
        _ => Irql::Passive,
    };
    let every = |_: &Func| true;
    let walk = model.walk(
        &order,
        Across {
            enter: &every,
            respect_guard: false,
        },
    );
    let mut seen: HashSet<u32> = HashSet::new();
    let mut out = Vec::new();
    for (at, call, contract) in model.contracted_calls(&walk, false) {
        let entry = &model.entries[at.entry];
        let level = level_of(at.entry);
        if seen.contains(&call.site) {
            continue;
        }
        let limit = contract.irql_limit(call.argument);
        if limit >= level {
            continue;
        }
        seen.insert(call.site);
        out.push(Finding {
            rule: RULE,
            level: Level::Error,
            entry: at.entry,
            path: walk.path_to(at, call.site),
            data: None,
            message: format!(
                "{} may run at {} and calls `{}` at {}, which its reference page allows only at IRQL <= \
                 {}{}: {FIX} ({})",
                names.entry(entry),
                level.name(),
                call.routine,
                names.place(call.site),
                limit.name(),
                argument_clause(contract, call.argument, limit),
                contract.reference
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::rules::model::{Call, Entry, External, Placement};
    use crate::rules::tests::TestNames;

    fn external(site: u32, routine: &str, argument: Option<u64>) -> External {
        External {
            site,
            routine: routine.to_owned(),
            argument,
        }
    }

    fn model(runs: Runs, externals: Vec<External>) -> Model {
        let mut caller = Func::new(Placement::Resident);
        caller.calls.push(Call {
            site: 0x10,
            target: 1,
        });
        let mut helper = Func::new(Placement::Resident);
        helper.externals = externals;
        Model {
            functions: vec![caller, helper],
            entries: vec![Entry {
                function: 0,
                runs,
                region: None,
                root: 0,
                callers_irql: false,
                declared_only: false,
            }],
            nonpageable: false,
            guarded: HashSet::new(),
        }
    }

    #[test]
    fn a_passive_routine_below_a_dispatch_callback_is_reported_with_its_chain() {
        let m = model(
            Runs::Raised(Irql::Dispatch),
            vec![external(0x20, "ZwQueryValueKey", None)],
        );
        let found = check(&m, &TestNames);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, vec![(0, 0x10), (1, 0x20)]);
        assert!(
            found[0].message.contains("ZwQueryValueKey"),
            "{}",
            found[0].message
        );
        assert!(
            found[0].message.contains("PASSIVE_LEVEL"),
            "{}",
            found[0].message
        );
        assert!(
            found[0].message.contains("nf-wdm-zwqueryvaluekey"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn routines_allowed_at_the_level_and_unknown_ones_are_not() {
        let m = model(
            Runs::Raised(Irql::Dispatch),
            vec![
                external(0x20, "WdfRequestComplete", None),
                external(0x21, "KeSetEvent", Some(0)),
                external(0x22, "memcpy", None),
                // Unknown pool type: the page's highest limit applies.
                external(0x23, "ExAllocatePool2", None),
            ],
        );
        assert!(check(&m, &TestNames).is_empty());
    }

    #[test]
    fn an_argument_lowers_the_limit() {
        let m = model(
            Runs::Raised(Irql::Dispatch),
            vec![
                external(0x20, "WdfTimerStop", Some(1)),
                external(
                    0x21,
                    "ExAllocatePool2",
                    Some(routine_contracts::POOL_FLAG_PAGED),
                ),
                external(
                    0x22,
                    "ExAllocatePool2",
                    Some(routine_contracts::POOL_FLAG_NON_PAGED),
                ),
            ],
        );
        let found = check(&m, &TestNames);
        let sites: Vec<u32> = found
            .iter()
            .map(|f| f.path.last().map_or(0, |p| p.1))
            .collect();
        assert_eq!(sites, vec![0x20, 0x21]);
        assert!(
            found[0].message.contains("when argument 2 is 0x1"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn an_isr_may_not_call_dispatch_routines_but_a_dpc_may() {
        let externals = vec![external(0x20, "WdfRequestComplete", None)];
        assert_eq!(
            check(
                &model(Runs::Raised(Irql::Dirql), externals.clone()),
                &TestNames
            )
            .len(),
            1
        );
        assert!(
            check(
                &model(Runs::Raised(Irql::Dispatch), externals.clone()),
                &TestNames
            )
            .is_empty()
        );
        assert!(
            check(
                &model(Runs::PowerUp { strict: true }, externals),
                &TestNames
            )
            .is_empty()
        );
    }

    #[test]
    fn a_lock_region_is_checked_only_where_the_lock_is_held() {
        let mut m = model(Runs::Raised(Irql::Dispatch), Vec::new());
        m.functions[0].externals = vec![
            external(0x30, "WdfRegistryQueryULong", None),
            external(0x31, "WdfRegistryAssignULong", None),
        ];
        m.entries[0].region = Some(vec![0x31]);
        let found = check(&m, &TestNames);
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("WdfRegistryAssignULong"));
    }

    #[test]
    fn a_callback_at_its_callers_irql_is_not_judged() {
        let mut m = model(
            Runs::Raised(Irql::Dispatch),
            vec![external(
                0x20,
                "WdfRequestRetrieveUnsafeUserInputBuffer",
                None,
            )],
        );
        assert_eq!(check(&m, &TestNames).len(), 1);
        m.entries[0].callers_irql = true;
        assert!(check(&m, &TestNames).is_empty());
    }

    #[test]
    fn each_call_site_is_reported_once() {
        let mut m = model(
            Runs::Raised(Irql::Dispatch),
            vec![external(0x20, "ZwClose", None)],
        );
        m.entries.push(Entry {
            function: 1,
            runs: Runs::Raised(Irql::Dirql),
            region: None,
            root: 1,
            callers_irql: false,
            declared_only: false,
        });
        let found = check(&m, &TestNames);
        assert_eq!(found.len(), 1);
        // From the entry that runs highest.
        assert_eq!(found[0].entry, 1);
    }
}
