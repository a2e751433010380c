//! `#[paged(power_down)]` on EvtDeviceD0Exit: PAGEPWR, never inlined, `paged_code!()`
//! first; the user's own `#[inline(never)]` is not repeated.
use pagewise_macros::paged;

#[paged(power_down)]
#[inline(never)]
pub(crate) unsafe extern "C" fn evt_device_d0_exit(
    device: WDFDEVICE,
    target_state: WDF_POWER_DEVICE_STATE,
) -> NTSTATUS {
    log_transition(device, target_state);
    STATUS_SUCCESS
}
