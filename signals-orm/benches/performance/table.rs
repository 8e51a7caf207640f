//! The one table and the targets below it: first as a [`Report`] (written as JSON), then
//! rendered as Markdown from that report, both for the terminal and for the Results section of
//! `docs/performance.md` (rewritten between [`BEGIN`] and [`END`] from the JSON alone).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::Config;
use crate::dispatch::DispatchResults;
use crate::django::Django;
use crate::workloads::{
    Case, HeapDelete, OrmResults, Row, Side, backend_name, count, heap_delete_label, thousands,
};

/// A throughput ratio below this misses the target.
const MIN_THROUGHPUT_RATIO: f64 = 0.9;
/// A peak-memory ratio above this misses the target.
const MAX_PEAK_RATIO: f64 = 1.1;
/// Nanoseconds a send without receivers may take.
const MAX_UNHEARD_NS: f64 = 2.0;
/// Nanoseconds a sync no-op receiver may add over a direct call.
const MAX_RECEIVER_NS: f64 = 5.0;
/// Workload 7 without receivers: the lowest throughput ratio to raw sqlx.
const MIN_SET_RATIO_UNHEARD: f64 = 0.95;
/// Workload 7 with one no-op receiver: the lowest throughput ratio to raw sqlx.
const MIN_SET_RATIO_HEARD: f64 = 0.8;
/// Workload 7 with one no-op receiver: the lowest throughput ratio to Django's signalled path,
/// on SQLite.
const MIN_SET_OVER_DJANGO_SQLITE: f64 = 10.0;
/// The same, on PostgreSQL.
const MIN_SET_OVER_DJANGO_POSTGRES: f64 = 3.0;
/// Workload 8 (cascading delete): the lowest throughput ratio to raw sqlx (a hand-written
/// program deleting the same rows and decoding the children it deletes).
const MIN_CASCADE_RATIO: f64 = 0.8;
/// Workload 8: the lowest throughput ratio to Django's `QuerySet.delete` (CASCADE, a
/// `post_delete` receiver on the child), on SQLite.
const MIN_CASCADE_OVER_DJANGO_SQLITE: f64 = 10.0;
/// The same, on PostgreSQL.
const MIN_CASCADE_OVER_DJANGO_POSTGRES: f64 = 3.0;
/// Workload 9: the lowest throughput ratio of a save with one durable receiver to the same save
/// with one `on_commit` receiver (issue 17).
const MIN_DURABLE_RATIO: f64 = 0.8;
/// Workload 11: the most a fetch with no `post_init` receiver may take per row over raw sqlx's
/// (issue 15: nothing, within the noise of a run).
const MAX_UNHEARD_FETCH_RATIO: f64 = 1.05;

/// The version of the JSON layout below; raised when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;
/// The line after which `docs/performance.md`'s generated results begin.
pub const BEGIN: &str = "<!-- results:begin -->";
/// The line before which they end.
pub const END: &str = "<!-- results:end -->";

/// One run of the benchmark: everything the table and the targets show, and what they came
/// from. Serialized as the JSON result; `docs/performance.md` is rendered from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema: u32,
    /// When the run ended, UTC, `2025-01-31T12:00:00Z`.
    pub date: String,
    /// `git rev-parse HEAD` of the workspace, if it is a git checkout.
    pub git_commit: Option<String>,
    /// Whether tracked files differed from that commit.
    pub git_dirty: Option<bool>,
    /// `full`, `quick` (`SIGNALS_BENCH_QUICK=1`) or `smoke` (`cargo test --benches`).
    pub mode: String,
    /// `SIGNALS_BENCH_ONLY`, if the run was narrowed.
    pub only: Option<String>,
    /// Where it ran.
    pub machine: Machine,
    /// What it ran with.
    pub versions: Versions,
    /// Its sizes.
    pub counts: Counts,
    /// Wall time of the whole run, seconds.
    pub elapsed_secs: f64,
    /// The table's rows, in order.
    pub rows: Vec<ReportRow>,
    /// Backends or comparisons skipped, and why.
    pub notes: Vec<String>,
    /// The targets, met or missed.
    pub targets: Vec<Verdict>,
}

/// Where the benchmark ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Cores available to the process.
    pub cores: usize,
    /// `/proc/cpuinfo`'s model name.
    pub cpu: String,
    /// `linux`, ...
    pub os: String,
    /// `x86_64`, ...
    pub arch: String,
    /// The core the benchmark (and Django) was pinned to, if pinned.
    pub pinned_core: Option<usize>,
}

/// Versions of everything measured; `None` where unknown or not run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    /// `rustc --version`.
    pub rustc: Option<String>,
    /// sqlx, from `Cargo.lock`.
    pub sqlx: Option<String>,
    /// The SQLite library sqlx links (`sqlite_version()`).
    pub sqlite: Option<String>,
    /// The PostgreSQL server (`SHOW server_version`).
    pub postgres: Option<String>,
    /// The Python Django ran on.
    pub python: Option<String>,
    /// The interpreter Django's virtual environment was made with.
    pub python_executable: Option<String>,
    /// Django.
    pub django: Option<String>,
    /// psycopg, Django's PostgreSQL driver.
    pub psycopg: Option<String>,
    /// The SQLite library of Python's `sqlite3` module (Django's SQLite).
    pub python_sqlite: Option<String>,
}

