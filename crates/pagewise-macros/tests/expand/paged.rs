//! `#[paged]` on a passive-level callback: PAGE, never inlined, `paged_code!()` first.
use pagewise_macros::paged;

#[paged]
extern "C" fn evt_driver_device_add(_driver: WDFDRIVER, device_init: PWDFDEVICE_INIT) -> NTSTATUS {
    let settings = read_settings(device_init);
    create_device(device_init, &settings)
}
