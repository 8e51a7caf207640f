//! Workload 6: Django's numbers for workloads 2, 4 and 5, from `benches/django/bench.py`,
//! which installs Django in a virtual environment of its own and prints its results as JSON.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::Config;
use crate::workloads::{bench_dir, median};

/// What the Django script measured, or why there is nothing.
#[derive(Debug, Default)]
pub struct Django {
    /// Django's version.
    pub version: Option<String>,
    /// Python's version.
    pub python: Option<String>,
    /// Seconds of each repetition, by backend key and workload key.
    pub secs: BTreeMap<(String, String), Vec<f64>>,
    /// Why Django did not run, or what went wrong.
    pub note: Option<String>,
}

impl Django {
    /// No Django column, and why.
    pub fn skipped(why: &str) -> Self {
        Django {
            note: Some(format!("Django not run: {why}")),
            ..Django::default()
        }
    }

    /// The median seconds of a workload on a backend.
    pub fn median_secs(&self, backend: &str, key: &str) -> Option<f64> {
        self.secs
            .get(&(backend.to_owned(), key.to_owned()))
            .map(|secs| median(secs))
    }
}

/// Runs the Django script with this run's counts; its progress goes to stderr.
pub fn run(config: &Config) -> Django {
    let python = std::env::var("DJANGO_BENCH_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let script = manifest.join("benches/django/bench.py");
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("django-venv");
    let dir = bench_dir();
    let _ = std::fs::create_dir_all(&dir);
    let output = Command::new(&python)
        .arg(&script)
        .args(["--saves", &config.saves.to_string()])
        .args(["--posts", &config.posts.to_string()])
        .args(["--tags", &config.tags.to_string()])
        .args(["--reps", &config.reps.to_string()])
        .arg("--dir")
        .arg(&dir)
        .arg("--venv")
        .arg(&venv)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) => return Django::skipped(&format!("cannot run `{python}`: {e}")),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(json) = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
    else {
        return Django::skipped(&format!(
            "{} printed no result ({})",
            script.display(),
            output.status
        ));
    };
    if let Some(error) = json.get("error").and_then(serde_json::Value::as_str) {
        return Django::skipped(error);
    }
    let text = |key: &str| {
        json.get(key)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let mut django = Django {
        version: text("django"),
        python: text("python"),
        ..Django::default()
    };
    if let Some(results) = json.get("results").and_then(serde_json::Value::as_object) {
        for (backend, workloads) in results {
            for (key, runs) in workloads.as_object().into_iter().flatten() {
                let secs: Vec<f64> = runs
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(serde_json::Value::as_f64)
                    .collect();
                django.secs.insert((backend.clone(), key.clone()), secs);
            }
        }
    }
    django
}
