//! Every misuse of the attributes is a compile error at a precise span; the
//! expected messages are checked in under `tests/ui/*.stderr`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*.rs");
}