/// The run's sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Saves of workloads 2 and 3, deletes of workload 4.
    pub saves: usize,
    /// Posts of workload 5.
    pub posts: usize,
    /// Tags added to each post.
    pub tags: usize,
    /// Parents of workload 8 (0 in results from before it).
    #[serde(default)]
    pub parents: usize,
    /// Children of each parent of workload 8.
    #[serde(default)]
    pub children: usize,
    /// Repetitions of each database measurement (medians reported).
    pub reps: usize,
    /// Repetitions of workload 3.
    pub tx_each_reps: usize,
    /// Timed repetitions of each dispatch workload.
    pub dispatch_reps: usize,
    /// Calls in each dispatch repetition.
    pub dispatch_iters: u32,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRow {
    /// The workload's number (1 dispatch, 2-5, 7 and 8 the ORM workloads).
    pub section: u32,
    /// What it does, as the table says after the number.
    pub workload: String,
    /// `sqlite-memory`, `sqlite-file` or `postgres`; `None` for dispatch.
    pub backend: Option<String>,
    /// Unit of `ours`, `baseline` and `django`: `ns/send`, `bytes`, `saves/s`, `deletes/s`,
    /// `adds/s`, `rows/s`.
    pub unit: String,
    /// Whether more is better (rates) or less (time, bytes).
    pub higher_is_better: bool,
    /// Through signals (signals-orm with the receivers named).
    pub ours: Option<f64>,
    /// The baseline: raw sqlx running the same SQL (workload 7: what a sqlx user without
    /// signals runs for the same job), or calling the receivers directly.
    pub baseline: Option<f64>,
    /// `raw sqlx` or `direct call`.
    pub baseline_kind: Option<String>,
    /// Django on the same backend and workload (workload 7: the Django path the label names).
    pub django: Option<f64>,
    /// `ours / baseline`.
    pub ours_over_baseline: Option<f64>,
    /// `ours / django`.
    pub ours_over_django: Option<f64>,
    /// Dispatch: the heap's peak rise during the timed sends, bytes.
    pub heap_bytes: Option<usize>,
    /// The allocation check: bytes the heap rose over `sends` sends to sync receivers.
    pub heap_check: Option<HeapCheck>,
    /// ORM workloads: the process's heap during the runs (medians).
    pub peak_heap: Option<PeakHeap>,
    /// ORM workloads: seconds of each repetition.
    pub secs: Option<Secs>,
}

/// The process-wide allocation check over many sends to sync receivers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeapCheck {
    /// Heap peak above the start over all of them, bytes.
    pub bytes: usize,
    /// Sends made.
    pub sends: usize,
}

/// The process's heap during an ORM workload, medians over the repetitions, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PeakHeap {
    /// Our side: the process's heap peak during the run.
    pub ours_peak: f64,
    /// Our side: how far it rose above the heap at the run's start.
    pub ours_growth: f64,
    /// Raw sqlx: the process's heap peak during the run.
    pub raw_peak: f64,
    /// Raw sqlx: how far it rose above the heap at the run's start.
    pub raw_growth: f64,
}

/// Seconds of each repetition of an ORM workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Secs {
    /// Ours.
    pub ours: Vec<f64>,
    /// Raw sqlx.
    pub raw: Vec<f64>,
    /// Django (empty if it did not run this workload here).
    pub django: Vec<f64>,
}

/// A target, met or missed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether it was met.
    pub met: bool,
    /// The target and what the run measured.
    pub text: String,
}

#[expect(clippy::cast_precision_loss, reason = "bytes, far below 2^52")]
fn bytes_f64(bytes: usize) -> f64 {
    bytes as f64
}

fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

#[expect(clippy::cast_precision_loss, reason = "a rate")]
fn rate(ops: usize, secs: f64) -> f64 {
    ops as f64 / secs
}

/// What the run measured, as a [`Report`] (the date, commit and versions are the caller's).
pub struct Measured<'a> {
    /// The run's sizes and switches.
    pub config: &'a Config,
    /// Workload 1.
    pub dispatch: &'a DispatchResults,
    /// Workloads 2-5 and 7.
    pub orm: &'a OrmResults,
    /// Django's side of them.
    pub django: &'a Django,
}

impl Measured<'_> {
    /// The rows, the notes and the verdicts.
    pub fn rows(&self) -> (Vec<ReportRow>, Vec<String>, Vec<Verdict>) {
        let mut rows = dispatch_rows(self.dispatch);
        for row in &self.orm.rows {
            rows.push(orm_row(self.config, row, self.django));
        }
        for row in &self.orm.rows {
            if let Some(peak) = peak_row(self.config, row) {
                rows.push(peak);
            }
        }
        if let Some(heap) = &self.orm.heap_delete {
            rows.extend(heap_delete_row(heap));
        }
        let notes = self
            .orm
            .notes
            .iter()
            .chain(&self.django.notes)
            .cloned()
            .collect();
        let targets = if self.config.smoke {
            Vec::new()
        } else {
            let mut targets = dispatch_targets(self.dispatch);
            targets.extend(orm_targets(self.config, self.orm));
            targets.extend(set_based_targets(self.config, self.orm, self.django));
            targets.extend(cascade_targets(self.config, self.orm, self.django));
            targets.extend(durable_targets(self.config, self.orm));
            targets.extend(fetch_targets(self.config, self.orm));
            targets
        };
        (rows, notes, targets)
    }
}

