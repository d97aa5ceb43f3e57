//! Every SVG figure the experiments draw, and the helpers they share: [`line_chart`] (the
//! `miner experiment` figures: measured points with their intervals beside the published
//! curves), [`fork_diagram`] (the branches of a short forks run), [`write_retarget`] (the
//! `miner retarget-sim` chart, drawn with plotters), [`xml_text`] for every piece of free text
//! and [`si`] for every axis number with a prefix.

use super::forks::{ForkParams, ForkResult, TraceKind};
use super::retarget::{SimRun, RECOVERY_WINDOW};
use bitcoin::BlockHash;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

/// `text` made safe as XML character data or an attribute value: `&`, `<`, `>`, `"` and `'`
/// as entities. Every piece of free text written into an SVG (titles, labels, legends) goes
/// through here, so that a label such as "Eyal & Sirer" leaves the file valid XML (browsers
/// refuse to draw an SVG that is not).
pub fn xml_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// One line of a [`line_chart`]: its legend, colour and points, dashed for reference curves,
/// with the measured points' 95% intervals as bars.
pub struct Series {
    /// The legend's text.
    pub label: String,
    /// An SVG colour, e.g. `"#1f77b4"`.
    pub colour: &'static str,
    /// Drawn dashed (a reference curve) rather than solid.
    pub dashed: bool,
    /// (x, y) points, joined in order.
    pub points: Vec<(f64, f64)>,
    /// (x, low, high) interval bars.
    pub bars: Vec<(f64, f64, f64)>,
}

/// A plain SVG line chart (own drawing, no dependency), log or linear y.
pub fn line_chart(series: &[Series], xlabel: &str, ylabel: &str, log_y: bool) -> String {
    // The only free text in the figure: escaped here, once.
    let (xlabel, ylabel) = (xml_text(xlabel), xml_text(ylabel));
    let (w, h, left, right, top, bottom) = (760.0, 460.0, 70.0, 240.0, 20.0, 50.0);
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = series.iter().flat_map(|s| {
        s.points
            .iter()
            .map(|p| p.1)
            .chain(s.bars.iter().flat_map(|b| [b.1, b.2]))
    });
    let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let floor = 1e-9;
    let (mut y0, mut y1) = ys
        .filter(|y| !log_y || *y > floor)
        .fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
    if y0 > y1 {
        (y0, y1) = (0.0, 1.0);
    }
    let (x0, x1) = if x0 < x1 {
        (x0, x1)
    } else {
        (x0 - 1.0, x0 + 1.0)
    };
    let ty = |y: f64| if log_y { y.max(floor).log10() } else { y };
    let (ly0, ly1) = if log_y {
        (ty(y0).floor(), ty(y1).ceil().max(ty(y0).floor() + 1.0))
    } else {
        (0.0, (y1 * 1.1).max(0.1))
    };
    let px = |x: f64| left + (x - x0) / (x1 - x0) * (w - left - right);
    let py = |y: f64| top + (1.0 - (ty(y) - ly0) / (ly1 - ly0)) * (h - top - bottom);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n"
    );
    s += &format!(
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>\n",
        h - bottom,
        w - right,
        h - bottom,
        h - bottom
    );
    if log_y {
        let mut e = ly0;
        while e <= ly1 {
            let y = top + (1.0 - (e - ly0) / (ly1 - ly0)) * (h - top - bottom);
            s += &format!(
                "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">1e{e}</text>\n",
                w - right,
                left - 6.0,
                y + 4.0
            );
            e += 1.0;
        }
    } else {
        for i in 0..=5 {
            let v = ly1 * f64::from(i) / 5.0;
            let y = py(v);
            s += &format!(
                "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.2}</text>\n",
                w - right,
                left - 6.0,
                y + 4.0
            );
        }
    }
    let mut xt: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    xt.sort_by(f64::total_cmp);
    xt.dedup();
    // One tick per x where they are few (the rows' own values), else six evenly spaced.
    if xt.len() > 12 {
        xt = (0..=5)
            .map(|i| x0 + (x1 - x0) * f64::from(i) / 5.0)
            .collect();
    }
    for x in xt {
        let label = format!("{x:.4}");
        let label = if label.contains('.') {
            label.trim_end_matches('0').trim_end_matches('.')
        } else {
            &label
        };
        s += &format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{label}</text>\n",
            px(x),
            h - bottom + 16.0,
        );
    }
    s += &format!(
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{xlabel}</text>\n<text x=\"16\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {:.1})\">{ylabel}{}</text>\n",
        left + (w - left - right) / 2.0,
        h - 10.0,
        top + (h - top - bottom) / 2.0,
        top + (h - top - bottom) / 2.0,
        if log_y { " (log scale)" } else { "" }
    );
    for (i, ser) in series.iter().enumerate() {
        let path: Vec<String> = ser
            .points
            .iter()
            .filter(|p| !log_y || p.1 > floor)
            .map(|p| format!("{:.1},{:.1}", px(p.0), py(p.1)))
            .collect();
        let dash = if ser.dashed {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        if !path.is_empty() {
            s += &format!(
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"{dash}/>\n",
                path.join(" "),
                ser.colour
            );
        }
        if !ser.dashed && !ser.bars.is_empty() {
            for p in ser.points.iter().filter(|p| !log_y || p.1 > floor) {
                s += &format!(
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"/>\n",
                    px(p.0),
                    py(p.1),
                    ser.colour
                );
            }
            for b in &ser.bars {
                s += &format!(
                    "<line x1=\"{0:.1}\" y1=\"{1:.1}\" x2=\"{0:.1}\" y2=\"{2:.1}\" stroke=\"{3}\"/>\n",
                    px(b.0),
                    py(b.1.max(if log_y { floor } else { f64::MIN })),
                    py(b.2),
                    ser.colour
                );
            }
        }
        let ly = top + 14.0 + 18.0 * i as f64;
        s += &format!(
            "<line x1=\"{0}\" y1=\"{ly:.1}\" x2=\"{1}\" y2=\"{ly:.1}\" stroke=\"{2}\" stroke-width=\"2\"{dash}/><text x=\"{3}\" y=\"{4:.1}\">{5}</text>\n",
            w - right + 10.0,
            w - right + 34.0,
            ser.colour,
            w - right + 40.0,
            ly + 4.0,
            xml_text(&ser.label)
        );
    }
    s += "</svg>\n";
    s
}

