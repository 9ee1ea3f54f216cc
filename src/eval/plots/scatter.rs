//! The 2-D embedding scatter: one marker per cell coloured by class, drawn in a seeded random
//! order, with a legend of the classes present outside the data area.

use super::axes::{axis_titles, padded, Axes};
use super::colors::{category_color, category_marker, TEXT};
use super::text::{draw_titles, fit_text, fmt_count, text, text_width, ts};
use super::{marker, render, Canvas, Figure, PlotFiles, Target, FIGURE_SIZE, MAX_SVG_POINTS};
use anyhow::{bail, ensure, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

struct Scatter<'a> {
    coords: &'a [[f32; 2]],
    labels: &'a [usize],
    names: &'a [String],
    title: &'a str,
    note: &'a str,
}

/// 2-D embedding scatter (e.g. [`Pca2d::coords`](crate::eval::embedding2d::Pca2d)), one
/// small marker per cell coloured by its label (24 categorical colours; classes 25–48 reuse
/// them with triangles, 49+ with squares), drawn in a seeded random order so no class
/// systematically hides another. The legend (outside the plot, right) lists the classes
/// present with their counts. `method_note` is the subtitle, e.g.
/// [`Pca2d::method_note`](crate::eval::embedding2d::Pca2d::method_note); axes are labelled
/// "PC1"/"PC2" when it starts with "PCA", else "dim 1"/"dim 2".
///
/// Above [`MAX_SVG_POINTS`] points the SVG shows a seeded random subset and says so.
pub fn embedding_scatter(
    path_stem: &Path,
    coords: &[[f32; 2]],
    labels: &[usize],
    class_names: &[String],
    title: &str,
    method_note: &str,
) -> Result<PlotFiles> {
    ensure!(!coords.is_empty(), "embedding scatter: no points");
    ensure!(
        labels.len() == coords.len(),
        "embedding scatter: {} labels for {} points; pass one label per point",
        labels.len(),
        coords.len()
    );
    ensure!(
        !class_names.is_empty(),
        "embedding scatter: class_names is empty"
    );
    if let Some(i) = labels.iter().position(|&l| l >= class_names.len()) {
        bail!(
            "embedding scatter: point {i} has label {} but there are only {} class names",
            labels[i],
            class_names.len()
        );
    }
    if let Some(i) = coords
        .iter()
        .position(|p| !(p[0].is_finite() && p[1].is_finite()))
    {
        bail!(
            "embedding scatter: point {i} has a non-finite coordinate {:?}",
            coords[i]
        );
    }
    render(
        path_stem,
        &Scatter {
            coords,
            labels,
            names: class_names,
            title,
            note: method_note,
        },
    )
}

/// The legend: the classes present, in class order, in columns of `rows_per_col` entries.
struct Legend {
    present: Vec<usize>,
    entries: Vec<String>,
    font: f64,
    row_h: f64,
    rows_per_col: usize,
    col_w: f64,
    x: f64,
}

impl Figure for Scatter<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &Canvas<'_, DB>) -> Result<()> {
        let h = FIGURE_SIZE.1 as i32;
        let n = self.coords.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(0));
        let mut subtitle = self.note.trim().to_string();
        if root.target == Target::Svg && n > MAX_SVG_POINTS {
            order.truncate(MAX_SVG_POINTS);
            let extra = format!(
                "SVG shows a random {} of {} cells",
                fmt_count(MAX_SVG_POINTS),
                fmt_count(n)
            );
            subtitle = if subtitle.is_empty() {
                extra
            } else {
                format!("{subtitle}; {extra}")
            };
        }
        let top = draw_titles(root, self.title, Some(subtitle.as_str()))? + 6;
        let bottom = h - 62;
        let legend = self.legend(top, bottom);
        let ax = self.axes(top, bottom, legend.x);
        ax.x_ticks(root, 7)?;
        ax.y_ticks(root, 7)?;
        let (xl, yl) = if self.note.trim_start().starts_with("PCA") {
            ("PC1", "PC2")
        } else {
            ("dim 1", "dim 2")
        };
        axis_titles(root, &ax, xl, yl, 20)?;

        let (r, alpha) = if n <= 2_000 {
            (3, 0.8)
        } else if n <= 20_000 {
            (2, 0.7)
        } else {
            (1, 0.6)
        };
        // Clip to the axes (padding keeps every point inside anyway).
        for &i in &order {
            let p = self.coords[i];
            let l = self.labels[i];
            let c = category_color(l).mix(alpha).filled();
            marker(
                root,
                category_marker(l),
                (ax.px(p[0] as f64), ax.py(p[1] as f64)),
                r,
                c,
            )?;
        }
        ax.frame(root)?;
        legend.draw(root, top)
    }
}

