//! `#[resident(power_up)]` on EvtDeviceD0Entry: no section attribute, no `paged_code!()`,
//! no `#[inline(never)]`; `#[cfg]` and the `cfg` part of `#[cfg_attr]` carry over to the
//! generated items.
use pagewise_macros::resident;
/// Placement marker of the function `evt_device_d0_entry` (role `power-up`, resident: no section attribute, the compiler's default `.text` is never paged): register `evt_device_d0_entry` in a `callbacks!` table, which checks it against the slot (a callback's name stands for this type only: the function itself cannot be named outside the table).
#[cfg(windows)]
#[cfg_attr(feature = "trace", cfg(debug_assertions))]
#[allow(non_camel_case_types, dead_code)]
pub enum evt_device_d0_entry {}
#[cfg(windows)]
#[cfg_attr(feature = "trace", cfg(debug_assertions))]
const _: () = {
    #[cfg(windows)]
    #[cfg_attr(feature = "trace", cfg(debug_assertions), allow(unused_variables))]
    unsafe extern "C" fn evt_device_d0_entry(
        device: WDFDEVICE,
        previous_state: WDF_POWER_DEVICE_STATE,
    ) -> NTSTATUS {
        STATUS_SUCCESS
    }
    /// SAFETY: `#[resident(power_up)]` placed `evt_device_d0_entry` as `power-up` just above; this impl and the function come from the same expansion.
    #[cfg(windows)]
    #[cfg_attr(feature = "trace", cfg(debug_assertions))]
    unsafe impl ::pagewise_roles::Placed for evt_device_d0_entry {
        type Role = ::pagewise_roles::role::PowerUp;
        type Fn = unsafe extern "C" fn(WDFDEVICE, WDF_POWER_DEVICE_STATE) -> NTSTATUS;
        const ADDRESS: *const () = evt_device_d0_entry as *const ();
        const NAME: &'static str = "evt_device_d0_entry";
        #[inline(always)]
        #[allow(clippy::inline_always)]
        fn store<F>(target: &mut F::Structure)
        where
            F: ::pagewise_roles::Field<Fn = Self::Fn>,
            <F::Slot as ::pagewise_roles::Slot>::Needs: ::pagewise_roles::Accepts<
                Self::Role,
            >,
        {
            F::store(target, evt_device_d0_entry);
        }
    }
    #[cfg(windows)]
    #[cfg_attr(feature = "trace", cfg(debug_assertions))]
    #[allow(dead_code)]
    impl evt_device_d0_entry {
        /// The role record of `evt_device_d0_entry`, kept in the image's `.pwrole` section for `cargo pagecheck`.
        pub const ROLE_RECORD: &'static ::pagewise_roles::RoleRecord = {
            #[used]
            #[cfg_attr(not(target_vendor = "apple"), unsafe(link_section = ".pwrole"))]
            static RECORD: ::pagewise_roles::RoleRecord = ::pagewise_roles::RoleRecord::new(
                ::pagewise_roles::Role::PowerUp,
                evt_device_d0_entry as *const (),
            );
            &RECORD
        };
    }
};
