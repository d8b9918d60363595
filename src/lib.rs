//! EventLite facade
pub use eventlite_core::*;
