//! The one table, and the targets below it.

use std::fmt::Write as _;

use crate::Config;
use crate::dispatch::DispatchResults;
use crate::django::Django;
use crate::workloads::{Case, OrmResults, Row, backend_name, count, thousands};

/// A throughput ratio below this misses the target.
const MIN_THROUGHPUT_RATIO: f64 = 0.9;
/// A peak-memory ratio above this misses the target.
const MAX_PEAK_RATIO: f64 = 1.1;
/// Nanoseconds a send without receivers may take.
const MAX_UNHEARD_NS: f64 = 2.0;
/// Nanoseconds a sync no-op receiver may add over a direct call.
const MAX_RECEIVER_NS: f64 = 5.0;

fn ns(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2} ns")
    } else {
        format!("{value:.1} ns")
    }
}

fn ratio(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.2}")
    } else {
        "—".to_owned()
    }
}

#[expect(clippy::cast_precision_loss, reason = "a rate")]
fn rate(ops: usize, secs: f64) -> f64 {
    ops as f64 / secs
}

struct Table {
    out: String,
}

impl Table {
    fn row(&mut self, cells: [&str; 7]) {
        let _ = writeln!(self.out, "| {} |", cells.join(" | "));
    }
}

/// Renders the table (Markdown) and the targets.
pub fn render(
    config: &Config,
    machine: &str,
    dispatch: &DispatchResults,
    orm: &OrmResults,
    django: &Django,
) -> String {
    let mut table = Table { out: String::new() };
    let _ = writeln!(
        table.out,
        "\n## signals performance\n\nMachine: {machine}. Counts: {} saves/deletes, {} posts x {} \
         tags; medians of {} repetitions ({} for workload 3){}.\n",
        count(config.saves),
        count(config.posts),
        config.tags,
        config.reps,
        config.tx_each_reps,
        if config.quick {
            " (QUICK MODE: not the documented counts)"
        } else if config.smoke {
            " (SMOKE TEST: tiny counts)"
        } else {
            ""
        }
    );
    table.row([
        "workload",
        "backend",
        "ours",
        "raw sqlx",
        "Django",
        "ours/raw",
        "ours/Django",
    ]);
    table.row(["---", "---", "---:", "---:", "---:", "---:", "---:"]);
    dispatch_rows(&mut table, dispatch);
    for row in &orm.rows {
        orm_row(&mut table, config, row, django);
    }
    for row in &orm.rows {
        if matches!(row.case, Case::OneTx(_)) {
            peak_row(&mut table, config, row);
        }
    }
    let mut out = table.out;
    let _ = writeln!(
        out,
        "\nours = through signals-orm with the receivers named; raw sqlx = the same SQL text in \
         the same transaction shape, in the same process; dispatch rows compare with calling the \
         receiver functions directly; peak heap is the process's heap peak during the run, and in \
         parentheses how far it rose above the heap at the run's start. ours/raw and ours/Django \
         divide the cells as shown: for rates higher is better, for ns and KiB lower is better."
    );
    if let Some(version) = &django.version {
        let _ = writeln!(
            out,
            "Django {version} on Python {}.",
            django.python.as_deref().unwrap_or("?")
        );
    }
    for note in orm.notes.iter().chain(&django.note) {
        let _ = writeln!(out, "{note}.");
    }
    if config.smoke {
        let _ = writeln!(out, "\nSmoke test (no `--bench`): targets not evaluated.");
    } else {
        targets(&mut out, config, dispatch, orm);
    }
    out
}

