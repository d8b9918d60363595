//! The conformance suite on the reference engine, and the scenarios of `EventStore`'s own
//! logic, which run here only: no engine changes them.
use eventlite_conformance::MemoryFactory;

eventlite_conformance::conformance_suite!(MemoryFactory);
eventlite_conformance::store_logic_suite!(MemoryFactory);
