//! Whether the device is power-pageable right now, and when the power-down section must
//! be locked.
//!
//! Two things decide it:
//! - the choice at init ([`crate::settings::Settings::power_pageable`]), fixed for the
//!   life of the device object;
//! - special files: while the device is on a paging, hibernation, dump or boot path,
//!   KMDF clears `DO_POWER_PAGABLE` and runs the device's transitions in the NP states
//!   (PAGING.md section 4), so the driver must behave as nonpageable too.
//!
//! While the device is effectively nonpageable its power-down callbacks (the `PAGEPWR`
//! section) may run when the paging disk is already off, so that section must be locked
//! in memory (`MmLockPagableCodeSection`) before any such transition, and unlocked
//! (`MmUnlockPagableImageSection`) when it is no longer needed: when the last special
//! file leaves a device chosen pageable, or at device cleanup.
//!
//! [`Pageability`] is a pure state machine: each event returns a [`LockAction`] that the
//! FFI executes. It locks only when unlocked and unlocks only when locked, so the FFI's
//! lock handle is taken and released in pairs by construction; the tests drive random
//! event sequences through it to check that.

use pagewise_ioctl::{PageabilityReason, special_file};

use crate::status::{NtStatus, STATUS_INVALID_DEVICE_STATE, STATUS_SUCCESS};

/// What the FFI must do with the power-down section's lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum LockAction {
    /// Nothing.
    None,
    /// `MmLockPagableCodeSection(<a function in PAGEPWR>)` and keep the handle.
    Lock,
    /// `MmUnlockPagableImageSection(handle)` and forget the handle.
    Unlock,
}

/// The special-file paths that make a device nonpageable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecialFile {
    /// `WdfSpecialFilePaging`.
    Paging,
    /// `WdfSpecialFileHibernation`.
    Hibernation,
    /// `WdfSpecialFileDump`.
    Dump,
    /// `WdfSpecialFileBoot`. Treated like the others: a device the system boots from
    /// must not wait for paging I/O during its transitions. Conservative: locking more
    /// than needed costs a few resident pages, locking less costs a hang.
    Boot,
}

impl SpecialFile {
    /// Every tracked kind, in the order of [`Pageability`]'s counters.
    pub const ALL: [SpecialFile; 4] = [Self::Paging, Self::Hibernation, Self::Dump, Self::Boot];

    /// Decodes a `WDF_SPECIAL_FILE_TYPE` (`WdfSpecialFilePaging` = 1, `Hibernation`,
    /// `Dump`, `Boot`). Other values (`Undefined`, `PostDisplay`, `GuestAssigned`,
    /// `InlineCryptoEngine`, newer ones) do not change pageability: `None`.
    #[must_use]
    pub const fn from_wdf(value: u32) -> Option<Self> {
        match value {
            1 => Some(Self::Paging),
            2 => Some(Self::Hibernation),
            3 => Some(Self::Dump),
            4 => Some(Self::Boot),
            _ => None,
        }
    }

    /// The [`special_file`] bit of the IOCTL protocol.
    #[must_use]
    pub const fn bit(self) -> u32 {
        match self {
            Self::Paging => special_file::PAGING,
            Self::Hibernation => special_file::HIBERNATION,
            Self::Dump => special_file::DUMP,
            Self::Boot => special_file::BOOT,
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// The FFI's answer to `EvtDeviceUsageNotificationEx`, and what to do with the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct UsageDecision {
    /// Return this from the callback. A failure vetoes the notification; the framework
    /// then does not count it, and neither did [`Pageability`].
    pub status: NtStatus,
    /// Execute this before returning: when entering a path, the section must be locked
    /// before the framework's next NP transition.
    pub action: LockAction,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Device object created, no power transition yet: nothing locked on purpose.
    Created,
    /// From just before the first power transition to cleanup.
    Active,
    /// Device cleanup ran: nothing may stay locked, no new path accepted.
    CleanedUp,
}

/// Pageability and lock state of one device. See the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pageability {
    chosen_pageable: bool,
    reason: PageabilityReason,
    /// Paths the device is on, per [`SpecialFile`]: several paging files can live on one
    /// device, and each enters and leaves on its own.
    paths: [u32; 4],
    locked: bool,
    phase: Phase,
}

impl Pageability {
    /// A device chosen pageable by default, on no path, nothing locked.
    #[must_use]
    pub const fn new() -> Self {
        Pageability {
            chosen_pageable: true,
            reason: PageabilityReason::Default,
            paths: [0; 4],
            locked: false,
            phase: Phase::Created,
        }
    }

