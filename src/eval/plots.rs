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

use anyhow::{anyhow, bail, ensure, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;

/// Pixel size of the PNG (and the SVG's view box).
pub const FIGURE_SIZE: (u32, u32) = (900, 700);
/// The font family name every text element uses (the embedded DejaVu Sans).
pub const FONT_FAMILY: &str = "sans-serif";
/// Above this many points the SVG scatter draws a seeded random subset (the PNG draws all),
/// and says so in its subtitle; 100 k SVG circles make a 10 MB file no browser enjoys.
pub const MAX_SVG_POINTS: usize = 20_000;

static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static FONT_ONCE: Once = Once::new();
static FONT_OK: AtomicBool = AtomicBool::new(false);

/// Register the embedded DejaVu Sans as plotters' `"sans-serif"` (once per process).
/// Every plotting function calls this; call it yourself before measuring text with plotters.
pub fn ensure_font() -> Result<()> {
    FONT_ONCE.call_once(|| {
        let ok =
            plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok();
        FONT_OK.store(ok, Ordering::SeqCst);
    });
    ensure!(
        FONT_OK.load(Ordering::SeqCst),
        "the embedded font assets/fonts/DejaVuSans.ttf could not be parsed"
    );
    Ok(())
}

/// The two files a plot function wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotFiles {
    pub png: PathBuf,
    pub svg: PathBuf,
}

// ---------------------------------------------------------------------------------------
// Colours
// ---------------------------------------------------------------------------------------

/// matplotlib's viridis sampled at 17 evenly spaced points (0, 1/16, …, 1).
const VIRIDIS: [[u8; 3]; 17] = [
    [68, 1, 84],
    [72, 24, 106],
    [71, 45, 123],
    [66, 64, 134],
    [59, 82, 139],
    [51, 99, 141],
    [44, 114, 142],
    [38, 130, 142],
    [33, 145, 140],
    [31, 160, 136],
    [40, 174, 128],
    [63, 188, 115],
    [94, 201, 98],
    [132, 212, 75],
    [173, 220, 48],
    [216, 226, 25],
    [253, 231, 37],
];

/// Viridis colour for `t` in [0, 1] (clamped), linearly interpolated between table entries.
pub fn viridis(t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let pos = t * (VIRIDIS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(VIRIDIS.len() - 2);
    let f = pos - i as f64;
    let c =
        |k: usize| (VIRIDIS[i][k] as f64 * (1.0 - f) + VIRIDIS[i + 1][k] as f64 * f).round() as u8;
    RGBColor(c(0), c(1), c(2))
}

/// 24 categorical colours: matplotlib's tab10, then five darks from tab20b, then nine
/// lights from tab20 (tab20's light grey left out: too close to the grid). All readable on
/// white. Beyond 24 classes colours repeat with a different marker shape.
const PALETTE: [[u8; 3]; 24] = [
    [0x1f, 0x77, 0xb4],
    [0xff, 0x7f, 0x0e],
    [0x2c, 0xa0, 0x2c],
    [0xd6, 0x27, 0x28],
    [0x94, 0x67, 0xbd],
    [0x8c, 0x56, 0x4b],
    [0xe3, 0x77, 0xc2],
    [0x7f, 0x7f, 0x7f],
    [0xbc, 0xbd, 0x22],
    [0x17, 0xbe, 0xcf],
    [0x39, 0x3b, 0x79],
    [0x63, 0x79, 0x39],
    [0x8c, 0x6d, 0x31],
    [0x84, 0x3c, 0x39],
    [0x7b, 0x41, 0x73],
    [0xae, 0xc7, 0xe8],
    [0xff, 0xbb, 0x78],
    [0x98, 0xdf, 0x8a],
    [0xff, 0x98, 0x96],
    [0xc5, 0xb0, 0xd5],
    [0xc4, 0x9c, 0x94],
    [0xf7, 0xb6, 0xd2],
    [0xdb, 0xdb, 0x8d],
    [0x9e, 0xda, 0xe5],
];

/// Number of distinct categorical colours before they cycle.
pub const PALETTE_LEN: usize = PALETTE.len();

/// Categorical colour of class `i` (cycles after [`PALETTE_LEN`]).
pub fn category_color(i: usize) -> RGBColor {
    let c = PALETTE[i % PALETTE.len()];
    RGBColor(c[0], c[1], c[2])
}

/// Marker shape of class `i`: circle for the first 24 classes, then triangle, then square.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Circle,
    Triangle,
    Square,
}

