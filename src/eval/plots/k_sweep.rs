//! The k sweep: metric(s) against k on a log-scale x axis, one line per series, legend
//! outside the data area.

use super::axes::{axis_titles, padded, Axes};
use super::colors::{category_color, Marker, FRAME, GRID, TEXT};
use super::text::{draw_titles, fit_text, text, text_width, ts};
use super::{line, marker, rect, render, Canvas, Figure, PlotFiles, FIGURE_SIZE};
use anyhow::{bail, ensure, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::path::Path;

struct KSweep<'a> {
    ks: Vec<usize>,
    /// Series values re-ordered to match sorted `ks`.
    series: Vec<(&'a str, Vec<f64>)>,
    metric: &'a str,
    title: &'a str,
}

/// Metric(s) against k on a log-scale x axis: one line with markers per series (e.g.
/// `("accuracy", …)`, `("weighted F1", …)`), legend outside the plot on the right. Every
/// k used gets a tick (thinned only if labels would collide).
///
/// `ks` must be ≥ 1 and distinct (any order; sorted here with their values); each series
/// has one finite value per k.
pub fn k_sweep(
    path_stem: &Path,
    ks: &[usize],
    series: &[(String, Vec<f64>)],
    metric_name: &str,
    title: &str,
) -> Result<PlotFiles> {
    ensure!(!ks.is_empty(), "k sweep: no k values");
    ensure!(!series.is_empty(), "k sweep: no series");
    if let Some(i) = ks.iter().position(|&k| k == 0) {
        bail!("k sweep: ks[{i}] = 0, but the x axis is logarithmic; k must be at least 1");
    }
    let mut order: Vec<usize> = (0..ks.len()).collect();
    order.sort_by_key(|&i| ks[i]);
    for w in order.windows(2) {
        ensure!(
            ks[w[0]] != ks[w[1]],
            "k sweep: k = {} appears twice in ks",
            ks[w[0]]
        );
    }
    let mut sorted_series = Vec::with_capacity(series.len());
    for (name, vals) in series {
        ensure!(
            vals.len() == ks.len(),
            "k sweep: series '{name}' has {} values for {} k values",
            vals.len(),
            ks.len()
        );
        if let Some(i) = vals.iter().position(|v| !v.is_finite()) {
            bail!(
                "k sweep: series '{name}' has a non-finite value {} at k = {}",
                vals[i],
                ks[i]
            );
        }
        sorted_series.push((
            name.as_str(),
            order.iter().map(|&i| vals[i]).collect::<Vec<f64>>(),
        ));
    }
    let ks_sorted: Vec<usize> = order.iter().map(|&i| ks[i]).collect();
    render(
        path_stem,
        &KSweep {
            ks: ks_sorted,
            series: sorted_series,
            metric: metric_name,
            title,
        },
    )
}

impl Figure for KSweep<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &Canvas<'_, DB>) -> Result<()> {
        let (w, h) = (FIGURE_SIZE.0 as f64, FIGURE_SIZE.1 as f64);
        let top = draw_titles(root, self.title, None)? + 10;
        let fs = 13.0;
        let names: Vec<String> = self
            .series
            .iter()
            .map(|(s, _)| fit_text(s, fs, 220.0))
            .collect();
        let legend_w = names.iter().map(|s| text_width(s, fs)).fold(0.0, f64::max) + 40.0;
        let legend_x = w - 14.0 - legend_w;

        let lx: Vec<f64> = self.ks.iter().map(|&k| (k as f64).log10()).collect();
        let (x0, x1) = (lx[0], lx[lx.len() - 1]);
        let span = x1 - x0;
        let xr = if span > 0.0 {
            (x0 - 0.06 * span, x1 + 0.06 * span)
        } else {
            (x0 - 0.3, x1 + 0.3)
        };
        let (mut ymin, mut ymax) = (f64::INFINITY, f64::NEG_INFINITY);
        for (_, v) in &self.series {
            for &a in v {
                ymin = ymin.min(a);
                ymax = ymax.max(a);
            }
        }
        let yr = padded(ymin, ymax, 0.08);
        let ax = Axes {
            l: 84,
            t: top,
            r: (legend_x - 18.0) as i32,
            b: (h - 64.0) as i32,
            x: xr,
            y: yr,
        };
        ax.y_ticks(root, 8)?;

        // x ticks at each k; skip labels that would overlap the previous one.
        let mut last_right = f64::NEG_INFINITY;
        let tick_st = ts(12.0, &TEXT, HPos::Center, VPos::Top);
        for &k in &self.ks {
            let x = ax.px((k as f64).log10());
            line(root, vec![(x, ax.t), (x, ax.b)], GRID.stroke_width(1))?;
            line(root, vec![(x, ax.b), (x, ax.b + 4)], FRAME.stroke_width(1))?;
            let s = k.to_string();
            let tw = text_width(&s, 12.0);
            if x as f64 - tw / 2.0 > last_right + 6.0 {
                text(root, &s, (x, ax.b + 7), &tick_st)?;
                last_right = x as f64 + tw / 2.0;
            }
        }
        axis_titles(root, &ax, "k (log scale)", self.metric, 22)?;

        for (si, (_, vals)) in self.series.iter().enumerate() {
            let color = category_color(si);
            let pts: Vec<(i32, i32)> = self
                .ks
                .iter()
                .zip(vals)
                .map(|(&k, &v)| (ax.px((k as f64).log10()), ax.py(v)))
                .collect();
            line(root, pts.clone(), color.stroke_width(2))?;
            let m = [Marker::Circle, Marker::Square, Marker::Triangle][si % 3];
            for p in pts {
                marker(root, m, p, 4, color.filled())?;
            }
        }
        ax.frame(root)?;

        // Legend box.
        let row_h = 22.0;
        let lh = row_h * names.len() as f64 + 10.0;
        let (bx0, by0) = (legend_x as i32, ax.t);
        rect(
            root,
            (bx0, by0),
            ((legend_x + legend_w) as i32, by0 + lh as i32),
            WHITE.filled(),
        )?;
        rect(
            root,
            (bx0, by0),
            ((legend_x + legend_w) as i32, by0 + lh as i32),
            GRID.stroke_width(1),
        )?;
        for (si, name) in names.iter().enumerate() {
            let y = (by0 as f64 + 5.0 + (si as f64 + 0.5) * row_h) as i32;
            let color = category_color(si);
            line(
                root,
                vec![(bx0 + 8, y), (bx0 + 30, y)],
                color.stroke_width(2),
            )?;
            let m = [Marker::Circle, Marker::Square, Marker::Triangle][si % 3];
            marker(root, m, (bx0 + 19, y), 4, color.filled())?;
            text(
                root,
                name,
                (bx0 + 36, y),
                &ts(fs, &TEXT, HPos::Left, VPos::Center),
            )?;
        }
        Ok(())
    }
}
