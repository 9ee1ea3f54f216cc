//! Text of the report figures: the embedded font, text styles, width measurement and
//! truncation, number formatting, and drawing a string. The PNG places glyphs one by one
//! because plotters' own text drawing ignores left side bearings (see `GlyphMetrics`).

use super::colors::{MUTED, TEXT};
use super::{Canvas, DrawOk, Target, FIGURE_SIZE};
use ab_glyph::{Font, FontRef};
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

/// Horizontal metrics of the embedded font, read with ab_glyph (the parser plotters draws with).
///
/// Why: plotters' ab_glyph text drawing places each glyph's ink at the pen position,
/// ignoring the glyph's left side bearing, so narrow glyphs ("l", "i", ".") sit a pixel too
/// far left and words look broken up ("Platel et"). For the PNG we therefore draw text one
/// glyph at a time at pen + bearing, computed from these metrics. The SVG keeps whole
/// `<text>` elements (the viewer lays them out).
struct GlyphMetrics {
    font: FontRef<'static>,
    /// Pixels per font unit per pixel of plotters font size (calibrated against plotters).
    px_per_unit: f64,
}

impl GlyphMetrics {
    fn parse(data: &'static [u8]) -> Option<Self> {
        let mut m = GlyphMetrics {
            font: FontRef::try_from_slice(data).ok()?,
            px_per_unit: 0.0,
        };
        // Calibrate the unit → pixel factor against plotters' own layout at a large size.
        let probe = "MMMMMMMMMMMMMMMMMMMM";
        let (w, _) = font(1000.0).box_size(probe).ok()?;
        let adv = m.h_metrics('M').0;
        m.px_per_unit = w as f64 / (1000.0 * adv * probe.len() as f64);
        (m.px_per_unit > 0.0).then_some(m)
    }

    /// (advance width, left side bearing) of `c` in font units; those of the font's
    /// "missing glyph" if it has no glyph for `c`.
    fn h_metrics(&self, c: char) -> (f64, f64) {
        let g = self.font.glyph_id(c);
        (
            self.font.h_advance_unscaled(g) as f64,
            self.font.h_side_bearing_unscaled(g) as f64,
        )
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
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

pub(super) fn text<DB: DrawingBackend>(
    root: &Canvas<'_, DB>,
    s: &str,
    at: (i32, i32),
    st: &Ts,
) -> Result<()> {
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
    let glyphs: Vec<(char, f64, f64)> = s
        .chars()
        .map(|c| {
            let (adv, lsb) = m.h_metrics(c);
            (c, adv, lsb)
        })
        .collect();
    let total: f64 = glyphs.iter().map(|g| g.1 * scale).sum();
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
            let off = pen.round() as i32 + (lsb * scale).floor() as i32;
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
        pen += adv * scale;
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
        assert_ne!(m.font.glyph_id('l').0, 0);
        assert!(
            m.h_metrics('l').1 > 0.0,
            "'l' has a positive left side bearing"
        );
        assert_eq!(m.font.glyph_id('\u{10FFFF}').0, 0);
        for s in [
            "Platelet",
            "CD14+ Mono",
            "gene-embedding weighted average",
            "0.874 ± 0.012",
        ] {
            let ours: f64 = s.chars().map(|c| m.h_metrics(c).0).sum::<f64>() * 13.0 * m.px_per_unit;
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
