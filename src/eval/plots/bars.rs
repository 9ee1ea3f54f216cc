//! The bar table: one horizontal bar with a ±sd error bar per experiment, names on the left
//! and "mean ± sd" printed on the right.

use super::axes::Axes;
use super::colors::{category_color, FRAME, TEXT};
use super::text::{draw_titles, fit_text, fmt_dec, text, text_width, ts};
use super::{line, rect, render, Canvas, Figure, PlotFiles, FIGURE_SIZE};
use anyhow::{ensure, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::path::Path;

struct BarTable<'a> {
    rows: &'a [(String, f64, f64)],
    metric: &'a str,
    title: &'a str,
}

/// Horizontal bars of `mean` with ±`sd` error bars, one row per experiment, in the given
/// order top to bottom; names on the left (truncated with "…" if long), "mean ± sd" printed
/// in a column on the right.
///
/// `rows` = `(name, mean, sd)`; mean finite, sd finite and ≥ 0 (use 0 for a single run).
pub fn bar_table(
    path_stem: &Path,
    rows: &[(String, f64, f64)],
    metric_name: &str,
    title: &str,
) -> Result<PlotFiles> {
    ensure!(!rows.is_empty(), "bar table: no rows");
    for (name, mean, sd) in rows {
        ensure!(
            mean.is_finite(),
            "bar table: row '{name}' has a non-finite mean {mean}"
        );
        ensure!(
            sd.is_finite() && *sd >= 0.0,
            "bar table: row '{name}' has standard deviation {sd}; it must be finite and ≥ 0 (0 for a single run)"
        );
    }
    render(
        path_stem,
        &BarTable {
            rows,
            metric: metric_name,
            title,
        },
    )
}

impl Figure for BarTable<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &Canvas<'_, DB>) -> Result<()> {
        let (w, h) = (FIGURE_SIZE.0 as f64, FIGURE_SIZE.1 as f64);
        let n = self.rows.len();
        let top = draw_titles(root, self.title, None)? + 10;
        let bottom = h - 64.0;
        let pitch = (bottom - top as f64) / n as f64;
        // Unhinted text below ~9 px smears; with very many rows label every `label_step`-th.
        let fs = (pitch * 0.7).clamp(9.0, 13.0);
        let label_step = ((fs * 1.15 / pitch).ceil() as usize).max(1);
        let max_abs = self
            .rows
            .iter()
            .map(|r| r.1.abs().max(r.2.abs()))
            .fold(0.0, f64::max);
        let dec = if max_abs >= 100.0 {
            1
        } else if max_abs >= 10.0 {
            2
        } else {
            3
        };
        let values: Vec<String> = self
            .rows
            .iter()
            .map(|r| format!("{} ± {}", fmt_dec(r.1, dec), fmt_dec(r.2, dec)))
            .collect();
        let val_w = values.iter().map(|s| text_width(s, fs)).fold(0.0, f64::max);
        let name_w = self
            .rows
            .iter()
            .map(|r| text_width(r.0.trim(), fs))
            .fold(0.0, f64::max)
            .min(260.0);
        let ax_l = (14.0 + name_w + 10.0) as i32;
        let ax_r = (w - 16.0 - val_w - 12.0) as i32;

        let lo = self.rows.iter().map(|r| r.1 - r.2).fold(0.0, f64::min);
        let hi = self.rows.iter().map(|r| r.1 + r.2).fold(0.0, f64::max);
        let span = if hi > lo { hi - lo } else { 1.0 };
        let xr = (
            if lo < 0.0 { lo - 0.04 * span } else { 0.0 },
            if hi > 0.0 { hi + 0.04 * span } else { 0.0 },
        );
        let ax = Axes {
            l: ax_l,
            t: top,
            r: ax_r,
            b: bottom as i32,
            x: xr,
            y: (0.0, n as f64),
        };
        ax.x_ticks(root, 7)?;
        let x_zero = ax.px(0.0);
        let bar_color = category_color(0);
        let bar_h = (pitch * 0.62).clamp(1.0, 30.0);
        for (k, ((name, mean, sd), val)) in self.rows.iter().zip(&values).enumerate() {
            let yc = top as f64 + (k as f64 + 0.5) * pitch;
            let (ya, yb) = (
                (yc - bar_h / 2.0).round() as i32,
                (yc + bar_h / 2.0).round() as i32,
            );
            let xm = ax.px(*mean);
            rect(
                root,
                (x_zero.min(xm), ya),
                (x_zero.max(xm), yb),
                bar_color.mix(0.85).filled(),
            )?;
            if *sd > 0.0 {
                let (xa, xb) = (ax.px(mean - sd), ax.px(mean + sd));
                let yi = yc.round() as i32;
                let cap = ((bar_h * 0.25).round() as i32).clamp(2, 6);
                let st = RGBColor(20, 20, 20).stroke_width(if pitch > 12.0 { 2 } else { 1 });
                line(root, vec![(xa, yi), (xb, yi)], st)?;
                line(root, vec![(xa, yi - cap), (xa, yi + cap)], st)?;
                line(root, vec![(xb, yi - cap), (xb, yi + cap)], st)?;
            }
            if k % label_step == 0 {
                let label = fit_text(name, fs, 260.0);
                text(
                    root,
                    &label,
                    (ax_l - 8, yc.round() as i32),
                    &ts(fs, &TEXT, HPos::Right, VPos::Center),
                )?;
                text(
                    root,
                    val,
                    ((w - 16.0) as i32, yc.round() as i32),
                    &ts(fs, &TEXT, HPos::Right, VPos::Center),
                )?;
            }
        }
        if lo < 0.0 {
            line(
                root,
                vec![(x_zero, ax.t), (x_zero, ax.b)],
                FRAME.stroke_width(1),
            )?;
        }
        ax.frame(root)?;
        let xl = fit_text(
            &format!("{} (mean ± sd)", self.metric.trim()),
            14.0,
            (ax.r - ax.l) as f64,
        );
        text(
            root,
            &xl,
            ((ax.l + ax.r) / 2, ax.b + 28),
            &ts(14.0, &TEXT, HPos::Center, VPos::Top),
        )?;
        Ok(())
    }
}
