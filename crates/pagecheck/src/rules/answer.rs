//! The guide's third step, answered for the driver: "determine whether your driver requires
//! access to pageable data outside the driver, such as files, the registry, or paged pool,
//! during power transitions", and so whether it can call `WdfDeviceInitSetPowerNotPageable`.
//!
//! Every file, registry and paged-pool access its power-up and power-down callbacks reach, and
//! every reference to its own pageable data there, is listed with whether a `WdfDevStateIsNP`
//! test guards it. The answer holds for power-pageable and power-nonpageable drivers alike;
//! for the latter an unguarded access is also a PC011 (or PC012) finding.

use std::collections::HashSet;

use routine_contracts::Access;
use serde::Serialize;

use super::Names;
use super::model::{Across, DataPlace, Func, Model};

/// The answer in one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The image registers no power-up or power-down callback: nothing to answer.
    NoPowerCallbacks,
    /// Its power callbacks touch no pageable data: it can be power-nonpageable.
    NoPageableData,
    /// Every access lies behind a `WdfDevStateIsNP` test: it can be power-nonpageable.
    AllGuarded,
    /// Some access is unguarded: power-pageable, or guard them.
    Unguarded,
    /// Nothing unguarded is known, but some allocation's pool type is not known from the image.
    PoolTypeUnknown,
}

/// One access to pageable data on a power path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PowerAccess {
    /// `file`, `registry`, `paged-pool`, `pool-type-unknown` or `pageable-data`.
    pub kind: &'static str,
    /// The routine called, for file, registry and pool access.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routine: Option<String>,
    /// The data, for a reference to the driver's own pageable data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The power callback it is reached from.
    pub callback: String,
    /// RVA of the call or data reference.
    pub site: u32,
    /// `function+0xoffset` of the site.
    pub place: String,
    /// True when it lies only on paths where a `WdfDevStateIsNP` test returned FALSE.
    pub guarded: bool,
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ThirdStep {
    /// In one word.
    pub verdict: Verdict,
    /// In one sentence.
    pub answer: String,
    /// Whether the driver can make its device power-nonpageable now.
    pub nonpageable: bool,
    /// Power-up and power-down callbacks looked at.
    pub power_callbacks: usize,
    /// Every access, unguarded first.
    pub accesses: Vec<PowerAccess>,
    /// What the answer cannot see into: indirect calls on the power paths (their targets may
    /// touch pageable data), and routines called there that the contract table does not know.
    pub unseen: Unseen,
}

/// What the power paths do that the answer does not see into.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Unseen {
    /// Calls and jumps through a pointer in functions the power callbacks reach.
    pub indirect_calls: usize,
    /// Routines they call that have no contract, sorted.
    pub routines_without_contract: Vec<String>,
}

impl ThirdStep {
    /// Unguarded accesses of a known kind.
    #[must_use]
    pub fn unguarded(&self) -> usize {
        self.accesses
            .iter()
            .filter(|a| !a.guarded && a.kind != "pool-type-unknown")
            .count()
    }
}

/// The kind of an external access, or `None` when it touches nothing pageable.
const fn kind_of(access: Access) -> Option<&'static str> {
    match access {
        Access::File => Some("file"),
        Access::Registry => Some("registry"),
        Access::PagedPool => Some("paged-pool"),
        Access::PoolUnknown => Some("pool-type-unknown"),
        Access::None => None,
    }
}

