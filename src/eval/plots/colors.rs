//! Colours of the report figures: the viridis scale of the heatmap, the categorical palette
//! (with marker shapes once it runs out) of the scatter and line plots, and the neutral
//! greys of text, grid and frame.

use plotters::prelude::*;

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
pub(super) enum Marker {
    Circle,
    Triangle,
    Square,
}

pub(super) fn category_marker(i: usize) -> Marker {
    match (i / PALETTE.len()) % 3 {
        0 => Marker::Circle,
        1 => Marker::Triangle,
        _ => Marker::Square,
    }
}

pub(super) const TEXT: RGBColor = RGBColor(30, 30, 30);
pub(super) const MUTED: RGBColor = RGBColor(90, 90, 90);
pub(super) const GRID: RGBColor = RGBColor(225, 225, 225);
pub(super) const FRAME: RGBColor = RGBColor(110, 110, 110);

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
        for (i, a) in PALETTE.iter().enumerate() {
            for b in &PALETTE[..i] {
                assert_ne!(a, b);
            }
        }
        const { assert!(PALETTE_LEN >= 20) };
        assert_eq!(category_color(PALETTE_LEN), category_color(0));
        assert_ne!(category_marker(PALETTE_LEN), category_marker(0));
    }
}
