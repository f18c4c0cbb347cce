//! `--svg FILE`: the thinning drawn as one SVG document, one panel per
//! dataset, written by hand as text (no crate needed for rectangles).
//!
//! It is the picture zfs-autobackup's README draws by hand to explain the
//! thinner. Time runs left to right with "now" at the right. Each rule has a
//! lane: its blocks within its TTL as alternating cells, green where a
//! snapshot holds the block, with a marker at that snapshot. Below the lanes,
//! the last-N tail, then two rows of snapshots: kept (coloured by why) and
//! destroyed (red crosses).
//!
//! The time axis is in pieces: from now back to the shortest TTL, from there
//! to the next TTL, and so on, each piece linear and equally wide (a piece
//! for snapshots older than every TTL is half as wide). On one linear axis a
//! year-long rule would squeeze a week of daily blocks into a few pixels.

use std::fmt::Write;

use chrono::{DateTime, Datelike, NaiveDate};

use super::{human_duration, reason, utc, Timeline};

const WIDTH: f64 = 1200.0;
/// The plot's left and right edges (labels sit left of it).
const X0: f64 = 210.0;
const X1: f64 = WIDTH - 70.0;
const LANE: f64 = 30.0;
const LANE_GAP: f64 = 8.0;
const ROW: f64 = 24.0;
/// Above this many snapshots in a panel, markers carry no tooltip (the
/// document would grow by some 150 bytes a snapshot).
const MAX_TOOLTIPS: usize = 2000;
/// Above this many blocks in a lane, only the held ones are drawn as cells.
const MAX_CELLS: i64 = 2000;

const GREEN: &str = "#1a7f37";
const PURPLE: &str = "#8250df";
const GOLD: &str = "#bf8700";
const RED: &str = "#cf222e";
const GREY: &str = "#57606a";

/// A piecewise linear time axis: points (time, x), time ascending.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Axis {
    pub(crate) points: Vec<(i64, f64)>,
}

impl Axis {
    /// The axis for one timeline: breaks at now and at each rule's TTL, a
    /// half-width piece for snapshots older than every TTL, a small piece
    /// after now for snapshots from the future.
    pub(crate) fn new(t: &Timeline) -> Axis {
        let now = t.now;
        let oldest = t.times.iter().copied().min().unwrap_or(now);
        let newest = t.times.iter().copied().max().unwrap_or(now);
        // (age, weight of the piece that ends at this age, going back).
        let mut ages: Vec<i64> = t.schedule.rules.iter().map(|r| r.ttl).collect();
        ages.sort_unstable();
        ages.dedup();
        let mut weights = vec![1.0; ages.len()];
        let max_ttl = ages.last().copied().unwrap_or(0);
        if now - oldest > max_ttl {
            ages.push(now - oldest);
            weights.push(if max_ttl > 0 { 0.5 } else { 1.0 });
        }
        if ages.is_empty() {
            ages.push(86_400);
            weights.push(1.0);
        }
        // From the right: the future piece, now, then back in time.
        let mut pieces: Vec<(i64, f64)> = Vec::new(); // (time, width units from the right)
        let mut units = 0.0;
        if newest > now {
            pieces.push((newest, 0.0));
            units += 0.3;
        }
        pieces.push((now, units));
        for (age, w) in ages.iter().zip(&weights) {
            units += w;
            pieces.push((now - age, units));
        }
        let scale = (X1 - X0) / units;
        let mut points: Vec<(i64, f64)> =
            pieces.iter().map(|&(tm, u)| (tm, X1 - u * scale)).collect();
        points.reverse();
        Axis { points }
    }

    /// The x of time `t`; times beyond the ends are clamped to them.
    pub(crate) fn x(&self, t: i64) -> f64 {
        let p = &self.points;
        let i = p.partition_point(|&(pt, _)| pt <= t);
        if i == 0 {
            return p[0].1;
        }
        if i == p.len() {
            return p[p.len() - 1].1;
        }
        let ((ta, xa), (tb, xb)) = (p[i - 1], p[i]);
        xa + (xb - xa) * (t - ta) as f64 / (tb - ta) as f64
    }

