//! Errors and the exit codes scripts rely on.

use std::fmt;

/// The process exit codes. Stable: `tests/vm/*.ps1` and CI scripts test for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// The command did what was asked.
    Ok = 0,
    /// An operation failed, the driver answered something invalid, a callback sits in a
    /// section its role forbids, or `cycles` did not see every cycle before its timeout.
    Failed = 1,
    /// Bad command line.
    Usage = 2,
    /// No pagewise device interface is present.
    NotFound = 3,
    /// The driver speaks another interface version than this client.
    VersionMismatch = 4,
}

impl ExitStatus {
    /// The numeric process exit code.
    #[must_use]
    pub const fn code(self) -> u8 {
        self as u8
    }
}

/// The `--help` text describing [`ExitStatus`].
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  operation failed, invalid answer from the driver, a placement violation (config),
     or fewer cycles than requested before the timeout (cycles)
  2  usage error
  3  no pagewise device: the driver is not installed or the device is not started
  4  the driver's interface version differs from this client's (driver too old or too new)";

/// A Win32 error from the OS layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OsError {
    /// What was being done (`DeviceIoControl(GET_STATS)`, `CreateFileW`, ...).
    pub operation: String,
    /// The Win32 error code (or a `CONFIGRET` for cfgmgr32 calls).
    pub code: u32,
    /// The system's message for it.
    pub message: String,
}

/// Win32 `ERROR_ACCESS_DENIED`.
pub const ERROR_ACCESS_DENIED: u32 = 5;
/// Win32 `ERROR_INVALID_FUNCTION`: what `STATUS_INVALID_DEVICE_REQUEST` becomes in user
/// mode, i.e. the driver does not know the IOCTL.
pub const ERROR_INVALID_FUNCTION: u32 = 1;

/// Everything that can stop a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// No device exposes the pagewise interface.
    NotFound,
    /// A system call failed.
    Os(OsError),
    /// The driver answered something that breaks the protocol.
    Protocol(String),
    /// [`pagewise_ioctl::INTERFACE_VERSION`] differs from the driver's.
    VersionMismatch {
        /// The driver's interface version.
        driver: u32,
        /// This client's interface version.
        client: u32,
    },
    /// A bad argument found after parsing (clap reports the rest itself).
    Usage(String),
}

impl Error {
    /// The exit code this error ends the process with.
    #[must_use]
    pub const fn exit_status(&self) -> ExitStatus {
        match self {
            Error::NotFound => ExitStatus::NotFound,
            Error::Os(_) | Error::Protocol(_) => ExitStatus::Failed,
            Error::VersionMismatch { .. } => ExitStatus::VersionMismatch,
            Error::Usage(_) => ExitStatus::Usage,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound => {
                f.write_str("no pagewise device: is the driver installed? see README")
            }
            Error::Os(e) => {
                write!(
                    f,
                    "{} failed: {} (error {})",
                    e.operation,
                    e.message.trim_end(),
                    e.code
                )?;
                match e.code {
                    ERROR_ACCESS_DENIED => f.write_str("; run from an elevated prompt"),
                    ERROR_INVALID_FUNCTION => {
                        f.write_str("; the driver does not know this request (driver too old?)")
                    }
                    _ => Ok(()),
                }
            }
            Error::Protocol(what) => write!(f, "invalid answer from the driver: {what}"),
            Error::VersionMismatch { driver, client } => {
                let age = if driver < client {
                    "too old"
                } else {
                    "too new"
                };
                write!(
                    f,
                    "driver interface version {driver}, client interface version {client}: \
                     the driver is {age} for this pagewisectl; install matching builds"
                )
            }
            Error::Usage(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for Error {}

impl From<OsError> for Error {
    fn from(e: OsError) -> Self {
        Error::Os(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_documented_ones() {
        assert_eq!(Error::NotFound.exit_status().code(), 3);
        assert_eq!(
            Error::VersionMismatch {
                driver: 2,
                client: 1
            }
            .exit_status()
            .code(),
            4
        );
        assert_eq!(Error::Protocol(String::new()).exit_status().code(), 1);
        assert_eq!(Error::Usage(String::new()).exit_status().code(), 2);
        for code in 0..=4 {
            assert!(
                EXIT_CODES_HELP.contains(&format!("  {code}  ")),
                "{code} documented"
            );
        }
    }

    #[test]
    fn messages_name_the_cause() {
        assert_eq!(
            Error::NotFound.to_string(),
            "no pagewise device: is the driver installed? see README"
        );
        let old = Error::VersionMismatch {
            driver: 1,
            client: 2,
        }
        .to_string();
        assert!(old.contains("too old"), "{old}");
        let new = Error::VersionMismatch {
            driver: 3,
            client: 2,
        }
        .to_string();
        assert!(new.contains("too new"), "{new}");
        let denied = Error::Os(OsError {
            operation: "CreateFileW".into(),
            code: ERROR_ACCESS_DENIED,
            message: "Access is denied.\r\n".into(),
        })
        .to_string();
        assert_eq!(
            denied,
            "CreateFileW failed: Access is denied. (error 5); run from an elevated prompt"
        );
    }
}
