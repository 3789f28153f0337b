//! The timeline picture: one lane per node, bars coloured by token, faults shaded,
//! violations in red.

use std::fmt::Write as _;

use super::checker::{Report, WriteRec};
use super::{Fault, Token};

/// Colours by the token's rank among all elected tokens: golden-angle hues, so one master
/// and the next always differ.
fn colour(rank: usize) -> String {
    format!("hsl({:.0}, 65%, 52%)", (rank as f64 * 137.508) % 360.0)
}

/// Draws the run as SVG: one lane per node, authority bars coloured by token, fault windows
/// shaded, rejected (fenced-off) writes as ticks, violations in red.
pub fn timeline_svg(
    title: &str,
    nodes: &[u64],
    faults: &[Fault],
    report: &Report,
    writes: &[WriteRec],
    t0: f64,
    t1: f64,
) -> String {
    let span_s = ((t1 - t0) / 1000.0).max(1.0);
    let px_per_s = (1400.0 / span_s).clamp(4.0, 150.0);
    let left = 70.0;
    let width = left + span_s * px_per_s + 20.0;
    let lane = 36.0;
    let top = 60.0;
    let lanes_h = lane * nodes.len() as f64;
    let list_h = 14.0 * (faults.len().min(60) + report.violations.len().min(20) + 3) as f64;
    let height = top + lanes_h + 40.0 + list_h;
    let x = |t: f64| left + (t - t0) / 1000.0 * px_per_s;
    let y = |n: u64| top + lane * nodes.iter().position(|&m| m == n).unwrap_or(0) as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="monospace" font-size="11" xml:space="preserve">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="18" font-size="14">{}</text>
<text x="10" y="36">bars: authority (elected .. min(surrendered, deadline)), colour = token; shaded: faults (grey kill, orange pause, blue partition); black ticks: writes fenced off; red: violations</text>
"#,
        esc(title)
    );
    // Time axis every 5 or 60 s.
    let step = if span_s > 600.0 {
        60.0
    } else if span_s > 120.0 {
        10.0
    } else {
        5.0
    };
    let mut t = 0.0;
    while t <= span_s {
        let xx = left + t * px_per_s;
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" y1="{top}" x2="{xx:.1}" y2="{:.1}" stroke="#eee"/><text x="{xx:.1}" y="{:.1}" fill="#888">{t:.0}s</text>"##,
            top + lanes_h,
            top + lanes_h + 14.0
        );
        t += step;
    }
    for f in faults {
        let (fill, all) = match f.kind {
            "kill" => ("#999", false),
            "pause" => ("#f90", false),
            "partition" => ("#39f", true),
            _ => ("#9c9", true),
        };
        let (x0, x1) = (x(f.start), x(f.end.max(f.start + 50.0)));
        let rows: Vec<u64> = if all || f.nodes.is_empty() {
            nodes.to_vec()
        } else {
            f.nodes.clone()
        };
        for n in rows {
            let _ = writeln!(
                s,
                r#"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{lane}" fill="{fill}" fill-opacity="0.22"><title>{}</title></rect>"#,
                y(n),
                (x1 - x0).max(1.0),
                esc(&f.desc)
            );
        }
    }
    for n in nodes {
        let _ = writeln!(
            s,
            r##"<text x="8" y="{:.1}">node {n}</text><line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#ccc"/>"##,
            y(*n) + lane / 2.0 + 4.0,
            y(*n) + lane,
            width - 10.0,
            y(*n) + lane
        );
    }
    let mut ranks: Vec<Token> = report.intervals.iter().map(|i| i.token).collect();
    ranks.sort_unstable();
    ranks.dedup();
    let rank = |t: &Token| ranks.binary_search(t).unwrap_or(0);
    for i in &report.intervals {
        let (x0, x1) = (x(i.start), x(i.end));
        let w = if i.is_empty() {
            1.0
        } else {
            (x1 - x0).max(1.0)
        };
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{}"><title>node {} run {} token {:?}..{:?} {:.0} ms</title></rect>"#,
            x0.min(x1),
            y(i.node) + 6.0,
            lane - 14.0,
            colour(rank(&i.token)),
            i.node,
            i.run,
            i.token,
            i.last_token,
            i.end - i.start
        );
        if x1 - x0 > 40.0 {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" fill="white" font-size="10">#{} ({})</text>"#,
                x0 + 3.0,
                y(i.node) + lane / 2.0 + 3.0,
                rank(&i.token) + 1,
                i.token[0] % 100_000
            );
        }
    }
    for w in writes.iter().filter(|w| !w.accepted) {
        let xx = x(w.ts);
        let _ = writeln!(
            s,
            r#"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="black" stroke-width="2"><title>write fenced off: node {} token {:?}{}</title></line>"#,
            y(w.node) + 2.0,
            y(w.node) + lane - 2.0,
            w.node,
            w.token,
            if w.zombie {
                " (zombie after pause)"
            } else {
                ""
            }
        );
    }
    for v in &report.violations {
        let rows: Vec<u64> = if v.nodes.is_empty() {
            nodes.to_vec()
        } else {
            v.nodes.clone()
        };
        for n in rows {
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{lane}" fill="red" fill-opacity="0.6" stroke="red"><title>{}</title></rect>"#,
                x(v.from),
                y(n),
                (x(v.to) - x(v.from)).max(3.0),
                esc(&v.what)
            );
        }
    }
    let mut ly = top + lanes_h + 36.0;
    let _ = writeln!(
        s,
        r#"<text x="10" y="{ly:.1}">faults ({}) and recovery (bound {:.0} ms):</text>"#,
        faults.len(),
        report.recovery_bound_ms
    );
    for (k, f) in faults.iter().enumerate().take(60) {
        ly += 14.0;
        let rec = report
            .recoveries
            .get(k)
            .copied()
            .flatten()
            .map_or("-".to_string(), |ms| format!("{ms:.0} ms"));
        let _ = writeln!(
            s,
            r#"<text x="10" y="{ly:.1}">{:>3} {:>7.1}s {:<9} {:<70} recovery {rec}</text>"#,
            k + 1,
            (f.start - t0) / 1000.0,
            f.kind,
            esc(&f.desc)
        );
    }
    for v in report.violations.iter().take(20) {
        ly += 14.0;
        let _ = writeln!(
            s,
            r#"<text x="10" y="{ly:.1}" fill="red">VIOLATION: {}</text>"#,
            esc(&v.what)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