    /// Ticks: per piece, the finest step that leaves 64 pixels between
    /// them.
    fn ticks(&self) -> Vec<(i64, Step)> {
        let mut out = Vec::new();
        for w in self.points.windows(2) {
            let ((ta, xa), (tb, xb)) = (w[0], w[1]);
            if tb <= ta {
                continue;
            }
            let px_per_s = (xb - xa) / (tb - ta) as f64;
            out.extend(step_ticks(ta, tb, px_per_s));
        }
        out.sort_by_key(|&(t, _)| t);
        out.dedup_by_key(|&mut (t, _)| t);
        out
    }
}

/// What a tick marks, which says how to label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// A time of day (hours or minutes apart).
    Time,
    /// A day (days or weeks apart).
    Day,
    /// The first of a month (months or years apart).
    Month,
}

/// Round times in [a, b) at the finest of the usual steps (minutes, hours,
/// days, Mondays, months, years) that is at least 64 pixels wide.
fn step_ticks(a: i64, b: i64, px_per_s: f64) -> Vec<(i64, Step)> {
    const FIXED: &[i64] = &[60, 300, 900, 1800, 3600, 10800, 21600, 43200, 86400, 172800];
    let wide = |secs: i64| secs as f64 * px_per_s >= 64.0;
    if let Some(&step) = FIXED.iter().find(|&&s| wide(s)) {
        let first = a.div_euclid(step) * step + if a.rem_euclid(step) == 0 { 0 } else { step };
        let kind = if step < 86_400 { Step::Time } else { Step::Day };
        return (0..)
            .map(|k| (first + k * step, kind))
            .take_while(|&(t, _)| t < b)
            .collect();
    }
    // Weeks from Monday (1970-01-05 was a Monday).
    if wide(604_800) {
        let monday = 4 * 86_400;
        let off = (a - monday).rem_euclid(604_800);
        let first = if off == 0 { a } else { a + 604_800 - off };
        return (0..)
            .map(|k| (first + k * 604_800, Step::Day))
            .take_while(|&(t, _)| t < b)
            .collect();
    }
    let months = [1, 2, 3, 6, 12, 24, 60, 120, 600]
        .into_iter()
        .find(|&m| wide(m as i64 * 2_629_800))
        .unwrap_or(1200);
    let Some(start) = DateTime::from_timestamp(a, 0) else {
        return Vec::new();
    };
    let (y, m0) = (start.year(), start.month0());
    // The first month boundary at or after a, at a multiple of `months`.
    let mut idx = (y as i64 * 12 + m0 as i64).div_euclid(months as i64) * months as i64;
    let mut out = Vec::new();
    for _ in 0..1000 {
        let (yy, mm) = (idx.div_euclid(12), idx.rem_euclid(12) as u32 + 1);
        let Some(d) = i32::try_from(yy)
            .ok()
            .and_then(|yy| NaiveDate::from_ymd_opt(yy, mm, 1))
        else {
            break;
        };
        let t = d.and_hms_opt(0, 0, 0).map(|d| d.and_utc().timestamp());
        match t {
            Some(t) if t >= b => break,
            Some(t) if t >= a => out.push((t, Step::Month)),
            _ => {}
        }
        idx += months as i64;
    }
    out
}

/// Text made safe for SVG (XML) content and attributes.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A tick's label, and the year for a second line.
fn tick_label(t: i64, step: Step) -> (String, String) {
    let Some(d) = DateTime::from_timestamp(t, 0) else {
        return (format!("@{t}"), String::new());
    };
    let format = match step {
        Step::Time if t.rem_euclid(86_400) != 0 => "%H:%M",
        Step::Time | Step::Day => "%b %-d",
        Step::Month => "%b",
    };
    (d.format(format).to_string(), d.year().to_string())
}

/// The height of one timeline's panel.
fn panel_height(t: &Timeline) -> f64 {
    let lanes = t.schedule.rules.len() as f64 * (LANE + LANE_GAP);
    let tail = if t.schedule.keep_last > 0 { 22.0 } else { 0.0 };
    70.0 + lanes + tail + 2.0 * ROW + 52.0
}

