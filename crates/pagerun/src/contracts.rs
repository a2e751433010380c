//! What the host asks of the routine contract table: the highest IRQL a kernel or framework
//! routine may be called at, and whether it touches pageable data outside the driver (files,
//! the registry, paged pool).
//!
//! The table itself belongs to `cargo pagecheck`'s pageable-data rules (one table serves both
//! tools, each row from the routine's reference page). Until that table is part of this
//! workspace the host runs with [`Unavailable`], which knows no routine: the run-time IRQL and
//! paging-disk-off checks of calls are then not made, and the report says so. Everything else
//! (paging enforcement, IRQL and locks on return, requests, bug checks) does not depend on it.

/// The kind of pageable data a routine touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageableData {
    /// File I/O.
    File,
    /// The registry.
    Registry,
    /// Paged pool (only when the call's arguments ask for paged pool).
    PagedPool,
}

impl PageableData {
    /// As the report says it.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            PageableData::File => "a file",
            PageableData::Registry => "the registry",
            PageableData::PagedPool => "paged pool",
        }
    }
}

/// The questions the host asks of a routine, by its name (`KeSetEvent`, `WdfRegistryQueryULong`).
pub trait Contracts {
    /// The highest IRQL the routine may be called at, if the table knows the routine.
    fn max_irql(&self, routine: &str) -> Option<u8>;
    /// The pageable data outside the driver the routine touches, if any.
    fn pageable_data(&self, routine: &str) -> Option<PageableData>;
    /// Whether a table is behind this (for the report).
    fn available(&self) -> bool;
}

/// No table: no routine is known.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unavailable;

impl Contracts for Unavailable {
    fn max_irql(&self, _routine: &str) -> Option<u8> {
        None
    }
    fn pageable_data(&self, _routine: &str) -> Option<PageableData> {
        None
    }
    fn available(&self) -> bool {
        false
    }
}

/// The table the host uses.
#[must_use]
pub fn table() -> Box<dyn Contracts> {
    Box::new(Unavailable)
}
