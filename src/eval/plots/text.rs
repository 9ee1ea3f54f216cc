//! Text of the report figures: the embedded font, text styles, width measurement and
//! truncation, number formatting, and drawing a string (glyph by glyph in the PNG).

use super::colors::{MUTED, TEXT};
use super::{Canvas, DrawOk, Target, FIGURE_SIZE};
use anyhow::{ensure, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

/// The font family name every text element uses (the embedded DejaVu Sans).
pub const FONT_FAMILY: &str = "sans-serif";

static DEJAVU_SANS: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
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

fn font(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::SansSerif, size, FontStyle::Normal)
}

/// A text style: size, colour, anchor, and whether it reads bottom-to-top (rotated 270°).
#[derive(Clone, Copy)]
pub(super) struct Ts {
    size: f64,
    color: RGBColor,
    h: HPos,
    v: VPos,
    rot: bool,
}

pub(super) fn ts(size: f64, color: &RGBColor, h: HPos, v: VPos) -> Ts {
    Ts {
        size,
        color: *color,
        h,
        v,
        rot: false,
    }
}

impl Ts {
    pub(super) fn rot(&self) -> Ts {
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
pub(super) fn text_width(text: &str, size: f64) -> f64 {
    match font(size).box_size(text) {
        Ok((w, _)) => w as f64,
        Err(_) => 0.6 * size * text.chars().count() as f64,
    }
}

/// `text`, shortened with a trailing "…" until it is at most `max_w` pixels wide at `size`.
pub(super) fn fit_text(text: &str, size: f64, max_w: f64) -> String {
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
pub(super) fn fmt_dec(v: f64, dec: usize) -> String {
    let s = format!("{v:.dec$}");
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}

/// Thousands separators for counts: 12345 → "12,345".
pub(super) fn fmt_count(v: usize) -> String {
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

pub(super) fn text<DB: DrawingBackend>(root: &Canvas<'_, DB>, s: &str, at: (i32, i32), st: &Ts) -> Result<()> {
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

/// Title (and optional subtitle) centred at the top; returns the y below them.
pub(super) fn draw_titles<DB: DrawingBackend>(
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

#[cfg(test)]
mod tests {
    use super::*;

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
