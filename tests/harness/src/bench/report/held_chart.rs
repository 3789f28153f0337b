//! The many-leases chart: leases held across the cluster over time, one line per run,
//! from the nodes' `/metrics` (`gen_paxos_leases_held`, summed), so an overloaded cluster
//! that collapses shows as a line falling to zero and one that degrades gracefully as a
//! line that keeps what it holds.

use std::fmt::Write as _;

use super::{esc, nice_step, svg_open, trim_num, x_grid};

/// One run: its label, colour, and (seconds since start, leases held) samples.
pub(super) struct HeldLine<'a> {
    pub(super) label: String,
    pub(super) color: &'a str,
    pub(super) samples: &'a [(f64, u64)],
}

/// The chart as SVG; `None` if no run has samples.
pub(super) fn held_svg(title: &str, lines: &[HeldLine<'_>]) -> Option<String> {
    let points = lines.iter().flat_map(|l| l.samples.iter());
    let (tmax, hmax) = points.fold((0.0f64, 0u64), |(t, h), &(s, v)| (t.max(s), h.max(v)));
    if tmax <= 0.0 {
        return None;
    }
    let (width, height) = (900.0, 460.0);
    let (left, right, top) = (80.0, 20.0, 40.0);
    let bottom = 50.0 + 18.0 * lines.len() as f64 + 10.0;
    let (plot_w, plot_h) = (width - left - right, height - top - bottom);
    let tstep = nice_step(tmax / 8.0);
    let txmax = (tmax / tstep).ceil() * tstep;
    let hstep = nice_step((hmax.max(1) as f64) / 5.0);
    let hymax = ((hmax.max(1) as f64) / hstep).ceil() * hstep;
    let x = |t: f64| left + t / txmax * plot_w;
    let y = |h: f64| top + (1.0 - h / hymax) * plot_h;
    let mut s = svg_open(width, height, title);
    x_grid(&mut s, &x, (txmax, tstep), top, plot_h);
    let mut h = 0.0;
    while h <= hymax + hstep / 2.0 {
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"#e0e0e0\"/><text x=\"{2:.1}\" y=\"{3:.1}\" text-anchor=\"end\">{4}</text>",
            y(h),
            left + plot_w,
            left - 6.0,
            y(h) + 4.0,
            trim_num(h)
        );
        h += hstep;
    }
    let _ = writeln!(
        s,
        "<rect x=\"{left}\" y=\"{top}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" stroke=\"#444\"/>"
    );
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">seconds since the nodes started</text>",
        left + plot_w / 2.0,
        top + plot_h + 34.0
    );
    let _ = writeln!(
        s,
        "<text transform=\"translate(16 {:.1}) rotate(-90)\" text-anchor=\"middle\">leases held (all nodes)</text>",
        top + plot_h / 2.0
    );
    for (i, line) in lines.iter().enumerate() {
        let mut d = String::new();
        for (k, &(t, v)) in line.samples.iter().enumerate() {
            let _ = write!(
                d,
                "{} {:.1} {:.1} ",
                if k == 0 { "M" } else { "L" },
                x(t),
                y(v as f64)
            );
        }
        if !d.is_empty() {
            let _ = writeln!(
                s,
                "<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>",
                d.trim_end(),
                line.color
            );
        }
        let ly = top + plot_h + 56.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"{2}\" stroke-width=\"2\"/><text x=\"{3:.1}\" y=\"{4:.1}\">{5}</text>",
            ly,
            left + 24.0,
            line.color,
            left + 30.0,
            ly + 4.0,
            esc(&line.label)
        );
    }
    let _ = writeln!(s, "</svg>");
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_path_per_run_with_samples_and_none_without() {
        let a = [(0.0, 0), (1.0, 500), (2.0, 1_000)];
        let lines = [
            HeldLine {
                label: "1000 leases".into(),
                color: "#1f77b4",
                samples: &a,
            },
            HeldLine {
                label: "empty".into(),
                color: "#2ca02c",
                samples: &[],
            },
        ];
        let svg = held_svg("held", &lines).expect("a chart");
        assert_eq!(svg.matches("<path").count(), 1);
        assert!(svg.contains("1000 leases") && svg.contains("empty"));
        assert!(held_svg("held", &lines[1..]).is_none());
    }
}
