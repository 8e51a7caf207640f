//! Workload 6: Django's numbers for workloads 2-5, 7 and 8 on every backend, from
//! `benches/django/bench.py`, which finds the newest Python it can, installs Django's current
//! release (and psycopg 3) in a virtual environment of its own, and prints its results as JSON.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::Config;
use crate::workloads::{Case, bench_dir, median, selected};

/// `bench.py`'s backends, by the keys the Rust side gives them.
const BACKENDS: [&str; 3] = ["sqlite-memory", "sqlite-file", "postgres"];

/// What the Django script measured, or why there is nothing.
#[derive(Debug, Default)]
pub struct Django {
    /// Django's version.
    pub version: Option<String>,
    /// Python's version.
    pub python: Option<String>,
    /// The interpreter the virtual environment was made with.
    pub python_executable: Option<String>,
    /// psycopg's version, if the PostgreSQL backend ran.
    pub psycopg: Option<String>,
    /// The SQLite library of Python's `sqlite3` module.
    pub sqlite: Option<String>,
    /// The PostgreSQL server's version, as Django saw it.
    pub postgres: Option<String>,
    /// Seconds of each repetition, by backend key and workload key.
    pub secs: BTreeMap<(String, String), Vec<f64>>,
    /// Why Django did not run, or what went wrong on a backend.
    pub notes: Vec<String>,
}

impl Django {
    /// No Django column, and why.
    pub fn skipped(why: &str) -> Self {
        Django {
            notes: vec![format!("Django not run: {why}")],
            ..Django::default()
        }
    }

    /// The seconds of each repetition of Django's run of a workload on a backend.
    pub fn runs(&self, backend: &str, case: Case) -> Option<&[f64]> {
        let key = key(case)?;
        self.secs
            .get(&(backend.to_owned(), key))
            .map(Vec::as_slice)
            .filter(|secs| !secs.is_empty())
    }

    /// The median seconds of Django's run of a workload on a backend.
    pub fn median_secs(&self, backend: &str, case: Case) -> Option<f64> {
        self.runs(backend, case).map(median)
    }
}

/// The key of `bench.py`'s result for the same workload, if Django runs it. Workload 3 (a
/// transaction per save on our side) is Django's `save()` outside any atomic block: autocommit,
/// Django's default.
pub fn key(case: Case) -> Option<String> {
    match case {
        Case::TxPerSave(receivers) => Some(format!("autocommit-{}", receivers.key())),
        case => case.django_key(),
    }
}

/// The backends and Django's workload keys a narrowed run (`SIGNALS_BENCH_ONLY`) selects, or
/// `None` for every workload on every backend.
fn selection(config: &Config) -> Option<(Vec<&'static str>, Vec<String>)> {
    config.only.as_ref()?;
    let mut backends = Vec::new();
    let mut keys = Vec::new();
    for backend in BACKENDS {
        for case in Case::all() {
            let Some(key) = key(case) else { continue };
            if !selected(config, &format!("{backend}: {}", case.label(config))) {
                continue;
            }
            if !backends.contains(&backend) {
                backends.push(backend);
            }
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    Some((backends, keys))
}

/// Runs `bench.py` with `python`; an error if there is no such program.
fn launch(
    python: &str,
    config: &Config,
    selection: Option<&(Vec<&str>, Vec<String>)>,
) -> std::io::Result<Output> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("django-venv");
    let dir = bench_dir();
    let _ = std::fs::create_dir_all(&dir);
    let mut command = Command::new(python);
    command.arg(manifest.join("benches/django/bench.py"));
    if let Some((backends, keys)) = selection {
        command
            .args(["--backends", &backends.join(",")])
            .args(["--workloads", &keys.join(",")]);
    }
    command
        .args(["--saves", &config.saves.to_string()])
        .args(["--posts", &config.posts.to_string()])
        .args(["--tags", &config.tags.to_string()])
        .args(["--parents", &config.parents.to_string()])
        .args(["--children", &config.children.to_string()])
        .args(["--reps", &config.reps.to_string()])
        .args(["--autocommit-reps", &config.tx_each_reps.to_string()])
        .arg("--dir")
        .arg(&dir)
        .arg("--venv")
        .arg(&venv)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
}

/// Runs the Django script with this run's counts; its progress goes to stderr.
///
/// The script is started with `DJANGO_BENCH_PYTHON` if set, else `python3` (or `python`); it
/// then picks the newest interpreter it finds for Django's virtual environment itself.
/// `DATABASE_URL` passes through, so Django measures the same PostgreSQL server. A narrowed run
/// (`SIGNALS_BENCH_ONLY`) has Django run only the workloads and backends it selects.
pub fn run(config: &Config) -> Django {
    let selection = selection(config);
    if selection
        .as_ref()
        .is_some_and(|(backends, keys)| backends.is_empty() || keys.is_empty())
    {
        return Django::skipped("SIGNALS_BENCH_ONLY selects no workload Django runs");
    }
    let starters = match std::env::var("DJANGO_BENCH_PYTHON") {
        Ok(python) if !python.is_empty() => vec![python],
        _ => vec!["python3".to_owned(), "python".to_owned()],
    };
    let mut failure = None;
    let mut output = None;
    for python in &starters {
        match launch(python, config, selection.as_ref()) {
            Ok(out) => {
                output = Some(out);
                break;
            }
            Err(e) => failure = Some(format!("cannot run `{python}`: {e}")),
        }
    }
    let Some(output) = output else {
        return Django::skipped(&failure.unwrap_or_else(|| "no Python".to_owned()));
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(json) = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
    else {
        return Django::skipped(&format!(
            "benches/django/bench.py printed no result ({})",
            output.status
        ));
    };
    if let Some(error) = json.get("error").and_then(serde_json::Value::as_str) {
        return Django::skipped(error);
    }
    parse(&json)
}

/// Reads `bench.py`'s JSON line.
fn parse(json: &serde_json::Value) -> Django {
    let text = |key: &str| {
        json.get(key)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let mut django = Django {
        version: text("django"),
        python: text("python"),
        python_executable: text("python_executable"),
        psycopg: text("psycopg"),
        sqlite: text("sqlite"),
        postgres: text("postgres"),
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
    if let Some(errors) = json.get("errors").and_then(serde_json::Value::as_object) {
        for (backend, why) in errors {
            django.notes.push(format!(
                "Django on {}: {}",
                crate::workloads::backend_name(backend),
                why.as_str().unwrap_or("failed")
            ));
        }
    }
    django
}