fn category_marker(i: usize) -> Marker {
    match (i / PALETTE.len()) % 3 {
        0 => Marker::Circle,
        1 => Marker::Triangle,
        _ => Marker::Square,
    }
}

const TEXT: RGBColor = RGBColor(30, 30, 30);
const MUTED: RGBColor = RGBColor(90, 90, 90);
const GRID: RGBColor = RGBColor(225, 225, 225);
const FRAME: RGBColor = RGBColor(110, 110, 110);

// ---------------------------------------------------------------------------------------
// Text helpers
// ---------------------------------------------------------------------------------------

fn font(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::SansSerif, size, FontStyle::Normal)
}

/// A text style: size, colour, anchor, and whether it reads bottom-to-top (rotated 270°).
#[derive(Clone, Copy)]
struct Ts {
    size: f64,
    color: RGBColor,
    h: HPos,
    v: VPos,
    rot: bool,
}

fn ts(size: f64, color: &RGBColor, h: HPos, v: VPos) -> Ts {
    Ts {
        size,
        color: *color,
        h,
        v,
        rot: false,
    }
}

impl Ts {
    fn rot(&self) -> Ts {
        Ts { rot: true, ..*self }
    }
    fn plotters(&self, h: HPos) -> TextStyle<'static> {
        let st = font(self.size).color(&self.color).pos(Pos::new(h, self.v));
        if self.rot {
            st.transform(FontTransform::Rotate270)
        } else {
            st
        }
    }
}

/// Horizontal metrics of the embedded font, read from its `cmap`, `hhea` and `hmtx` tables.
///
/// Why: plotters' ab_glyph text drawing places each glyph's ink at the pen position,
/// ignoring the glyph's left side bearing, so narrow glyphs ("l", "i", ".") sit a pixel too
/// far left and words look broken up ("Platel et"). For the PNG we therefore draw text one
/// glyph at a time at pen + bearing, computed from these metrics. The SVG keeps whole
/// `<text>` elements (the viewer lays them out).
struct GlyphMetrics {
    data: &'static [u8],
    cmap4: usize,
    hmtx: usize,
    n_hmetrics: usize,
    /// Pixels per font unit per pixel of plotters font size (calibrated against plotters).
    px_per_unit: f64,
}

fn be_u16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}
fn be_u32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *d.get(at)?,
        *d.get(at + 1)?,
        *d.get(at + 2)?,
        *d.get(at + 3)?,
    ]))
}

impl GlyphMetrics {
    fn parse(data: &'static [u8]) -> Option<Self> {
        let n_tables = be_u16(data, 4)? as usize;
        let table = |tag: &[u8; 4]| -> Option<usize> {
            (0..n_tables).find_map(|i| {
                let rec = 12 + 16 * i;
                (data.get(rec..rec + 4)? == tag)
                    .then(|| be_u32(data, rec + 8).map(|o| o as usize))
                    .flatten()
            })
        };
        let cmap = table(b"cmap")?;
        let hhea = table(b"hhea")?;
        let hmtx = table(b"hmtx")?;
        let n_hmetrics = be_u16(data, hhea + 34)? as usize;
        // Unicode BMP subtable, format 4: (3, 1) or (0, 3).
        let n_sub = be_u16(data, cmap + 2)? as usize;
        let cmap4 = (0..n_sub).find_map(|i| {
            let rec = cmap + 4 + 8 * i;
            let (pid, eid) = (be_u16(data, rec)?, be_u16(data, rec + 2)?);
            let off = cmap + be_u32(data, rec + 4)? as usize;
            ((pid == 3 && eid == 1) || (pid == 0 && eid == 3))
                .then_some(off)
                .filter(|&o| be_u16(data, o) == Some(4))
        })?;
        let mut m = GlyphMetrics {
            data,
            cmap4,
            hmtx,
            n_hmetrics,
            px_per_unit: 0.0,
        };
        // Calibrate the unit → pixel factor against plotters' own layout at a large size.
        let probe = "MMMMMMMMMMMMMMMMMMMM";
        let (w, _) = font(1000.0).box_size(probe).ok()?;
        let adv = m.glyph_id('M').map(|g| m.h_metrics(g).0)? as f64;
        m.px_per_unit = w as f64 / (1000.0 * adv * probe.len() as f64);
        (m.px_per_unit > 0.0 && n_hmetrics > 0).then_some(m)
    }

