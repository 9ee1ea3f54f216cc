//! Explanations of the MLP cell-type classifier: integrated gradients per gene ([`ig`]), the
//! mapping of a cell sentence's word pieces back to its genes, the per-class aggregation (mean
//! attribution over the explained cells, top genes) and marker lists.
//!
//! Sits above `classify` in the data flow: it reads the trained MLP and the encoder, never the CLI.

pub mod arguments;
pub mod ig;
pub mod pipeline;
pub mod report;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// Byte spans of each gene in `prefix + genes.join(" ")` (the text of
/// [`crate::cells::sentences::render`]).
pub fn gene_spans(prefix: &str, genes: &[impl AsRef<str>]) -> Vec<(usize, usize)> {
    let mut at = prefix.len();
    let mut spans = Vec::with_capacity(genes.len());
    for (k, g) in genes.iter().enumerate() {
        if k > 0 {
            at += 1;
        }
        let len = g.as_ref().len();
        spans.push((at, at + len));
        at += len;
    }
    spans
}

/// The gene (index into `spans`) each token belongs to, from the tokens' byte offsets; `None` for
/// special tokens (empty offsets) and for tokens of the prefix. A gene's word pieces all fall
/// inside its span, since the tokenizer splits on the spaces between genes.
pub fn token_genes(offsets: &[(usize, usize)], spans: &[(usize, usize)]) -> Vec<Option<usize>> {
    offsets
        .iter()
        .map(|&(s, e)| {
            if e <= s {
                return None;
            }
            // spans are sorted and disjoint: the last span starting at or before s
            let k = spans.partition_point(|&(a, _)| a <= s);
            (k > 0 && s < spans[k - 1].1).then(|| k - 1)
        })
        .collect()
}

/// Sums token attributions per gene: `(gene index, attribution, word pieces)` for every gene with
/// at least one token, in sentence order.
pub fn sum_by_gene(attributions: &[f32], token_gene: &[Option<usize>]) -> Vec<(usize, f32, usize)> {
    let mut acc: BTreeMap<usize, (f64, usize)> = BTreeMap::new();
    for (a, g) in attributions.iter().zip(token_gene) {
        if let Some(g) = g {
            let e = acc.entry(*g).or_insert((0.0, 0));
            e.0 += *a as f64;
            e.1 += 1;
        }
    }
    acc.into_iter()
        .map(|(g, (a, n))| (g, a as f32, n))
        .collect()
}

/// One gene in a class's ranking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeneScore {
    pub gene: String,
    /// Mean attribution over the class's explained cells (0 for a cell the gene is absent from).
    pub mean_attribution: f32,
    /// Explained cells of the class in which the gene had an attribution.
    pub n_cells: usize,
    /// Whether the marker list names this gene for this class.
    pub marker: bool,
}

/// Ranks genes by mean attribution over `n_cells` cells. `cells` holds, per cell, its genes'
/// attributions; the `top` genes with the highest mean come first (ties by name).
pub fn rank_genes(cells: &[Vec<(String, f32)>], top: usize) -> Vec<GeneScore> {
    let mut acc: HashMap<&str, (f64, usize)> = HashMap::new();
    for cell in cells {
        for (g, a) in cell {
            let e = acc.entry(g.as_str()).or_insert((0.0, 0));
            e.0 += *a as f64;
            e.1 += 1;
        }
    }
    let n = cells.len().max(1) as f64;
    let mut v: Vec<GeneScore> = acc
        .into_iter()
        .map(|(g, (s, k))| GeneScore {
            gene: g.to_string(),
            mean_attribution: (s / n) as f32,
            n_cells: k,
            marker: false,
        })
        .collect();
    v.sort_by(|a, b| {
        b.mean_attribution
            .total_cmp(&a.mean_attribution)
            .then_with(|| a.gene.cmp(&b.gene))
    });
    v.truncate(top);
    v
}

/// Marker genes per cell type, from a TSV with a header line and the columns `cell_type` and
/// `gene` (further columns ignored; `#` lines are comments).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Markers {
    pub by_type: BTreeMap<String, Vec<String>>,
}