/// One SVG document, one panel per timeline, a legend at the bottom.
pub fn svg(timelines: &[Timeline]) -> String {
    let legend_h = 175.0;
    let height: f64 = timelines.iter().map(panel_height).sum::<f64>() + legend_h + 10.0;
    let mut o = String::new();
    writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Verdana, sans-serif" font-size="12">"#
    )
    .ok();
    writeln!(o, "<title>zab-thin: what the schedule keeps</title>").ok();
    // Markers, drawn centred on (0,0) and placed with <use x y>.
    writeln!(
        o,
        r##"<defs>
<circle id="held" r="5" fill="{GREEN}" stroke="#fff" stroke-width="1"/>
<circle id="kept" r="5" fill="{GREEN}"/>
<circle id="tail" r="5" fill="{PURPLE}"/>
<circle id="prot" r="5" fill="{GOLD}"/>
<circle id="other" r="2.6" fill="#fff" stroke="#6e7781" stroke-width="1"/>
<circle id="ring" r="8.5" fill="none" stroke="#000" stroke-width="1.6"/>
<path id="gone" d="M-4,-4L4,4M-4,4L4,-4" stroke="{RED}" stroke-width="2.2" fill="none"/>
</defs>
<rect width="100%" height="100%" fill="#fff"/>"##
    )
    .ok();
    let mut y = 0.0;
    for t in timelines {
        panel(&mut o, t, y);
        y += panel_height(t);
    }
    legend(&mut o, y);
    o.push_str("</svg>\n");
    o
}

