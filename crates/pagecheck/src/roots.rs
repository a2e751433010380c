//! Roots of the reachability check: the role records the placement attributes embed in
//! `.pwrole`, plus `--root ROLE=SYMBOL` from the command line (for C drivers, or Rust
//! drivers that do not use the attributes), plus the implicit lock roots: every function that
//! acquires a spin lock (or raises the IRQL) runs at `DISPATCH_LEVEL` from that call on.
//!
//! The lock roots are function-granular: the whole holder, and everything it calls, counts
//! as running at `DISPATCH_LEVEL`, also the code before the acquire and after the release.
//! That over-approximates (a holder that calls paged code after releasing the lock is
//! reported), it never misses a paged call made while the lock is held in the holder or its
//! callees. A lock taken in one function and released by another is covered as long as the
//! code between runs in the acquirer or its callees.

use std::str::FromStr;

use pagewise_roles::Role;

use crate::Error;
use crate::decode::{CallGraph, EdgeKind, External};
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
    /// The function acquires a spin lock or raises the IRQL ([`LOCK_ACQUIRES`]).
    Lock,
    /// The image registers the function with the framework ([`crate::registration`]).
    Registration,
}

/// Calls after which the caller runs at `DISPATCH_LEVEL` (or above) until the matching release:
/// the kernel's spin-lock and IRQL-raising exports (by import name) and the KMDF methods that
/// take a spin lock (by `WdfFunctions` index). On x64 `KeAcquireSpinLock` is a macro for the
/// `KeAcquireSpinLockRaiseToDpc` import and `KeRaiseIrql`/`KfRaiseIrql` are inlines that write
/// CR8, invisible here; they are listed for images that import them anyway. `WdfObjectAcquireLock`
/// takes a wait lock instead for objects with passive execution level; the image cannot tell
/// which, so it counts as a spin lock.
pub const LOCK_ACQUIRES: &[&str] = &[
    "KeAcquireSpinLock",
    "KeAcquireSpinLockRaiseToDpc",
    "KeAcquireSpinLockAtDpcLevel",
    "KeAcquireSpinLockForDpc",
    "KfAcquireSpinLock",
    "KeAcquireInStackQueuedSpinLock",
    "KeAcquireInStackQueuedSpinLockAtDpcLevel",
    "KeAcquireInStackQueuedSpinLockForDpc",
    "KeAcquireInterruptSpinLock",
    "KeRaiseIrql",
    "KfRaiseIrql",
    "KeRaiseIrqlToDpcLevel",
    "ExAcquireSpinLockExclusive",
    "ExAcquireSpinLockExclusiveAtDpcLevel",
    "ExAcquireSpinLockShared",
    "ExAcquireSpinLockSharedAtDpcLevel",
    "WdfSpinLockAcquire",
    "WdfObjectAcquireLock",
    "WdfInterruptAcquireLock",
];

/// The [`LOCK_ACQUIRES`] entry an external call names, if any. Imports are `dll!name`.
#[must_use]
pub fn lock_acquire(image: &Image, external: External) -> Option<&'static str> {
    let name = match external {
        External::Import(slot) => {
            let full = image.import_at(slot)?;
            full.rsplit_once('!').map_or(full, |(_, n)| n)
        }
        External::Wdf(index) => crate::wdf::function_name(u64::from(index?))?,
    };
    LOCK_ACQUIRES.iter().copied().find(|&l| l == name)
}

/// True when the indirect transfer at `site` is a `jmp` (`FF /4`, `FF /5`) rather than a `call`
/// (`FF /2`, `FF /3`); every external transfer has one of these forms.
fn is_jump_at(image: &Image, site: u32) -> bool {
    let Some(bytes) = image.read_at(site, 4) else {
        return false;
    };
    // Segment (`notrack`) and REX prefixes, then the opcode and its ModRM reg field.
    let Some(at) = bytes
        .iter()
        .position(|&b| !matches!(b, 0x2e | 0x3e | 0x40..=0x4f))
    else {
        return false;
    };
    bytes[at] == 0xff
        && bytes
            .get(at + 1)
            .is_some_and(|m| matches!((m >> 3) & 7, 4 | 5))
}

/// Every function that calls one of [`LOCK_ACQUIRES`], as a `dispatch` root naming the
/// call. A function that only tail-jumps to an acquire (an import thunk `jmp [__imp_X]`, a
/// wrapper) is not a holder: it returns with the lock held, so its callers are, and a call
/// to it counts as a call of the acquire.
#[must_use]
pub fn lock_holders(image: &Image, functions: &Functions, calls: &CallGraph) -> Vec<Root> {
    let n = functions.len();
    // wrapper_of[f]: calling f acquires the lock (f tail-jumps to an acquire, directly or
    // through other such functions).
    let mut wrapper_of: Vec<Option<&'static str>> = vec![None; n];
    for (f, slot) in wrapper_of.iter_mut().enumerate() {
        *slot = calls
            .externals_of(f)
            .iter()
            .filter(|&&(site, _)| is_jump_at(image, site))
            .find_map(|&(_, e)| lock_acquire(image, e));
    }
    let start_of = |rva: u32| {
        functions
            .containing(rva)
            .filter(|&t| functions.list[t].start == rva)
    };
    // Chains of wrappers are short; the bound guards against a cycle of jumps.
    for _ in 0..n {
        let mut changed = false;
        for f in 0..n {
            if wrapper_of[f].is_some() {
                continue;
            }
            let via = calls
                .edges_of(f)
                .iter()
                .filter(|e| e.kind == EdgeKind::Jump)
                .find_map(|e| start_of(e.target).and_then(|t| wrapper_of[t]));
            if via.is_some() {
                wrapper_of[f] = via;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    (0..n)
        .filter_map(|f| {
            let direct = calls
                .externals_of(f)
                .iter()
                .filter(|&&(site, _)| !is_jump_at(image, site))
                .find_map(|&(_, e)| lock_acquire(image, e));
            let acquires = direct.or_else(|| {
                calls
                    .edges_of(f)
                    .iter()
                    .filter(|e| e.kind == EdgeKind::Call)
                    .find_map(|e| start_of(e.target).and_then(|t| wrapper_of[t]))
            })?;
            Some(Root {
                role: Role::Dispatch,
                function: f,
                origin: Origin::Lock,
                acquires: Some(acquires),
                registration: None,
            })
        })
        .collect()
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
/// and the `lock` roots (from [`lock_holders`]). A function with the same role from several
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
            acquires: None,
            registration: None,
        });
    }
    let mut registered: Vec<usize> = registrations.list.iter().map(|r| r.function).collect();
    registered.sort_unstable();
    registered.dedup();
    for function in registered {
        let strictest = registrations
            .list
            .iter()
            .enumerate()
            .filter(|(_, r)| r.function == function)
            .max_by_key(|(_, r)| r.runs);
        if let Some((index, r)) = strictest {
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
                last.acquires = last.acquires.or(root.acquires);
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