fn empty_row(section: u32, workload: &str, unit: &str, higher_is_better: bool) -> ReportRow {
    ReportRow {
        section,
        workload: workload.to_owned(),
        backend: None,
        unit: unit.to_owned(),
        higher_is_better,
        ours: None,
        baseline: None,
        baseline_kind: None,
        django: None,
        ours_over_baseline: None,
        ours_over_django: None,
        heap_bytes: None,
        heap_check: None,
        peak_heap: None,
        secs: None,
    }
}

/// Names, descriptions and the direct-call baseline of each dispatch row.
const DISPATCH: [(&str, &str, Option<&str>); 8] = [
    ("send_sync_0", "`send_sync`, 0 receivers", None),
    ("send_await_0", "`send().await`, 0 receivers", None),
    (
        "send_sync_sync_1",
        "`send_sync`, 1 sync receiver",
        Some("direct_sync_1"),
    ),
    (
        "send_await_sync_1",
        "`send().await`, 1 sync receiver",
        Some("direct_sync_1"),
    ),
    (
        "send_sync_sync_10",
        "`send_sync`, 10 sync receivers",
        Some("direct_sync_10"),
    ),
    (
        "send_await_sync_10",
        "`send().await`, 10 sync receivers",
        Some("direct_sync_10"),
    ),
    (
        "send_await_async_1",
        "`send().await`, 1 async receiver",
        Some("direct_async_1"),
    ),
    (
        "send_await_async_10",
        "`send().await`, 10 async receivers",
        Some("direct_async_10"),
    ),
];

/// The sends to sync receivers, which must not allocate.
const SYNC_SENDS: [&str; 4] = [
    "send_sync_sync_1",
    "send_await_sync_1",
    "send_sync_sync_10",
    "send_await_sync_10",
];

fn dispatch_rows(dispatch: &DispatchResults) -> Vec<ReportRow> {
    let mut rows = Vec::new();
    if dispatch.benches.is_empty() {
        return rows;
    }
    for (name, workload, direct) in DISPATCH {
        let mut row = empty_row(1, workload, "ns/send", false);
        if let Some(ours) = dispatch.get(name) {
            row.ours = finite(ours.ns);
            row.heap_bytes = Some(ours.heap_bytes);
            if let Some(direct) = direct.and_then(|d| dispatch.get(d)) {
                row.baseline = finite(direct.ns);
                row.baseline_kind = Some("direct call".to_owned());
                row.ours_over_baseline = finite(ours.ns / direct.ns);
            }
        }
        rows.push(row);
    }
    let mut row = empty_row(
        1,
        "heap allocations in sends to sync receivers",
        "bytes",
        false,
    );
    row.ours = SYNC_SENDS
        .iter()
        .map(|name| dispatch.get(name).map(|m| m.heap_bytes))
        .try_fold(0, |most, bytes| bytes.map(|b| most.max(b)))
        .map(bytes_f64);
    row.heap_check = Some(HeapCheck {
        bytes: dispatch.heap_bytes_in_sync_sends,
        sends: dispatch.sync_sends_checked,
    });
    rows.push(row);
    rows
}

/// `2. 20,000 saves, 1 tx: no receivers` as section 2 and the rest.
fn split_label(label: &str) -> (u32, String) {
    match label.split_once(". ") {
        Some((number, rest)) if number.parse::<u32>().is_ok() => {
            (number.parse().unwrap_or(0), rest.to_owned())
        }
        _ => (0, label.to_owned()),
    }
}

fn orm_row(config: &Config, row: &Row, django: &Django) -> ReportRow {
    let ops = row.case.ops(config);
    // Workload 11 is a time per row; the others are rates.
    let per_row = row.case.unit() == "ns/row";
    let value = |secs: f64| {
        if per_row {
            finite(secs * 1e9 / rate(ops, 1.0))
        } else {
            finite(rate(ops, secs))
        }
    };
    let ours = value(row.ours.median_secs());
    let raw = value(row.raw.median_secs());
    let django_runs = django.runs(row.backend, row.case).unwrap_or_default();
    let django_rate = django
        .median_secs(row.backend, row.case)
        .and_then(|secs| finite(rate(ops, secs)));
    let (section, workload) = split_label(&row.case.label(config));
    let mut out = empty_row(section, &workload, row.case.unit(), !per_row);
    out.backend = Some(row.backend.to_owned());
    out.ours = ours;
    out.baseline = raw;
    out.baseline_kind = Some(row.case.baseline_kind().to_owned());
    out.django = django_rate;
    out.ours_over_baseline = ours.zip(raw).and_then(|(o, r)| finite(o / r));
    out.ours_over_django = ours.zip(django_rate).and_then(|(o, d)| finite(o / d));
    out.peak_heap = peak_heap(&row.ours, &row.raw);
    out.secs = Some(Secs {
        ours: row.ours.secs.clone(),
        raw: row.raw.secs.clone(),
        django: django_runs.to_vec(),
    });
    out
}

