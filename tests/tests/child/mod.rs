//! Running the current test binary again as a child, to read the real stderr that the test
//! harness would otherwise capture: the child runs the test named `child` alone, with an
//! environment variable telling it what to do.

use std::process::{Command, Output};

/// Runs this test binary's `child` test with `var=mode`; panics if the child fails.
pub fn run_child(var: &str, mode: &str) -> Output {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(var, mode)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child `{mode}` failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The lines the framework printed on the child's stderr.
pub fn our_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("signals"))
        .map(str::to_owned)
        .collect()
}
