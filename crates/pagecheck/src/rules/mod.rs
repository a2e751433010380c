//! The guide's third step on the binary: "determine whether your driver requires access to
//! pageable data outside the driver, such as files, the registry, or paged pool, during power
//! transitions", and the IRQL contracts that come with it. One rule per module (check,
//! message, fix, help page, tests), all reading the same small [`model`]:
//!
//! | rule | module |
//! |---|---|
//! | PC010 `routine-above-irql` | [`irql`] |
//! | PC011 `power-path-pageable-access` | [`power_access`] |
//! | PC012 `pageable-data-from-resident` | [`pageable_data`] |
//!
//! [`answer`] answers the guide's question for the driver. [`wire`] fills the model from the
//! analysis ([`scan`] reads what the call graph does not hold) and turns findings into the
//! report's violations.

pub mod answer;
pub mod irql;
pub mod model;
pub mod pageable_data;
pub mod power_access;
pub mod scan;
pub mod wire;

use crate::checks::{Level, Rule};
use model::{Entry, Path};

/// A finding of one of these rules, in model terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The rule (PC010-PC012, or PC008/PC009 for data the way they apply to code).
    pub rule: Rule,
    /// Error or warning.
    pub level: Level,
    /// The entry it is reported from (index into [`model::Model::entries`]).
    pub entry: usize,
    /// From the entry to the offending instruction.
    pub path: Path,
    /// The data referenced, for a data finding.
    pub data: Option<u32>,
    /// One line.
    pub message: String,
}

/// How messages name things: the analysis names them from the image and the PDB, tests with
/// plain numbers.
pub trait Names {
    /// A function.
    fn function(&self, function: usize) -> String;
    /// An entry, with the role and registration that make it one.
    fn entry(&self, entry: &Entry) -> String;
    /// A code address (`function+0xoffset`).
    fn place(&self, site: u32) -> String;
    /// A data address, with its variable's name when the PDB has one.
    fn data(&self, rva: u32) -> String;
    /// The call that can make the device power-nonpageable.
    fn nonpageable(&self) -> String;
}

/// Identifiers, names, descriptions, fixes and help pages of the rules defined here.
#[must_use]
pub const fn about(rule: Rule) -> Option<(&'static str, &'static str, &'static str)> {
    match rule {
        Rule::RoutineAboveIrql => Some((irql::NAME, irql::DESCRIPTION, irql::HELP)),
        Rule::PowerPathPageableAccess => Some((
            power_access::NAME,
            power_access::DESCRIPTION,
            power_access::HELP,
        )),
        Rule::PageableDataFromResident => Some((
            pageable_data::NAME,
            pageable_data::DESCRIPTION,
            pageable_data::HELP,
        )),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::Names;
    use super::model::Entry;

    /// Names for synthetic models.
    pub struct TestNames;

    impl Names for TestNames {
        fn function(&self, function: usize) -> String {
            format!("f{function}")
        }
        fn entry(&self, entry: &Entry) -> String {
            format!("`f{}`", entry.function)
        }
        fn place(&self, site: u32) -> String {
            format!("{site:#x}")
        }
        fn data(&self, rva: u32) -> String {
            format!("<data {rva:#x}>")
        }
        fn nonpageable(&self) -> String {
            "WdfDeviceInitSetPowerNotPageable at AddDevice+0x10".to_owned()
        }
    }
}
