//! `pagewisectl`, the user-mode client of the pagewise driver.
//!
//! Everything but the Win32 calls is here and portable: the command line, decoding and
//! validating what the driver returns, tables and JSON, and the `cycles` measurement. The
//! OS layer (`os`, Windows only) finds the device interface and sends the IOCTLs; tests
//! replace it with a simulated driver that answers from byte buffers.

pub mod cli;
pub mod cycles;
pub mod decode;
pub mod device;
pub mod error;
pub mod render;

#[cfg(windows)]
pub mod os;

#[cfg(test)]
mod sim;

pub use cli::{Cli, Command, Finished, execute, finish, usage_error, wants_json};
pub use error::{Error, ExitStatus};
