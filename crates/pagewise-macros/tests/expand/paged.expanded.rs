//! `#[paged]` on a passive-level callback: PAGE, never inlined, `paged_code!()` first.
use pagewise_macros::paged;
#[cfg_attr(not(target_vendor = "apple"), unsafe(link_section = "PAGE"))]
#[inline(never)]
extern "C" fn evt_driver_device_add(
    _driver: WDFDRIVER,
    device_init: PWDFDEVICE_INIT,
) -> NTSTATUS {
    ::wdk::paged_code!();
    let settings = read_settings(device_init);
    create_device(device_init, &settings)
}
/// Placement marker of the function `evt_driver_device_add` (role `paged`, section `PAGE`): register `evt_driver_device_add` in a `callbacks!` table, which checks it against the slot.
#[allow(non_camel_case_types, dead_code)]
enum evt_driver_device_add {}
/// SAFETY: `#[paged]` placed `evt_driver_device_add` as `paged` just above; this impl and the function come from the same expansion.
unsafe impl ::pagewise_roles::Placed for evt_driver_device_add {
    type Role = ::pagewise_roles::role::Paged;
    type Fn = extern "C" fn(WDFDRIVER, PWDFDEVICE_INIT) -> NTSTATUS;
    const FUNCTION: Self::Fn = evt_driver_device_add;
    const NAME: &'static str = "evt_driver_device_add";
}
#[allow(dead_code)]
impl evt_driver_device_add {
    /// The role record of `evt_driver_device_add`, kept in the image's `.pwrole` section for `cargo pagecheck`.
    const ROLE_RECORD: &'static ::pagewise_roles::RoleRecord = {
        #[used]
        #[cfg_attr(not(target_vendor = "apple"), unsafe(link_section = ".pwrole"))]
        static RECORD: ::pagewise_roles::RoleRecord = ::pagewise_roles::RoleRecord::new(
            ::pagewise_roles::Role::Paged,
            evt_driver_device_add as *const (),
        );
        &RECORD
    };
}
