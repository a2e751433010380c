//! Whether the device is power-pageable right now, and when the power-down section must
//! be locked.
//!
//! Two things decide it:
//! - the choice at init ([`crate::settings::Settings::power_pageable`]), fixed for the
//!   life of the device object;
//! - special files: while the device is on a paging, hibernation, dump or boot path,
//!   KMDF clears `DO_POWER_PAGABLE` and runs the device's transitions in the NP states,
//!   so the driver must behave as nonpageable too.
//!
//! While the device is effectively nonpageable its power-down callbacks (the `PAGEPWR`
//! section) may run when the paging disk is already off, so that section must be locked
//! in memory before any such transition, and unlocked when it is no longer needed.
//!
//! # When the section is locked
//!
//! - A device chosen nonpageable: from `EvtDriverDeviceAdd` to device cleanup.
//! - A device with special-file support (`WdfDeviceSetSpecialFileSupport`): also from
//!   `EvtDriverDeviceAdd` to cleanup, whether or not a special file ever arrives. KMDF
//!   clears `DO_POWER_PAGABLE` when it *receives* `IRP_MN_DEVICE_USAGE_NOTIFICATION`,
//!   then sends the IRP down the stack, calls `EvtDeviceUsageNotificationEx` only after the
//!   lower drivers succeeded, and switches its power state machine to the NP states only
//!   after the callback returns. In between, the power manager already treats the device
//!   as nonpageable (the flag is clear) while `WdfDevStateIsNP` still says pageable and the
//!   driver has not been told: a power-down racing the notification there would run
//!   `PAGEPWR` unlocked, and a `D0Exit` that trusted `WdfDevStateIsNP` would write the
//!   registry. Locking from the start closes the first hole; the price is the section's
//!   pages (about 1 KiB of code) staying resident on such a device. The second is closed
//!   by [`Pageability::transition_writes_allowed`], which never allows a write inside a
//!   transition of a device with special-file support.
//! - A device chosen pageable without special-file support: never. KMDF fails an
//!   entering notification it was not told to support before the driver sees it, so no
//!   path can make such a device nonpageable. (The state machine still locks if one is
//!   reported anyway: it is defensive, not trusting.)
//!
//! # The handle
//!
//! The first lock is `MmLockPagableCodeSection(<an address in PAGEPWR>)`, which looks the
//! section up in the loaded module and returns a handle. The handle stays valid while the
//! image is loaded, so the FFI keeps it and every later lock is the cheap
//! `MmLockPagableSectionByHandle(handle)` ([`LockAction::Relock`]), as Microsoft's
//! guidance on pageable code recommends; `MmUnlockPagableImageSection(handle)` unlocks.
//!
//! [`Pageability`] is a pure state machine: each event returns a [`LockAction`] that the
//! FFI executes. It locks only when unlocked and unlocks only when locked, so lock and
//! unlock calls pair up by construction; the tests drive random event sequences through
//! it to check that.

use pagewise_ioctl::{PageabilityReason, special_file};

use crate::status::{NtStatus, STATUS_INVALID_DEVICE_STATE, STATUS_SUCCESS};

/// What the FFI must do with the power-down section's lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum LockAction {
    /// Nothing.
    None,
    /// The first lock: `MmLockPagableCodeSection(<a function in PAGEPWR>)`, and keep the
    /// handle it returns for the life of the device.
    Lock,
    /// A later lock: `MmLockPagableSectionByHandle(handle)` with the kept handle.
    Relock,
    /// `MmUnlockPagableImageSection(handle)`; the handle is kept for a later
    /// [`LockAction::Relock`].
    Unlock,
    /// The section must be locked, but the self-check did not find the function whose
    /// address `MmLockPagableCodeSection` is given in `PAGEPWR`
    /// ([`Pageability::set_lock_target_found`]): nothing is locked, and the FFI fails the
    /// device add (from [`Pageability::before_first_transition`]) with a logged reason.
    Refuse,
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

/// The FFI's hold on the power-down section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    /// Never locked: the FFI has no handle yet.
    NeverLocked,
    /// Locked; the FFI holds the handle.
    Locked,
    /// Unlocked after a lock; the FFI keeps the handle for [`LockAction::Relock`].
    Unlocked,
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
    /// `WdfDeviceSetSpecialFileSupport` was called: the section stays locked.
    special_file_support: bool,
    /// Paths the device is on, per [`SpecialFile`]: several paging files can live on one
    /// device, and each enters and leaves on its own.
    paths: [u32; 4],
    section: Section,
    phase: Phase,
    /// The self-check found the lock target (`EvtDeviceD0Exit`) in `PAGEPWR`.
    lock_target_found: bool,
}

