//! What Microsoft's reference pages promise and demand of the kernel routines and KMDF methods
//! a driver calls: the highest IRQL each may be called at, and whether it touches pageable
//! data outside the driver (files, the registry, paged pool), with the argument that decides
//! when one does.
//!
//! One table, two readers: `cargo pagecheck` checks the linked image against it (a routine
//! reached from code that may run at a higher IRQL; file, registry or paged-pool access on the
//! power path of a driver that can be power-nonpageable), and the run-time simulator checks
//! each call as it happens.
//!
//! Every row comes from the routine's reference page, whose address it carries
//! ([`Contract::reference`]): the IRQL from the page's requirements table or, where that says
//! "see Remarks", from the remarks. A routine without a page, or whose page states no IRQL,
//! has no row: [`lookup`] returns `None` and readers must treat it as unknown, never guess.
//!
//! Arguments are numbered as the routine receives them: for a framework method, argument 0 is
//! the `WDF_DRIVER_GLOBALS` pointer that every `WdfFunctions` entry takes first, so
//! `WdfMemoryCreate(Attributes, PoolType, ...)` has its pool type in argument 2.
#![no_std]

#[cfg(test)]
extern crate std;

/// The address every [`Contract::reference`] starts with.
pub const REFERENCE_BASE: &str = "https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/";

/// An interrupt request level, as the reference pages bound them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Irql {
    /// `PASSIVE_LEVEL` (0).
    Passive,
    /// `APC_LEVEL` (1).
    Apc,
    /// `DISPATCH_LEVEL` (2).
    Dispatch,
    /// A device's interrupt level (`DIRQL`): an interrupt service routine and the code
    /// synchronised with it.
    Dirql,
    /// Any level ("Any level" on the page).
    High,
}

impl Irql {
    /// The level as the pages spell it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Irql::Passive => "PASSIVE_LEVEL",
            Irql::Apc => "APC_LEVEL",
            Irql::Dispatch => "DISPATCH_LEVEL",
            Irql::Dirql => "DIRQL",
            Irql::High => "HIGH_LEVEL",
        }
    }
}

/// How the driver reaches the routine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Binding {
    /// A kernel-mode export, called through the import address table.
    Import,
    /// A KMDF method, called through the `WdfFunctions` table.
    Framework,
}

/// How an argument encodes a pool type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolEncoding {
    /// `POOL_FLAGS` (`ExAllocatePool2`, `ExAllocatePool3`): paged when `POOL_FLAG_PAGED`
    /// (0x100) is set.
    PoolFlags,
    /// `POOL_TYPE`: paged when the base type is `PagedPool` (bit 0 set: `PagedPool` 1,
    /// `PagedPoolCacheAligned` 5, `PagedPoolSession` 33, `PagedPoolCacheAlignedSession` 37;
    /// the modifier bits 8, 16, 256 and 512 leave it alone; every `NonPaged*` value is even).
    PoolType,
}

/// `POOL_FLAG_PAGED` of `wdm.h`.
pub const POOL_FLAG_PAGED: u64 = 0x100;
/// `POOL_FLAG_NON_PAGED` of `wdm.h`.
pub const POOL_FLAG_NON_PAGED: u64 = 0x40;
/// `PagedPool` of `POOL_TYPE`.
pub const PAGED_POOL: u64 = 1;
/// `NonPagedPoolNx` of `POOL_TYPE`.
pub const NON_PAGED_POOL_NX: u64 = 512;

impl PoolEncoding {
    /// True when `value`, passed in an argument of this encoding, selects paged pool.
    #[must_use]
    pub const fn is_paged(self, value: u64) -> bool {
        match self {
            PoolEncoding::PoolFlags => value & POOL_FLAG_PAGED != 0,
            // A POOL_TYPE is a 32-bit enum: the register's upper half is not part of it.
            PoolEncoding::PoolType => value & 1 != 0,
        }
    }
}

/// What pageable data outside the driver a routine touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Touches {
    /// Nothing the pages call pageable.
    Nothing,
    /// Files: opens, reads, writes, queries or flushes them.
    File,
    /// The registry: opens, reads, writes or closes keys and values.
    Registry,
    /// Paged pool, always (a paged lookaside list).
    PagedPool,
    /// Paged pool when an argument says so.
    Pool {
        /// The argument holding the pool type.
        argument: u8,
        /// How it holds it.
        encoding: PoolEncoding,
    },
}