    fn glyph_id(&self, c: char) -> Option<u16> {
        let c = u32::from(c);
        if c > 0xFFFF {
            return Some(0);
        }
        let c = c as u16;
        let d = self.data;
        let sub = self.cmap4;
        let seg_x2 = be_u16(d, sub + 6)? as usize;
        let ends = sub + 14;
        let starts = ends + seg_x2 + 2;
        let deltas = starts + seg_x2;
        let ranges = deltas + seg_x2;
        for i in 0..seg_x2 / 2 {
            if c > be_u16(d, ends + 2 * i)? {
                continue;
            }
            let start = be_u16(d, starts + 2 * i)?;
            if c < start {
                return Some(0);
            }
            let delta = be_u16(d, deltas + 2 * i)?;
            let ro = be_u16(d, ranges + 2 * i)? as usize;
            if ro == 0 {
                return Some(c.wrapping_add(delta));
            }
            let g = be_u16(d, ranges + 2 * i + ro + 2 * (c - start) as usize)?;
            return Some(if g == 0 { 0 } else { g.wrapping_add(delta) });
        }
        Some(0)
    }

    /// (advance width, left side bearing) in font units.
    fn h_metrics(&self, g: u16) -> (u16, i16) {
        let g = g as usize;
        let d = self.data;
        let last = self.n_hmetrics - 1;
        let adv = be_u16(d, self.hmtx + 4 * g.min(last)).unwrap_or(0);
        let lsb = if g < self.n_hmetrics {
            be_u16(d, self.hmtx + 4 * g + 2)
        } else {
            be_u16(
                d,
                self.hmtx + 4 * self.n_hmetrics + 2 * (g - self.n_hmetrics),
            )
        }
        .unwrap_or(0) as i16;
        (adv, lsb)
    }
}

fn glyph_metrics() -> Option<&'static GlyphMetrics> {
    static M: std::sync::OnceLock<Option<GlyphMetrics>> = std::sync::OnceLock::new();
    M.get_or_init(|| {
        ensure_font()
            .ok()
            .and_then(|_| GlyphMetrics::parse(DEJAVU_SANS))
    })
    .as_ref()
}

/// Width in pixels of `text` at `size` (falls back to an estimate if layout fails).
fn text_width(text: &str, size: f64) -> f64 {
    match font(size).box_size(text) {
        Ok((w, _)) => w as f64,
        Err(_) => 0.6 * size * text.chars().count() as f64,
    }
}