impl Pageability {
    /// A device chosen pageable by default, on no path, nothing locked.
    #[must_use]
    pub const fn new() -> Self {
        Pageability {
            chosen_pageable: true,
            reason: PageabilityReason::Default,
            special_file_support: false,
            paths: [0; 4],
            section: Section::NeverLocked,
            phase: Phase::Created,
            lock_target_found: false,
        }
    }

    /// Records whether the self-check found the function whose address the first lock
    /// passes to `MmLockPagableCodeSection` in `PAGEPWR`. Without it, a lock the state
    /// needs is [`LockAction::Refuse`]d instead of taken on an address outside the section.
    /// Call before [`Pageability::before_first_transition`].
    pub fn set_lock_target_found(&mut self, found: bool) {
        self.lock_target_found = found;
    }

    /// Records the choice made at `EvtDriverDeviceAdd` (what was passed to
    /// `WdfDeviceInitSetPowerPageable`/`NotPageable`). Call once, after `WdfDeviceCreate`.
    pub fn set_choice(&mut self, power_pageable: bool, reason: PageabilityReason) {
        self.chosen_pageable = power_pageable;
        self.reason = reason;
    }

    /// Records whether `EvtDriverDeviceAdd` calls `WdfDeviceSetSpecialFileSupport`: with
    /// it, the section is locked from before the first transition to cleanup (see the
    /// module documentation). Call before [`Pageability::before_first_transition`].
    pub fn set_special_file_support(&mut self, supported: bool) {
        self.special_file_support = supported;
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

    /// `EvtDeviceUsageNotificationEx(type, in_path)`: counts the path. With special-file
    /// support the section is locked already; a device that somehow enters a path
    /// without it gets the section locked now, and unlocked when its last path leaves
    /// (unless it was chosen nonpageable). A leave with no matching enter changes
    /// nothing. After cleanup, entering is vetoed.
    ///
    /// KMDF calls the callback only after the lower drivers accepted the notification,
    /// and never calls it again for the same notification: when the callback fails,
    /// KMDF itself sends the reverse notification down the stack and restores
    /// `DO_POWER_PAGABLE`. A notification this returns a failure for is therefore not
    /// counted, and nothing else has to be undone here.
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
        let action = self.sync();
        if action == LockAction::Refuse {
            // The path would need a lock the driver cannot take: veto it, uncounted.
            if let Some(count) = self.paths.get_mut(kind.index()) {
                *count = count.saturating_sub(1);
            }
            return UsageDecision {
                status: STATUS_INVALID_DEVICE_STATE,
                action: LockAction::None,
            };
        }
        UsageDecision {
            status: STATUS_SUCCESS,
            action,
        }
    }

    /// Device cleanup (`EvtCleanupCallback` of the WDFDEVICE): unlocks if locked, even
    /// if the device is still on a path, because every lock handle must be released
    /// before the image unloads.
    pub fn on_cleanup(&mut self) -> LockAction {
        self.phase = Phase::CleanedUp;
        self.sync()
    }

