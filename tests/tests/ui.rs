//! Compile-time diagnostics of `#[receiver]`, `derive(Signal)`, `derive(Model)` and the ORM's
//! methods, and code they must accept.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/receiver/*.rs");
    cases.compile_fail("ui/signal/*.rs");
    cases.compile_fail("ui/model/*.rs");
    cases.compile_fail("ui/orm/*.rs");
}