/// `text`, shortened with a trailing "…" until it is at most `max_w` pixels wide at `size`.
fn fit_text(text: &str, size: f64, max_w: f64) -> String {
    let text = text.trim();
    if text_width(text, size) <= max_w {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let (mut lo, mut hi) = (0usize, chars.len());
    // Largest prefix length whose truncation fits.
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let cand: String = chars[..mid]
            .iter()
            .collect::<String>()
            .trim_end()
            .to_string()
            + "…";
        if text_width(&cand, size) <= max_w {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    if lo == 0 {
        return "…".to_string();
    }
    chars[..lo]
        .iter()
        .collect::<String>()
        .trim_end()
        .to_string()
        + "…"
}

/// Format `v` with `dec` decimals.
fn fmt_dec(v: f64, dec: usize) -> String {
    let s = format!("{v:.dec$}");
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}

/// Thousands separators for counts: 12345 → "12,345".
fn fmt_count(v: usize) -> String {
    let s = v.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Drawing plumbing
// ---------------------------------------------------------------------------------------

trait DrawOk<T> {
    fn dr(self) -> Result<T>;
}
impl<T, E: std::fmt::Debug> DrawOk<T> for std::result::Result<T, E> {
    fn dr(self) -> Result<T> {
        self.map_err(|e| anyhow!("drawing failed: {e:?}"))
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

static TMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Render `fig` to `<stem>.png` and `<stem>.svg`, each via a temp file + rename.
fn render(stem: &Path, fig: &impl Figure) -> Result<PlotFiles> {
    ensure_font()?;
    ensure!(
        !stem.as_os_str().is_empty(),
        "plot output path stem is empty"
    );
    let png = with_suffix(stem, "png");
    let svg = with_suffix(stem, "svg");
    let dir = png
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("{}: cannot create directory", dir.display()))?;

    // PNG: plotters' encoder picks the format from the extension, so the temp name ends in .png.
    let name = png
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "plot".into());
    let tmp_png = dir.join(format!(
        ".{name}.{}.{}.tmp.png",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let res = (|| -> Result<()> {
        let root = BitMapBackend::new(&tmp_png, FIGURE_SIZE).into_drawing_area();
        root.fill(&WHITE).dr()?;
        fig.draw(&Canvas {
            area: &root,
            target: Target::Png,
        })?;
        root.present()
            .dr()
            .with_context(|| format!("{}: cannot write PNG", tmp_png.display()))?;
        Ok(())
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp_png);
        return Err(e.context(format!("{}: plot failed", png.display())));
    }
    std::fs::rename(&tmp_png, &png)
        .with_context(|| format!("{}: cannot move finished PNG into place", png.display()))?;

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

fn text<DB: DrawingBackend>(root: &Canvas<'_, DB>, s: &str, at: (i32, i32), st: &Ts) -> Result<()> {
    if s.trim().is_empty() {
        return Ok(());
    }
    let metrics = if root.target == Target::Png {
        glyph_metrics()
    } else {
        None
    };
    let Some(m) = metrics else {
        return root
            .area
            .draw(&Text::new(s.to_string(), at, st.plotters(st.h)))
            .dr();
    };
    // PNG: one glyph at a time, at pen + left side bearing (see `GlyphMetrics`).
    let scale = st.size * m.px_per_unit;
    let glyphs: Vec<(char, u16, i16)> = s
        .chars()
        .map(|c| {
            let (adv, lsb) = m.glyph_id(c).map(|g| m.h_metrics(g)).unwrap_or((0, 0));
            (c, adv, lsb)
        })
        .collect();
    let total: f64 = glyphs.iter().map(|g| g.1 as f64 * scale).sum();
    let start = match st.h {
        HPos::Left => 0.0,
        HPos::Center => -total / 2.0,
        HPos::Right => -total,
    };
    let style = st.plotters(HPos::Left);
    let mut pen = start;
    let mut buf = [0u8; 4];
    for (c, adv, lsb) in glyphs {
        if !c.is_whitespace() {
            let off = pen.round() as i32 + (lsb as f64 * scale).floor() as i32;
            let pos = if st.rot {
                (at.0, at.1 - off)
            } else {
                (at.0 + off, at.1)
            };
            let ch: &str = c.encode_utf8(&mut buf);
            root.area
                .draw(&Text::new(ch.to_string(), pos, style.clone()))
                .dr()?;
        }
        pen += adv as f64 * scale;
    }
    Ok(())
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

/// Title (and optional subtitle) centred at the top; returns the y below them.
fn draw_titles<DB: DrawingBackend>(
    root: &Canvas<'_, DB>,
    title: &str,
    subtitle: Option<&str>,
) -> Result<i32> {
    let w = FIGURE_SIZE.0 as f64;
    let t = fit_text(title, 20.0, w - 40.0);
    text(
        root,
        &t,
        ((w / 2.0) as i32, 12),
        &ts(20.0, &TEXT, HPos::Center, VPos::Top),
    )?;
    let mut y = 42;
    if let Some(sub) = subtitle.filter(|s| !s.trim().is_empty()) {
        let s = fit_text(sub, 14.0, w - 40.0);
        text(
            root,
            &s,
            ((w / 2.0) as i32, 40),
            &ts(14.0, &MUTED, HPos::Center, VPos::Top),
        )?;
        y = 64;
    }
    Ok(y)
}

/// "Nice" tick values covering [lo, hi], about `target` of them; returns (ticks, decimals).
fn nice_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, usize) {
    if !(hi > lo) {
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
fn padded(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    if hi > lo {
        let p = (hi - lo) * frac;
        (lo - p, hi + p)
    } else {
        let p = if lo.abs() > 0.0 { lo.abs() * 0.1 } else { 1.0 };
        (lo - p, hi + p)
    }
}

/// A rectangle of pixels showing data ranges `x` and `y` (y up).
struct Axes {
    l: i32,
    t: i32,
    r: i32,
    b: i32,
    x: (f64, f64),
    y: (f64, f64),
}

impl Axes {
    fn px(&self, v: f64) -> i32 {
        (self.l as f64 + (v - self.x.0) / (self.x.1 - self.x.0) * (self.r - self.l) as f64).round()
            as i32
    }
    fn py(&self, v: f64) -> i32 {
        (self.b as f64 - (v - self.y.0) / (self.y.1 - self.y.0) * (self.b - self.t) as f64).round()
            as i32
    }
    fn frame<DB: DrawingBackend>(&self, root: &Canvas<'_, DB>) -> Result<()> {
        rect(
            root,
            (self.l, self.t),
            (self.r, self.b),
            FRAME.stroke_width(1),
        )
    }
    /// Horizontal grid + y tick labels.
    fn y_ticks<DB: DrawingBackend>(&self, root: &Canvas<'_, DB>, target: usize) -> Result<()> {
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
    fn x_ticks<DB: DrawingBackend>(&self, root: &Canvas<'_, DB>, target: usize) -> Result<()> {
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
fn axis_titles<DB: DrawingBackend>(
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

// ---------------------------------------------------------------------------------------
// Confusion heatmap
// ---------------------------------------------------------------------------------------

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

impl Figure for Heatmap<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &Canvas<'_, DB>) -> Result<()> {
        let (w, h) = (FIGURE_SIZE.0 as f64, FIGURE_SIZE.1 as f64);
        let n = self.names.len();
        let top = draw_titles(root, self.title, None)? as f64 + 8.0;
        let colorbar_w = 100.0;
        const MAX_LABEL_W: f64 = 170.0;
        const AXIS_TITLE: f64 = 26.0;
        // Label font: start from a size for n, shrink until one label fits in a cell.
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
            let avail_w = w - left - colorbar_w;
            let avail_h = h - top - bottom;
            cell = (avail_w.min(avail_h) / n as f64).max(1.0);
            let max_ls = (cell * 0.8).floor();
            if ls <= max_ls || ls <= 8.0 {
                break;
            }
            ls = max_ls.max(8.0);
        }
        let left = 12.0 + AXIS_TITLE + label_w + 8.0;
        let avail_w = w - left - colorbar_w;
        let grid = cell * n as f64;
        let x0 = left + ((avail_w - grid) / 2.0).max(0.0);
        let y0 = top;
        let ex = |i: usize| (x0 + i as f64 * cell).round() as i32;
        let ey = |i: usize| (y0 + i as f64 * cell).round() as i32;

        // Cells.
        for i in 0..n {
            for j in 0..n {
                let c = viridis(self.values[i][j]);
                rect(root, (ex(j), ey(i)), (ex(j + 1), ey(i + 1)), c.filled())?;
            }
        }
        rect(root, (ex(0), ey(0)), (ex(n), ey(n)), FRAME.stroke_width(1))?;

        // Count annotations, if they fit.
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

        // Class labels (every `step`-th if cells are tiny).
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

        // Colour bar.
        let bx0 = (x0 + grid + 24.0) as i32;
        let bx1 = bx0 + 16;
        let (by0, by1) = (ey(0), ey(n));
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
}

// ---------------------------------------------------------------------------------------
// Embedding scatter
// ---------------------------------------------------------------------------------------

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

impl Figure for Scatter<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &Canvas<'_, DB>) -> Result<()> {
        let (w, h) = (FIGURE_SIZE.0 as i32, FIGURE_SIZE.1 as i32);
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

        // Legend: classes present, in class order.
        let mut counts = vec![0usize; self.names.len()];
        for &l in self.labels {
            counts[l] += 1;
        }
        let present: Vec<usize> = (0..self.names.len()).filter(|&c| counts[c] > 0).collect();
        let bottom = h - 62;
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
        let legend_x = w as f64 - 12.0 - legend_w;

        let ax_l = 78;
        let ax_r = (legend_x - 16.0) as i32;
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
        let ax = Axes {
            l: ax_l,
            t: top,
            r: ax_r,
            b: bottom,
            x: padded(xmin, xmax, 0.04),
            y: padded(ymin, ymax, 0.04),
        };
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

        // Legend.
        let ly0 = top as f64 + 4.0;
        for (k, (&c, entry)) in present.iter().zip(&entries).enumerate() {
            let col = k / rows_per_col;
            let row = k % rows_per_col;
            let x = legend_x + col as f64 * col_w;
            let y = ly0 + (row as f64 + 0.5) * row_h;
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

// ---------------------------------------------------------------------------------------
// k sweep
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Bar table
// ---------------------------------------------------------------------------------------

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_endpoints_and_midpoint() {
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
        assert_eq!(viridis(0.5), RGBColor(33, 145, 140));
        assert_eq!(viridis(-3.0), viridis(0.0));
        assert_eq!(viridis(f64::NAN), viridis(0.0));
    }

    #[test]
    fn palette_is_distinct() {
        for i in 0..PALETTE_LEN {
            for j in 0..i {
                assert_ne!(PALETTE[i], PALETTE[j]);
            }
        }
        assert!(PALETTE_LEN >= 20);
        assert_eq!(category_color(PALETTE_LEN), category_color(0));
        assert_ne!(category_marker(PALETTE_LEN), category_marker(0));
    }

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

    #[test]
    fn glyph_metrics_match_plotters_layout() {
        let m = glyph_metrics().expect("parse embedded font metrics");
        let l = m.glyph_id('l').unwrap();
        assert_ne!(l, 0);
        assert!(m.h_metrics(l).1 > 0, "'l' has a positive left side bearing");
        assert_eq!(m.glyph_id('\u{10FFFF}'), Some(0));
        for s in [
            "Platelet",
            "CD14+ Mono",
            "gene-embedding weighted average",
            "0.874 ± 0.012",
        ] {
            let ours: f64 = s
                .chars()
                .map(|c| m.h_metrics(m.glyph_id(c).unwrap()).0 as f64)
                .sum::<f64>()
                * 13.0
                * m.px_per_unit;
            let theirs = text_width(s, 13.0);
            assert!((ours - theirs).abs() <= 1.5, "{s}: {ours} vs {theirs}");
        }
    }

    #[test]
    fn fit_text_truncates_with_ellipsis() {
        ensure_font().unwrap();
        let long = "CD14+ classical monocytes from peripheral blood";
        let s = fit_text(long, 12.0, 100.0);
        assert!(s.ends_with('…'), "{s}");
        assert!(text_width(&s, 12.0) <= 100.0);
        assert_eq!(fit_text("B", 12.0, 100.0), "B");
        assert_eq!(fmt_count(1234567), "1,234,567");
        assert_eq!(fmt_count(12), "12");
        assert_eq!(fmt_dec(-0.0001, 2), "0.00");
    }
}