/// The heap medians, if both sides ran.
fn peak_heap(ours: &Side, raw: &Side) -> Option<PeakHeap> {
    let heap = PeakHeap {
        ours_peak: ours.median_peak(),
        ours_growth: ours.median_growth(),
        raw_peak: raw.median_peak(),
        raw_growth: raw.median_growth(),
    };
    [
        heap.ours_peak,
        heap.ours_growth,
        heap.raw_peak,
        heap.raw_growth,
    ]
    .iter()
    .all(|v| v.is_finite())
    .then_some(heap)
}

/// Workload 2's heap as a row of its own.
fn peak_row(config: &Config, row: &Row) -> Option<ReportRow> {
    let Case::OneTx(receivers) = row.case else {
        return None;
    };
    let heap = peak_heap(&row.ours, &row.raw)?;
    let workload = format!(
        "peak heap (growth), {} saves, 1 tx: {}",
        count(config.saves),
        receivers.label()
    );
    let mut out = empty_row(2, &workload, "bytes", false);
    out.backend = Some(row.backend.to_owned());
    out.ours = finite(heap.ours_peak);
    out.baseline = finite(heap.raw_peak);
    out.baseline_kind = Some("raw sqlx".to_owned());
    out.ours_over_baseline = finite(heap.ours_peak / heap.raw_peak);
    out.peak_heap = Some(heap);
    Some(out)
}

/// Workload 7's large delete as a row: the process's heap, ours and raw sqlx's (no ratio: the
/// raw `DELETE .. WHERE` holds no row, so the ratio would only restate the ORM's chunk).
fn heap_delete_row(heap: &HeapDelete) -> Option<ReportRow> {
    let peak = peak_heap(&heap.ours, &heap.raw)?;
    let (section, workload) = split_label(&heap_delete_label(heap.rows));
    let mut out = empty_row(section, &workload, "bytes", false);
    out.backend = Some("sqlite-memory".to_owned());
    out.ours = finite(peak.ours_peak);
    out.baseline = finite(peak.raw_peak);
    out.baseline_kind = Some("raw sqlx".to_owned());
    out.peak_heap = Some(peak);
    out.secs = Some(Secs {
        ours: heap.ours.secs.clone(),
        raw: heap.raw.secs.clone(),
        django: Vec::new(),
    });
    Some(out)
}

fn verdict(met: bool, text: String) -> Verdict {
    Verdict { met, text }
}

fn dispatch_targets(dispatch: &DispatchResults) -> Vec<Verdict> {
    let mut out = Vec::new();
    if dispatch.benches.is_empty() {
        return out;
    }
    let get = |name: &str| dispatch.get(name).map_or(f64::NAN, |m| m.ns);
    let unheard = get("send_sync_0").max(get("send_await_0"));
    out.push(verdict(
        unheard <= MAX_UNHEARD_NS,
        format!(
            "a send with no receivers takes at most {MAX_UNHEARD_NS} ns: `send_sync` {}, \
             `send().await` {}.",
            ns(get("send_sync_0")),
            ns(get("send_await_0"))
        ),
    ));
    for (send, zero, name) in [
        ("send_sync_sync", "send_sync_0", "`send_sync`"),
        ("send_await_sync", "send_await_0", "`send().await`"),
    ] {
        let (t0, t1, t10) = (
            get(zero),
            get(&format!("{send}_1")),
            get(&format!("{send}_10")),
        );
        let (d1, d10) = (get("direct_sync_1"), get("direct_sync_10"));
        let each = ((t10 - t1) - (d10 - d1)) / 9.0;
        let fixed = t1 - t0 - d1 - each;
        out.push(verdict(
            each <= MAX_RECEIVER_NS,
            format!(
                "each sync no-op receiver adds at most {MAX_RECEIVER_NS} ns over a direct call \
                 ({name}): each receiver adds {} (from 1 to 10 receivers, direct calls \
                 subtracted); a send that has receivers also pays {} once (snapshot load, \
                 nesting frame, span check), so 1 receiver costs {} and 10 cost {}.",
                ns(each),
                ns(fixed),
                ns(t1),
                ns(t10)
            ),
        ));
    }
    // A workload that did not run counts as allocating.
    let heap = SYNC_SENDS
        .iter()
        .map(|name| dispatch.get(name).map(|m| m.heap_bytes))
        .try_fold(0, |most, bytes| bytes.map(|b| most.max(b)));
    out.push(verdict(
        heap == Some(0) && dispatch.heap_bytes_in_sync_sends == 0,
        format!(
            "no heap allocation in a send to sync receivers: the process-wide byte counter \
             rose by {} B during the timed sends (1 and 10 receivers, `send_sync` and \
             `send().await`), and by {} B over {} such sends.",
            heap.map_or_else(|| "—".to_owned(), |b| b.to_string()),
            dispatch.heap_bytes_in_sync_sends,
            count(dispatch.sync_sends_checked)
        ),
    ));
    out
}

