//! BENCHMARKS.md and the SVG charts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::acquire::AcquireResult;
use super::core_speed::CoreResult;
use super::etcd::EtcdScale;
use super::gp::{FailoverTrial, ScaleResult};
use super::kv::KvResult;
use super::short::ShortRun;
use super::util::{Summary, summarize};

mod analysis;
mod held_chart;
mod kv;
mod markdown;
mod model_check;
mod scale;
mod short;
mod trials;

#[derive(Debug, Default)]
pub struct GpRun {
    pub label: String,
    pub priority: Option<u8>,
    pub cold: Vec<f64>,
    pub failover: Vec<FailoverTrial>,
    pub resign: Vec<f64>,
    pub sigterm: Vec<f64>,
    pub errors: Vec<String>,
}

impl GpRun {
    fn totals(&self) -> Vec<f64> {
        self.failover.iter().map(|t| t.total).collect()
    }
    fn floors(&self) -> Vec<f64> {
        self.failover.iter().map(|t| t.floor).collect()
    }
    fn overheads(&self) -> Vec<f64> {
        self.failover.iter().map(|t| t.total - t.floor).collect()
    }
}

#[derive(Debug, Default)]
pub struct EtcdRun {
    pub version: String,
    pub started_ms: f64,
    pub failover: Vec<f64>,
    pub release: Vec<f64>,
    pub scale: Option<Result<EtcdScale, String>>,
    pub errors: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub date: String,
    pub machine: String,
    pub commit: String,
    pub command: String,
    pub load_before: String,
    pub load_after_build: String,
    pub load_after: String,
    pub elapsed_secs: f64,
    pub lease_ms: f64,
    pub d_a_ms: f64,
    pub gp: Vec<GpRun>,
    pub acquire: Option<Result<Vec<AcquireResult>, String>>,
    pub scale: Vec<(usize, Result<ScaleResult, String>)>,
    pub etcd: Option<Result<EtcdRun, String>>,
    pub core: Option<Result<CoreResult, String>>,
    pub kv: Option<KvResult>,
    pub short: Vec<ShortRun>,
}

fn ms(x: f64) -> String {
    if x.abs() < 10.0 {
        format!("{x:.2}")
    } else if x.abs() < 1000.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

fn row(label: &str, s: Option<Summary>) -> String {
    match s {
        Some(s) => format!(
            "| {label} | {} | {} | {} | {} | {} | {} |\n",
            s.n,
            ms(s.min),
            ms(s.p50),
            ms(s.p90),
            ms(s.p99),
            ms(s.max)
        ),
        None => format!("| {label} | 0 | – | – | – | – | – |\n"),
    }
}

const HEAD: &str =
    "| | n | min | median | p90 | p99 | max |\n|---|---:|---:|---:|---:|---:|---:|\n";

fn met(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**missed**" }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".into(),
    }
}

impl Report {
    fn default_run(&self) -> Option<&GpRun> {
        self.gp.iter().find(|r| r.priority.is_none())
    }
    fn p3_run(&self) -> Option<&GpRun> {
        self.gp.iter().find(|r| r.priority == Some(3))
    }
    fn etcd_ok(&self) -> Option<&EtcdRun> {
        self.etcd.as_ref().and_then(|e| e.as_ref().ok())
    }
    fn scale_ok(&self, n: usize) -> Option<&ScaleResult> {
        self.scale
            .iter()
            .find(|(m, _)| *m == n)
            .and_then(|(_, r)| r.as_ref().ok())
    }
    fn first_scale(&self) -> Option<&ScaleResult> {
        self.scale.first().and_then(|(_, r)| r.as_ref().ok())
    }
    fn etcd_scale(&self) -> Option<&EtcdScale> {
        self.etcd_ok()
            .and_then(|e| e.scale.as_ref())
            .and_then(|s| s.as_ref().ok())
    }
    /// Median phase times of the default acquire variant (join→Prepare is the candidate wait).
    fn acquire_ok(&self) -> Option<&Vec<AcquireResult>> {
        self.acquire.as_ref().and_then(|a| a.as_ref().ok())
    }
}

/// The summary printed at the end of a run.
pub fn headline(r: &Report) -> String {
    let mut out = String::new();
    for run in &r.gp {
        let (t, o) = (summarize(&run.totals()), summarize(&run.overheads()));
        if let (Some(t), Some(o)) = (t, o) {
            let _ = writeln!(
                out,
                "{}: failover median {} ms (p99 {}), overhead above floor median {} ms (p99 {}); resign p99 {} ms; SIGTERM p99 {} ms",
                run.label,
                ms(t.p50),
                ms(t.p99),
                ms(o.p50),
                ms(o.p99),
                summarize(&run.resign).map_or("–".into(), |s| ms(s.p99)),
                summarize(&run.sigterm).map_or("–".into(), |s| ms(s.p99)),
            );
        }
    }
    if let Some(e) = r.etcd_ok()
        && let Some(s) = summarize(&e.failover)
    {
        let _ = writeln!(
            out,
            "etcd: failover median {} ms (p99 {})",
            ms(s.p50),
            ms(s.p99)
        );
    }
    out
}

