//! `#[resident(power_up)]` on EvtDeviceD0Entry: no section attribute, no `paged_code!()`,
//! no `#[inline(never)]`; `#[cfg]` and the `cfg` part of `#[cfg_attr]` carry over to the
//! generated items.
use pagewise_macros::resident;

#[resident(power_up)]
#[cfg(windows)]
#[cfg_attr(feature = "trace", cfg(debug_assertions), allow(unused_variables))]
pub unsafe extern "C" fn evt_device_d0_entry(
    device: WDFDEVICE,
    previous_state: WDF_POWER_DEVICE_STATE,
) -> NTSTATUS {
    STATUS_SUCCESS
}