fn panel(o: &mut String, t: &Timeline, y0: f64) {
    let s = t.schedule;
    let n = t.names.len();
    let kept = t.kept();
    let axis = Axis::new(t);
    let labels = t.rule_labels();
    let held = t.held_blocks();
    let x = |tm: i64| axis.x(tm);
    let title = if t.dataset.is_empty() {
        "snapshots"
    } else {
        t.dataset
    };
    writeln!(
        o,
        r#"<g class="panel"><text x="12" y="{:.1}" font-size="16" font-weight="bold">{}</text>"#,
        y0 + 22.0,
        esc(title)
    )
    .ok();
    writeln!(
        o,
        r#"<text x="12" y="{:.1}" fill="{GREY}">schedule {} · now {} UTC · {n} snapshot{} · {kept} kept, {} destroyed</text>"#,
        y0 + 40.0,
        esc(&s.to_string()),
        utc(t.now),
        if n == 1 { "" } else { "s" },
        n - kept
    )
    .ok();

    let top = y0 + 66.0;
    let lanes_end = top + s.rules.len() as f64 * (LANE + LANE_GAP);
    let tail_y = lanes_end;
    let kept_y = lanes_end + if s.keep_last > 0 { 22.0 } else { 0.0 };
    let gone_y = kept_y + ROW;
    let axis_y = gone_y + ROW + 4.0;

    // Piece boundaries: dashed, labelled with how long ago they are.
    let mut ttls: Vec<i64> = s.rules.iter().map(|r| r.ttl).collect();
    ttls.sort_unstable();
    ttls.dedup();
    for ttl in &ttls {
        let bx = x(t.now - ttl);
        writeln!(
            o,
            r##"<line x1="{bx:.1}" y1="{:.1}" x2="{bx:.1}" y2="{axis_y:.1}" stroke="#8c959f" stroke-dasharray="4 3"/><text x="{bx:.1}" y="{:.1}" text-anchor="middle" font-size="11" fill="{GREY}">{} ago</text>"##,
            top - 10.0,
            top - 13.0,
            human_duration(*ttl)
        )
        .ok();
    }
    let nx = x(t.now);
    writeln!(
        o,
        r##"<line x1="{nx:.1}" y1="{:.1}" x2="{nx:.1}" y2="{axis_y:.1}" stroke="#24292f" stroke-width="1.5"/><text x="{nx:.1}" y="{:.1}" text-anchor="middle" font-size="11" font-weight="bold">now</text>"##,
        top - 10.0,
        top - 13.0
    )
    .ok();

    // One lane per rule.
    let newest = t.times.iter().copied().max().unwrap_or(t.now).max(t.now);
    for (r, rule) in s.rules.iter().enumerate() {
        let ly = top + r as f64 * (LANE + LANE_GAP);
        let p = rule.period;
        writeln!(
            o,
            r#"<text x="12" y="{:.1}" font-weight="bold">{}</text><text x="12" y="{:.1}" font-size="10" fill="{GREY}">one every {}, for {}</text>"#,
            ly + 12.0,
            esc(&labels[r]),
            ly + 25.0,
            human_duration(p),
            human_duration(rule.ttl)
        )
        .ok();
        let (wa, wb) = (t.now - rule.ttl, newest);
        let (first, last) = (wa / p, wb / p);
        let cell = |o: &mut String, b: i64, fill: &str, text: bool| {
            let xa = x((b * p).max(wa));
            let xb = x(((b + 1) * p).min(wb));
            let w = (xb - xa).max(1.0);
            writeln!(
                o,
                r##"<rect x="{xa:.1}" y="{ly:.1}" width="{w:.1}" height="{LANE}" fill="{fill}" stroke="#fff" stroke-width="1"><title>block {b} of {}: from {} UTC</title></rect>"##,
                esc(&labels[r]),
                utc(b * p)
            )
            .ok();
            if text && w >= 44.0 {
                writeln!(
                    o,
                    r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="9" fill="#3d444d">{b}</text>"##,
                    xa + w / 2.0,
                    ly + LANE - 4.0
                )
                .ok();
            }
        };
        let shade = |b: i64, on: bool| match (on, b.rem_euclid(2) == 0) {
            (true, true) => "#a7dcb0",
            (true, false) => "#c7ebcd",
            (false, true) => "#d0d9e3",
            (false, false) => "#e6ecf2",
        };
        if last - first <= MAX_CELLS {
            for b in first..=last {
                cell(o, b, shade(b, held.contains_key(&(p, b))), true);
            }
        } else {
            let (xa, xb) = (x(wa), x(wb));
            writeln!(
                o,
                r##"<rect x="{xa:.1}" y="{ly:.1}" width="{:.1}" height="{LANE}" fill="#e6ecf2"/>"##,
                (xb - xa).max(1.0)
            )
            .ok();
            let mut bs: Vec<i64> = held
                .keys()
                .filter(|&&(per, b)| per == p && (first..=last).contains(&b))
                .map(|&(_, b)| b)
                .collect();
            bs.sort_unstable();
            for b in bs {
                cell(o, b, shade(b, true), false);
            }
        }
        // The other snapshots young enough for this rule, in their blocks;
        // where they crowd, one marker per 5 pixels.
        let mut last_x = f64::NEG_INFINITY;
        for (i, &tm) in t.times.iter().enumerate() {
            let ox = x(tm);
            if t.now - tm <= rule.ttl
                && held.get(&(p, tm / p)).map(|h| h.0) != Some(i)
                && (ox - last_x).abs() >= 5.0
            {
                writeln!(
                    o,
                    r##"<use class="other" href="#other" x="{ox:.1}" y="{:.1}"/>"##,
                    ly + LANE / 2.0
                )
                .ok();
                last_x = ox;
            }
        }
        // A marker at each holder, and a faint line down to its dot. A block
        // shared with a longer rule of the same period may be held by a
        // snapshot too old for this lane: its marker is in the other lane.
        let mut holders: Vec<(i64, usize)> = held
            .iter()
            .filter(|(&(per, b), &(j, _))| {
                per == p && (first..=last).contains(&b) && t.now - t.times[j] <= rule.ttl
            })
            .map(|(&(_, b), &(j, _))| (b, j))
            .collect();
        holders.sort_unstable();
        for (b, j) in holders {
            let hx = x(t.times[j]);
            writeln!(
                o,
                r##"<line x1="{hx:.1}" y1="{:.1}" x2="{hx:.1}" y2="{:.1}" stroke="{GREEN}" stroke-opacity="0.35" stroke-dasharray="2 2"/><use class="held" href="#held" x="{hx:.1}" y="{:.1}"><title>{} holds block {b} of {}</title></use>"##,
                ly + LANE / 2.0 + 5.0,
                kept_y + ROW / 2.0 - 6.0,
                ly + LANE / 2.0,
                esc(&t.names[j]),
                esc(&labels[r])
            )
            .ok();
        }
    }

    // The last-N tail: a bar over its snapshots.
    if s.keep_last > 0 {
        let tail: Vec<i64> = (0..n)
            .filter(|&i| t.verdicts[i].tail)
            .map(|i| t.times[i])
            .collect();
        writeln!(
            o,
            r#"<text x="12" y="{:.1}" fill="{PURPLE}" font-weight="bold">last {}</text>"#,
            tail_y + 13.0,
            s.keep_last
        )
        .ok();
        if let (Some(a), Some(b)) = (tail.iter().min(), tail.iter().max()) {
            let (xa, xb) = (x(*a) - 6.0, x(*b) + 6.0);
            writeln!(
                o,
                r#"<rect x="{xa:.1}" y="{:.1}" width="{:.1}" height="8" rx="4" fill="{PURPLE}" fill-opacity="0.55"><title>the last {}: kept whatever the rules say</title></rect>"#,
                tail_y + 5.0,
                xb - xa,
                s.keep_last
            )
            .ok();
        }
    }

    // The snapshots: kept above, destroyed below.
    writeln!(
        o,
        r#"<text x="12" y="{:.1}" fill="{GREEN}" font-weight="bold">kept ({kept})</text><text x="12" y="{:.1}" fill="{RED}" font-weight="bold">destroyed ({})</text>"#,
        kept_y + 16.0,
        gone_y + 16.0,
        n - kept
    )
    .ok();
    writeln!(
        o,
        r##"<line x1="{X0}" y1="{:.1}" x2="{X1}" y2="{:.1}" stroke="#eaeef2"/><line x1="{X0}" y1="{:.1}" x2="{X1}" y2="{:.1}" stroke="#eaeef2"/>"##,
        kept_y + ROW / 2.0,
        kept_y + ROW / 2.0,
        gone_y + ROW / 2.0,
        gone_y + ROW / 2.0
    )
    .ok();
    let tips = n <= MAX_TOOLTIPS;
    // Destroyed first, then kept on top; the rings last. Without tooltips
    // (many snapshots), one cross per 1.5 pixels is enough.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| t.verdicts[i].keep);
    let mut last_gone = f64::NEG_INFINITY;
    for i in order {
        let v = &t.verdicts[i];
        let sx = x(t.times[i]);
        if !v.keep && !tips {
            if (sx - last_gone).abs() < 1.5 {
                continue;
            }
            last_gone = sx;
        }
        let (id, sy) = match (v.keep, !v.holds.is_empty(), v.tail) {
            (false, _, _) => ("gone", gone_y + ROW / 2.0),
            (true, true, _) => ("kept", kept_y + ROW / 2.0),
            (true, false, true) => ("tail", kept_y + ROW / 2.0),
            (true, false, false) => ("prot", kept_y + ROW / 2.0),
        };
        let tip = if tips {
            format!(
                "<title>{}\n{} UTC\n{}</title>",
                esc(&t.names[i]),
                utc(t.times[i]),
                esc(&reason(t, i))
            )
        } else {
            String::new()
        };
        writeln!(
            o,
            r##"<use class="{id}" href="#{id}" x="{sx:.1}" y="{sy:.1}">{tip}</use>"##
        )
        .ok();
    }
    for i in (0..n).filter(|&i| t.verdicts[i].protected) {
        writeln!(
            o,
            r##"<use class="ring" href="#ring" x="{:.1}" y="{:.1}"/>"##,
            x(t.times[i]),
            kept_y + ROW / 2.0
        )
        .ok();
    }

    // The axis.
    writeln!(
        o,
        r##"<line x1="{X0}" y1="{axis_y:.1}" x2="{X1}" y2="{axis_y:.1}" stroke="#24292f"/>"##
    )
    .ok();
    let mut last_x = f64::NEG_INFINITY;
    let mut last_year = None;
    for (tick, step) in axis.ticks() {
        let tx = x(tick);
        if tx - last_x < 56.0 || tx > X1 - 10.0 {
            continue;
        }
        let (label, year) = tick_label(tick, step);
        let year = if last_year.as_ref() != Some(&year) {
            last_year = Some(year.clone());
            year
        } else {
            String::new()
        };
        writeln!(
            o,
            r##"<line x1="{tx:.1}" y1="{axis_y:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#24292f"/><text x="{tx:.1}" y="{:.1}" text-anchor="middle" font-size="10">{label}</text><text x="{tx:.1}" y="{:.1}" text-anchor="middle" font-size="9" fill="{GREY}">{year}</text>"##,
            axis_y + 5.0,
            axis_y + 17.0,
            axis_y + 29.0
        )
        .ok();
        last_x = tx;
    }
    writeln!(o, "</g>").ok();
}

