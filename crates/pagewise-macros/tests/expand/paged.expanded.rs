//! `#[paged]` on a passive-level callback: PAGE, never inlined, `paged_code!()` first.
use pagewise_macros::paged;
/// Placement marker of the function `evt_driver_device_add` (role `paged`, section `PAGE`): register `evt_driver_device_add` in a `callbacks!` table, which checks it against the slot (a callback's name stands for this type only: the function itself cannot be named outside the table).
#[allow(non_camel_case_types, dead_code)]
enum evt_driver_device_add {}
const _: () = {
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
    /// SAFETY: `#[paged]` placed `evt_driver_device_add` as `paged` just above; this impl and the function come from the same expansion.
    unsafe impl ::pagewise_roles::Placed for evt_driver_device_add {
        type Role = ::pagewise_roles::role::Paged;
        type Fn = extern "C" fn(WDFDRIVER, PWDFDEVICE_INIT) -> NTSTATUS;
        const ADDRESS: *const () = evt_driver_device_add as *const ();
        const NAME: &'static str = "evt_driver_device_add";
        #[inline(always)]
        #[allow(clippy::inline_always)]
        fn store<F>(target: &mut F::Structure)
        where
            F: ::pagewise_roles::Field<Fn = Self::Fn>,
            <F::Slot as ::pagewise_roles::Slot>::Needs: ::pagewise_roles::Accepts<
                Self::Role,
            >,
        {
            F::store(target, evt_driver_device_add);
        }
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
};