/// Writes the Markdown report and its charts; returns the paths written.
pub fn write(r: &Report, out: &Path) -> Result<Vec<PathBuf>> {
    let dir = out.parent().unwrap_or(Path::new(".")).to_path_buf();
    let quick_layout = out.file_name().is_some_and(|n| n != "BENCHMARKS.md");
    let charts = if quick_layout {
        dir.clone()
    } else {
        dir.join("docs")
    };
    std::fs::create_dir_all(&charts)?;
    let failover_svg = charts.join(if quick_layout {
        "bench-failover-quick.svg"
    } else {
        "bench-failover.svg"
    });
    let handover_svg = charts.join(if quick_layout {
        "bench-handover-quick.svg"
    } else {
        "bench-handover.svg"
    });
    let rel = |p: &Path| {
        p.strip_prefix(&dir)
            .map(|x| x.display().to_string())
            .unwrap_or_else(|_| p.display().to_string())
    };

    // Charts.
    let mut series = Vec::new();
    for (i, run) in r.gp.iter().enumerate() {
        series.push((run.label.clone(), COLORS[i % 2], run.totals(), false));
    }
    if let Some(run) = r.default_run() {
        series.push((
            "floor of each gen-paxos default trial (remaining exclusion)".into(),
            "#888888",
            run.floors(),
            true,
        ));
    }
    if let Some(e) = r.etcd_ok() {
        series.push((
            "etcd 3.4, etcdctl lock --ttl 1".to_string(),
            "#d62728",
            e.failover.clone(),
            false,
        ));
    }
    std::fs::write(
        &failover_svg,
        ecdf_svg(
            "Failover after SIGKILL of the master (3 nodes, loopback, lease/TTL 1 s)",
            "time from SIGKILL to the next master (ms)",
            &series,
        ),
    )?;
    let mut series = Vec::new();
    for (i, run) in r.gp.iter().enumerate() {
        series.push((
            format!("{}: resign", run.label),
            COLORS[i % 2],
            run.resign.clone(),
            false,
        ));
        series.push((
            format!("{}: SIGTERM", run.label),
            COLORS[i % 2],
            run.sigterm.clone(),
            true,
        ));
    }
    if let Some(e) = r.etcd_ok() {
        series.push((
            "etcd 3.4: SIGINT to etcdctl lock (unlock)".into(),
            "#d62728",
            e.release.clone(),
            false,
        ));
    }
    std::fs::write(
        &handover_svg,
        ecdf_svg(
            "Graceful handover: request to the next master's election",
            "time from the request to the next master (ms)",
            &series,
        ),
    )?;

    // Leases held over time, for the runs that read it from /metrics.
    let held_path = charts.join(if quick_layout {
        "bench-held-quick.svg"
    } else {
        "bench-held.svg"
    });
    let held_lines: Vec<held_chart::HeldLine<'_>> = r
        .scale
        .iter()
        .filter_map(|(n, res)| res.as_ref().ok().map(|s| (n, s)))
        .enumerate()
        .map(|(i, (n, s))| held_chart::HeldLine {
            label: format!("{n} leases, lease {} s", s.lease_ms as f64 / 1000.0),
            color: ["#1f77b4", "#2ca02c", "#d62728", "#9467bd"][i % 4],
            samples: &s.held,
        })
        .collect();
    let mut written = vec![
        out.to_path_buf(),
        failover_svg.clone(),
        handover_svg.clone(),
    ];
    let held_svg = match held_chart::held_svg(
        "Leases held across the three nodes (many-leases runs, section 5)",
        &held_lines,
    ) {
        Some(svg) => {
            std::fs::write(&held_path, svg)?;
            written.push(held_path.clone());
            Some(rel(&held_path))
        }
        None => None,
    };
    let md = markdown::markdown(
        r,
        &rel(&failover_svg),
        &rel(&handover_svg),
        held_svg.as_deref(),
    );
    std::fs::write(out, md).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(written)
}

const COLORS: [&str; 2] = ["#1f77b4", "#2ca02c"];

/// What several sections of the page look at, computed once.
#[derive(Debug, Clone, Copy)]
struct Views<'a> {
    d_a: f64,
    def: Option<&'a GpRun>,
    p3: Option<&'a GpRun>,
    etcd: Option<&'a EtcdRun>,
    etcd_fail: Option<Summary>,
    etcd_rel: Option<Summary>,
    failover_svg: &'a str,
    handover_svg: &'a str,
    /// The many-leases chart, if any run had samples.
    held_svg: Option<&'a str>,
}

