//! Data axes of the report figures: "nice" tick values, range padding, and a rectangle of
//! pixels that maps data to pixels and draws its frame, grid, tick labels and titles.

use super::colors::{FRAME, GRID, TEXT};
use super::text::{fit_text, fmt_dec, text, ts};
use super::{line, rect, Canvas};
use anyhow::Result;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// "Nice" tick values covering [lo, hi], about `target` of them; returns (ticks, decimals).
fn nice_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, usize) {
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return (vec![lo], 2);
    }
    // Smallest nice step giving at most ~4/3 × `target` ticks.
    let raw = 0.75 * (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    let mut ticks = Vec::new();
    let mut k = 0;
    loop {
        let v = first + k as f64 * step;
        if v > hi + step * 1e-9 {
            break;
        }
        ticks.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
        k += 1;
        if k > 1000 {
            break;
        }
    }
    let dec = if step >= 1.0 && (step.fract() == 0.0) {
        0
    } else {
        (-step.log10().floor()).max(0.0) as usize + usize::from((step / mag - 2.5).abs() < 1e-9)
    };
    (ticks, dec)
}

/// Pad a data range for plotting.
pub(super) fn padded(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    if hi > lo {
        let p = (hi - lo) * frac;
        (lo - p, hi + p)
    } else {
        let p = if lo.abs() > 0.0 { lo.abs() * 0.1 } else { 1.0 };
        (lo - p, hi + p)
    }
}

/// A rectangle of pixels showing data ranges `x` and `y` (y up).
pub(super) struct Axes {
    pub(super) l: i32,
    pub(super) t: i32,
    pub(super) r: i32,
    pub(super) b: i32,
    pub(super) x: (f64, f64),
    pub(super) y: (f64, f64),
}

impl Axes {
    pub(super) fn px(&self, v: f64) -> i32 {
        (self.l as f64 + (v - self.x.0) / (self.x.1 - self.x.0) * (self.r - self.l) as f64).round()
            as i32
    }
    pub(super) fn py(&self, v: f64) -> i32 {
        (self.b as f64 - (v - self.y.0) / (self.y.1 - self.y.0) * (self.b - self.t) as f64).round()
            as i32
    }
    pub(super) fn frame<DB: DrawingBackend>(&self, root: &Canvas<'_, DB>) -> Result<()> {
        rect(
            root,
            (self.l, self.t),
            (self.r, self.b),
            FRAME.stroke_width(1),
        )
    }
    /// Horizontal grid + y tick labels.
    pub(super) fn y_ticks<DB: DrawingBackend>(
        &self,
        root: &Canvas<'_, DB>,
        target: usize,
    ) -> Result<()> {
        let (ticks, dec) = nice_ticks(self.y.0, self.y.1, target);
        for v in ticks {
            let y = self.py(v);
            line(root, vec![(self.l, y), (self.r, y)], GRID.stroke_width(1))?;
            line(
                root,
                vec![(self.l - 4, y), (self.l, y)],
                FRAME.stroke_width(1),
            )?;
            text(
                root,
                &fmt_dec(v, dec),
                (self.l - 7, y),
                &ts(12.0, &TEXT, HPos::Right, VPos::Center),
            )?;
        }
        Ok(())
    }
    /// Vertical grid + x tick labels.
    pub(super) fn x_ticks<DB: DrawingBackend>(
        &self,
        root: &Canvas<'_, DB>,
        target: usize,
    ) -> Result<()> {
        let (ticks, dec) = nice_ticks(self.x.0, self.x.1, target);
        for v in ticks {
            let x = self.px(v);
            line(root, vec![(x, self.t), (x, self.b)], GRID.stroke_width(1))?;
            line(
                root,
                vec![(x, self.b), (x, self.b + 4)],
                FRAME.stroke_width(1),
            )?;
            text(
                root,
                &fmt_dec(v, dec),
                (x, self.b + 7),
                &ts(12.0, &TEXT, HPos::Center, VPos::Top),
            )?;
        }
        Ok(())
    }
}

/// Horizontal axis title centred under `(l..r)` and vertical one left of the axes.
pub(super) fn axis_titles<DB: DrawingBackend>(
    root: &Canvas<'_, DB>,
    ax: &Axes,
    xlab: &str,
    ylab: &str,
    y_title_x: i32,
) -> Result<()> {
    let xl = fit_text(xlab, 14.0, (ax.r - ax.l) as f64);
    text(
        root,
        &xl,
        ((ax.l + ax.r) / 2, ax.b + 28),
        &ts(14.0, &TEXT, HPos::Center, VPos::Top),
    )?;
    let yl = fit_text(ylab, 14.0, (ax.b - ax.t) as f64);
    let st = ts(14.0, &TEXT, HPos::Center, VPos::Center).rot();
    text(root, &yl, (y_title_x, (ax.t + ax.b) / 2), &st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks_cover_range() {
        let close = |a: &[f64], b: &[f64]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
        };
        let (t, dec) = nice_ticks(0.0, 1.0, 5);
        assert!(close(&t, &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]), "{t:?}");
        assert_eq!(dec, 1);
        let (t, dec) = nice_ticks(-3.2, 7.9, 6);
        assert!(close(&t, &[-2.0, 0.0, 2.0, 4.0, 6.0]), "{t:?}");
        assert_eq!(dec, 0);
        let (t, dec) = nice_ticks(0.0, 1.0, 3);
        assert!(close(&t, &[0.0, 0.25, 0.5, 0.75, 1.0]), "{t:?}");
        assert_eq!(dec, 2);
        let (t, dec) = nice_ticks(0.0, 0.1, 3);
        assert!(close(&t, &[0.0, 0.025, 0.05, 0.075, 0.1]), "{t:?}");
        assert_eq!(dec, 3);
        let (t, dec) = nice_ticks(-9.7, 7.2, 7);
        assert!(
            close(&t, &[-8.0, -6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0]),
            "{t:?}"
        );
        assert_eq!(dec, 0);
    }
}