fn legend(o: &mut String, y0: f64) {
    let y = y0 + 14.0;
    writeln!(
        o,
        r##"<g class="legend"><line x1="12" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#d0d7de"/>"##,
        WIDTH - 12.0
    )
    .ok();
    // Left: what the rule lanes show; right: the snapshot rows.
    let lanes: [(&str, &str); 4] = [
        (
            "cells",
            "a rule's blocks within its TTL (alternating shades)",
        ),
        ("cells-held", "a block that a snapshot holds"),
        (
            "held",
            "the snapshot holding it: the oldest in the block young enough",
        ),
        (
            "other",
            "a later snapshot in the block, not needed by this rule",
        ),
    ];
    let rows: [(&str, &str); 5] = [
        ("kept", "kept: holds a block of a rule"),
        ("tail", "kept: one of the last N (under the purple bar)"),
        ("prot", "kept: protected only"),
        ("ring", "protected: the newest, or marked so in the input"),
        ("gone", "destroyed"),
    ];
    let columns = [(24.0, &lanes[..]), (560.0, &rows[..])];
    for (cx, items) in columns {
        for (k, (id, text)) in items.iter().enumerate() {
            let cy = y + 20.0 + k as f64 * 20.0;
            let cell = |fill_a: &str, fill_b: &str| {
                format!(
                    r##"<rect x="{:.1}" y="{:.1}" width="10" height="14" fill="{fill_a}"/><rect x="{cx:.1}" y="{:.1}" width="10" height="14" fill="{fill_b}"/>"##,
                    cx - 10.0,
                    cy - 7.0,
                    cy - 7.0
                )
            };
            let mark = match *id {
                "cells" => cell("#d0d9e3", "#e6ecf2"),
                "cells-held" => cell("#a7dcb0", "#c7ebcd"),
                id => format!(r##"<use href="#{id}" x="{cx:.1}" y="{cy:.1}"/>"##),
            };
            writeln!(
                o,
                r#"{mark}<text x="{:.1}" y="{:.1}">{}</text>"#,
                cx + 18.0,
                cy + 4.0,
                esc(text)
            )
            .ok();
        }
    }
    let notes = [
        "Time runs left to right, now at the right, in UTC. Blocks are counted from 1970-01-01 UTC: day blocks start at midnight UTC, week blocks on Thursdays.",
        "The axis is in pieces (dashed lines): now back to the shortest TTL, then to the next TTL, and so on. Each piece is linear and equally wide",
        "(older than every TTL: half as wide), so recent blocks stay visible next to a year-long rule. In each block, the oldest snapshot young enough is kept.",
    ];
    for (k, line) in notes.iter().enumerate() {
        writeln!(
            o,
            r#"<text x="12" y="{:.1}" font-size="11" fill="{GREY}">{}</text>"#,
            y + 124.0 + k as f64 * 15.0,
            esc(line)
        )
        .ok();
    }
    writeln!(o, "</g>").ok();
}

#[cfg(test)]
mod tests {
    use super::super::tests::worked_example;
    use super::*;
    use zab_core::schedule::Schedule;

    #[test]
    fn axis_puts_now_right_and_each_ttl_at_a_break() {
        let (s, now, names, times, verdicts) = worked_example();
        let t = Timeline {
            dataset: "tank/a",
            schedule: &s,
            now,
            names: &names,
            times: &times,
            verdicts: &verdicts,
        };
        let a = Axis::new(&t);
        assert_eq!(a.x(now), X1);
        // Two equal pieces: the last week, then the rest of the month; the
        // oldest snapshot is within the month, so no piece beyond it.
        let mid = (X0 + X1) / 2.0;
        assert!((a.x(now - 604_800) - mid).abs() < 1e-6);
        assert_eq!(a.x(now - 2_592_000), X0);
        // Monotonic over the snapshots, and clamped outside.
        for w in times.windows(2) {
            assert!(a.x(w[0]) <= a.x(w[1]));
        }
        assert_eq!(a.x(now - 10 * 2_592_000), X0);
        assert_eq!(a.x(now + 99), X1);
    }

    #[test]
    fn axis_for_old_and_future_snapshots_and_no_rules() {
        let s = Schedule::parse("1d1w").unwrap();
        let now = 1_000_000_000;
        let times = [now - 30 * 86_400, now - 3600, now + 3600];
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let v = s.explain(&times, &[false, false, true], now);
        let t = Timeline {
            dataset: "",
            schedule: &s,
            now,
            names: &names,
            times: &times,
            verdicts: &v,
        };
        let a = Axis::new(&t);
        // Pieces: old (0.5), the week (1), the future (0.3).
        let unit = (X1 - X0) / 1.8;
        assert_eq!(a.x(times[0]), X0);
        assert!((a.x(now - 604_800) - (X0 + 0.5 * unit)).abs() < 1e-6);
        assert!((a.x(now) - (X0 + 1.5 * unit)).abs() < 1e-6);
        assert_eq!(a.x(times[2]), X1);

        let s = Schedule::parse("3").unwrap();
        let t = Timeline {
            schedule: &s,
            times: &[],
            names: &[],
            verdicts: &[],
            ..t
        };
        let a = Axis::new(&t);
        assert_eq!(a.points, vec![(now - 86_400, X0), (now, X1)]);
    }

    #[test]
    fn ticks_are_round_and_spaced() {
        // One day over 1000 px: every 3 hours (hourly would be 42 px apart).
        let day = step_ticks(86_400 * 10 + 7, 86_400 * 11, 1000.0 / 86_400.0);
        let want: Vec<(i64, Step)> = (1..8)
            .map(|k| (86_400 * 10 + k * 10_800, Step::Time))
            .collect();
        assert_eq!(day, want);
        assert_eq!(tick_label(day[0].0, Step::Time).0, "03:00");
        // A year over 300 px: month starts.
        let y2024 = 1_704_067_200; // 2024-01-01
        let year = step_ticks(y2024 - 1, y2024 + 366 * 86_400, 300.0 / (366.0 * 86_400.0));
        assert_eq!(year[0], (y2024, Step::Month));
        assert!(year
            .iter()
            .all(|&(t, _)| DateTime::from_timestamp(t, 0).unwrap().day() == 1));
        assert_eq!(
            tick_label(y2024, Step::Month),
            ("Jan".into(), "2024".into())
        );
        assert!(year.len() >= 3 && year.len() <= 6, "{year:?}");
        // A month over 300 px: Mondays.
        let month = step_ticks(y2024, y2024 + 30 * 86_400, 300.0 / (30.0 * 86_400.0));
        assert!(month.iter().all(|&(t, _)| {
            DateTime::from_timestamp(t, 0).unwrap().weekday() == chrono::Weekday::Mon
        }));
        assert_eq!(tick_label(month[0].0, Step::Day).0, "Jan 1");
        assert_eq!(month.len(), 5);
    }

    /// The document for the worked example: well formed, one marker per
    /// snapshot of the right kind, names escaped.
    #[test]
    fn svg_marks_every_snapshot() {
        let (s, now, mut names, times, verdicts) = worked_example();
        names[3] = "a<b>&\"c'".into();
        let t = Timeline {
            dataset: "tank/<x>",
            schedule: &s,
            now,
            names: &names,
            times: &times,
            verdicts: &verdicts,
        };
        let doc = svg(&[t, t]);
        assert!(doc.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(doc.ends_with("</svg>\n"));
        let count = |needle: &str| doc.matches(needle).count();
        // Per panel: 6 kept by a rule, 2 by the tail (the newest of them
        // also protected: one ring), 4 destroyed.
        assert_eq!(count(r#"class="kept""#), 2 * 6);
        assert_eq!(count(r#"class="tail""#), 2 * 2);
        assert_eq!(count(r#"class="prot""#), 0);
        assert_eq!(count(r#"class="gone""#), 2 * 4);
        assert_eq!(count(r#"class="ring""#), 2);
        assert_eq!(count(r#"<g class="panel">"#), 2);
        assert!(doc.contains("a&lt;b&gt;&amp;&quot;c&#39;"));
        assert!(doc.contains("tank/&lt;x&gt;"));
        assert!(!doc.contains("a<b>"));
        // Every element that opens is closed (a cheap well-formedness check).
        let opens = doc.matches("<g").count() + doc.matches("<title>").count();
        let closes = doc.matches("</g>").count() + doc.matches("</title>").count();
        assert_eq!(opens, closes);
        // Both lanes: 1d1w has 8 blocks in its week, 1w1m 5 in its month.
        assert_eq!(count("<title>block "), 2 * (8 + 5));
        // A marker per held block: 4 day blocks, 3 week blocks.
        assert_eq!(count(r#"class="held""#), 2 * 7);
        assert!(doc.contains(">1 week ago<") && doc.contains(">1 month ago<"));
        // Each snapshot's marker has its reason as a tooltip.
        assert!(doc.contains(
            "<title>offsite1-20231228210000\n2023-12-28 21:00:00 UTC\ndestroy: block 2817 of 1w1m is held by offsite1-20231228090000; too old for 1d1w</title>"
        ));
    }

    /// docs/thinning.svg is this code's picture of the worked example.
    #[test]
    fn docs_picture_is_up_to_date() {
        let (s, now, names, times, verdicts) = worked_example();
        let t = Timeline {
            dataset: "",
            schedule: &s,
            now,
            names: &names,
            times: &times,
            verdicts: &verdicts,
        };
        assert!(
            include_str!("../../../docs/thinning.svg") == svg(&[t]),
            "docs/thinning.svg is out of date; regenerate it (docs/thinning.md says how)"
        );
    }

    /// A rule with more blocks than can be drawn draws only the held ones.
    #[test]
    fn many_blocks_draw_only_the_held() {
        let s = Schedule::parse("1min1y").unwrap();
        let now = 1_704_888_000;
        let times = [now - 86_400, now - 60];
        let names: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let v = s.explain(&times, &[false, true], now);
        let t = Timeline {
            dataset: "",
            schedule: &s,
            now,
            names: &names,
            times: &times,
            verdicts: &v,
        };
        let doc = svg(&[t]);
        assert_eq!(doc.matches("<title>block ").count(), 2);
        assert!(doc.len() < 20_000, "{} bytes", doc.len());
    }

    /// Crowded markers are thinned to what the pixels can show: 10,000
    /// snapshots a minute apart do not make 10,000 crosses.
    #[test]
    fn crowded_markers_are_drawn_once_per_pixel_or_so() {
        let s = Schedule::parse("1d1w").unwrap();
        let now = 1_704_888_000;
        let times: Vec<i64> = (0..10_000).map(|k| now - 10_000 * 60 + k * 60).collect();
        let names: Vec<String> = times.iter().map(|t| t.to_string()).collect();
        let mut protected = vec![false; times.len()];
        protected[9_999] = true;
        let v = s.explain(&times, &protected, now);
        let t = Timeline {
            dataset: "",
            schedule: &s,
            now,
            names: &names,
            times: &times,
            verdicts: &v,
        };
        let doc = svg(&[t]);
        let gone = doc.matches(r#"class="gone""#).count();
        let others = doc.matches(r#"class="other""#).count();
        // The week is the whole plot; the snapshots span 10,000 of its minutes.
        let width = (X1 - X0) * 10_000.0 * 60.0 / 604_800.0;
        assert!(
            gone > 0 && gone as f64 <= width / 1.5 + 2.0,
            "{gone} crosses"
        );
        assert!(others > 0 && others as f64 <= width / 5.0 + 2.0, "{others}");
        // 8 day blocks (the first and last partly), and the newest kept as
        // protected alone: its block is held by an older one.
        assert_eq!(doc.matches(r#"class="kept""#).count(), 8);
        assert_eq!(doc.matches(r#"class="prot""#).count(), 1);
        assert!(!doc.contains(" UTC\ndestroy: "), "no tooltips for so many");
    }
}
