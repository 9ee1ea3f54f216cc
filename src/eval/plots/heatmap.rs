//! The confusion-matrix heatmap: viridis cells with counts, truncated and rotated class
//! labels, and a colour bar.

use super::colors::{viridis, FRAME, MUTED, TEXT};
use super::text::{draw_titles, fit_text, fmt_count, fmt_dec, text, text_width, ts};
use super::{line, rect, render, Canvas, Figure, PlotFiles, FIGURE_SIZE};
use anyhow::{ensure, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::path::Path;

struct Heatmap<'a> {
    values: &'a [Vec<f64>],
    counts: &'a [Vec<usize>],
    names: &'a [String],
    title: &'a str,
}

/// Confusion-matrix heatmap: rows = true class, columns = predicted class, each cell
/// coloured by its row-normalised value (viridis, 0 → dark purple, 1 → yellow, with a
/// colour bar) and annotated with its count when the cells are big enough to read
/// (about 30 classes or fewer). Long class names are truncated with "…"; column names are
/// rotated to read bottom-to-top.
///
/// `matrix_row_normalized[i][j]` must lie in [0, 1] (e.g.
/// `ClassificationReport::confusion_normalized`); `counts` has the same shape, one row and
/// one column per entry of `class_names`.
pub fn confusion_heatmap(
    path_stem: &Path,
    matrix_row_normalized: &[Vec<f64>],
    counts: &[Vec<usize>],
    class_names: &[String],
    title: &str,
) -> Result<PlotFiles> {
    let n = class_names.len();
    ensure!(
        n > 0,
        "confusion heatmap: no classes (class_names is empty)"
    );
    ensure!(
        matrix_row_normalized.len() == n,
        "confusion heatmap: matrix has {} rows but there are {} class names",
        matrix_row_normalized.len(),
        n
    );
    ensure!(
        counts.len() == n,
        "confusion heatmap: counts has {} rows but there are {} class names",
        counts.len(),
        n
    );
    for i in 0..n {
        ensure!(
            matrix_row_normalized[i].len() == n,
            "confusion heatmap: matrix row {i} has {} columns, expected {n} (one per class name)",
            matrix_row_normalized[i].len()
        );
        ensure!(
            counts[i].len() == n,
            "confusion heatmap: counts row {i} has {} columns, expected {n} (one per class name)",
            counts[i].len()
        );
        for (j, &v) in matrix_row_normalized[i].iter().enumerate() {
            ensure!(
                v.is_finite() && (-1e-9..=1.0 + 1e-9).contains(&v),
                "confusion heatmap: matrix[{i}][{j}] = {v} is not a row-normalised fraction in [0, 1]"
            );
        }
    }
    render(
        path_stem,
        &Heatmap {
            values: matrix_row_normalized,
            counts,
            names: class_names,
            title,
        },
    )
}

/// [`confusion_heatmap`] straight from a [`ClassificationReport`](crate::eval::metrics::ClassificationReport).
pub fn confusion_heatmap_from_report(
    path_stem: &Path,
    report: &crate::eval::metrics::ClassificationReport,
    title: &str,
) -> Result<PlotFiles> {
    let counts: Vec<Vec<usize>> = report
        .confusion
        .iter()
        .map(|r| r.iter().map(|&c| c as usize).collect())
        .collect();
    let names: Vec<String> = report.per_class.iter().map(|c| c.name.clone()).collect();
    confusion_heatmap(
        path_stem,
        &report.confusion_normalized,
        &counts,
        &names,
        title,
    )
}

/// Where the heatmap's cells lie: a square grid of `n` × `n` cells of `cell` pixels from
/// (`x0`, `y0`), class labels in a `label_size` font up to `label_w` wide.
struct Grid {
    n: usize,
    x0: f64,
    y0: f64,
    cell: f64,
    label_w: f64,
    label_size: f64,
}

