//! The dataflow analysis of one function, in the parts rustc's dataflow framework keeps apart:
//!
//! - [`value`]: the value domain, what is known about one register or memory word, and its
//!   meet at joins;
//! - [`memory`]: the memory a function can name (its frame, what its pointer arguments point
//!   to) and its meet;
//! - [`state`]: the whole state at one point (registers, SSE registers, memory, locks held,
//!   what the last test established) and its meet;
//! - [`transfer`]: the transfer function, what each instruction does to the state and what it
//!   adds to the call graph;
//! - [`engine`]: the fixed-point engine over the function's basic blocks, with its budgets;
//! - [`summary`]: what a walk reports (registration calls, lock regions) and the summary its
//!   callers apply.
//!
//! Which functions are walked, and in which order, is [`crate::flow`]'s business; the linear
//! pass over every function is [`crate::decode`]'s.

pub mod engine;
pub mod guard;
pub mod memory;
pub mod state;
pub mod summary;
pub mod transfer;
pub mod value;

pub use engine::Limits;
pub use memory::{Content, ImageBytes, Memory};
pub use summary::{Budget, FlowOut, Held, RegArg, RegCall, Summary};
pub use value::{Sets, Value};
