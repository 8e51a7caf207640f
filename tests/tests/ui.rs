//! Compile-time diagnostics of `#[receiver]`, `derive(Signal)` and `derive(Model)`, and code
//! they must accept.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/receiver/*.rs");
    cases.compile_fail("ui/signal/*.rs");
    cases.compile_fail("ui/model/*.rs");
}
