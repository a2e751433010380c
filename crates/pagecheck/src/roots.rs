//! Roots of the reachability check: the role records the placement attributes embed in
//! `.pwrole`, `--root ROLE=SYMBOL` from the command line, the callbacks the image registers
//! with the framework ([`crate::registration`]), and the lock roots: the functions that call
//! something while they hold a spin lock.
//!
//! Lock roots cover lock regions, not whole functions: the dataflow pass follows the lock along
//! each path from the acquire to the release, so only the calls made while it is held are
//! followed at `DISPATCH_LEVEL`. A lock taken in a helper that returns holding it, or released
//! in a helper, is followed through the helper's summary; where a path keeps the lock to the
//! function's return, the callers carry it on.

use std::str::FromStr;

use pagewise_roles::Role;

use crate::Error;
use crate::dataflow::Held;
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
    /// The function calls something while it holds a spin lock ([`crate::locks`]).
    Lock,
    /// The image registers the function with the framework ([`crate::registration`]).
    Registration,
}

/// One `dispatch` root per function that makes calls while holding a spin lock
/// ([`crate::locks`]): only those calls run at `DISPATCH_LEVEL`, so only they are followed from
/// it (the function's own placement is checked too, since its code between the acquire and
/// the release runs at that level).
#[must_use]
pub fn lock_roots(held: &[(usize, Held)]) -> Vec<Root> {
    let mut roots: Vec<Root> = Vec::new();
    for &(function, h) in held {
        if roots.last().is_some_and(|r| r.function == function) {
            continue;
        }
        roots.push(Root {
            role: Role::Dispatch,
            function,
            origin: Origin::Lock,
            acquires: Some(h.acquire),
            registration: None,
        });
    }
    roots
}

/// The function a `--root` symbol names: a function's readable or raw name, or a PDB symbol
/// at the first byte of a function.
fn root_function(functions: &Functions, symbols: &Symbols, name: &str) -> Result<usize, Error> {
    if let Some(f) = functions.by_name(name) {
        return Ok(f);
    }
    let Some(symbol) = symbols.find(name) else {
        return Err(Error::new(format!(
            "unknown root symbol `{name}`: no function of that name in the PDB"
        )));
    };
    if symbol.kind == crate::pdb::SymbolKind::Data {
        return Err(Error::new(format!(
            "root symbol `{name}` is data, not code: --root names a function"
        )));
    }
    match functions.containing(symbol.rva) {
        Some(f) if functions.list[f].start == symbol.rva => Ok(f),
        Some(f) => Err(Error::new(format!(
            "root symbol `{name}` is at {:#x}, {:#x} bytes into `{}`, not at the start of a function: --root \
             names the function itself",
            symbol.rva,
            symbol.rva - functions.list[f].start,
            functions.list[f].name
        ))),
        None => Err(Error::new(format!(
            "root symbol `{name}` is at {:#x}, outside every function of the image's code",
            symbol.rva
        ))),
    }
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
    /// For a lock root, the call that raises the IRQL.
    pub acquires: Option<&'static str>,
    /// The registration that gives the function this role (index into
    /// [`crate::registration::Registrations::list`]), also when a record or `--root` says the
    /// same.
    pub registration: Option<usize>,
}

impl Root {
    /// True when the role was declared (role record or `--root`) rather than inferred.
    #[must_use]
    pub fn declared(&self) -> bool {
        matches!(self.origin, Origin::Record | Origin::CommandLine)
    }
}

/// Resolves the image's role records and the command-line roots against the function table,
/// then adds a root per registered function (with the strictest role its registrations need)
/// and the `lock` roots (from [`lock_roots`]). A function with the same role from several
/// origins is one root: a record or `--root` origin wins, and the registration stays attached.
///
/// # Errors
/// A `--root` symbol the PDB does not know or that is not code, and a role record that
/// points outside every function.
pub fn collect(
    image: &Image,
    functions: &Functions,
    symbols: &Symbols,
    specs: &[RootSpec],
    registrations: &crate::registration::Registrations,
    lock_roots: &[Root],
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
            acquires: None,
            registration: None,
        });
    }
    for spec in specs {
        let function = root_function(functions, symbols, &spec.symbol)?;
        roots.push(Root {
            role: spec.role,
            function,
            origin: Origin::CommandLine,
            acquires: None,
            registration: None,
        });
    }
    let mut registered: Vec<usize> = registrations.list.iter().map(|r| r.function).collect();
    registered.sort_unstable();
    registered.dedup();
    for function in registered {
        if let Some((index, r)) = registrations.strictest(function) {
            roots.push(Root {
                role: r.role(),
                function,
                origin: Origin::Registration,
                acquires: None,
                registration: Some(index),
            });
        }
    }
    roots.extend_from_slice(lock_roots);
    // Stable: of two roots with the same function and role, the record or `--root` one stays,
    // keeping the registration of the one it replaces.
    roots.sort_by_key(|r| (r.function, r.role));
    let mut merged: Vec<Root> = Vec::with_capacity(roots.len());
    for root in roots {
        match merged.last_mut() {
            Some(last) if (last.function, last.role) == (root.function, root.role) => {
                last.registration = last.registration.or(root.registration);
                // A whole function at this role covers its lock regions: it is not described
                // as a lock holder (its findings need not start under the lock).
                let whole = |r: &Root| r.origin != Origin::Lock;
                match (whole(last), whole(&root)) {
                    (false, true) => {
                        last.origin = root.origin;
                        last.acquires = None;
                    }
                    (true, false) => {}
                    _ => last.acquires = last.acquires.or(root.acquires),
                }
            }
            _ => merged.push(root),
        }
    }
    Ok(merged)
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