    /// Brings the section to what the state wants; the only place that changes it, so a
    /// lock is never taken twice, never released unless taken, and the section is looked
    /// up by address only the first time.
    fn sync(&mut self) -> LockAction {
        let want = self.phase == Phase::Active && self.needs_lock();
        let (section, action) = match (self.section, want) {
            (Section::NeverLocked, true) if !self.lock_target_found => {
                (Section::NeverLocked, LockAction::Refuse)
            }
            (Section::NeverLocked, true) => (Section::Locked, LockAction::Lock),
            (Section::Unlocked, true) => (Section::Locked, LockAction::Relock),
            (Section::Locked, false) => (Section::Unlocked, LockAction::Unlock),
            (unchanged, _) => (unchanged, LockAction::None),
        };
        self.section = section;
        action
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

    /// True when a power transition callback may touch the registry (or anything else
    /// pageable): the device was chosen power-pageable, is on no special-file path, and
    /// cannot be put on one without notice. With special-file support KMDF clears
    /// `DO_POWER_PAGABLE` before it calls `EvtDeviceUsageNotificationEx` and before its own
    /// state says NP, so neither the driver's state nor `WdfDevStateIsNP` covers that window:
    /// such a device never writes from a transition.
    #[must_use]
    pub fn transition_writes_allowed(&self) -> bool {
        self.chosen_pageable && !self.special_file_support && self.special_files() == 0
    }

    /// True while the power-down section must stay locked: the device is effectively
    /// nonpageable, or may become so without notice (special-file support).
    #[must_use]
    pub fn needs_lock(&self) -> bool {
        self.special_file_support || self.effective_nonpageable()
    }

    /// True while the FFI holds a lock on the power-down section.
    #[must_use]
    pub const fn is_locked(&self) -> bool {
        matches!(self.section, Section::Locked)
    }

    /// Whether special-file support was recorded.
    #[must_use]
    pub const fn special_file_support(&self) -> bool {
        self.special_file_support
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

    /// Executes actions the way the FFI does: the first lock looks the section up and
    /// keeps the handle, later locks go through the handle, an unlock keeps it. Fails the
    /// test on a second lookup, a relock without a handle or while locked, and an unlock
    /// of an unlocked section.
    #[derive(Default)]
    struct Ffi {
        handle: bool,
        locked: bool,
        locks: u32,
        relocks: u32,
        unlocks: u32,
    }

    impl Ffi {
        fn run(&mut self, action: LockAction) {
            match action {
                LockAction::None => {}
                LockAction::Lock => {
                    assert!(!self.handle, "section looked up a second time");
                    assert!(!self.locked, "double lock");
                    self.handle = true;
                    self.locked = true;
                    self.locks += 1;
                }
                LockAction::Relock => {
                    assert!(self.handle, "relock without a handle");
                    assert!(!self.locked, "double lock");
                    self.locked = true;
                    self.relocks += 1;
                }
                LockAction::Unlock => {
                    assert!(self.locked, "unlock without a lock");
                    self.locked = false;
                    self.unlocks += 1;
                }
                LockAction::Refuse => panic!("a lock refused with the target in PAGEPWR"),
            }
        }
    }

    fn device_with(pageable: bool, special_file_support: bool) -> (Pageability, Ffi) {
        let mut p = Pageability::new();
        p.set_choice(pageable, PageabilityReason::Setting);
        p.set_special_file_support(special_file_support);
        p.set_lock_target_found(true);
        let mut ffi = Ffi::default();
        ffi.run(p.before_first_transition());
        (p, ffi)
    }

    /// Without special-file support: KMDF would refuse entering notifications, which
    /// these tests still send to check that the state machine copes.
    fn device(pageable: bool) -> (Pageability, Ffi) {
        device_with(pageable, false)
    }

    fn notify(p: &mut Pageability, ffi: &mut Ffi, file: u32, in_path: bool) -> NtStatus {
        let d = p.on_usage_notification(file, in_path);
        ffi.run(d.action);
        assert_eq!(ffi.locked, p.is_locked());
        d.status
    }

    #[test]
    fn nonpageable_device_locks_before_first_transition_and_unlocks_at_cleanup() {
        let (mut p, mut ffi) = device(false);
        assert!(ffi.locked && p.is_locked() && p.effective_nonpageable());
        assert_eq!(p.before_first_transition(), LockAction::None, "idempotent");
        assert_eq!(notify(&mut p, &mut ffi, PAGING, true), STATUS_SUCCESS);
        assert_eq!(notify(&mut p, &mut ffi, PAGING, false), STATUS_SUCCESS);
        assert!(
            p.is_locked(),
            "chosen nonpageable: leaving a path keeps the lock"
        );
        ffi.run(p.on_cleanup());
        assert!(!ffi.locked);
        assert_eq!((ffi.locks, ffi.unlocks), (1, 1));
    }

    #[test]
    fn pageable_device_stays_unlocked_without_paths() {
        let (mut p, mut ffi) = device(true);
        assert!(!p.is_locked() && !p.effective_nonpageable());
        ffi.run(p.on_cleanup());
        assert_eq!((ffi.locks, ffi.unlocks), (0, 0));
    }

    /// KMDF clears `DO_POWER_PAGABLE` before the notification travels down the stack and
    /// calls the callback only afterwards: a device that may get a special file locks at
    /// device add, so no power-down can run unlocked in between.
    #[test]
    fn special_file_support_locks_at_device_add_and_notifications_leave_the_lock_alone() {
        let (mut p, mut ffi) = device_with(true, true);
        assert!(p.special_file_support());
        assert!(ffi.locked, "locked before the first transition");
        assert!(
            !p.effective_nonpageable(),
            "still power-pageable: the registry may be used between transitions"
        );
        for (file, in_path) in [(PAGING, true), (DUMP, true), (PAGING, false), (DUMP, false)] {
            let d = p.on_usage_notification(file, in_path);
            assert_eq!((d.status, d.action), (STATUS_SUCCESS, LockAction::None));
            ffi.run(d.action);
        }
        assert!(p.is_locked(), "the last leave keeps the lock");
        ffi.run(p.on_cleanup());
        assert!(!ffi.locked);
        assert_eq!((ffi.locks, ffi.relocks, ffi.unlocks), (1, 0, 1));
    }

    /// Only a device chosen pageable, without special-file support and on no path, may
    /// write from a transition: with support, KMDF clears `DO_POWER_PAGABLE` before the
    /// driver or the framework's NP states know (issue 18, point 2).
    #[test]
    fn transitions_write_only_on_a_pageable_device_that_cannot_become_nonpageable_unseen() {
        for (pageable, support, allowed) in [
            (true, false, true),
            (true, true, false),
            (false, false, false),
            (false, true, false),
        ] {
            let (mut p, mut ffi) = device_with(pageable, support);
            assert_eq!(
                p.transition_writes_allowed(),
                allowed,
                "pageable {pageable}, support {support}"
            );
            notify(&mut p, &mut ffi, PAGING, true);
            assert!(!p.transition_writes_allowed(), "on a path");
            notify(&mut p, &mut ffi, PAGING, false);
            assert_eq!(p.transition_writes_allowed(), allowed, "path left");
        }
    }

    #[test]
    fn nothing_is_locked_before_the_first_transition() {
        let mut p = Pageability::new();
        p.set_lock_target_found(true);
        p.set_choice(false, PageabilityReason::Setting);
        p.set_special_file_support(true);
        assert!(p.effective_nonpageable() && p.needs_lock());
        assert!(!p.is_locked());
        assert_eq!(p.on_cleanup(), LockAction::None);
    }

    /// Issue 18, point 3: the first lock passes `EvtDeviceD0Exit`'s address to
    /// `MmLockPagableCodeSection`, which needs it inside a `PAGExxxx` section. When the
    /// self-check did not find it in `PAGEPWR`, a device that needs the lock is refused
    /// (the FFI fails device add), and a path that would need it is vetoed, uncounted.
    #[test]
    fn a_lock_target_outside_pagepwr_refuses_instead_of_locking() {
        for (pageable, support) in [(false, false), (true, true), (false, true)] {
            let mut p = Pageability::new();
            p.set_choice(pageable, PageabilityReason::Setting);
            p.set_special_file_support(support);
            assert_eq!(p.before_first_transition(), LockAction::Refuse);
            assert!(!p.is_locked());
            assert_eq!(p.on_cleanup(), LockAction::None, "nothing to unlock");
        }
        let mut p = Pageability::new();
        p.set_choice(true, PageabilityReason::Setting);
        assert_eq!(
            p.before_first_transition(),
            LockAction::None,
            "needs no lock"
        );
        let d = p.on_usage_notification(PAGING, true);
        assert_eq!(
            (d.status, d.action),
            (STATUS_INVALID_DEVICE_STATE, LockAction::None)
        );
        assert_eq!(
            p.path_count(SpecialFile::Paging),
            0,
            "a veto is not counted"
        );
        assert!(!p.is_locked());
        assert_eq!(
            p.on_usage_notification(DUMP, true).status,
            STATUS_INVALID_DEVICE_STATE
        );
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

    /// Each enter and its leave cancel out, and every lock after the first goes through
    /// the handle the first one returned.
    #[test]
    fn later_locks_reuse_the_handle_of_the_first() {
        let (mut p, mut ffi) = device(true);
        assert_eq!(
            p.on_usage_notification(HIBERNATION, true).action,
            LockAction::Lock
        );
        ffi.run(LockAction::Lock);
        notify(&mut p, &mut ffi, HIBERNATION, false);
        assert_eq!(p.special_files(), 0);
        assert!(!p.is_locked());
        let again = p.on_usage_notification(DUMP, true);
        assert_eq!(again.action, LockAction::Relock, "no second lookup");
        ffi.run(again.action);
        notify(&mut p, &mut ffi, DUMP, false);
        notify(&mut p, &mut ffi, DUMP, true);
        assert!(p.is_locked());
        ffi.run(p.on_cleanup());
        assert_eq!((ffi.locks, ffi.relocks, ffi.unlocks), (1, 2, 3));
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
        assert!(!ffi.locked, "cleanup releases the lock even on a path");
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
        p.set_lock_target_found(true);
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

    /// Random event sequences, every combination of choice and special-file support:
    /// the lock follows `needs_lock` while active, the section is looked up at most once,
    /// and every lock is released by cleanup.
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
            let (mut p, mut ffi) = device_with(round % 2 == 0, round % 4 < 2);
            let steps = next(40);
            for _ in 0..steps {
                let file = u32::try_from(next(6)).expect("small");
                let status = notify(&mut p, &mut ffi, file, next(2) == 0);
                assert_eq!(status, STATUS_SUCCESS);
                assert_eq!(p.is_locked(), p.needs_lock());
            }
            if next(4) == 0 {
                ffi.run(p.before_first_transition());
            }
            ffi.run(p.on_cleanup());
            assert!(!ffi.locked, "round {round}: a lock outlived cleanup");
            assert!(ffi.locks <= 1, "round {round}: section looked up twice");
            assert_eq!(ffi.locks + ffi.relocks, ffi.unlocks, "round {round}");
            assert_eq!(
                p.on_usage_notification(PAGING, true).action,
                LockAction::None
            );
        }
    }
}