fn orm_targets(config: &Config, orm: &OrmResults) -> Vec<Verdict> {
    let ratios: Vec<(f64, &Row)> = orm
        .rows
        .iter()
        .filter(|row| (2..=5).contains(&row.case.section()))
        .map(|row| (row.raw.median_secs() / row.ours.median_secs(), row))
        .collect();
    let mut out = Vec::new();
    let missed: Vec<String> = ratios
        .iter()
        .filter(|(r, _)| *r < MIN_THROUGHPUT_RATIO)
        .map(|(r, row)| {
            format!(
                "{} on {} ({r:.2})",
                row.case.label(config),
                backend_name(row.backend)
            )
        })
        .collect();
    let lowest = ratios.iter().map(|(r, _)| *r).fold(f64::INFINITY, f64::min);
    let throughput = verdict(
        missed.is_empty(),
        format!(
            "workloads 2-5 reach at least {MIN_THROUGHPUT_RATIO} of raw sqlx's throughput: \
             lowest ratio {lowest:.2}{}.",
            if missed.is_empty() {
                String::new()
            } else {
                format!("; below: {}", missed.join(", "))
            }
        ),
    );
    let peaks: Vec<(f64, &Row)> = orm
        .rows
        .iter()
        .filter(|row| matches!(row.case, Case::OneTx(_)))
        .map(|row| (row.ours.median_peak() / row.raw.median_peak(), row))
        .collect();
    let worst = peaks.iter().map(|(r, _)| *r).fold(0.0, f64::max);
    let over: Vec<String> = peaks
        .iter()
        .filter(|(r, _)| *r > MAX_PEAK_RATIO)
        .map(|(r, row)| {
            format!(
                "{} on {} ({r:.2})",
                row.case.label(config),
                backend_name(row.backend)
            )
        })
        .collect();
    let peak = verdict(
        over.is_empty(),
        format!(
            "peak heap of workload 2 within 10% of raw sqlx's (the process's heap peak during \
             the run): highest ratio {worst:.2}{}.",
            if over.is_empty() {
                String::new()
            } else {
                format!("; above: {}", over.join(", "))
            }
        ),
    );
    // Workloads a narrowed run left out are not judged.
    if !ratios.is_empty() {
        out.push(throughput);
    }
    if !peaks.is_empty() {
        out.push(peak);
    }
    out
}