impl Grid {
    fn edge_x(&self, i: usize) -> i32 {
        (self.x0 + i as f64 * self.cell).round() as i32
    }
    fn edge_y(&self, i: usize) -> i32 {
        (self.y0 + i as f64 * self.cell).round() as i32
    }
    fn side(&self) -> f64 {
        self.cell * self.n as f64
    }
}

const MAX_LABEL_W: f64 = 170.0;
const AXIS_TITLE: f64 = 26.0;
const COLORBAR_W: f64 = 100.0;

impl Figure for Heatmap<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &Canvas<'_, DB>) -> Result<()> {
        let top = draw_titles(root, self.title, None)? as f64 + 8.0;
        let g = self.layout(top);
        let n = g.n;
        let (ex, ey) = (|i| g.edge_x(i), |i| g.edge_y(i));

        // Cells.
        for i in 0..n {
            for j in 0..n {
                let c = viridis(self.values[i][j]);
                rect(root, (ex(j), ey(i)), (ex(j + 1), ey(i + 1)), c.filled())?;
            }
        }
        rect(root, (ex(0), ey(0)), (ex(n), ey(n)), FRAME.stroke_width(1))?;
        self.draw_counts(root, &g)?;
        self.draw_labels(root, &g)?;
        draw_colorbar(root, &g)
    }
}