/// The opening of a chart: the `svg` element, a white background and the title.
fn svg_open(width: f64, height: f64, title: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"22\" font-size=\"15\" text-anchor=\"middle\">{}</text>",
        width / 2.0,
        esc(title)
    );
    s
}

/// Vertical grid lines, labelled under the plot, every `step` up to `max` (plot position
/// by `x`).
fn x_grid(s: &mut String, x: &dyn Fn(f64) -> f64, (max, step): (f64, f64), top: f64, plot_h: f64) {
    let mut t = 0.0;
    while t <= max + step / 2.0 {
        let _ = writeln!(
            s,
            "<line x1=\"{0:.1}\" y1=\"{1:.1}\" x2=\"{0:.1}\" y2=\"{2:.1}\" stroke=\"#e0e0e0\"/><text x=\"{0:.1}\" y=\"{3:.1}\" text-anchor=\"middle\">{4}</text>",
            x(t),
            top,
            top + plot_h,
            top + plot_h + 16.0,
            trim_num(t)
        );
        t += step;
    }
}

/// An empirical CDF chart: one step line per series, on one time axis.
fn ecdf_svg(title: &str, xlabel: &str, series: &[(String, &str, Vec<f64>, bool)]) -> String {
    let (width, height) = (900.0, 480.0);
    let (left, right, top) = (60.0, 20.0, 40.0);
    let legend_h = 18.0 * series.len() as f64 + 10.0;
    let bottom = 50.0 + legend_h;
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let max = series
        .iter()
        .flat_map(|s| s.2.iter().copied())
        .fold(0.0f64, f64::max)
        .max(1.0);
    let step = nice_step(max / 8.0);
    let xmax = (max / step).ceil() * step;
    let x = |v: f64| left + v / xmax * plot_w;
    let y = |p: f64| top + (1.0 - p) * plot_h;
    let mut s = svg_open(width, height, title);
    // Grid and axes.
    x_grid(&mut s, &x, (xmax, step), top, plot_h);
    for p in [0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0] {
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"#e0e0e0\"/><text x=\"{2:.1}\" y=\"{3:.1}\" text-anchor=\"end\">{4}</text>",
            y(p),
            left + plot_w,
            left - 6.0,
            y(p) + 4.0,
            p
        );
    }
    let _ = writeln!(
        s,
        "<rect x=\"{left}\" y=\"{top}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" stroke=\"#444\"/>"
    );
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        left + plot_w / 2.0,
        top + plot_h + 34.0,
        esc(xlabel)
    );
    let _ = writeln!(
        s,
        "<text transform=\"translate(16 {:.1}) rotate(-90)\" text-anchor=\"middle\">fraction of trials ≤ x</text>",
        top + plot_h / 2.0
    );
    for (i, (label, color, values, dashed)) in series.iter().enumerate() {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let dash = if *dashed {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        if !v.is_empty() {
            let n = v.len() as f64;
            let mut d = format!("M {:.1} {:.1}", x(v[0]), y(0.0));
            for (k, val) in v.iter().enumerate() {
                let _ = write!(d, " H {:.1} V {:.1}", x(*val), y((k + 1) as f64 / n));
            }
            let _ = writeln!(
                s,
                "<path d=\"{d}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dash}/>"
            );
            for (k, val) in v.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.2\" fill=\"{color}\"/>",
                    x(*val),
                    y((k + 1) as f64 / n)
                );
            }
        }
        let ly = top + plot_h + 52.0 + 18.0 * i as f64;
        let summary = summarize(&v).map_or("no data".into(), |m| {
            format!("n={}, median {} ms, p99 {} ms", m.n, ms(m.p50), ms(m.p99))
        });
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{color}\" stroke-width=\"2\"{dash}/><text x=\"{:.1}\" y=\"{:.1}\">{} ({})</text>",
            left + 28.0,
            left + 36.0,
            ly + 4.0,
            esc(label),
            summary
        );
    }
    s.push_str("</svg>\n");
    s
}

fn nice_step(raw: f64) -> f64 {
    let mag = 10f64.powf(raw.max(1e-9).log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if raw <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

fn trim_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Each node's CPU (% of one core, `digits` decimals) and RSS (MiB) of a scale run.
fn per_node_use(s: &ScaleResult, digits: usize) -> (Vec<String>, Vec<String>) {
    let cpu = s
        .nodes
        .iter()
        .map(|n| n.cpu_pct.map_or("?".into(), |c| format!("{c:.digits$}%")))
        .collect();
    let rss = s
        .nodes
        .iter()
        .map(|n| format!("{:.0}", n.rss_kib as f64 / 1024.0))
        .collect();
    (cpu, rss)
}

/// " (X us per renewal, all nodes)" for a headline, or nothing without a CPU figure.
fn per_renewal(s: &ScaleResult) -> String {
    s.cpu_us_per_renewal().map_or(String::new(), |us| {
        format!(" ({us:.1} us per renewal, all nodes)")
    })
}