    /// Records the choice made at `EvtDriverDeviceAdd` (what was passed to
    /// `WdfDeviceInitSetPowerPageable`/`NotPageable`). Call once, after `WdfDeviceCreate`.
    pub fn set_choice(&mut self, power_pageable: bool, reason: PageabilityReason) {
        self.chosen_pageable = power_pageable;
        self.reason = reason;
    }

    /// Call once before the device's first power transition (at the end of
    /// `EvtDriverDeviceAdd`, or in `EvtDevicePrepareHardware`): locks the power-down
    /// section if the device is nonpageable. Calling it again does nothing.
    pub fn before_first_transition(&mut self) -> LockAction {
        if self.phase == Phase::Created {
            self.phase = Phase::Active;
        }
        self.sync()
    }

    /// `EvtDeviceUsageNotificationEx(type, in_path)`. Entering a path on a pageable
    /// device locks the section now: the framework's next transitions use NP states.
    /// Leaving the last path of a device chosen pageable unlocks it. A leave with no
    /// matching enter (the framework reverting a notification this driver never
    /// counted) changes nothing. After cleanup, entering is vetoed.
    ///
    /// When a lower driver fails the notification after this callback succeeded, KMDF
    /// calls the callback again with `in_path` reversed; that arrives here as an
    /// ordinary notification and undoes the count.
    pub fn on_usage_notification(&mut self, file_type: u32, in_path: bool) -> UsageDecision {
        let Some(kind) = SpecialFile::from_wdf(file_type) else {
            return UsageDecision {
                status: STATUS_SUCCESS,
                action: LockAction::None,
            };
        };
        if in_path && self.phase == Phase::CleanedUp {
            return UsageDecision {
                status: STATUS_INVALID_DEVICE_STATE,
                action: LockAction::None,
            };
        }
        let Some(count) = self.paths.get_mut(kind.index()) else {
            return UsageDecision {
                status: STATUS_INVALID_DEVICE_STATE,
                action: LockAction::None,
            };
        };
        if in_path {
            let Some(more) = count.checked_add(1) else {
                // Four billion nested notifications of one kind: refuse rather than wrap.
                return UsageDecision {
                    status: STATUS_INVALID_DEVICE_STATE,
                    action: LockAction::None,
                };
            };
            *count = more;
        } else {
            *count = count.saturating_sub(1);
        }
        // Being told about a path means the device has started: it is in D0, its
        // first transition is behind it, whether or not the FFI said so.
        if self.phase == Phase::Created {
            self.phase = Phase::Active;
        }
        UsageDecision {
            status: STATUS_SUCCESS,
            action: self.sync(),
        }
    }

    /// Device cleanup (`EvtCleanupCallback` of the WDFDEVICE): unlocks if locked, even
    /// if the device is still on a path, because every lock handle must be released
    /// before the image unloads.
    pub fn on_cleanup(&mut self) -> LockAction {
        self.phase = Phase::CleanedUp;
        self.sync()
    }

    /// Brings `locked` to what the state wants; the only place that changes it, so a
    /// lock is never taken twice and never released unless taken.
    fn sync(&mut self) -> LockAction {
        let want = self.phase == Phase::Active && self.effective_nonpageable();
        match (self.locked, want) {
            (false, true) => {
                self.locked = true;
                LockAction::Lock
            }
            (true, false) => {
                self.locked = false;
                LockAction::Unlock
            }
            _ => LockAction::None,
        }
    }

    /// The choice at init.
    #[must_use]
    pub const fn chosen_pageable(&self) -> bool {
        self.chosen_pageable
    }

    /// Why the choice at init was made.
    #[must_use]
    pub const fn reason(&self) -> PageabilityReason {
        self.reason
    }

    /// [`special_file`] bits of the paths the device is on now.
    #[must_use]
    pub fn special_files(&self) -> u32 {
        let mut bits = 0;
        for kind in SpecialFile::ALL {
            if self.paths.get(kind.index()).is_some_and(|&n| n > 0) {
                bits |= kind.bit();
            }
        }
        bits
    }

    /// How many times the device is on `kind`'s path.
    #[must_use]
    pub fn path_count(&self, kind: SpecialFile) -> u32 {
        self.paths.get(kind.index()).copied().unwrap_or(0)
    }

    /// True while the driver must behave as power-nonpageable: chosen so at init, or on
    /// a special-file path. Pageable data stays untouched during transitions then.
    #[must_use]
    pub fn effective_nonpageable(&self) -> bool {
        !self.chosen_pageable || self.special_files() != 0
    }