/// `label on backend (ratio)` for the rows a verdict lists.
fn listed(config: &Config, rows: &[(f64, &Row)]) -> String {
    rows.iter()
        .map(|(r, row)| {
            format!(
                "{} on {} ({r:.2})",
                row.case.label(config),
                backend_name(row.backend)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The lowest of some ratios, as text.
fn lowest(ratios: &[(f64, &Row)]) -> String {
    ratios
        .iter()
        .map(|(r, _)| *r)
        .min_by(f64::total_cmp)
        .map_or_else(|| "—".to_owned(), |r| format!("{r:.2}"))
}

/// Workload 7's targets: against raw sqlx without and with a receiver, and against Django's
/// signalled path with a receiver.
fn set_based_targets(config: &Config, orm: &OrmResults, django: &Django) -> Vec<Verdict> {
    let mut out = Vec::new();
    for (heard, min, what) in [
        (false, MIN_SET_RATIO_UNHEARD, "without receivers"),
        (
            true,
            MIN_SET_RATIO_HEARD,
            "with one no-op post_save / post_delete receiver",
        ),
    ] {
        let ratios: Vec<(f64, &Row)> = orm
            .rows
            .iter()
            .filter(|row| matches!(row.case, Case::SetBased(_, h) if h == heard))
            .map(|row| (row.raw.median_secs() / row.ours.median_secs(), row))
            .collect();
        if ratios.is_empty() {
            continue;
        }
        let below: Vec<(f64, &Row)> = ratios.iter().copied().filter(|(r, _)| *r < min).collect();
        out.push(verdict(
            below.is_empty(),
            format!(
                "workload 7 {what} reaches at least {min} of raw sqlx's throughput (raw sqlx \
                 running the statements the ORM runs): lowest ratio {}{}.",
                lowest(&ratios),
                if below.is_empty() {
                    String::new()
                } else {
                    format!("; below: {}", listed(config, &below))
                }
            ),
        ));
    }
    // Against Django's signalled path: the rows with a receiver, where Django ran.
    let mut sqlite = Vec::new();
    let mut postgres = Vec::new();
    for row in &orm.rows {
        let Case::SetBased(_, true) = row.case else {
            continue;
        };
        let Some(django_secs) = django.median_secs(row.backend, row.case) else {
            continue;
        };
        let ratio = django_secs / row.ours.median_secs();
        if row.backend == "postgres" {
            postgres.push((ratio, row));
        } else {
            sqlite.push((ratio, row));
        }
    }
    if !sqlite.is_empty() || !postgres.is_empty() {
        let below: Vec<(f64, &Row)> = sqlite
            .iter()
            .copied()
            .filter(|(r, _)| *r < MIN_SET_OVER_DJANGO_SQLITE)
            .chain(
                postgres
                    .iter()
                    .copied()
                    .filter(|(r, _)| *r < MIN_SET_OVER_DJANGO_POSTGRES),
            )
            .collect();
        out.push(verdict(
            below.is_empty(),
            format!(
                "workload 7 with one no-op receiver is at least {MIN_SET_OVER_DJANGO_SQLITE}x \
                 Django's signalled path (a `save()` loop, or `QuerySet.delete` with a \
                 `post_delete` receiver) on SQLite and {MIN_SET_OVER_DJANGO_POSTGRES}x on \
                 PostgreSQL: lowest {} on SQLite, {} on PostgreSQL{}.",
                lowest(&sqlite),
                lowest(&postgres),
                if below.is_empty() {
                    String::new()
                } else {
                    format!("; below: {}", listed(config, &below))
                }
            ),
        ));
    }
    out
}

/// Workload 8's targets: against raw sqlx, and against Django's `QuerySet.delete` with
/// `on_delete=CASCADE` and a `post_delete` receiver on the child.
fn cascade_targets(config: &Config, orm: &OrmResults, django: &Django) -> Vec<Verdict> {
    let rows: Vec<&Row> = orm
        .rows
        .iter()
        .filter(|row| row.case == Case::Cascade)
        .collect();
    if rows.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let ratios: Vec<(f64, &Row)> = rows
        .iter()
        .map(|&row| (row.raw.median_secs() / row.ours.median_secs(), row))
        .collect();
    let below: Vec<(f64, &Row)> = ratios
        .iter()
        .copied()
        .filter(|(r, _)| *r < MIN_CASCADE_RATIO)
        .collect();
    out.push(verdict(
        below.is_empty(),
        format!(
            "workload 8 (cascading delete, a no-op post_delete on the child) reaches at least \
             {MIN_CASCADE_RATIO} of raw sqlx's throughput (raw sqlx: the children deleted by a \
             subquery on the parents' condition, returned and decoded, then the parents, in one \
             transaction): lowest ratio {}{}.",
            lowest(&ratios),
            if below.is_empty() {
                String::new()
            } else {
                format!("; below: {}", listed(config, &below))
            }
        ),
    ));
    let mut sqlite = Vec::new();
    let mut postgres = Vec::new();
    for &row in &rows {
        let Some(django_secs) = django.median_secs(row.backend, row.case) else {
            continue;
        };
        let ratio = django_secs / row.ours.median_secs();
        if row.backend == "postgres" {
            postgres.push((ratio, row));
        } else {
            sqlite.push((ratio, row));
        }
    }
    if !sqlite.is_empty() || !postgres.is_empty() {
        let below: Vec<(f64, &Row)> = sqlite
            .iter()
            .copied()
            .filter(|(r, _)| *r < MIN_CASCADE_OVER_DJANGO_SQLITE)
            .chain(
                postgres
                    .iter()
                    .copied()
                    .filter(|(r, _)| *r < MIN_CASCADE_OVER_DJANGO_POSTGRES),
            )
            .collect();
        out.push(verdict(
            below.is_empty(),
            format!(
                "workload 8 is at least {MIN_CASCADE_OVER_DJANGO_SQLITE}x Django's \
                 `QuerySet.delete` (`on_delete=CASCADE`, a `post_delete` receiver on the child) \
                 on SQLite and {MIN_CASCADE_OVER_DJANGO_POSTGRES}x on PostgreSQL: lowest {} on \
                 SQLite, {} on PostgreSQL{}.",
                lowest(&sqlite),
                lowest(&postgres),
                if below.is_empty() {
                    String::new()
                } else {
                    format!("; below: {}", listed(config, &below))
                }
            ),
        ));
    }
    out
}

/// Workload 9's target: a save with one durable receiver against the same save with one
/// `on_commit` receiver.
fn durable_targets(config: &Config, orm: &OrmResults) -> Vec<Verdict> {
    let ratios: Vec<(f64, &Row)> = orm
        .rows
        .iter()
        .filter(|row| matches!(row.case, Case::Durable(_)))
        .map(|row| (row.raw.median_secs() / row.ours.median_secs(), row))
        .collect();
    if ratios.is_empty() {
        return Vec::new();
    }
    let below: Vec<(f64, &Row)> = ratios
        .iter()
        .copied()
        .filter(|(r, _)| *r < MIN_DURABLE_RATIO)
        .collect();
    vec![verdict(
        below.is_empty(),
        format!(
            "workload 9: a save with one durable receiver reaches at least {MIN_DURABLE_RATIO} of \
             the same save's throughput with one on_commit receiver (the outbox INSERT in the \
             save's transaction, one per save or per 64 saves in one transaction, checked by \
             the smoke test): lowest ratio {}{}.",
            lowest(&ratios),
            if below.is_empty() {
                String::new()
            } else {
                format!("; below: {}", listed(config, &below))
            }
        ),
    )]
}

/// Workload 11's target: a fetch nobody's `post_init` hears costs no more per row than raw
/// sqlx's, within the run's noise.
fn fetch_targets(config: &Config, orm: &OrmResults) -> Vec<Verdict> {
    let per_row = |secs: f64| secs * 1e9 / rate(Case::Fetch(false).ops(config), 1.0);
    let rows: Vec<&Row> = orm
        .rows
        .iter()
        .filter(|row| row.case == Case::Fetch(false))
        .collect();
    if rows.is_empty() {
        return Vec::new();
    }
    let ratios: Vec<(f64, &Row)> = rows
        .iter()
        .map(|&row| (row.ours.median_secs() / row.raw.median_secs(), row))
        .collect();
    let worst = ratios.iter().map(|(r, _)| *r).fold(0.0, f64::max);
    let each: Vec<String> = rows
        .iter()
        .map(|row| {
            let (ours, raw) = (
                per_row(row.ours.median_secs()),
                per_row(row.raw.median_secs()),
            );
            format!(
                "{} {ours:.1} against {raw:.1} ns/row ({:+.1})",
                backend_name(row.backend),
                ours - raw
            )
        })
        .collect();
    vec![verdict(
        worst <= MAX_UNHEARD_FETCH_RATIO,
        format!(
            "workload 11: `post_init` costs nothing unheard: a fetch with no post_init receiver \
             takes at most {MAX_UNHEARD_FETCH_RATIO} times raw sqlx's time per row: highest \
             ratio {worst:.2}; {}.",
            each.join(", ")
        ),
    )]
}

// ---- Markdown, from the report alone ---------------------------------------------------------

fn ns(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2} ns")
    } else {
        format!("{value:.1} ns")
    }
}

fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_owned(), |v| format!("{v:.2}"))
}

