//! `#[resident(dispatch)]` on a default queue's EvtIoDeviceControl; argument patterns do
//! not reach the function-pointer type.
use pagewise_macros::resident;

/// Handles every IOCTL at up to DISPATCH_LEVEL.
#[resident(dispatch)]
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
