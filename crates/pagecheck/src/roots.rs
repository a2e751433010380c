//! Roots of the reachability check: the role records the placement attributes embed in
//! `.pwrole`, plus `--root ROLE=SYMBOL` from the command line (for C drivers, or Rust
//! drivers that do not use the attributes).

use std::str::FromStr;

use pagewise_roles::Role;

use crate::Error;
use crate::functions::Functions;
use crate::image::Image;
use crate::pdb::Symbols;

/// `ROLE=SYMBOL` as given to `--root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootSpec {
    /// The role.
    pub role: Role,
    /// A public or module symbol name: a C name, a Rust path, or a mangled name.
    pub symbol: String,
}

impl FromStr for RootSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<RootSpec, String> {
        let (role, symbol) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}` is not ROLE=SYMBOL"))?;
        let role = Role::from_name(role.trim()).ok_or_else(|| {
            let names: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
            format!(
                "unknown role `{role}` (expected one of {})",
                names.join(", ")
            )
        })?;
        let symbol = symbol.trim();
        if symbol.is_empty() {
            return Err(format!("`{s}` names no symbol"));
        }
        Ok(RootSpec {
            role,
            symbol: symbol.to_owned(),
        })
    }
}

/// Where a root came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// A role record in `.pwrole`.
    Record,
    /// `--root`.
    CommandLine,
}

/// A resolved root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Root {
    /// Its role.
    pub role: Role,
    /// Index into [`Functions::list`].
    pub function: usize,
    /// Where it came from.
    pub origin: Origin,
}

/// Resolves the image's role records and the command-line roots against the function table.
///
/// # Errors
/// A `--root` symbol the PDB does not know or that is not code, and a role record that
/// points outside every function.
pub fn collect(
    image: &Image,
    functions: &Functions,
    symbols: &Symbols,
    specs: &[RootSpec],
) -> Result<Vec<Root>, Error> {
    let mut roots = Vec::new();
    for record in &image.roles {
        let function = functions.containing(record.rva).ok_or_else(|| {
            Error::new(format!(
                "role record ({}) points at {:#x}, which is not inside any function",
                record.role.name(),
                record.rva
            ))
        })?;
        roots.push(Root {
            role: record.role,
            function,
            origin: Origin::Record,
        });
    }
    for spec in specs {
        let function = functions
            .by_name(&spec.symbol)
            .or_else(|| {
                symbols
                    .find(&spec.symbol)
                    .and_then(|s| functions.containing(s.rva))
            })
            .ok_or_else(|| {
                Error::new(format!(
                    "unknown root symbol `{}`: no function of that name in the PDB",
                    spec.symbol
                ))
            })?;
        roots.push(Root {
            role: spec.role,
            function,
            origin: Origin::CommandLine,
        });
    }
    roots.sort_by_key(|r| (r.function, r.role));
    roots.dedup_by_key(|r| (r.function, r.role));
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_role_and_symbol() {
        let spec: RootSpec = "power-up=evt_d0_entry".parse().expect("valid");
        assert_eq!(spec.role, Role::PowerUp);
        assert_eq!(spec.symbol, "evt_d0_entry");
        let spec: RootSpec = "dispatch=pagewise::queue::io_control"
            .parse()
            .expect("valid");
        assert_eq!(spec.role, Role::Dispatch);
        assert_eq!(spec.symbol, "pagewise::queue::io_control");
    }

    #[test]
    fn rejects_bad_specs() {
        assert!("power-up".parse::<RootSpec>().is_err());
        let err = "powerup=f".parse::<RootSpec>().expect_err("unknown role");
        assert!(err.contains("unknown role"), "{err}");
        assert!("dispatch=".parse::<RootSpec>().is_err());
    }
}
