//! `#[paged(power_down)]` on EvtDeviceD0Exit: PAGEPWR, never inlined, `paged_code!()`
//! first; the user's own `#[inline(never)]` is not repeated.
use pagewise_macros::paged;
/// Placement marker of the function `evt_device_d0_exit` (role `power-down`, section `PAGEPWR`): register `evt_device_d0_exit` in a `callbacks!` table, which checks it against the slot (a callback's name stands for this type only: the function itself cannot be named outside the table).
#[allow(non_camel_case_types, dead_code)]
pub(crate) enum evt_device_d0_exit {}
const _: () = {
    #[inline(never)]
    #[cfg_attr(not(target_vendor = "apple"), unsafe(link_section = "PAGEPWR"))]
    unsafe extern "C" fn evt_device_d0_exit(
        device: WDFDEVICE,
        target_state: WDF_POWER_DEVICE_STATE,
    ) -> NTSTATUS {
        ::wdk::paged_code!();
        log_transition(device, target_state);
        STATUS_SUCCESS
    }
    /// SAFETY: `#[paged(power_down)]` placed `evt_device_d0_exit` as `power-down` just above; this impl and the function come from the same expansion.
    unsafe impl ::pagewise_roles::Placed for evt_device_d0_exit {
        type Role = ::pagewise_roles::role::PowerDown;
        type Fn = unsafe extern "C" fn(WDFDEVICE, WDF_POWER_DEVICE_STATE) -> NTSTATUS;
        const ADDRESS: *const () = evt_device_d0_exit as *const ();
        const NAME: &'static str = "evt_device_d0_exit";
        #[inline(always)]
        #[allow(clippy::inline_always)]
        fn store<F>(target: &mut F::Structure)
        where
            F: ::pagewise_roles::Field<Fn = Self::Fn>,
            <F::Slot as ::pagewise_roles::Slot>::Needs: ::pagewise_roles::Accepts<
                Self::Role,
            >,
        {
            F::store(target, evt_device_d0_exit);
        }
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
};