/// Names, labels and the direct-call baseline of each dispatch row.
const DISPATCH: [(&str, &str, Option<&str>); 8] = [
    ("send_sync_0", "1. `send_sync`, 0 receivers", None),
    ("send_await_0", "1. `send().await`, 0 receivers", None),
    (
        "send_sync_sync_1",
        "1. `send_sync`, 1 sync receiver",
        Some("direct_sync_1"),
    ),
    (
        "send_await_sync_1",
        "1. `send().await`, 1 sync receiver",
        Some("direct_sync_1"),
    ),
    (
        "send_sync_sync_10",
        "1. `send_sync`, 10 sync receivers",
        Some("direct_sync_10"),
    ),
    (
        "send_await_sync_10",
        "1. `send().await`, 10 sync receivers",
        Some("direct_sync_10"),
    ),
    (
        "send_await_async_1",
        "1. `send().await`, 1 async receiver",
        Some("direct_async_1"),
    ),
    (
        "send_await_async_10",
        "1. `send().await`, 10 async receivers",
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

fn dispatch_rows(table: &mut Table, dispatch: &DispatchResults) {
    for (name, label, direct) in DISPATCH {
        let Some(ours) = dispatch.get(name) else {
            table.row([label, "—", "not measured", "—", "—", "—", "—"]);
            continue;
        };
        let mut ours_cell = ns(ours.ns);
        if ours.heap_bytes > 0 {
            let _ = write!(ours_cell, ", heap +{} B", ours.heap_bytes);
        }
        match direct.and_then(|d| dispatch.get(d)) {
            Some(direct) => table.row([
                label,
                "—",
                &ours_cell,
                &format!("{} (direct call)", ns(direct.ns)),
                "—",
                &ratio(ours.ns / direct.ns),
                "—",
            ]),
            None => table.row([label, "—", &ours_cell, "—", "—", "—", "—"]),
        }
    }
    let sync_heap = SYNC_SENDS
        .iter()
        .filter_map(|name| dispatch.get(name))
        .map(|m| m.heap_bytes)
        .max()
        .unwrap_or(0);
    table.row([
        "1. heap allocations in sends to sync receivers",
        "—",
        &format!(
            "{sync_heap} B per send; {} B over {} sends",
            dispatch.heap_bytes_in_sync_sends,
            count(dispatch.sync_sends_checked)
        ),
        "—",
        "—",
        "—",
        "—",
    ]);
}

fn orm_row(table: &mut Table, config: &Config, row: &Row, django: &Django) {
    let ops = row.case.ops(config);
    let ours = rate(ops, row.ours.median_secs());
    let raw = rate(ops, row.raw.median_secs());
    let django_rate = row
        .case
        .django_key()
        .and_then(|key| django.median_secs(row.backend, &key))
        .map(|secs| rate(ops, secs));
    let unit = row.case.unit();
    table.row([
        &row.case.label(config),
        backend_name(row.backend),
        &format!("{} {unit}", thousands(ours)),
        &format!("{} {unit}", thousands(raw)),
        &django_rate.map_or_else(|| "—".to_owned(), |d| format!("{} {unit}", thousands(d))),
        &ratio(ours / raw),
        &django_rate.map_or_else(|| "—".to_owned(), |d| ratio(ours / d)),
    ]);
}

fn peak_row(table: &mut Table, config: &Config, row: &Row) {
    let Case::OneTx(receivers) = row.case else {
        return;
    };
    let kib = |side: &crate::workloads::Side| {
        format!(
            "{:.0} KiB (+{:.1})",
            side.median_peak() / 1024.0,
            side.median_growth() / 1024.0
        )
    };
    table.row([
        &format!(
            "2. peak heap (growth), {} saves, 1 tx: {}",
            count(config.saves),
            receivers.label()
        ),
        backend_name(row.backend),
        &kib(&row.ours),
        &kib(&row.raw),
        "—",
        &ratio(row.ours.median_peak() / row.raw.median_peak()),
        "—",
    ]);
}

fn verdict(met: bool) -> &'static str {
    if met { "MET" } else { "MISSED" }
}

fn targets(out: &mut String, config: &Config, dispatch: &DispatchResults, orm: &OrmResults) {
    let _ = writeln!(out, "\n### Targets\n");
    dispatch_targets(out, dispatch);
    orm_targets(out, config, orm);
}

fn dispatch_targets(out: &mut String, dispatch: &DispatchResults) {
    let get = |name: &str| dispatch.get(name).map_or(f64::NAN, |m| m.ns);
    let unheard = get("send_sync_0").max(get("send_await_0"));
    let _ = writeln!(
        out,
        "- {}: a send with no receivers takes at most {MAX_UNHEARD_NS} ns: `send_sync` {}, \
         `send().await` {}.",
        verdict(unheard <= MAX_UNHEARD_NS),
        ns(get("send_sync_0")),
        ns(get("send_await_0"))
    );
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
        let _ = writeln!(
            out,
            "- {}: each sync no-op receiver adds at most {MAX_RECEIVER_NS} ns over a direct call \
             ({name}): each receiver adds {} (from 1 to 10 receivers, direct calls subtracted); a \
             send that has receivers also pays {} once (snapshot load, nesting frame, span \
             check), so 1 receiver costs {} and 10 cost {}.",
            verdict(each <= MAX_RECEIVER_NS),
            ns(each),
            ns(fixed),
            ns(t1),
            ns(t10)
        );
    }
    // A workload that did not run counts as allocating.
    let heap = SYNC_SENDS
        .iter()
        .map(|name| dispatch.get(name).map(|m| m.heap_bytes))
        .try_fold(0, |most, bytes| bytes.map(|b| most.max(b)));
    let _ = writeln!(
        out,
        "- {}: no heap allocation in a send to sync receivers: the process-wide byte counter \
         rose by {} B during the timed sends (1 and 10 receivers, `send_sync` and \
         `send().await`), and by {} B over {} such sends.",
        verdict(heap == Some(0) && dispatch.heap_bytes_in_sync_sends == 0),
        heap.map_or_else(|| "—".to_owned(), |b| b.to_string()),
        dispatch.heap_bytes_in_sync_sends,
        count(dispatch.sync_sends_checked)
    );
}

fn orm_targets(out: &mut String, config: &Config, orm: &OrmResults) {
    let ratios: Vec<(f64, &Row)> = orm
        .rows
        .iter()
        .map(|row| (row.raw.median_secs() / row.ours.median_secs(), row))
        .collect();
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
    let _ = writeln!(
        out,
        "- {}: workloads 2-5 reach at least {MIN_THROUGHPUT_RATIO} of raw sqlx's throughput: \
         lowest ratio {:.2}{}.",
        verdict(missed.is_empty() && !ratios.is_empty()),
        lowest,
        if missed.is_empty() {
            String::new()
        } else {
            format!("; below: {}", missed.join(", "))
        }
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
    let _ = writeln!(
        out,
        "- {}: peak heap of workload 2 within 10% of raw sqlx's (the process's heap peak during \
         the run): highest ratio {:.2}{}.",
        verdict(over.is_empty() && !peaks.is_empty()),
        worst,
        if over.is_empty() {
            String::new()
        } else {
            format!("; above: {}", over.join(", "))
        }
    );
}