impl Heatmap<'_> {
    /// Label font: start from a size for n, shrink until one label fits in a cell; the grid
    /// centred in what is left beside the labels and the colour bar.
    fn layout(&self, top: f64) -> Grid {
        let (w, h) = (FIGURE_SIZE.0 as f64, FIGURE_SIZE.1 as f64);
        let n = self.names.len();
        let mut ls: f64 = if n <= 10 {
            13.0
        } else if n <= 20 {
            12.0
        } else {
            10.0
        };
        let mut label_w = 0.0;
        let mut cell = 0.0;
        for _ in 0..4 {
            label_w = self
                .names
                .iter()
                .map(|s| text_width(s.trim(), ls))
                .fold(0.0, f64::max)
                .min(MAX_LABEL_W);
            let left = 12.0 + AXIS_TITLE + label_w + 8.0;
            let bottom = 8.0 + label_w + AXIS_TITLE + 12.0;
            let avail_w = w - left - COLORBAR_W;
            let avail_h = h - top - bottom;
            cell = (avail_w.min(avail_h) / n as f64).max(1.0);
            let max_ls = (cell * 0.8).floor();
            if ls <= max_ls || ls <= 8.0 {
                break;
            }
            ls = max_ls.max(8.0);
        }
        let left = 12.0 + AXIS_TITLE + label_w + 8.0;
        let avail_w = w - left - COLORBAR_W;
        let grid = cell * n as f64;
        Grid {
            n,
            x0: left + ((avail_w - grid) / 2.0).max(0.0),
            y0: top,
            cell,
            label_w,
            label_size: ls,
        }
    }

    /// Count annotations, if they fit.
    fn draw_counts<DB: DrawingBackend>(&self, root: &Canvas<'_, DB>, g: &Grid) -> Result<()> {
        let (n, x0, y0, cell) = (g.n, g.x0, g.y0, g.cell);
        let max_count_w_at = |size: f64| {
            self.counts
                .iter()
                .flatten()
                .map(|&c| text_width(&fmt_count(c), size))
                .fold(0.0, f64::max)
        };
        let mut cs = (cell * 0.36).min(14.0);
        let mw = max_count_w_at(cs);
        if mw > cell - 4.0 && mw > 0.0 {
            cs *= (cell - 4.0) / mw;
        }
        if cs >= 7.0 {
            for i in 0..n {
                for j in 0..n {
                    let v = self.values[i][j];
                    let c = viridis(v);
                    let lum = 0.299 * c.0 as f64 + 0.587 * c.1 as f64 + 0.114 * c.2 as f64;
                    let count = self.counts[i][j];
                    let color = if lum > 140.0 {
                        RGBColor(20, 20, 20)
                    } else if count == 0 {
                        RGBColor(150, 140, 170)
                    } else {
                        WHITE
                    };
                    let cx = (x0 + (j as f64 + 0.5) * cell).round() as i32;
                    let cy = (y0 + (i as f64 + 0.5) * cell).round() as i32;
                    text(
                        root,
                        &fmt_count(count),
                        (cx, cy),
                        &ts(cs, &color, HPos::Center, VPos::Center),
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Class labels (every `step`-th if cells are tiny) and the axis titles.
    fn draw_labels<DB: DrawingBackend>(&self, root: &Canvas<'_, DB>, g: &Grid) -> Result<()> {
        let (n, x0, y0, cell, label_w, ls) = (g.n, g.x0, g.y0, g.cell, g.label_w, g.label_size);
        let grid = g.side();
        let step = ((ls * 1.1 / cell).ceil() as usize).max(1);
        let row_st = ts(ls, &TEXT, HPos::Right, VPos::Center);
        let col_st = ts(ls, &TEXT, HPos::Right, VPos::Center).rot();
        for i in (0..n).step_by(step) {
            let name = fit_text(&self.names[i], ls, MAX_LABEL_W);
            let c = (y0 + (i as f64 + 0.5) * cell).round() as i32;
            text(root, &name, ((x0 - 6.0) as i32, c), &row_st)?;
            let cx = (x0 + (i as f64 + 0.5) * cell).round() as i32;
            text(root, &name, (cx, (y0 + grid + 6.0) as i32), &col_st)?;
        }

        // Axis titles.
        let at = ts(15.0, &TEXT, HPos::Center, VPos::Center);
        text(
            root,
            "predicted",
            (
                (x0 + grid / 2.0) as i32,
                (y0 + grid + 8.0 + label_w + AXIS_TITLE / 2.0 + 2.0) as i32,
            ),
            &at,
        )?;
        text(
            root,
            "true",
            (
                (x0 - 8.0 - label_w - AXIS_TITLE / 2.0) as i32,
                (y0 + grid / 2.0) as i32,
            ),
            &at.rot(),
        )?;
        Ok(())
    }
}

/// The colour bar right of the grid, 0 to 1.
fn draw_colorbar<DB: DrawingBackend>(root: &Canvas<'_, DB>, g: &Grid) -> Result<()> {
    let (x0, grid) = (g.x0, g.side());
    let bx0 = (x0 + grid + 24.0) as i32;
    let bx1 = bx0 + 16;
    let (by0, by1) = (g.edge_y(0), g.edge_y(g.n));
    let bands = 128;
    for k in 0..bands {
        let ya = by1 as f64 - (k as f64) / bands as f64 * (by1 - by0) as f64;
        let yb = by1 as f64 - (k + 1) as f64 / bands as f64 * (by1 - by0) as f64;
        let c = viridis((k as f64 + 0.5) / bands as f64);
        rect(
            root,
            (bx0, yb.floor() as i32),
            (bx1, ya.ceil() as i32),
            c.filled(),
        )?;
    }
    rect(root, (bx0, by0), (bx1, by1), FRAME.stroke_width(1))?;
    for k in 0..=4 {
        let v = k as f64 / 4.0;
        let y = (by1 as f64 - v * (by1 - by0) as f64).round() as i32;
        line(root, vec![(bx1, y), (bx1 + 4, y)], FRAME.stroke_width(1))?;
        text(
            root,
            &fmt_dec(v, 2),
            (bx1 + 7, y),
            &ts(11.0, &TEXT, HPos::Left, VPos::Center),
        )?;
    }
    let cb_label = fit_text("fraction of true class", 12.0, (by1 - by0) as f64);
    text(
        root,
        &cb_label,
        (bx1 + 48, (by0 + by1) / 2),
        &ts(12.0, &MUTED, HPos::Center, VPos::Center).rot(),
    )?;
    Ok(())
}
