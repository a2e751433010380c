//! The calls that raise the IRQL to `DISPATCH_LEVEL` (taking a spin lock) and the calls that
//! lower it again. Code between the two runs at `DISPATCH_LEVEL`, whatever called it, so
//! everything it calls must be resident.
//!
//! The dataflow pass follows the lock along the control-flow paths of each function
//! ([`crate::decode`]): a call made while a lock is held is a dispatch-level call; a call made
//! before the acquire, after the release, or on a path that never takes the lock is not. A
//! function that returns with the lock still held acts, in its callers, like the acquire
//! itself; one that releases a lock it did not take, like the release.

/// Calls after which the caller runs at `DISPATCH_LEVEL` (or above) until the matching
/// release: the kernel's spin-lock and IRQL-raising exports (by import name) and the KMDF
/// methods that take a spin lock (by `WdfFunctions` name). On x64 `KeAcquireSpinLock` is a
/// macro for the `KeAcquireSpinLockRaiseToDpc` import and `KeRaiseIrql` an inline that writes
/// CR8 (which the dataflow pass reads as a raise when the value is a constant of at least
/// `DISPATCH_LEVEL`); they are listed for images that import them anyway.
/// `WdfObjectAcquireLock` takes a mutex instead for a device or queue with passive execution
/// level: when every device and queue the image creates is passive, its regions are not
/// dispatch-level ([`crate::registration::Registrations::object_locks_passive`]).
pub const ACQUIRES: &[&str] = &[
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

/// The matching releases.
pub const RELEASES: &[&str] = &[
    "KeReleaseSpinLock",
    "KeReleaseSpinLockFromDpcLevel",
    "KeReleaseSpinLockForDpc",
    "KfReleaseSpinLock",
    "KeReleaseInStackQueuedSpinLock",
    "KeReleaseInStackQueuedSpinLockFromDpcLevel",
    "KeReleaseInStackQueuedSpinLockForDpc",
    "KeReleaseInterruptSpinLock",
    "KeLowerIrql",
    "KfLowerIrql",
    "ExReleaseSpinLockExclusive",
    "ExReleaseSpinLockExclusiveFromDpcLevel",
    "ExReleaseSpinLockShared",
    "ExReleaseSpinLockSharedFromDpcLevel",
    "WdfSpinLockRelease",
    "WdfObjectReleaseLock",
    "WdfInterruptReleaseLock",
];

/// What a call does to the IRQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Takes a lock (raises to `DISPATCH_LEVEL`); the name of the call.
    Acquire(&'static str),
    /// Releases one.
    Release,
}

/// The effect of calling `name` (an import's `dll!name` or a framework method's name).
#[must_use]
pub fn effect_of(name: &str) -> Option<Effect> {
    let name = name.rsplit_once('!').map_or(name, |(_, n)| n);
    if let Some(&acquire) = ACQUIRES.iter().find(|&&a| a == name) {
        return Some(Effect::Acquire(acquire));
    }
    RELEASES.contains(&name).then_some(Effect::Release)
}

/// `mov cr8, value`: the inline `KeRaiseIrql`/`KeLowerIrql` of x64. A constant of at least
/// `DISPATCH_LEVEL` (2) raises; a lower one lowers. An unknown value lowers when a lock is
/// held (restoring the saved IRQL) and is otherwise not counted.
#[must_use]
pub fn cr8_effect(value: Option<u64>, held: bool) -> Option<Effect> {
    match value {
        Some(v) if v >= 2 => Some(Effect::Acquire("KeRaiseIrql")),
        Some(_) => Some(Effect::Release),
        None if held => Some(Effect::Release),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquires_and_releases_pair_up() {
        assert_eq!(
            effect_of("ntoskrnl.exe!KeAcquireSpinLockRaiseToDpc"),
            Some(Effect::Acquire("KeAcquireSpinLockRaiseToDpc"))
        );
        assert_eq!(effect_of("WdfSpinLockRelease"), Some(Effect::Release));
        assert_eq!(effect_of("ntoskrnl.exe!KeSetEvent"), None);
        // Every acquire family has its release.
        for acquire in ACQUIRES {
            let family = acquire
                .replace("Acquire", "Release")
                .replace("RaiseToDpc", "")
                .replace("AtDpcLevel", "FromDpcLevel")
                .replace("RaiseIrqlToDpcLevel", "LowerIrql")
                .replace("RaiseIrql", "LowerIrql");
            assert!(
                RELEASES
                    .iter()
                    .any(|r| *r == family || family.starts_with(r)),
                "{acquire} has no release ({family})"
            );
        }
    }

    #[test]
    fn cr8_writes() {
        assert_eq!(
            cr8_effect(Some(2), false),
            Some(Effect::Acquire("KeRaiseIrql"))
        );
        assert_eq!(cr8_effect(Some(0), true), Some(Effect::Release));
        assert_eq!(cr8_effect(None, true), Some(Effect::Release));
        assert_eq!(cr8_effect(None, false), None);
    }
}
