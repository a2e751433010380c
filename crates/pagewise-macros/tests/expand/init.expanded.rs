//! `#[init]` on DriverEntry: INIT, never inlined, exported name kept.
use pagewise_macros::init;
/// The driver's entry point.
#[unsafe(export_name = "DriverEntry")]
#[cfg_attr(not(target_vendor = "apple"), unsafe(link_section = "INIT"))]
#[inline(never)]
pub unsafe extern "system" fn driver_entry(
    driver: PDRIVER_OBJECT,
    registry_path: PCUNICODE_STRING,
) -> NTSTATUS {
    unsafe { create_driver(driver, registry_path) }
}
/// Placement marker of the function `driver_entry` (role `init`, section `INIT`): register `driver_entry` in a `callbacks!` table, which checks it against the slot.
#[allow(non_camel_case_types, dead_code)]
pub enum driver_entry {}
/// SAFETY: `#[init]` placed `driver_entry` as `init` just above; this impl and the function come from the same expansion.
unsafe impl ::pagewise_roles::Placed for driver_entry {
    type Role = ::pagewise_roles::role::Init;
    type Fn = unsafe extern "system" fn(PDRIVER_OBJECT, PCUNICODE_STRING) -> NTSTATUS;
    const FUNCTION: Self::Fn = driver_entry;
    const NAME: &'static str = "driver_entry";
}
#[allow(dead_code)]
impl driver_entry {
    /// The role record of `driver_entry`, kept in the image's `.pwrole` section for `cargo pagecheck`.
    pub const ROLE_RECORD: &'static ::pagewise_roles::RoleRecord = {
        #[used]
        #[cfg_attr(not(target_vendor = "apple"), unsafe(link_section = ".pwrole"))]
        static RECORD: ::pagewise_roles::RoleRecord = ::pagewise_roles::RoleRecord::new(
            ::pagewise_roles::Role::Init,
            driver_entry as *const (),
        );
        &RECORD
    };
}
