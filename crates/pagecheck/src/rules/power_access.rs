//! PC011 `power-path-pageable-access`: in a driver that can make its device
//! power-nonpageable, a power-up or power-down callback reaches file, registry or paged-pool
//! access. While such a device changes power state the paging device may be off, so the
//! access can hang the transition: Microsoft's guide asks the driver to decide whether it
//! needs such access during transitions, and to use `WdfDevStateIsNP` to know when it may.
//!
//! An access that lies only on paths where a `WdfDevStateIsNP` test returned FALSE is allowed
//! ([`super::model::Model::guarded`]), and so is every access of a power-pageable driver:
//! the guide's answer for each driver is in [`super::answer`].

use std::collections::HashSet;

use routine_contracts::Access;

use super::model::{Across, Func, Model, Runs};
use super::{Finding, Names};
use crate::checks::{Level, Rule};

/// The rule.
pub const RULE: Rule = Rule::PowerPathPageableAccess;
/// Its name.
pub const NAME: &str = "power-path-pageable-access";
/// What it protects.
pub const DESCRIPTION: &str = "A driver that can make its device power-nonpageable must not reach file, registry or \
     paged-pool access from a power-up or power-down callback, except on paths where WdfDevStateIsNP returned FALSE: \
     during such a device's transitions the paging device may be off.";
/// How to fix a finding.
pub const FIX: &str = "do it only when WdfDevStateIsNP(WdfDeviceGetDevicePowerState(device)) is FALSE, move it out \
     of the power callbacks (a work item, EvtDevicePrepareHardware or EvtDeviceReleaseHardware), use nonpaged pool, \
     or keep the device power-pageable";
/// Microsoft's guide, whose third step this is.
pub const HELP: &str = "https://learn.microsoft.com/en-us/windows-hardware/drivers/wdf/creating-pageable-code-in-a-kmdf-driver";

/// Whether an access makes the transition touch pageable data outside the driver.
#[must_use]
pub const fn is_pageable(access: Access) -> bool {
    matches!(access, Access::File | Access::Registry | Access::PagedPool)
}

/// Every unguarded file, registry or paged-pool access on a power path of a driver that can
/// be power-nonpageable, once per call site.
#[must_use]
pub fn check(model: &Model, names: &dyn Names) -> Vec<Finding> {
    if !model.nonpageable || !model.calls_out() {
        return Vec::new();
    }
    let mut seen: HashSet<u32> = HashSet::new();
    let mut out = Vec::new();
    let every = |_: &Func| true;
    let walk = model.walk(
        &model.power_entries(),
        Across {
            enter: &every,
            respect_guard: true,
        },
    );
    for (at, call, contract) in model.contracted_calls(&walk, true) {
        let entry = &model.entries[at.entry];
        if seen.contains(&call.site) {
            continue;
        }
        let access = contract.access(call.argument);
        if !is_pageable(access) {
            continue;
        }
        seen.insert(call.site);
        let path = if matches!(entry.runs, Runs::PowerUp { .. }) {
            "returns the device to D0"
        } else {
            "runs while the device leaves D0"
        };
        out.push(Finding {
            rule: RULE,
            level: Level::Error,
            entry: at.entry,
            path: walk.path_to(at, call.site),
            data: None,
            message: format!(
                "{} {path} and reaches {} access `{}` at {}, not behind a WdfDevStateIsNP test, and the \
                 driver can be power-nonpageable ({}): the paging device may be off; {FIX}",
                names.entry(entry),
                access.name(),
                call.routine,
                names.place(call.site),
                names.nonpageable()
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

    /// `D0Exit` (0) -> `WriteCounters` (1) at 0x10 -> registry write at 0x20; `D0Exit` also allocates
    /// pool at 0x11 with `argument`.
    fn d0_exit(nonpageable: bool, guarded: &[u32], argument: Option<u64>) -> Model {
        let mut exit = Func::new(Placement::Locked);
        exit.calls.push(Call {
            site: 0x10,
            target: 1,
        });
        exit.externals.push(External {
            site: 0x11,
            routine: "ExAllocatePoolWithTag".to_owned(),
            argument,
        });
        let mut write = Func::new(Placement::Locked);
        write.externals.push(External {
            site: 0x20,
            routine: "WdfRegistryAssignULong".to_owned(),
            argument: None,
        });
        Model {
            functions: vec![exit, write],
            entries: vec![Entry {
                function: 0,
                runs: Runs::PowerDown,
                region: None,
                root: 0,
                callers_irql: false,
                declared_only: false,
            }],
            nonpageable,
            guarded: guarded.iter().copied().collect::<HashSet<u32>>(),
        }
    }

    #[test]
    fn registry_below_d0_exit_of_a_nonpageable_driver_is_an_error() {
        let found = check(&d0_exit(true, &[], Some(0)), &TestNames);
        assert_eq!(found.len(), 1, "nonpaged pool is no finding");
        assert_eq!(found[0].path, vec![(0, 0x10), (1, 0x20)]);
        assert!(
            found[0]
                .message
                .contains("registry access `WdfRegistryAssignULong`")
        );
        assert!(
            found[0]
                .message
                .contains("WdfDeviceInitSetPowerNotPageable at")
        );
    }

    #[test]
    fn a_guarded_call_of_the_helper_covers_its_accesses() {
        assert!(check(&d0_exit(true, &[0x10], Some(0)), &TestNames).is_empty());
        // A guard on the access itself too.
        assert!(check(&d0_exit(true, &[0x20], Some(0)), &TestNames).is_empty());
    }

    #[test]
    fn a_power_pageable_driver_may() {
        assert!(check(&d0_exit(false, &[], Some(1)), &TestNames).is_empty());
    }

    #[test]
    fn paged_pool_is_an_access_and_an_unknown_pool_type_is_not_claimed() {
        let paged = check(&d0_exit(true, &[0x10], Some(1)), &TestNames);
        assert_eq!(paged.len(), 1);
        assert!(
            paged[0]
                .message
                .contains("paged pool access `ExAllocatePoolWithTag`")
        );
        assert!(check(&d0_exit(true, &[0x10], None), &TestNames).is_empty());
    }

    #[test]
    fn only_power_paths_are_checked() {
        let mut m = d0_exit(true, &[], Some(0));
        m.entries[0].runs = Runs::Passive;
        assert!(check(&m, &TestNames).is_empty());
        m.entries[0].runs = Runs::PowerUp { strict: false };
        assert_eq!(check(&m, &TestNames).len(), 1);
    }
}
