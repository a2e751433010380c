//! The Windows half: find the device interface, open it, send IOCTLs.
//!
//! Kept to the three Win32 calls the client needs so that everything above it stays
//! portable and tested on any host.

use crate::device::{Transport, split_multi_sz};
use crate::error::{Error, OsError};
use pagewise_ioctl::DEVICE_INTERFACE_GUID;
use windows::Win32::Devices::DeviceAndDriverInstallation::{
    CM_GET_DEVICE_INTERFACE_LIST_PRESENT, CM_Get_Device_Interface_List_SizeW,
    CM_Get_Device_Interface_ListW, CONFIGRET, CR_BUFFER_SMALL, CR_SUCCESS,
};
use windows::Win32::Foundation::{
    CloseHandle, ERROR_FILE_NOT_FOUND, ERROR_PATH_NOT_FOUND, GENERIC_READ, GENERIC_WRITE, HANDLE,
};
use windows::Win32::Storage::FileSystem::{
    CreateFileW, FILE_ATTRIBUTE_NORMAL, FILE_SHARE_READ, FILE_SHARE_WRITE, OPEN_EXISTING,
};
use windows::Win32::System::IO::DeviceIoControl;
use windows::core::{GUID, PCWSTR};

/// An open handle to the pagewise device.
pub struct DeviceHandle(HANDLE);

fn interface_guid() -> GUID {
    let g = DEVICE_INTERFACE_GUID;
    GUID::from_values(g.data1, g.data2, g.data3, g.data4)
}

/// The Win32 error code inside an `HRESULT_FROM_WIN32` value, or the raw value otherwise.
fn win32_code(e: &windows::core::Error) -> u32 {
    let hr = e.code().0.cast_unsigned();
    if hr & 0xFFFF_0000 == 0x8007_0000 {
        hr & 0xFFFF
    } else {
        hr
    }
}

fn os_error(operation: impl Into<String>, e: &windows::core::Error) -> OsError {
    OsError {
        operation: operation.into(),
        code: win32_code(e),
        message: e.message(),
    }
}

fn cm_error(operation: &str, cr: CONFIGRET) -> Error {
    Error::Os(OsError {
        operation: operation.into(),
        code: cr.0,
        message: "configuration manager error (CONFIGRET)".into(),
    })
}

/// Paths of the present device interfaces of the pagewise class, each NUL-terminated.
fn interface_paths() -> Result<Vec<Vec<u16>>, Error> {
    let guid = interface_guid();
    // The list can grow between the size query and the read (a device arriving): retry.
    for _ in 0..4 {
        let mut len = 0u32;
        // SAFETY: `len` and `guid` are live locals for the call; a null device id asks for
        // every device's interfaces.
        let cr = unsafe {
            CM_Get_Device_Interface_List_SizeW(
                &raw mut len,
                &raw const guid,
                PCWSTR::null(),
                CM_GET_DEVICE_INTERFACE_LIST_PRESENT,
            )
        };
        if cr != CR_SUCCESS {
            return Err(cm_error("CM_Get_Device_Interface_List_SizeW", cr));
        }
        let mut list = vec![0u16; len.max(1) as usize];
        // SAFETY: `list` is a writable buffer whose length the binding passes along with
        // its pointer; `guid` outlives the call.
        let cr = unsafe {
            CM_Get_Device_Interface_ListW(
                &raw const guid,
                PCWSTR::null(),
                &mut list,
                CM_GET_DEVICE_INTERFACE_LIST_PRESENT,
            )
        };
        if cr == CR_BUFFER_SMALL {
            continue;
        }
        if cr != CR_SUCCESS {
            return Err(cm_error("CM_Get_Device_Interface_ListW", cr));
        }
        return Ok(split_multi_sz(&list)
            .into_iter()
            .map(|path| path.iter().copied().chain(Some(0)).collect())
            .collect());
    }
    Err(cm_error("CM_Get_Device_Interface_ListW", CR_BUFFER_SMALL))
}

impl DeviceHandle {
    /// Opens the first present pagewise device, for reading, or for reading and writing
    /// when the command sends `IOCTL_PAGEWISE_HOLD_D0` (`FILE_WRITE_ACCESS`).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] without a device, [`Error::Os`] when it cannot be opened.
    pub fn open(write: bool) -> Result<Self, Error> {
        let paths = interface_paths()?;
        let Some(path) = paths.first() else {
            return Err(Error::NotFound);
        };
        let access = if write {
            GENERIC_READ.0 | GENERIC_WRITE.0
        } else {
            GENERIC_READ.0
        };
        // SAFETY: `path` is NUL-terminated and outlives the call; no security attributes
        // and no template handle.
        let opened = unsafe {
            CreateFileW(
                PCWSTR(path.as_ptr()),
                access,
                FILE_SHARE_READ | FILE_SHARE_WRITE,
                None,
                OPEN_EXISTING,
                FILE_ATTRIBUTE_NORMAL,
                None,
            )
        };
        match opened {
            Ok(handle) => Ok(DeviceHandle(handle)),
            // The device left between the lookup and the open.
            Err(e)
                if [ERROR_FILE_NOT_FOUND.0, ERROR_PATH_NOT_FOUND.0].contains(&win32_code(&e)) =>
            {
                Err(Error::NotFound)
            }
            Err(e) => Err(Error::Os(os_error(
                format!(
                    "CreateFileW({})",
                    String::from_utf16_lossy(&path[..path.len() - 1])
                ),
                &e,
            ))),
        }
    }
}

impl Transport for DeviceHandle {
    fn ioctl(&mut self, code: u32, input: &[u8], output: &mut [u8]) -> Result<usize, OsError> {
        let too_big = |what: &str| OsError {
            operation: "DeviceIoControl".into(),
            code: 87,
            message: format!("{what} buffer larger than 4 GiB"),
        };
        let in_len = u32::try_from(input.len()).map_err(|_| too_big("input"))?;
        let out_len = u32::try_from(output.len()).map_err(|_| too_big("output"))?;
        let mut returned = 0u32;
        // SAFETY: the handle is open for the lifetime of `self`; the input and output
        // pointers come from live slices with the lengths passed; the call is synchronous
        // (no OVERLAPPED, the handle was not opened for overlapped I/O), so the buffers
        // are not used after it returns.
        let result = unsafe {
            DeviceIoControl(
                self.0,
                code,
                (!input.is_empty()).then(|| input.as_ptr().cast()),
                in_len,
                (!output.is_empty()).then(|| output.as_mut_ptr().cast()),
                out_len,
                Some(&raw mut returned),
                None,
            )
        };
        result.map_err(|e| os_error(format!("DeviceIoControl({code:#010x})"), &e))?;
        Ok(returned as usize)
    }
}

impl Drop for DeviceHandle {
    fn drop(&mut self) {
        // SAFETY: the handle came from CreateFileW and is closed exactly once, here.
        let _ = unsafe { CloseHandle(self.0) };
    }
}
