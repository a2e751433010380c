//! `#[paged(power_down)]` on EvtDeviceD0Exit: PAGEPWR, never inlined, `paged_code!()`
//! first; the user's own `#[inline(never)]` is not repeated.
use pagewise_macros::paged;
#[inline(never)]
#[cfg_attr(not(target_vendor = "apple"), unsafe(link_section = "PAGEPWR"))]
pub(crate) unsafe extern "C" fn evt_device_d0_exit(
    device: WDFDEVICE,
    target_state: WDF_POWER_DEVICE_STATE,
) -> NTSTATUS {
    ::wdk::paged_code!();
    log_transition(device, target_state);
    STATUS_SUCCESS
}
/// Placement marker of the function `evt_device_d0_exit` (role `power-down`, section `PAGEPWR`): register `evt_device_d0_exit` in a `callbacks!` table, which checks it against the slot.
#[allow(non_camel_case_types, dead_code)]
pub(crate) enum evt_device_d0_exit {}
/// SAFETY: `#[paged(power_down)]` placed `evt_device_d0_exit` as `power-down` just above; this impl and the function come from the same expansion.
unsafe impl ::pagewise_roles::Placed for evt_device_d0_exit {
    type Role = ::pagewise_roles::role::PowerDown;
    type Fn = unsafe extern "C" fn(WDFDEVICE, WDF_POWER_DEVICE_STATE) -> NTSTATUS;
    const FUNCTION: Self::Fn = evt_device_d0_exit;
    const NAME: &'static str = "evt_device_d0_exit";
}
#[allow(dead_code)]
impl evt_device_d0_exit {
    /// The role record of `evt_device_d0_exit`, kept in the image's `.pwrole` section for `cargo pagecheck`.
    pub(crate) const ROLE_RECORD: &'static ::pagewise_roles::RoleRecord = {
        #[used]
        #[cfg_attr(not(target_vendor = "apple"), unsafe(link_section = ".pwrole"))]
        static RECORD: ::pagewise_roles::RoleRecord = ::pagewise_roles::RoleRecord::new(
            ::pagewise_roles::Role::PowerDown,
            evt_device_d0_exit as *const (),
        );
        &RECORD
    };
}