    /// True while the FFI holds a lock handle on the power-down section.
    #[must_use]
    pub const fn is_locked(&self) -> bool {
        self.locked
    }
}

impl Default for Pageability {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGING: u32 = 1;
    const HIBERNATION: u32 = 2;
    const DUMP: u32 = 3;
    const BOOT: u32 = 4;
    const POST_DISPLAY: u32 = 5;

    /// Executes actions the way the FFI does, holding at most one handle, and fails the
    /// test on a double lock or an unlock without a handle.
    #[derive(Default)]
    struct Ffi {
        handle: bool,
        locks: u32,
        unlocks: u32,
    }

    impl Ffi {
        fn run(&mut self, action: LockAction) {
            match action {
                LockAction::None => {}
                LockAction::Lock => {
                    assert!(!self.handle, "double lock");
                    self.handle = true;
                    self.locks += 1;
                }
                LockAction::Unlock => {
                    assert!(self.handle, "unlock without a lock");
                    self.handle = false;
                    self.unlocks += 1;
                }
            }
        }
    }

    fn device(pageable: bool) -> (Pageability, Ffi) {
        let mut p = Pageability::new();
        let reason = PageabilityReason::Setting;
        p.set_choice(pageable, reason);
        let mut ffi = Ffi::default();
        ffi.run(p.before_first_transition());
        (p, ffi)
    }

    fn notify(p: &mut Pageability, ffi: &mut Ffi, file: u32, in_path: bool) -> NtStatus {
        let d = p.on_usage_notification(file, in_path);
        ffi.run(d.action);
        assert_eq!(ffi.handle, p.is_locked());
        d.status
    }

    #[test]
    fn nonpageable_device_locks_before_first_transition_and_unlocks_at_cleanup() {
        let (mut p, mut ffi) = device(false);
        assert!(ffi.handle && p.is_locked() && p.effective_nonpageable());
        assert_eq!(p.before_first_transition(), LockAction::None, "idempotent");
        assert_eq!(notify(&mut p, &mut ffi, PAGING, true), STATUS_SUCCESS);
        assert_eq!(notify(&mut p, &mut ffi, PAGING, false), STATUS_SUCCESS);
        assert!(
            p.is_locked(),
            "chosen nonpageable: leaving a path keeps the lock"
        );
        ffi.run(p.on_cleanup());
        assert!(!ffi.handle);
        assert_eq!((ffi.locks, ffi.unlocks), (1, 1));
    }

    #[test]
    fn pageable_device_stays_unlocked_without_paths() {
        let (mut p, mut ffi) = device(true);
        assert!(!p.is_locked() && !p.effective_nonpageable());
        ffi.run(p.on_cleanup());
        assert_eq!((ffi.locks, ffi.unlocks), (0, 0));
    }

    #[test]
    fn nothing_is_locked_before_the_first_transition() {
        let mut p = Pageability::new();
        p.set_choice(false, PageabilityReason::Setting);
        assert!(p.effective_nonpageable());
        assert!(!p.is_locked());
        assert_eq!(p.on_cleanup(), LockAction::None);
    }

    #[test]
    fn interleaved_paths_lock_once_and_unlock_on_the_last_leave() {
        let (mut p, mut ffi) = device(true);
        notify(&mut p, &mut ffi, PAGING, true);
        assert!(p.is_locked());
        assert_eq!(p.special_files(), special_file::PAGING);
        notify(&mut p, &mut ffi, DUMP, true);
        assert_eq!(p.special_files(), special_file::PAGING | special_file::DUMP);
        notify(&mut p, &mut ffi, PAGING, false);
        assert!(p.is_locked(), "still on the dump path");
        assert!(p.effective_nonpageable());
        notify(&mut p, &mut ffi, DUMP, false);
        assert!(!p.is_locked());
        assert!(!p.effective_nonpageable());
        assert_eq!((ffi.locks, ffi.unlocks), (1, 1));
    }

    #[test]
    fn two_paging_files_on_one_device_need_two_leaves() {
        let (mut p, mut ffi) = device(true);
        notify(&mut p, &mut ffi, PAGING, true);
        notify(&mut p, &mut ffi, PAGING, true);
        assert_eq!(p.path_count(SpecialFile::Paging), 2);
        notify(&mut p, &mut ffi, PAGING, false);
        assert!(p.is_locked());
        notify(&mut p, &mut ffi, PAGING, false);
        assert!(!p.is_locked());
    }