fn kib(peak: f64, growth: f64) -> String {
    format!("{:.0} KiB (+{:.1})", peak / 1024.0, growth / 1024.0)
}

/// A value of a row, as the table shows it.
fn cell(row: &ReportRow, value: Option<f64>, side: Cell) -> String {
    let Some(value) = value else {
        return if side == Cell::Ours && row.section == 1 {
            "not measured".to_owned()
        } else {
            "—".to_owned()
        };
    };
    match row.unit.as_str() {
        "ns/send" => {
            let mut text = ns(value);
            match side {
                Cell::Ours => {
                    if let Some(bytes) = row.heap_bytes.filter(|&b| b > 0) {
                        let _ = write!(text, ", heap +{bytes} B");
                    }
                }
                Cell::Baseline => {
                    let _ = write!(
                        text,
                        " ({})",
                        row.baseline_kind.as_deref().unwrap_or("baseline")
                    );
                }
                Cell::Django => {}
            }
            text
        }
        "bytes" => match (row.peak_heap, &row.heap_check) {
            (Some(heap), _) => match side {
                Cell::Ours => kib(heap.ours_peak, heap.ours_growth),
                Cell::Baseline => kib(heap.raw_peak, heap.raw_growth),
                Cell::Django => "—".to_owned(),
            },
            (None, Some(check)) => format!(
                "{value:.0} B per send; {} B over {} sends",
                check.bytes,
                count(check.sends)
            ),
            (None, None) => format!("{value:.0} B"),
        },
        "ns/row" => format!("{value:.1} ns/row"),
        unit => {
            let mut text = format!("{} {unit}", thousands(value));
            // Workloads 9 and 10 compare with the ORM in another configuration.
            if side == Cell::Baseline
                && let Some(kind) = row.baseline_kind.as_deref().filter(|k| *k != "raw sqlx")
            {
                let _ = write!(text, " ({kind})");
            }
            text
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    Ours,
    Baseline,
    Django,
}

fn table_row(out: &mut String, cells: [&str; 7]) {
    let _ = writeln!(out, "| {} |", cells.join(" | "));
}

fn or_unknown(value: Option<&str>) -> &str {
    value.unwrap_or("?")
}

/// The versions line and the run line.
fn versions(out: &mut String, report: &Report) {
    let v = &report.versions;
    let mut versions = format!(
        "Versions: {}; sqlx {} with SQLite {}; PostgreSQL {}",
        or_unknown(v.rustc.as_deref()),
        or_unknown(v.sqlx.as_deref()),
        or_unknown(v.sqlite.as_deref()),
        v.postgres.as_deref().unwrap_or("not run"),
    );
    match &v.django {
        Some(django) => {
            let _ = write!(
                versions,
                "; Django {django} on Python {} (`{}`), psycopg {}, Python's SQLite {}",
                or_unknown(v.python.as_deref()),
                or_unknown(v.python_executable.as_deref()),
                v.psycopg.as_deref().unwrap_or("not used"),
                or_unknown(v.python_sqlite.as_deref()),
            );
        }
        None => versions.push_str("; Django not run"),
    }
    let _ = writeln!(
        out,
        "{versions}.\n\nRun: {}, commit {}{}, {:.0} s.\n",
        report.date,
        report
            .git_commit
            .as_deref()
            .map_or("unknown", |c| &c[..c.len().min(12)]),
        if report.git_dirty == Some(true) {
            " with local changes"
        } else {
            ""
        },
        report.elapsed_secs,
    );
}

/// What the table's columns mean, printed under it.
const LEGEND: &str = "\
    ours = through signals-orm with the receivers named; raw sqlx = the same SQL text in the \
    same transaction shape, in the same process; Django = the same workload through Django's \
    ORM on the same backend (workload 3: Django's autocommit, `save()` outside any atomic \
    block); workload 7: raw sqlx = the statements the ORM runs for that row (without receivers \
    what a sqlx user writes; with one, in a transaction and with the `RETURNING` its receivers \
    need, the rows fetched), and Django = the path the row names, inside \
    `transaction.atomic()` (its bulk or QuerySet call for the rows without receivers, its \
    signalled path for the rows with one); its peak-heap row compares the ORM's chunked delete \
    with raw sqlx's single `DELETE .. WHERE`, which holds no rows; workload 8: rows deleted \
    (parents and children), raw sqlx = what a hand-written program runs, one transaction of a \
    `DELETE` of the children by a subquery on the parents' condition `RETURNING` them, decoded \
    into a `FromRow` struct, and a `DELETE` of the parents, and Django = `QuerySet.delete()` \
    of the parents (`on_delete=CASCADE`, a `post_delete` receiver on the child) inside \
    `transaction.atomic()`; workload 9: ours = saves through the ORM heard by one durable \
    `post_save` receiver (its job written to the outbox in the save's transaction), \
    baseline = the same saves heard by one no-op `on_commit` receiver instead; workload 10 \
    (PostgreSQL): jobs/s of 4 in-process workers (each its own pool, 4 jobs at a time) draining \
    a backlog of a no-op durable receiver's jobs, baseline = 1 worker, the ratio their \
    speed-up; workload 11: ns per row of `objects().all` (nobody listening to `post_init`, or \
    one no-op receiver) against raw sqlx streaming the same SELECT and decoding each row into \
    the same struct with its `FromRow`; \
    dispatch rows compare with calling the receiver functions directly; peak heap is the process's heap peak during the run, and in parentheses how far \
    it rose above the heap at the run's start. ours/raw and ours/Django divide the cells as \
    shown: for rates higher is better, for ns and KiB lower is better.";

/// The results as Markdown, from the report alone: the run, the table, the notes and the
/// verdicts. The terminal shows it under a heading; `docs/performance.md` between its markers.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let m = &report.machine;
    let c = &report.counts;
    let _ = writeln!(
        out,
        "Machine: {} cores, {}, {} {}; {}. Counts: {} saves/deletes, {} posts x {} tags{}; \
         medians of {} repetitions ({} for workload 3){}{}.\n",
        m.cores,
        m.cpu,
        m.os,
        m.arch,
        m.pinned_core.map_or_else(
            || "not pinned".to_owned(),
            |core| format!("benchmark pinned to core {core}")
        ),
        count(c.saves),
        count(c.posts),
        c.tags,
        if c.parents > 0 {
            format!(", {} parents x {} children", count(c.parents), c.children)
        } else {
            String::new()
        },
        c.reps,
        c.tx_each_reps,
        match report.mode.as_str() {
            "quick" => " (QUICK MODE: not the documented counts)",
            "smoke" => " (SMOKE TEST: tiny counts)",
            _ => "",
        },
        report
            .only
            .as_ref()
            .map_or_else(String::new, |only| format!(
                " (only the workloads matching `{only}`)"
            )),
    );
    versions(&mut out, report);
    table_row(
        &mut out,
        [
            "workload",
            "backend",
            "ours",
            "raw sqlx",
            "Django",
            "ours/raw",
            "ours/Django",
        ],
    );
    table_row(
        &mut out,
        ["---", "---", "---:", "---:", "---:", "---:", "---:"],
    );
    for row in &report.rows {
        table_row(
            &mut out,
            [
                &format!("{}. {}", row.section, row.workload),
                row.backend.as_deref().map_or("—", backend_name),
                &cell(row, row.ours, Cell::Ours),
                &cell(row, row.baseline, Cell::Baseline),
                &cell(row, row.django, Cell::Django),
                &ratio(row.ours_over_baseline),
                &ratio(row.ours_over_django),
            ],
        );
    }
    let _ = writeln!(out, "\n{LEGEND}");
    for note in &report.notes {
        let _ = writeln!(out, "{note}.");
    }
    if report.targets.is_empty() {
        let _ = writeln!(out, "\nTargets not evaluated ({} run).", report.mode);
    } else {
        let _ = writeln!(out, "\nThe targets, as this run measured them:\n");
        for target in &report.targets {
            let _ = writeln!(
                out,
                "- {}: {}",
                if target.met { "MET" } else { "MISSED" },
                target.text
            );
        }
    }
    out
}

/// `doc` with the text between its [`BEGIN`] and [`END`] lines (each a line of its own: the
/// markers may also be quoted in the text) replaced by `results`.
pub fn splice(doc: &str, results: &str) -> Result<String, String> {
    let line_at = |marker: &str, from: usize| {
        let mut offset = 0;
        doc.split_inclusive('\n')
            .find_map(|line| {
                let start = offset;
                offset += line.len();
                (start >= from && line.trim() == marker).then_some((start, offset))
            })
            .ok_or_else(|| format!("no `{marker}` line"))
    };
    let (_, after_begin) = line_at(BEGIN, 0)?;
    let (end, _) = line_at(END, after_begin)?;
    Ok(format!(
        "{}<!-- Generated from the benchmark's JSON (see \"Regenerating this page\"); edits \
         between these markers are overwritten. -->\n\n{}\n\n{}",
        &doc[..after_begin],
        results.trim_end(),
        &doc[end..]
    ))
}