/// A test on an argument's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Condition {
    /// Zero (`FALSE`, `NULL`).
    Zero,
    /// Not zero (`TRUE`, a pointer).
    NonZero,
    /// Equal to a value of an enumeration.
    Equals(u64),
    /// Anything but a value of an enumeration.
    NotEquals(u64),
    /// A pool type or pool flags that select paged pool.
    Paged(PoolEncoding),
}

impl Condition {
    /// Whether `value` meets the condition. Enumerations and `BOOLEAN`s are compared on their
    /// low 32 bits, since the upper half of the register is not part of them.
    #[must_use]
    pub const fn holds(self, value: u64) -> bool {
        let low = value & 0xffff_ffff;
        match self {
            Condition::Zero => value == 0,
            Condition::NonZero => value != 0,
            Condition::Equals(v) => low == v,
            Condition::NotEquals(v) => low != v,
            Condition::Paged(encoding) => encoding.is_paged(value),
        }
    }
}

/// A lower IRQL limit that applies when an argument meets a condition (`WdfTimerStop` with
/// `Wait` = `TRUE`: `PASSIVE_LEVEL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lower {
    /// The argument.
    pub argument: u8,
    /// When the limit applies.
    pub when: Condition,
    /// The limit.
    pub irql: Irql,
}

/// One routine's contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Contract {
    /// The name the image imports or the `WdfFunctions` index stands for.
    pub name: &'static str,
    /// Import or framework method.
    pub binding: Binding,
    /// The highest IRQL the page allows for any argument.
    pub max_irql: Irql,
    /// A lower limit for some argument values.
    pub lower: Option<Lower>,
    /// The pageable data outside the driver it touches.
    pub touches: Touches,
    /// The Microsoft reference page the row comes from.
    pub reference: &'static str,
}

/// What a call touches, once its deciding argument is known (or known to be unknown).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// No pageable data outside the driver.
    None,
    /// Files.
    File,
    /// The registry.
    Registry,
    /// Paged pool.
    PagedPool,
    /// Paged pool if the pool-type argument, which the caller could not read, selects it.
    PoolUnknown,
}

impl Access {
    /// How messages name it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Access::None => "nothing pageable",
            Access::File => "file",
            Access::Registry => "registry",
            Access::PagedPool => "paged pool",
            Access::PoolUnknown => "pool of a type not known from the image",
        }
    }
}

impl Contract {
    const fn new(
        name: &'static str,
        binding: Binding,
        max_irql: Irql,
        reference: &'static str,
    ) -> Contract {
        Contract {
            name,
            binding,
            max_irql,
            lower: None,
            touches: Touches::Nothing,
            reference,
        }
    }

    /// The row with its file or registry access.
    const fn touches(mut self, touches: Touches) -> Contract {
        self.touches = touches;
        self
    }

    /// The row of an allocator whose `argument` chooses the pool: paged pool is a touch, and
    /// the pages limit paged allocations to `APC_LEVEL` (which matters only for a routine
    /// otherwise allowed higher).
    const fn pool(mut self, argument: u8, encoding: PoolEncoding) -> Contract {
        self.touches = Touches::Pool { argument, encoding };
        if matches!(self.max_irql, Irql::Dispatch | Irql::Dirql | Irql::High) {
            self.lower = Some(Lower {
                argument,
                when: Condition::Paged(encoding),
                irql: Irql::Apc,
            });
        }
        self
    }

    /// The row with a lower limit for some values of `argument`.
    const fn lower(mut self, argument: u8, when: Condition, irql: Irql) -> Contract {
        self.lower = Some(Lower {
            argument,
            when,
            irql,
        });
        self
    }

    /// The argument whose value decides the IRQL limit or the pool type, if any.
    #[must_use]
    pub const fn argument_of_interest(&self) -> Option<u8> {
        match (self.touches, self.lower) {
            (Touches::Pool { argument, .. }, _) => Some(argument),
            (_, Some(lower)) => Some(lower.argument),
            _ => None,
        }
    }

    /// The highest IRQL a call may be made at, given the deciding argument's value when the
    /// caller knows it. Unknown, the page's highest limit applies: a reader that wants to
    /// report a violation must not assume the worse argument.
    #[must_use]
    pub const fn irql_limit(&self, argument: Option<u64>) -> Irql {
        match (self.lower, argument) {
            (Some(lower), Some(value)) if lower.when.holds(value) => lower.irql,
            _ => self.max_irql,
        }
    }