    #[test]
    fn a_failed_notification_is_reverted_by_the_reverse_call() {
        // The callback succeeded, a lower driver failed the IRP, KMDF calls back with
        // in_path reversed.
        let (mut p, mut ffi) = device(true);
        notify(&mut p, &mut ffi, HIBERNATION, true);
        notify(&mut p, &mut ffi, HIBERNATION, false);
        assert_eq!(p.special_files(), 0);
        assert!(!p.is_locked());
        // A failed leave: KMDF reverts it with an enter.
        notify(&mut p, &mut ffi, DUMP, true);
        notify(&mut p, &mut ffi, DUMP, false);
        notify(&mut p, &mut ffi, DUMP, true);
        assert!(p.is_locked());
        assert_eq!((ffi.locks, ffi.unlocks), (3, 2));
    }

    #[test]
    fn an_unmatched_leave_changes_nothing() {
        let (mut p, mut ffi) = device(true);
        assert_eq!(notify(&mut p, &mut ffi, PAGING, false), STATUS_SUCCESS);
        assert_eq!(p.path_count(SpecialFile::Paging), 0);
        notify(&mut p, &mut ffi, PAGING, true);
        assert_eq!(
            p.path_count(SpecialFile::Paging),
            1,
            "no negative count hidden"
        );
    }

    #[test]
    fn other_file_types_are_accepted_and_ignored() {
        let (mut p, mut ffi) = device(true);
        for kind in [0, POST_DISPLAY, 6, 7, u32::MAX] {
            assert_eq!(notify(&mut p, &mut ffi, kind, true), STATUS_SUCCESS);
        }
        assert!(!p.effective_nonpageable());
        assert_eq!(ffi.locks, 0);
    }

    #[test]
    fn cleanup_while_on_a_path_unlocks_and_vetoes_new_paths() {
        let (mut p, mut ffi) = device(true);
        notify(&mut p, &mut ffi, BOOT, true);
        assert_eq!(p.special_files(), special_file::BOOT);
        ffi.run(p.on_cleanup());
        assert!(!ffi.handle, "cleanup releases the handle even on a path");
        assert!(p.effective_nonpageable(), "still reported as on the path");
        assert_eq!(
            notify(&mut p, &mut ffi, PAGING, true),
            STATUS_INVALID_DEVICE_STATE
        );
        assert_eq!(
            p.path_count(SpecialFile::Paging),
            0,
            "a veto is not counted"
        );
        assert_eq!(notify(&mut p, &mut ffi, BOOT, false), STATUS_SUCCESS);
        assert_eq!(p.on_cleanup(), LockAction::None);
        assert_eq!((ffi.locks, ffi.unlocks), (1, 1));
    }

    #[test]
    fn a_notification_before_the_first_transition_activates() {
        let mut p = Pageability::new();
        let mut ffi = Ffi::default();
        notify(&mut p, &mut ffi, PAGING, true);
        assert!(p.is_locked());
        ffi.run(p.before_first_transition());
        ffi.run(p.on_cleanup());
        assert_eq!((ffi.locks, ffi.unlocks), (1, 1));
    }

    #[test]
    fn counts_saturate_without_wrapping() {
        let (mut p, mut ffi) = device(true);
        p.paths[0] = u32::MAX;
        ffi.run(p.sync());
        assert_eq!(
            notify(&mut p, &mut ffi, PAGING, true),
            STATUS_INVALID_DEVICE_STATE
        );
        assert_eq!(p.path_count(SpecialFile::Paging), u32::MAX);
    }

    /// Random event sequences, both choices at init: the lock follows
    /// `effective_nonpageable` while active, and every lock is released by cleanup.
    #[test]
    fn random_sequences_keep_locks_balanced() {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        for round in 0..2_000 {
            let (mut p, mut ffi) = device(round % 2 == 0);
            let steps = next(40);
            for _ in 0..steps {
                let file = u32::try_from(next(6)).expect("small");
                let status = notify(&mut p, &mut ffi, file, next(2) == 0);
                assert_eq!(status, STATUS_SUCCESS);
                assert_eq!(p.is_locked(), p.effective_nonpageable());
            }
            if next(4) == 0 {
                ffi.run(p.before_first_transition());
            }
            ffi.run(p.on_cleanup());
            assert!(!ffi.handle, "round {round}: a lock outlived cleanup");
            assert_eq!(ffi.locks, ffi.unlocks, "round {round}");
            assert_eq!(
                p.on_usage_notification(PAGING, true).action,
                LockAction::None
            );
        }
    }
}
