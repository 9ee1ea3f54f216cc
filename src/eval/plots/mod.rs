//! Report figures: confusion heatmap, 2-D embedding scatter, k sweep, bar table.
//!
//! Every function writes BOTH `<stem>.png` (900 × 700 px) and `<stem>.svg`, each through a
//! temporary file that is renamed into place, and returns their paths. All text uses the
//! DejaVu Sans font embedded in the binary (`assets/fonts/DejaVuSans.ttf`, licence in
//! `assets/fonts/LICENSE-DejaVu.txt`), registered with plotters as `"sans-serif"`, so no
//! system font is needed (plotters is built without its font-loading features).
//!
//! Bad input (empty, mismatched lengths, non-finite values, out-of-range labels) is an
//! error naming the argument, never a panic.
//!
//! Layout is computed here (not by plotters' chart builder) so that long class names are
//! truncated with "…" to the space they have, column labels are rotated, and legends sit
//! outside the data area where they cannot cover points or lines.
//!
//! The module is split by what it draws: `heatmap`, `scatter`, `k_sweep` and `bars`
//! hold one figure each; `text`, `axes` and `colors` are the shared layout pieces;
//! this file holds the output plumbing (render to both files) and the drawing primitives.

mod axes;
mod bars;
mod colors;
mod heatmap;
mod k_sweep;
mod scatter;
mod text;

pub use bars::bar_table;
pub use colors::{category_color, viridis, PALETTE_LEN};
pub use heatmap::{confusion_heatmap, confusion_heatmap_from_report};
pub use k_sweep::k_sweep;
pub use scatter::embedding_scatter;
pub use text::{ensure_font, FONT_FAMILY};

use anyhow::{anyhow, ensure, Context, Result};
use colors::Marker;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Pixel size of the PNG (and the SVG's view box).
pub const FIGURE_SIZE: (u32, u32) = (900, 700);
/// Above this many points the SVG scatter draws a seeded random subset (the PNG draws all),
/// and says so in its subtitle; 100 k SVG circles make a 10 MB file no browser enjoys.
pub const MAX_SVG_POINTS: usize = 20_000;

/// The two files a plot function wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotFiles {
    pub png: PathBuf,
    pub svg: PathBuf,
}

// ---------------------------------------------------------------------------------------
// Drawing plumbing
// ---------------------------------------------------------------------------------------

trait DrawOk<T> {
    fn dr(self) -> Result<T>;
}
impl<T, E: std::fmt::Display> DrawOk<T> for std::result::Result<T, E> {
    fn dr(self) -> Result<T> {
        self.map_err(|e| anyhow!("drawing failed: {e}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Png,
    Svg,
}

trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &Canvas<'_, DB>) -> Result<()>;
}

fn with_suffix(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Render `fig` to `<stem>.png` and `<stem>.svg`, each via a temp file + rename.
fn render(stem: &Path, fig: &impl Figure) -> Result<PlotFiles> {
    ensure_font()?;
    ensure!(
        !stem.as_os_str().is_empty(),
        "plot output path stem is empty"
    );
    let png = with_suffix(stem, "png");
    let svg = with_suffix(stem, "svg");

    // PNG: plotters' encoder picks the format from the extension, which the temp name keeps.
    crate::io::atomic_write_with(&png, |tmp| {
        let draw = || -> Result<()> {
            let root = BitMapBackend::new(tmp, FIGURE_SIZE).into_drawing_area();
            root.fill(&WHITE).dr()?;
            fig.draw(&Canvas {
                area: &root,
                target: Target::Png,
            })?;
            root.present()
                .dr()
                .with_context(|| format!("{}: cannot write PNG", tmp.display()))
        };
        draw().with_context(|| format!("{}: plot failed", png.display()))
    })?;

    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, FIGURE_SIZE).into_drawing_area();
        root.fill(&WHITE).dr()?;
        fig.draw(&Canvas {
            area: &root,
            target: Target::Svg,
        })
        .with_context(|| format!("{}: plot failed", svg.display()))?;
        root.present().dr()?;
    }
    crate::io::atomic_write(&svg, buf.as_bytes())?;
    Ok(PlotFiles { png, svg })
}

/// A drawing area plus which file it is for (text and point caps differ).
struct Canvas<'a, DB: DrawingBackend> {
    area: &'a DrawingArea<DB, Shift>,
    target: Target,
}

fn line<DB: DrawingBackend>(
    root: &Canvas<'_, DB>,
    pts: Vec<(i32, i32)>,
    st: ShapeStyle,
) -> Result<()> {
    root.area.draw(&PathElement::new(pts, st)).dr()
}

fn rect<DB: DrawingBackend>(
    root: &Canvas<'_, DB>,
    a: (i32, i32),
    b: (i32, i32),
    st: ShapeStyle,
) -> Result<()> {
    root.area.draw(&Rectangle::new([a, b], st)).dr()
}

fn marker<DB: DrawingBackend>(
    root: &Canvas<'_, DB>,
    m: Marker,
    at: (i32, i32),
    r: i32,
    st: ShapeStyle,
) -> Result<()> {
    match m {
        Marker::Circle => root.area.draw(&Circle::new(at, r, st)).dr(),
        Marker::Triangle => root.area.draw(&TriangleMarker::new(at, r + 1, st)).dr(),
        Marker::Square => rect(root, (at.0 - r, at.1 - r), (at.0 + r, at.1 + r), st),
    }
}