impl Scatter<'_> {
    /// The legend's entries and where it goes: right of the axes, in as many columns as the
    /// height between `top` and `bottom` needs.
    fn legend(&self, top: i32, bottom: i32) -> Legend {
        let w = FIGURE_SIZE.0 as i32;
        let mut counts = vec![0usize; self.names.len()];
        for &l in self.labels {
            counts[l] += 1;
        }
        let present: Vec<usize> = (0..self.names.len()).filter(|&c| counts[c] > 0).collect();
        let avail_h = (bottom - top) as f64;
        let (mut fs, mut row_h) = (12.0, 18.0);
        let mut rows_per_col = ((avail_h / row_h).floor() as usize).max(1);
        if present.len() > rows_per_col {
            fs = 10.0;
            row_h = 14.0;
            rows_per_col = ((avail_h / row_h).floor() as usize).max(1);
        }
        let ncols = present.len().div_ceil(rows_per_col).max(1);
        // One column: up to 230 px (long names are truncated); several: up to 330 px in all.
        let max_legend_w = if ncols == 1 { 230.0 } else { 330.0 };
        let col_w_cap = (max_legend_w / ncols as f64).max(60.0);
        let entries: Vec<String> = present
            .iter()
            .map(|&c| format!("{} ({})", self.names[c].trim(), fmt_count(counts[c])))
            .collect();
        let widest = entries
            .iter()
            .map(|s| text_width(s, fs))
            .fold(0.0, f64::max);
        let col_w = (widest + 22.0).min(col_w_cap);
        let legend_w = col_w * ncols as f64;
        Legend {
            present,
            entries,
            font: fs,
            row_h,
            rows_per_col,
            col_w,
            x: w as f64 - 12.0 - legend_w,
        }
    }

    /// Axes over the points' range (padded 4 %), left of the legend at `legend_x`.
    fn axes(&self, top: i32, bottom: i32, legend_x: f64) -> Axes {
        let (xmin, xmax) = self
            .coords
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                (a.min(p[0] as f64), b.max(p[0] as f64))
            });
        let (ymin, ymax) = self
            .coords
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                (a.min(p[1] as f64), b.max(p[1] as f64))
            });
        Axes {
            l: 78,
            t: top,
            r: (legend_x - 16.0) as i32,
            b: bottom,
            x: padded(xmin, xmax, 0.04),
            y: padded(ymin, ymax, 0.04),
        }
    }
}

impl Legend {
    fn draw<DB: DrawingBackend>(&self, root: &Canvas<'_, DB>, top: i32) -> Result<()> {
        let (fs, col_w) = (self.font, self.col_w);
        let ly0 = top as f64 + 4.0;
        for (k, (&c, entry)) in self.present.iter().zip(&self.entries).enumerate() {
            let col = k / self.rows_per_col;
            let row = k % self.rows_per_col;
            let x = self.x + col as f64 * col_w;
            let y = ly0 + (row as f64 + 0.5) * self.row_h;
            marker(
                root,
                category_marker(c),
                ((x + 6.0) as i32, y as i32),
                4,
                category_color(c).filled(),
            )?;
            let s = fit_text(entry, fs, col_w - 20.0);
            text(
                root,
                &s,
                ((x + 15.0) as i32, y as i32),
                &ts(fs, &TEXT, HPos::Left, VPos::Center),
            )?;
        }
        Ok(())
    }
}
