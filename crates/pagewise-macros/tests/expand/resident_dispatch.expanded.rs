//! `#[resident(dispatch)]` on a default queue's EvtIoDeviceControl; argument patterns do
//! not reach the function-pointer type.
use pagewise_macros::resident;
/// Handles every IOCTL at up to DISPATCH_LEVEL.
///
/// Placement marker of the function `evt_io_device_control` (role `dispatch`, resident: no section attribute, the compiler's default `.text` is never paged): register `evt_io_device_control` in a `callbacks!` table, which checks it against the slot (a callback's name stands for this type only: the function itself cannot be named outside the table).
#[allow(non_camel_case_types, dead_code)]
enum evt_io_device_control {}
const _: () = {
    /// Handles every IOCTL at up to DISPATCH_LEVEL.
    #[allow(clippy::too_many_arguments)]
    unsafe extern "C" fn evt_io_device_control(
        _queue: WDFQUEUE,
        request: WDFREQUEST,
        mut output_buffer_length: usize,
        _: usize,
        io_control_code: ULONG,
    ) {
        output_buffer_length = output_buffer_length.min(MAX_OUTPUT);
        complete(request, io_control_code, output_buffer_length);
    }
    /// SAFETY: `#[resident(dispatch)]` placed `evt_io_device_control` as `dispatch` just above; this impl and the function come from the same expansion.
    unsafe impl ::pagewise_roles::Placed for evt_io_device_control {
        type Role = ::pagewise_roles::role::Dispatch;
        type Fn = unsafe extern "C" fn(WDFQUEUE, WDFREQUEST, usize, usize, ULONG);
        const ADDRESS: *const () = evt_io_device_control as *const ();
        const NAME: &'static str = "evt_io_device_control";
        #[inline(always)]
        #[allow(clippy::inline_always)]
        fn store<F>(target: &mut F::Structure)
        where
            F: ::pagewise_roles::Field<Fn = Self::Fn>,
            <F::Slot as ::pagewise_roles::Slot>::Needs: ::pagewise_roles::Accepts<
                Self::Role,
            >,
        {
            F::store(target, evt_io_device_control);
        }
    }
    #[allow(dead_code)]
    impl evt_io_device_control {
        /// The role record of `evt_io_device_control`, kept in the image's `.pwrole` section for `cargo pagecheck`.
        const ROLE_RECORD: &'static ::pagewise_roles::RoleRecord = {
            #[used]
            #[cfg_attr(not(target_vendor = "apple"), unsafe(link_section = ".pwrole"))]
            static RECORD: ::pagewise_roles::RoleRecord = ::pagewise_roles::RoleRecord::new(
                ::pagewise_roles::Role::Dispatch,
                evt_io_device_control as *const (),
            );
            &RECORD
        };
    }
};