/// Colours of the first nodes (green, red, purple as in the seed's figure, then more).
const NODE_PALETTE: [&str; 10] = [
    "#2e9d4a", "#d7302c", "#7d3cb5", "#1f6fc5", "#e08a00", "#0f9d9a", "#c2388f", "#7a5a2b",
    "#5b6b7a", "#99a800",
];

fn colour(node: usize) -> &'static str {
    NODE_PALETTE[node % NODE_PALETTE.len()]
}

/// A branch diagram of the traced blocks as SVG text: x is the height, one lane per branch
/// (the main chain in the top lane), each block a rounded rectangle in its finder's colour with
/// an edge to its parent, stale blocks faded, and under a block a marker for each node that
/// switched its tip to it (a reorganisation), with the depth. Hover titles give details.
pub fn fork_diagram(result: &ForkResult, p: &ForkParams) -> String {
    const COL: f64 = 86.0;
    const ROW: f64 = 78.0;
    const W: f64 = 58.0;
    const H: f64 = 34.0;
    const LEFT: f64 = 20.0;
    const TOP: f64 = 64.0;
    // The traced blocks in order of finding.
    struct Placed {
        hash: BlockHash,
        parent: BlockHash,
        height: u32,
        node: usize,
        time: f64,
        lane: usize,
        stale: bool,
    }
    let stale: std::collections::HashSet<BlockHash> = result.traced_stale.iter().copied().collect();
    let mut placed: Vec<Placed> = Vec::new();
    let mut index: HashMap<BlockHash, usize> = HashMap::new();
    for e in result.trace.iter().filter(|e| e.kind == TraceKind::Found) {
        index.insert(e.hash, placed.len());
        placed.push(Placed {
            hash: e.hash,
            parent: e.parent,
            height: e.height,
            node: e.node,
            time: e.time_s,
            lane: 0,
            stale: stale.contains(&e.hash),
        });
    }
    // Lanes: the main chain in lane 0; a stale block continues its parent's lane when that lane
    // is free at its height, else takes the lowest lane free there.
    let mut taken: std::collections::HashSet<(usize, u32)> = std::collections::HashSet::new();
    let mut lanes = 1usize;
    for i in 0..placed.len() {
        let lane = if !placed[i].stale {
            0
        } else {
            let parent_lane = index.get(&placed[i].parent).map(|&j| placed[j].lane);
            match parent_lane {
                Some(l) if l > 0 && !taken.contains(&(l, placed[i].height)) => l,
                // The lowest lane free at this height (a new one if none).
                _ => {
                    let l = (1..=lanes)
                        .find(|&l| !taken.contains(&(l, placed[i].height)))
                        .unwrap_or(lanes);
                    lanes = lanes.max(l + 1);
                    l
                }
            }
        };
        placed[i].lane = lane;
        taken.insert((lane, placed[i].height));
    }
    let min_h = placed
        .iter()
        .map(|b| b.height)
        .min()
        .unwrap_or(1)
        .saturating_sub(1);
    let max_h = placed.iter().map(|b| b.height).max().unwrap_or(min_h);
    let x = |h: u32| LEFT + f64::from(h - min_h) * COL;
    let y = |lane: usize| TOP + lane as f64 * ROW;
    // Reorg markers per block: (node, depth, time).
    let mut switches: HashMap<BlockHash, Vec<(usize, u32, f64)>> = HashMap::new();
    for e in &result.trace {
        if let TraceKind::Reorg { depth } = e.kind {
            switches
                .entry(e.hash)
                .or_default()
                .push((e.node, depth, e.time_s));
        }
    }
    let nodes = p.shares.len().max(1);
    let width = x(max_h) + W + LEFT;
    let width = width.max(LEFT * 2.0 + 96.0 * nodes.min(8) as f64);
    let height = y(lanes) + 8.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{width:.0}" height="{height:.0}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="16" font-size="12">forks: {} nodes, delay {:.3} s, block time {:.3} s, first {} blocks (faded: stale; ◆ under a block: a node switched to it, with the blocks it dropped)</text>"#,
        p.shares.len(),
        p.delay_s,
        p.block_time_s,
        placed.len()
    );
    // Legend.
    for k in 0..nodes.min(8) {
        let lx = LEFT + 96.0 * k as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{lx:.1}" y="26" width="14" height="14" rx="3" fill="{}"/><text x="{:.1}" y="37">node {k}</text>"#,
            colour(k),
            lx + 18.0
        );
    }
    // The block before the first traced one (genesis, or the segment's start), when referenced.
    let roots: std::collections::BTreeSet<u32> = placed
        .iter()
        .filter(|b| !index.contains_key(&b.parent))
        .map(|b| b.height.saturating_sub(1))
        .collect();
    for h in &roots {
        let (bx, by) = (x(*h), y(0));
        let _ = writeln!(
            s,
            r##"<rect x="{bx:.1}" y="{by:.1}" width="{W}" height="{H}" rx="7" fill="#bbbbbb"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            bx + W / 2.0,
            by + H / 2.0 + 4.0,
            if *h == 0 {
                "genesis".to_string()
            } else {
                format!("#{h}")
            }
        );
    }
    // Edges first, so blocks draw over them.
    for b in &placed {
        let (cx, cy) = (x(b.height), y(b.lane) + H / 2.0);
        let (px, py) = match index.get(&b.parent) {
            Some(&j) => (x(placed[j].height) + W, y(placed[j].lane) + H / 2.0),
            None => (x(b.height.saturating_sub(1)) + W, y(0) + H / 2.0),
        };
        let opacity = if b.stale { 0.35 } else { 1.0 };
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{py:.1}" x2="{cx:.1}" y2="{cy:.1}" stroke="#555555" stroke-width="1.5" opacity="{opacity}"/>"##
        );
    }
    for b in &placed {
        let (bx, by) = (x(b.height), y(b.lane));
        let opacity = if b.stale { 0.35 } else { 1.0 };
        let short = &b.hash.to_string()[..8];
        let _ = writeln!(
            s,
            r#"<g opacity="{opacity}"><title>height {} found by node {} at t = {:.3} s, {}{}</title><rect x="{bx:.1}" y="{by:.1}" width="{W}" height="{H}" rx="7" fill="{}"/><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="white">#{} n{}</text><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="white" font-size="9">{short}</text></g>"#,
            b.height,
            b.node,
            b.time,
            b.hash,
            if b.stale { " (stale)" } else { "" },
            colour(b.node),
            bx + W / 2.0,
            by + 14.0,
            b.height,
            b.node,
            bx + W / 2.0,
            by + 27.0
        );
        if let Some(list) = switches.get(&b.hash) {
            for (i, (node, depth, t)) in list.iter().enumerate() {
                let mx = bx + 6.0 + 13.0 * i as f64;
                let my = by + H + 9.0;
                let _ = writeln!(
                    s,
                    r#"<g><title>node {node} switched to this block at t = {t:.3} s, dropping {depth} block(s)</title><path d="M {mx:.1} {:.1} L {:.1} {my:.1} L {mx:.1} {:.1} L {:.1} {my:.1} Z" fill="{}"/><text x="{:.1}" y="{:.1}" font-size="8">{depth}</text></g>"#,
                    my - 5.0,
                    mx + 5.0,
                    my + 5.0,
                    mx - 5.0,
                    colour(*node),
                    mx - 2.5,
                    my + 14.0
                );
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

/// Formats `v` with an SI prefix and at most three significant digits: `600 M`, `6 G`, `1.5 k`.
pub fn si(v: f64) -> String {
    let prefixes = [
        (1e12, " T"),
        (1e9, " G"),
        (1e6, " M"),
        (1e3, " k"),
        (1.0, " "),
    ];
    let (scale, prefix) = prefixes
        .iter()
        .copied()
        .find(|&(p, _)| v.abs() >= p * 0.9995)
        .unwrap_or((1.0, " "));
    let x = v / scale;
    let digits = if x >= 99.95 {
        0
    } else if x >= 9.995 {
        1
    } else {
        2
    };
    let mut text = format!("{x:.digits$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{prefix}").trim_end().to_string()
}

/// Tick values for a log axis over `lo..hi`: every `levels` value in range (where the run sits,
/// so those are always labelled), then 1, 2 and 5 times the powers of ten that are not within a
/// factor 1.5 of a tick already chosen (so no two labels collide or repeat).
pub(crate) fn log_ticks(lo: f64, hi: f64, levels: &[f64]) -> Vec<f64> {
    let mut ticks: Vec<f64> = Vec::new();
    let far = |ticks: &[f64], v: f64| ticks.iter().all(|t| (v / t).log10().abs() >= 0.176);
    for &v in levels {
        if v >= lo && v <= hi && far(&ticks, v) {
            ticks.push(v);
        }
    }
    if lo > 0.0 && hi > lo {
        let mut k = lo.log10().floor() as i32;
        while 10f64.powi(k) <= hi {
            for m in [1.0, 2.0, 5.0] {
                let v = m * 10f64.powi(k);
                if v >= lo && v <= hi && far(&ticks, v) {
                    ticks.push(v);
                }
            }
            k += 1;
        }
    }
    ticks.sort_by(f64::total_cmp);
    ticks
}

/// Line colours, one per controller (colour-blind-safe where it matters: red, blue, green).
const CONTROLLER_PALETTE: [plotters::style::RGBColor; 6] = [
    plotters::style::RGBColor(214, 39, 40),
    plotters::style::RGBColor(31, 119, 180),
    plotters::style::RGBColor(44, 160, 44),
    plotters::style::RGBColor(148, 103, 189),
    plotters::style::RGBColor(255, 127, 14),
    plotters::style::RGBColor(23, 190, 207),
];

/// Draws the chart of a run as an SVG: on top, each controller's difficulty D (log scale) with
/// the ideal D (hash rate × T, the D that gives blocks every T seconds at the hash rate of the
/// moment; the right axis reads the same line as the hash rate); below, each controller's
/// 20-block mean interval against T. The y axes are labelled at the levels the run sits at (the
/// ideal D of each hash rate in the profile), the legend sits above the plots, outside the data.
pub fn write_retarget(
    runs: &[SimRun],
    spacing: i64,
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let (width, height) = (1200u32, 960u32);
    // Drawn in memory, then written: a file error is then the plain I/O error, not plotters'
    // "backend error: Drawing backend error: ..." around it.
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let t = spacing as f64;
        let n = runs.iter().map(|r| r.blocks.len()).max().unwrap_or(1) as u64;
        let x_range = 1..n.max(2);
        let color = |i: usize| CONTROLLER_PALETTE[i % CONTROLLER_PALETTE.len()];
        let grid = BLACK.mix(0.12);
        let left = 100u32;
        let right = 110u32;
        let font = |size: u32| ("sans-serif", size).into_font();

        // Title and legend strip.
        let (head, body) = root.split_vertically(78);
        head.draw(&Text::new(
        format!("retarget-sim: difficulty controllers under a hash-rate profile (T = {spacing} s, {n} blocks)"),
        (width as i32 / 2, 18),
        font(20).into_text_style(&head).pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
        let mut entries: Vec<(String, RGBColor, u32)> = runs
            .iter()
            .enumerate()
            .map(|(i, r)| (r.algorithm.to_string(), color(i), 2))
            .collect();
        entries.push((
            "ideal D = hash rate × T (right axis: the hash rate)".to_string(),
            BLACK,
            2,
        ));
        let label_style = font(14).into_text_style(&head);
        let mut x = left as i32;
        let mut y = 46;
        for (label, c, w) in &entries {
            let (tw, _) = head.estimate_text_size(label, &label_style)?;
            if x + 36 + tw as i32 > (width - right) as i32 && x > left as i32 {
                x = left as i32;
                y += 20;
            }
            head.draw(&PathElement::new(
                vec![(x, y), (x + 28, y)],
                c.stroke_width(*w),
            ))?;
            head.draw(&Text::new(
                label.clone(),
                (x + 34, y),
                label_style.pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
            x += 34 + tw as i32 + 28;
        }

        let (top, bottom) = body.split_vertically(500);

        // Difficulty, log scale, with the ideal D.
        let ideal: Vec<(u64, f64)> = runs
            .first()
            .map(|r| {
                r.blocks
                    .iter()
                    .map(|b| (b.height, b.hashrate_hs * t))
                    .collect()
            })
            .unwrap_or_default();
        let all_d = runs
            .iter()
            .flat_map(|r| r.blocks.iter().map(|b| b.difficulty))
            .chain(ideal.iter().map(|p| p.1));
        let (d_min, d_max) = all_d.fold((f64::INFINITY, 0.0f64), |(lo, hi), d| {
            (lo.min(d), hi.max(d))
        });
        let (d_min, d_max) = if d_min.is_finite() && d_max > 0.0 {
            (d_min.max(1.0), d_max.max(d_min.max(1.0) * 2.0))
        } else {
            (1.0, 10.0)
        };
        let (lo, hi) = (d_min / 1.4, d_max * 1.4);
        let mut chart = ChartBuilder::on(&top)
            .caption("difficulty D over height", font(17))
            .margin_top(4)
            .margin_bottom(4)
            .x_label_area_size(44)
            .y_label_area_size(left)
            .right_y_label_area_size(right)
            .build_cartesian_2d(x_range.clone(), (lo..hi).log_scale())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(1)
            .y_label_formatter(&|_| String::new())
            .light_line_style(TRANSPARENT)
            .bold_line_style(grid)
            .x_desc("height (blocks)")
            .label_style(font(13))
            .axis_desc_style(font(14))
            .draw()?;
        let mut levels: Vec<f64> = Vec::new();
        for &(_, d) in &ideal {
            if !levels.iter().any(|&l| (l / d - 1.0).abs() < 1e-9) {
                levels.push(d);
            }
        }
        let ticks = log_ticks(lo, hi, &levels);
        let (x0, x1) = (1u64, n.max(2));
        for &v in &ticks {
            chart.draw_series(LineSeries::new([(x0, v), (x1, v)], grid.stroke_width(1)))?;
            let (px_left, py) = chart.backend_coord(&(x0, v));
            let (px_right, _) = chart.backend_coord(&(x1, v));
            let strong = levels.iter().any(|&l| (l / v - 1.0).abs() < 1e-9);
            let style = if strong {
                font(13).style(FontStyle::Bold)
            } else {
                font(13)
            };
            root.draw(&Text::new(
                si(v),
                (px_left - 6, py),
                style
                    .clone()
                    .into_text_style(&root)
                    .pos(Pos::new(HPos::Right, VPos::Center)),
            ))?;
            root.draw(&Text::new(
                {
                    let rate = si(v / t);
                    if rate.ends_with(char::is_alphabetic) {
                        format!("{rate}H/s")
                    } else {
                        format!("{rate} H/s")
                    }
                },
                (px_right + 6, py),
                style
                    .into_text_style(&root)
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
            root.draw(&PathElement::new(
                vec![(px_left - 4, py), (px_left, py)],
                BLACK,
            ))?;
            root.draw(&PathElement::new(
                vec![(px_right, py), (px_right + 4, py)],
                BLACK,
            ))?;
        }
        let mid_y = (chart.backend_coord(&(x0, lo)).1 + chart.backend_coord(&(x0, hi)).1) / 2;
        let (px_l, _) = chart.backend_coord(&(x0, lo));
        let (px_r, _) = chart.backend_coord(&(x1, lo));
        root.draw(&Text::new(
            "D (expected hashes per block)",
            (px_l - 78, mid_y),
            font(14)
                .transform(FontTransform::Rotate270)
                .into_text_style(&root)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        root.draw(&Text::new(
            "hash rate (ideal D / T)",
            (px_r + 92, mid_y),
            font(14)
                .transform(FontTransform::Rotate90)
                .into_text_style(&root)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        // The ideal first, so the controllers' lines stay readable where the on/off miner makes it
        // a comb.
        chart.draw_series(LineSeries::new(
            ideal.iter().copied(),
            BLACK.mix(0.8).stroke_width(2),
        ))?;
        for (i, run) in runs.iter().enumerate() {
            chart.draw_series(LineSeries::new(
                run.blocks.iter().map(|b| (b.height, b.difficulty)),
                color(i).mix(0.9).stroke_width(1),
            ))?;
        }

        // The 20-block mean interval against T.
        let w = RECOVERY_WINDOW as usize;
        let smoothed: Vec<Vec<(u64, f64)>> = runs
            .iter()
            .map(|r| {
                r.blocks
                    .windows(w)
                    .map(|win| {
                        (
                            win[w - 1].height,
                            win.iter().map(|b| b.interval_s).sum::<f64>() / w as f64,
                        )
                    })
                    .collect()
            })
            .collect();
        let i_max = smoothed
            .iter()
            .flatten()
            .map(|p| p.1)
            .fold(t * 2.0, f64::max);
        let mut chart = ChartBuilder::on(&bottom)
            .caption(
                format!(
                "block interval over height ({w}-block mean; the black line is T = {spacing} s)"
            ),
                font(17),
            )
            .margin_top(4)
            .margin_bottom(8)
            .x_label_area_size(44)
            .y_label_area_size(left)
            .right_y_label_area_size(right)
            .build_cartesian_2d(x_range, 0.0..i_max * 1.05)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(grid)
            .y_labels(8)
            .x_desc("height (blocks)")
            .y_desc("seconds")
            .label_style(font(13))
            .axis_desc_style(font(14))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()?;
        chart.draw_series(LineSeries::new(
            [(x0, t), (x1, t)],
            BLACK.mix(0.8).stroke_width(2),
        ))?;
        for (i, points) in smoothed.iter().enumerate() {
            chart.draw_series(LineSeries::new(
                points.iter().copied(),
                color(i).mix(0.9).stroke_width(1),
            ))?;
        }
        root.present()?;
    }
    std::fs::write(path, svg)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::forks::run;
    use crate::experiment::retarget::{simulate, Profile, SimConfig};
    use crate::pow::retarget::Algorithm;

    #[test]
    fn si_keeps_three_digits_and_the_prefix() {
        assert_eq!(si(6e8), "600 M");
        assert_eq!(si(6e9), "6 G");
        assert_eq!(si(1.6667e6), "1.67 M");
        assert_eq!(si(1e10), "10 G");
        assert_eq!(si(2.5e3), "2.5 k");
        assert_eq!(si(500.0), "500");
    }

    #[test]
    fn log_ticks_label_the_levels_and_never_repeat() {
        // The README's run: 1 MH/s and 10 MH/s at T = 600 s sit at 600 M and 6 G.
        let ticks = log_ticks(4.3e8, 8.4e9, &[6e8, 6e9]);
        assert!(ticks.contains(&6e8) && ticks.contains(&6e9), "{ticks:?}");
        // 5 G is too close to the 6 G level to get its own label; 1 G and 2 G are not.
        assert!(!ticks.contains(&5e9), "{ticks:?}");
        assert!(ticks.contains(&1e9) && ticks.contains(&2e9), "{ticks:?}");
        let labels: Vec<String> = ticks.iter().map(|&t| si(t)).collect();
        let mut unique = labels.clone();
        unique.dedup();
        assert_eq!(labels, unique, "a label printed twice");
        assert!(ticks.windows(2).all(|w| w[1] / w[0] >= 1.5), "{ticks:?}");
    }

    #[test]
    fn the_chart_labels_the_levels_and_draws_the_ideal() {
        let blocks = 400;
        let cfg = SimConfig {
            algorithms: vec![Algorithm::Lwma { window: 45 }],
            spacing: 600,
            blocks,
            profile: Profile::parse("1M,10M@200", blocks).expect("a valid profile"),
            seed: 1,
            pow_limit: crate::chain::ChainParams::regtest().pow_limit,
        };
        let runs = simulate(&cfg);
        let path = std::env::temp_dir().join(format!("miner-sim-chart-{}.svg", std::process::id()));
        write_retarget(&runs, cfg.spacing, &path).expect("the chart is drawn");
        let svg = std::fs::read_to_string(&path).expect("the chart was written");
        std::fs::remove_file(&path).expect("remove the chart");
        for label in [
            "600 M",
            "6 G",
            "1 MH/s",
            "10 MH/s",
            "ideal D = hash rate",
            "lwma (N = 45)",
        ] {
            assert!(svg.contains(label), "no '{label}' in the chart");
        }
    }

    /// A tag-balance check enough for our own output: every opening tag is closed in order.
    fn balanced(svg: &str) -> bool {
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(i) = rest.find('<') {
            rest = &rest[i + 1..];
            let Some(j) = rest.find('>') else {
                return false;
            };
            let tag = &rest[..j];
            rest = &rest[j + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                if stack.pop() != Some(name.trim()) {
                    return false;
                }
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().unwrap_or("");
                stack.push(name);
            }
        }
        stack.is_empty()
    }

    #[test]
    fn svg_is_well_formed_and_shows_forks() {
        let p = ForkParams::equal(3, 200.0, 600.0, 60, 5);
        let r = run(&p, 60);
        assert!(r.trace.iter().any(|e| e.kind == TraceKind::Found));
        let svg = fork_diagram(&r, &p);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(balanced(&svg), "unbalanced tags");
        let rects = svg.matches("<rect").count();
        let found = r
            .trace
            .iter()
            .filter(|e| e.kind == TraceKind::Found)
            .count();
        // Background, a legend square per node, every block, and the genesis block.
        assert_eq!(rects, 1 + 3 + found + 1, "{rects} rects for {found} blocks");
        assert_eq!(
            rects,
            svg.matches("/>").count() - svg.matches("<line").count() - svg.matches("<path").count()
        );
        assert!(!r.traced_stale.is_empty(), "d/T = 1/3 over 60 blocks forks");
        assert!(svg.contains("opacity=\"0.35\""));
        assert!(svg.contains("switched to this block"));
        if let Ok(path) = std::env::var("FORKS_SVG_OUT") {
            let _ = std::fs::write(path, &svg);
        }
    }
}
