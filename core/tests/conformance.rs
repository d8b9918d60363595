//! The conformance suite on the reference engine.
use eventlite_conformance::MemoryEngine;

eventlite_conformance::conformance_suite!(MemoryEngine);