/// Answers the third step for `model`.
#[must_use]
pub fn answer(model: &Model, names: &dyn Names) -> ThirdStep {
    let every = |_: &Func| true;
    let mut seen: HashSet<u32> = HashSet::new();
    let mut accesses = Vec::new();
    let mut unseen = Unseen::default();
    let entries = model.power_entries();
    let callbacks = entries.len();
    let all = model.walk(
        &entries,
        Across {
            enter: &every,
            respect_guard: false,
        },
    );
    // The function of each access, to judge its guard once all are known.
    let mut functions = Vec::new();
    for &at in &all.order {
        let f = at.function;
        let func = &model.functions[f];
        let callback = || names.function(model.entries[at.entry].function);
        unseen.indirect_calls += func.indirect;
        for call in &func.externals {
            let Some(contract) = routine_contracts::lookup(&call.routine) else {
                if !unseen.routines_without_contract.contains(&call.routine) {
                    unseen.routines_without_contract.push(call.routine.clone());
                }
                continue;
            };
            let Some(kind) = kind_of(contract.access(call.argument)) else {
                continue;
            };
            if !model.counts(at, call.site, false) || !seen.insert(call.site) {
                continue;
            }
            functions.push(f);
            accesses.push(PowerAccess {
                kind,
                routine: Some(call.routine.clone()),
                data: None,
                callback: callback(),
                site: call.site,
                place: names.place(call.site),
                guarded: false,
            });
        }
        for data in &func.data {
            // A section the driver locks is in memory while it is locked.
            if data.place != (DataPlace::Pageable { locked: false })
                || !model.counts(at, data.site, false)
                || !seen.insert(data.site)
            {
                continue;
            }
            functions.push(f);
            accesses.push(PowerAccess {
                kind: "pageable-data",
                routine: None,
                data: Some(names.data(data.target)),
                callback: callback(),
                site: data.site,
                place: names.place(data.site),
                guarded: false,
            });
        }
    }
    // An access is guarded when no power callback reaches it but through a WdfDevStateIsNP
    // test: its function is reached only across guarded calls, or the site itself lies on
    // the guarded side of a test. (A second walk, made only when there is something to judge.)
    if !accesses.is_empty() {
        let unguarded = model.walk(
            &entries,
            Across {
                enter: &every,
                respect_guard: true,
            },
        );
        for (access, &f) in accesses.iter_mut().zip(&functions) {
            access.guarded = !unguarded.reached(f) || model.guarded.contains(&access.site);
        }
    }
    accesses.sort_by_key(|a| (a.guarded, a.kind == "pool-type-unknown", a.site));
    unseen.routines_without_contract.sort();
    let mut step = finish(model.nonpageable, callbacks, accesses);
    step.unseen = unseen;
    step
}

