//! Test support shared by the integration tests: the store conformance suite
//! (written once, run against every store) and a fault-injecting wrapper.

pub mod conformance;
pub mod faulty;
pub mod redis_server;
