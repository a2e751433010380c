//! placeholder: the driver's FFI layer (Windows only) goes here.
#![cfg_attr(windows, no_std)]