/// The verdict and its sentence.
fn finish(nonpageable: bool, power_callbacks: usize, accesses: Vec<PowerAccess>) -> ThirdStep {
    let known = |a: &&PowerAccess| a.kind != "pool-type-unknown";
    let unguarded = accesses.iter().filter(known).filter(|a| !a.guarded).count();
    let guarded = accesses.iter().filter(known).filter(|a| a.guarded).count();
    let unknown = accesses.len() - unguarded - guarded;
    let unknown_clause = if unknown > 0 {
        format!(
            "; {unknown} pool allocation{} there take{} a pool type the image does not show",
            if unknown == 1 { "" } else { "s" },
            if unknown == 1 { "s" } else { "" }
        )
    } else {
        String::new()
    };
    let (verdict, answer) = if power_callbacks == 0 {
        (
            Verdict::NoPowerCallbacks,
            "no power-up or power-down callback found: nothing to answer".to_owned(),
        )
    } else if unguarded > 0 {
        (
            Verdict::Unguarded,
            format!(
                "must stay power-pageable, or guard {} to pageable data on its power paths with \
                 WdfDevStateIsNP{unknown_clause}",
                if unguarded == 1 {
                    "this access".to_owned()
                } else {
                    format!("these {unguarded} accesses")
                }
            ),
        )
    } else if unknown > 0 {
        (
            Verdict::PoolTypeUnknown,
            format!(
                "cannot tell from the image: its power callbacks touch no other pageable data{unknown_clause}"
            ),
        )
    } else if guarded > 0 {
        (
            Verdict::AllGuarded,
            format!(
                "can call WdfDeviceInitSetPowerNotPageable: its {guarded} access{} to pageable data on power paths \
                 all lie behind a WdfDevStateIsNP test",
                if guarded == 1 { "" } else { "es" }
            ),
        )
    } else {
        (
            Verdict::NoPageableData,
            "can call WdfDeviceInitSetPowerNotPageable: its power callbacks touch no pageable data"
                .to_owned(),
        )
    };
    ThirdStep {
        verdict,
        answer,
        nonpageable,
        power_callbacks,
        accesses,
        unseen: Unseen::default(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::rules::model::{Call, DataAccess, DataRef, Entry, External, Placement, Runs};
    use crate::rules::tests::TestNames;

    fn program(externals: Vec<(u32, &str, Option<u64>)>, guarded: &[u32]) -> Model {
        let mut exit = Func::new(Placement::Resident);
        exit.calls.push(Call {
            site: 0x10,
            target: 1,
        });
        let mut helper = Func::new(Placement::Resident);
        helper.externals = externals
            .into_iter()
            .map(|(site, routine, argument)| External {
                site,
                routine: routine.to_owned(),
                argument,
            })
            .collect();
        Model {
            functions: vec![exit, helper],
            entries: vec![Entry {
                function: 0,
                runs: Runs::PowerDown,
                region: None,
                root: 0,
                callers_irql: false,
                declared_only: false,
            }],
            nonpageable: false,
            guarded: guarded.iter().copied().collect::<HashSet<u32>>(),
        }
    }

    #[test]
    fn no_access_means_it_can_be_nonpageable() {
        let a = answer(
            &program(vec![(0x20, "WdfTimerStart", None)], &[]),
            &TestNames,
        );
        assert_eq!(a.verdict, Verdict::NoPageableData);
        assert!(
            a.answer
                .starts_with("can call WdfDeviceInitSetPowerNotPageable")
        );
        assert_eq!(a.power_callbacks, 1);
    }

    #[test]
    fn unguarded_accesses_are_counted_and_listed_first() {
        let m = program(
            vec![
                (0x20, "ZwWriteFile", None),
                (0x21, "WdfRegistryAssignULong", None),
                (0x22, "ExAllocatePool2", None),
            ],
            &[0x21],
        );
        let a = answer(&m, &TestNames);
        assert_eq!(a.verdict, Verdict::Unguarded);
        assert!(
            a.answer.contains("guard this access to pageable data"),
            "{}",
            a.answer
        );
        assert!(
            a.answer
                .contains("1 pool allocation there takes a pool type"),
            "{}",
            a.answer
        );
        let kinds: Vec<(&str, bool)> = a.accesses.iter().map(|x| (x.kind, x.guarded)).collect();
        assert_eq!(
            kinds,
            vec![
                ("file", false),
                ("pool-type-unknown", false),
                ("registry", true)
            ]
        );
    }

    #[test]
    fn an_access_one_callback_reaches_unguarded_is_unguarded_whatever_the_order() {
        // Entry 0 calls the helper behind the guard (0x10); a second power callback (2)
        // calls it without one (0x30). Listed first or second, the access is unguarded.
        for second_first in [false, true] {
            let mut m = program(vec![(0x20, "ZwWriteFile", None)], &[0x10]);
            let mut d0_entry = Func::new(Placement::Resident);
            d0_entry.calls.push(Call {
                site: 0x30,
                target: 1,
            });
            m.functions.push(d0_entry);
            let other = Entry {
                function: 2,
                runs: Runs::PowerUp { strict: true },
                region: None,
                root: 1,
                callers_irql: false,
                declared_only: false,
            };
            if second_first {
                m.entries.insert(0, other);
            } else {
                m.entries.push(other);
            }
            let a = answer(&m, &TestNames);
            assert_eq!(a.power_callbacks, 2);
            assert_eq!(a.accesses.len(), 1);
            assert!(!a.accesses[0].guarded, "{second_first}: {:?}", a.accesses);
            assert_eq!(a.verdict, Verdict::Unguarded);
        }
    }

    #[test]
    fn a_guarded_helper_call_guards_everything_below_it() {
        let m = program(vec![(0x20, "ZwWriteFile", None)], &[0x10]);
        let a = answer(&m, &TestNames);
        assert_eq!(a.verdict, Verdict::AllGuarded);
        assert!(a.accesses[0].guarded);
    }

    #[test]
    fn own_pageable_data_counts_unless_locked() {
        let mut m = program(Vec::new(), &[]);
        m.functions[1].data.push(DataRef {
            site: 0x30,
            target: 0x9000,
            place: DataPlace::Pageable { locked: true },
            access: DataAccess::Read,
        });
        assert_eq!(answer(&m, &TestNames).verdict, Verdict::NoPageableData);
        m.functions[1].data[0].place = DataPlace::Pageable { locked: false };
        let a = answer(&m, &TestNames);
        assert_eq!(a.verdict, Verdict::Unguarded);
        assert_eq!(a.accesses[0].kind, "pageable-data");
    }

    #[test]
    fn what_the_answer_cannot_see_into_is_listed() {
        let mut m = program(
            vec![
                (0x20, "memcpy", None),
                (0x21, "WdfTimerStart", None),
                (0x22, "memcpy", None),
            ],
            &[],
        );
        m.functions[1].indirect = 2;
        let a = answer(&m, &TestNames);
        assert_eq!(a.verdict, Verdict::NoPageableData);
        assert_eq!(a.unseen.indirect_calls, 2);
        assert_eq!(
            a.unseen.routines_without_contract,
            vec!["memcpy".to_owned()]
        );
    }

    #[test]
    fn nothing_to_answer_without_power_callbacks() {
        let mut m = program(vec![(0x20, "ZwWriteFile", None)], &[]);
        m.entries[0].runs = Runs::Passive;
        assert_eq!(answer(&m, &TestNames).verdict, Verdict::NoPowerCallbacks);
    }
}
