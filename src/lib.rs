//! The examples package: `examples/*.rs` are runnable programs, one per
//! capability (`cargo run --example quickstart`). This library is empty; it
//! exists because a package needs one target besides its examples.