    /// What a call touches, given the deciding argument's value when the caller knows it.
    #[must_use]
    pub const fn access(&self, argument: Option<u64>) -> Access {
        match self.touches {
            Touches::Nothing => Access::None,
            Touches::File => Access::File,
            Touches::Registry => Access::Registry,
            Touches::PagedPool => Access::PagedPool,
            Touches::Pool { encoding, .. } => match argument {
                Some(value) if encoding.is_paged(value) => Access::PagedPool,
                Some(_) => Access::None,
                None => Access::PoolUnknown,
            },
        }
    }
}

/// A kernel export's row; the page path is under [`REFERENCE_BASE`].
macro_rules! k {
    ($name:literal, $irql:expr, $page:literal) => {
        $crate::Contract::new(
            $name,
            $crate::Binding::Import,
            $irql,
            concat!(
                "https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/",
                $page
            ),
        )
    };
}

/// A framework method's row.
macro_rules! wdf {
    ($name:literal, $irql:expr, $page:literal) => {
        $crate::Contract::new(
            $name,
            $crate::Binding::Framework,
            $irql,
            concat!(
                "https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/",
                $page
            ),
        )
    };
}

mod table;

pub use table::CONTRACTS;

/// The contract of the routine named `name` (an import's name without its DLL, or a framework
/// method's name), or `None` for a routine the table does not know.
#[must_use]
pub fn lookup(name: &str) -> Option<&'static Contract> {
    CONTRACTS
        .binary_search_by(|c| c.name.cmp(name))
        .ok()
        .map(|i| &CONTRACTS[i])
}