impl Markers {
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the marker list", path.display()))?;
        Self::parse(&text).with_context(|| format!("{}: marker list", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
        let Some((_, header)) = lines.next() else {
            bail!("empty; expected a header line `cell_type<TAB>gene` and one marker per line");
        };
        let cols: Vec<&str> = header.split('\t').map(str::trim).collect();
        let find = |name: &str| {
            cols.iter().position(|c| c.eq_ignore_ascii_case(name)).with_context(|| {
                format!("the header has no `{name}` column (columns: {cols:?}); expected `cell_type<TAB>gene`")
            })
        };
        let (ct, gc) = (find("cell_type")?, find("gene")?);
        let mut by_type: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (i, line) in lines {
            let f: Vec<&str> = line.split('\t').map(str::trim).collect();
            let (Some(t), Some(g)) = (f.get(ct), f.get(gc)) else {
                bail!(
                    "line {}: {} fields, the header has {}; separate fields with tabs",
                    i + 1,
                    f.len(),
                    cols.len()
                );
            };
            if t.is_empty() || g.is_empty() {
                bail!("line {}: empty cell type or gene", i + 1);
            }
            let v = by_type.entry(t.to_string()).or_default();
            if !v.iter().any(|x| x == g) {
                v.push(g.to_string());
            }
        }
        if by_type.is_empty() {
            bail!("no markers after the header");
        }
        Ok(Self { by_type })
    }

    /// Markers of `class` (exact name, else case-insensitive).
    pub fn of(&self, class: &str) -> Option<&[String]> {
        self.by_type
            .get(class)
            .or_else(|| {
                self.by_type
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(class))
                    .map(|(_, v)| v)
            })
            .map(Vec::as_slice)
    }
}

/// Marks the markers of `class` among `genes` (case-insensitive symbols); returns the hits.
pub fn mark_markers(genes: &mut [GeneScore], markers: &[String]) -> usize {
    let mut hits = 0;
    for g in genes.iter_mut() {
        g.marker = markers.iter().any(|m| m.eq_ignore_ascii_case(&g.gene));
        hits += g.marker as usize;
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_map_to_the_gene_whose_span_holds_them() {
        let genes = ["MALAT1", "HLA-DRB1", "CD74"];
        let prefix = "cells: ";
        let text = crate::cells::sentences::render(prefix, &genes);
        let spans = gene_spans(prefix, &genes);
        for (k, &(a, b)) in spans.iter().enumerate() {
            assert_eq!(&text[a..b], genes[k]);
        }
        // [CLS], "cells", ":", "mal", "##at1", "hla", "-", "dr", "##b1", "cd", "##74", [SEP]
        let offsets = [
            (0, 0),
            (0, 5),
            (5, 6),
            (7, 10),
            (10, 13),
            (14, 17),
            (17, 18),
            (18, 20),
            (20, 22),
            (23, 25),
            (25, 27),
            (0, 0),
        ];
        let tg = token_genes(&offsets, &spans);
        assert_eq!(
            tg,
            [
                None,
                None,
                None,
                Some(0),
                Some(0),
                Some(1),
                Some(1),
                Some(1),
                Some(1),
                Some(2),
                Some(2),
                None
            ]
        );
        let attr = [
            9.0, 9.0, 9.0, 1.0, 0.5, 0.25, 0.25, 0.25, 0.25, -1.0, 0.0, 9.0,
        ];
        assert_eq!(
            sum_by_gene(&attr, &tg),
            vec![(0, 1.5, 2), (1, 1.0, 4), (2, -1.0, 2)]
        );
    }

    #[test]
    fn ranking_averages_over_cells_and_breaks_ties_by_name() {
        let cells = vec![
            vec![("B".to_string(), 2.0), ("A".to_string(), 1.0)],
            vec![("A".to_string(), 1.0), ("C".to_string(), -3.0)],
        ];
        let r = rank_genes(&cells, 2);
        let got: Vec<(&str, f32, usize)> = r
            .iter()
            .map(|g| (g.gene.as_str(), g.mean_attribution, g.n_cells))
            .collect();
        assert_eq!(got, vec![("A", 1.0, 2), ("B", 1.0, 1)]);
    }

    #[test]
    fn markers_parse_and_refuse_bad_files() {
        let m = Markers::parse("# src\ncell_type\tgene\nB\tMS4A1\nb\tCD79A\nNK\tGNLY\nB\tMS4A1\n")
            .unwrap();
        assert_eq!(m.of("B").unwrap(), ["MS4A1"]);
        assert_eq!(m.of("nk").unwrap(), ["GNLY"]);
        let mut g = vec![
            GeneScore {
                gene: "ms4a1".into(),
                mean_attribution: 1.0,
                n_cells: 1,
                marker: false,
            },
            GeneScore {
                gene: "CD3E".into(),
                mean_attribution: 0.5,
                n_cells: 1,
                marker: false,
            },
        ];
        assert_eq!(mark_markers(&mut g, m.of("B").unwrap()), 1);
        assert!(g[0].marker && !g[1].marker);
        for bad in [
            "",
            "type\tgene\nB\tX\n",
            "cell_type\tgene\nB\n",
            "cell_type\tgene\n",
        ] {
            assert!(Markers::parse(bad).is_err(), "{bad:?}");
        }
    }
}
