//! `#[init]` on DriverEntry: INIT, never inlined, exported name kept.
use pagewise_macros::init;
/// The driver's entry point.
///
/// Placement marker of the function `driver_entry` (role `init`, section `INIT`): register `driver_entry` in a `callbacks!` table, which checks it against the slot (a callback's name stands for this type only: the function itself cannot be named outside the table).
#[allow(non_camel_case_types, dead_code)]
pub enum driver_entry {}
const _: () = {
    /// The driver's entry point.
    #[unsafe(export_name = "DriverEntry")]
    #[cfg_attr(not(target_vendor = "apple"), unsafe(link_section = "INIT"))]
    #[inline(never)]
    unsafe extern "system" fn driver_entry(
        driver: PDRIVER_OBJECT,
        registry_path: PCUNICODE_STRING,
    ) -> NTSTATUS {
        unsafe { create_driver(driver, registry_path) }
    }
    /// SAFETY: `#[init]` placed `driver_entry` as `init` just above; this impl and the function come from the same expansion.
    unsafe impl ::pagewise_roles::Placed for driver_entry {
        type Role = ::pagewise_roles::role::Init;
        type Fn = unsafe extern "system" fn(
            PDRIVER_OBJECT,
            PCUNICODE_STRING,
        ) -> NTSTATUS;
        const ADDRESS: *const () = driver_entry as *const ();
        const NAME: &'static str = "driver_entry";
        #[inline(always)]
        #[allow(clippy::inline_always)]
        fn store<F>(target: &mut F::Structure)
        where
            F: ::pagewise_roles::Field<Fn = Self::Fn>,
            <F::Slot as ::pagewise_roles::Slot>::Needs: ::pagewise_roles::Accepts<
                Self::Role,
            >,
        {
            F::store(target, driver_entry);
        }
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
};