/// The argument of `routine` whose value decides its IRQL limit or pool type (for a dataflow
/// pass to read at each call), or `None`.
#[must_use]
pub fn argument_of_interest(routine: &str) -> Option<u8> {
    lookup(routine).and_then(Contract::argument_of_interest)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn rows_are_sorted_and_unique() {
        for pair in CONTRACTS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} must come before {}",
                pair[0].name,
                pair[1].name
            );
        }
        let mut seen = HashSet::new();
        for c in CONTRACTS {
            assert!(seen.insert(c.name), "{} twice", c.name);
            assert_eq!(lookup(c.name), Some(c));
        }
        assert_eq!(lookup("NoSuchRoutine"), None);
        assert_eq!(lookup(""), None);
    }

    #[test]
    fn every_row_names_its_page() {
        for c in CONTRACTS {
            let page = c
                .reference
                .strip_prefix(REFERENCE_BASE)
                .unwrap_or_else(|| panic!("{}: {}", c.name, c.reference));
            let (header, file) = page.split_once('/').unwrap_or(("", ""));
            // Function pages are `header/nf-header-name`.
            assert!(
                file.starts_with(&std::format!("nf-{header}-")),
                "{}: {page}",
                c.name
            );
            // Framework methods come from the wdf* headers, kernel routines from others.
            assert_eq!(
                header.starts_with("wdf"),
                c.binding == Binding::Framework,
                "{}: {page}",
                c.name
            );
            assert_eq!(
                c.name.starts_with("Wdf"),
                c.binding == Binding::Framework,
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn pool_rows_lower_the_limit_on_the_same_argument() {
        let mut pools = 0;
        for c in CONTRACTS {
            if let Touches::Pool { argument, encoding } = c.touches {
                pools += 1;
                assert_eq!(c.argument_of_interest(), Some(argument), "{}", c.name);
                match c.lower {
                    Some(lower) => {
                        assert_eq!(lower.argument, argument, "{}", c.name);
                        assert_eq!(lower.when, Condition::Paged(encoding), "{}", c.name);
                        assert_eq!(lower.irql, Irql::Apc, "{}", c.name);
                    }
                    None => assert!(c.max_irql <= Irql::Apc, "{}", c.name),
                }
            }
            if let Some(lower) = c.lower {
                assert!(
                    lower.irql < c.max_irql,
                    "{}: the lower limit is not lower",
                    c.name
                );
            }
        }
        assert!(pools >= 10, "{pools}");
    }

    #[test]
    fn pool_encodings() {
        use PoolEncoding::{PoolFlags, PoolType};
        assert!(PoolFlags.is_paged(POOL_FLAG_PAGED));
        assert!(PoolFlags.is_paged(POOL_FLAG_PAGED | 0x8));
        assert!(!PoolFlags.is_paged(POOL_FLAG_NON_PAGED));
        assert!(!PoolFlags.is_paged(0x80));
        // PagedPool, PagedPoolCacheAligned, PagedPoolSession, PagedPoolCacheAlignedSession.
        for paged in [1, 5, 33, 37, 1 | 8, 1 | 16] {
            assert!(PoolType.is_paged(paged), "{paged}");
        }
        // NonPagedPool, NonPagedPoolCacheAligned, NonPagedPoolSession, NonPagedPoolNx,
        // NonPagedPoolNxCacheAligned, NonPagedPoolSessionNx.
        for nonpaged in [0, 4, 32, 512, 516, 544] {
            assert!(!PoolType.is_paged(nonpaged), "{nonpaged}");
        }
    }

    #[test]
    fn pool_type_decides_access_and_limit() {
        let pool2 = lookup("ExAllocatePool2").expect("row");
        assert_eq!(pool2.argument_of_interest(), Some(0));
        assert_eq!(pool2.access(Some(POOL_FLAG_PAGED)), Access::PagedPool);
        assert_eq!(pool2.access(Some(POOL_FLAG_NON_PAGED)), Access::None);
        assert_eq!(pool2.access(None), Access::PoolUnknown);
        assert_eq!(pool2.irql_limit(Some(POOL_FLAG_PAGED)), Irql::Apc);
        assert_eq!(pool2.irql_limit(Some(POOL_FLAG_NON_PAGED)), Irql::Dispatch);
        assert_eq!(pool2.irql_limit(None), Irql::Dispatch);

        let memory = lookup("WdfMemoryCreate").expect("row");
        assert_eq!(memory.binding, Binding::Framework);
        assert_eq!(argument_of_interest("WdfMemoryCreate"), Some(2));
        assert_eq!(memory.access(Some(PAGED_POOL)), Access::PagedPool);
        assert_eq!(memory.access(Some(NON_PAGED_POOL_NX)), Access::None);
    }

    #[test]
    fn waits_lower_the_limit() {
        let stop = lookup("WdfTimerStop").expect("row");
        assert_eq!(stop.irql_limit(Some(1)), Irql::Passive);
        assert_eq!(stop.irql_limit(Some(0)), Irql::Dispatch);
        assert_eq!(stop.irql_limit(None), Irql::Dispatch);
        let wait = lookup("KeWaitForSingleObject").expect("row");
        // A NULL timeout waits forever.
        assert_eq!(wait.irql_limit(Some(0)), Irql::Apc);
        let set = lookup("KeSetEvent").expect("row");
        assert_eq!(set.irql_limit(Some(1)), Irql::Apc);
        assert_eq!(set.irql_limit(Some(0)), Irql::Dispatch);
        // Only WdfIoTargetLeaveSentIoPending (3) may be used at DISPATCH_LEVEL.
        let target_stop = lookup("WdfIoTargetStop").expect("row");
        assert_eq!(target_stop.irql_limit(Some(3)), Irql::Dispatch);
        assert_eq!(target_stop.irql_limit(Some(1)), Irql::Passive);
        // A BOOLEAN in a register whose upper half is stale is still FALSE.
        assert!(Condition::Equals(3).holds(0xdead_0000_0000_0003));
    }

    #[test]
    fn the_issue_families_are_covered() {
        for (name, access) in [
            ("ZwCreateFile", Access::File),
            ("ZwWriteFile", Access::File),
            ("ZwReadFile", Access::File),
            ("ZwQueryValueKey", Access::Registry),
            ("ZwSetValueKey", Access::Registry),
            ("ZwOpenKey", Access::Registry),
            ("RtlWriteRegistryValue", Access::Registry),
            ("RtlQueryRegistryValues", Access::Registry),
            ("IoOpenDeviceRegistryKey", Access::Registry),
            ("WdfRegistryAssignULong", Access::Registry),
            ("WdfRegistryQueryULong", Access::Registry),
            ("WdfDeviceOpenRegistryKey", Access::Registry),
            ("WdfFdoInitOpenRegistryKey", Access::Registry),
            ("ExInitializePagedLookasideList", Access::PagedPool),
            ("KeStallExecutionProcessor", Access::None),
        ] {
            let c = lookup(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(c.access(None), access, "{name}");
        }
        for (name, paged) in [
            ("ExAllocatePoolWithTag", PAGED_POOL),
            ("ExAllocatePool3", POOL_FLAG_PAGED),
            ("WdfLookasideListCreate", PAGED_POOL),
            ("ExInitializeLookasideListEx", PAGED_POOL),
        ] {
            let c = lookup(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(c.access(Some(paged)), Access::PagedPool, "{name}");
        }
        // Every registry and file routine is PASSIVE_LEVEL only.
        for c in CONTRACTS {
            if matches!(c.touches, Touches::File | Touches::Registry) {
                assert_eq!(c.max_irql, Irql::Passive, "{}", c.name);
            }
        }
    }
}
