//! One resolver for every place genes are named: exact symbol, case-insensitive symbol,
//! alias → symbol, Ensembl ID (version suffix ignored) → symbol, and optionally the mouse ↔ human
//! ortholog. Ambiguous case-insensitive or alias matches are refused rather than guessed.

use anyhow::Result;
use serde::Serialize;
use std::collections::HashMap;

use super::corpus::{gunzip, Species};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Route {
    Exact,
    CaseInsensitive,
    Alias,
    Ensembl,
    Ortholog,
}

impl Route {
    pub const ALL: [Route; 5] = [
        Route::Exact,
        Route::CaseInsensitive,
        Route::Alias,
        Route::Ensembl,
        Route::Ortholog,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Route::Exact => "exact symbol",
            Route::CaseInsensitive => "case-insensitive symbol",
            Route::Alias => "alias",
            Route::Ensembl => "Ensembl ID",
            Route::Ortholog => "ortholog",
        }
    }
}

const HUMAN_INFO: &[u8] = include_bytes!("../../assets/genes/human_gene_info.tsv.gz");
const MOUSE_INFO: &[u8] = include_bytes!("../../assets/genes/mouse_gene_info.tsv.gz");
const HUMAN_ALIAS: &[u8] = include_bytes!("../../assets/genes/human_alias_to_symbol.tsv.gz");
const ORTHOLOGS: &[u8] = include_bytes!("../../assets/genes/orthologs_human_mouse.tsv.gz");

/// Official symbols, aliases, Ensembl IDs and full names of one species.
#[derive(Debug, Default)]
pub struct GeneInfo {
    pub alias: HashMap<String, String>,
    pub ensembl: HashMap<String, String>,
    pub full_name: HashMap<String, String>,
}

impl GeneInfo {
    pub fn bundled(species: Species) -> Result<Self> {
        let text = gunzip(
            if species == Species::Human {
                HUMAN_INFO
            } else {
                MOUSE_INFO
            },
            "bundled gene info",
        )?;
        let mut info = GeneInfo::default();
        let mut alias_targets: HashMap<String, Vec<String>> = HashMap::new();
        let mut symbols = std::collections::HashSet::new();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() < 4 || f[0].is_empty() {
                continue;
            }
            let sym = f[0].to_string();
            symbols.insert(sym.clone());
            if !f[1].is_empty() {
                info.full_name
                    .entry(sym.clone())
                    .or_insert_with(|| f[1].to_string());
            }
            for a in f[2].split('|').filter(|a| !a.is_empty() && *a != sym) {
                let v = alias_targets.entry(a.to_string()).or_default();
                if !v.contains(&sym) {
                    v.push(sym.clone());
                }
            }
            for e in f[3].split('|').filter(|e| !e.is_empty()) {
                info.ensembl
                    .entry(e.to_string())
                    .or_insert_with(|| sym.clone());
            }
        }
        // An alias is used only when it names exactly one gene and is not itself a symbol.
        for (a, targets) in alias_targets {
            if targets.len() == 1 && !symbols.contains(&a) {
                info.alias.insert(a, targets[0].clone());
            }
        }
        if species == Species::Human {
            let text = gunzip(HUMAN_ALIAS, "bundled alias table")?;
            for line in text.lines().skip(1) {
                if let Some((a, s)) = line.split_once('\t') {
                    if !symbols.contains(a) {
                        info.alias
                            .entry(a.to_string())
                            .or_insert_with(|| s.to_string());
                    }
                }
            }
        }
        Ok(info)
    }
}

/// Ortholog symbols in the other species (human → mouse or mouse → human).
pub fn bundled_orthologs(from: Species) -> Result<HashMap<String, Vec<String>>> {
    let text = gunzip(ORTHOLOGS, "bundled ortholog table")?;
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for line in text.lines().skip(1) {
        if let Some((h, m)) = line.split_once('\t') {
            let (k, v) = if from == Species::Human {
                (h, m)
            } else {
                (m, h)
            };
            map.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    Ok(map)
}

/// Strip an Ensembl version suffix: ENSG00000141510.17 → ENSG00000141510.
pub fn strip_ensembl_version(id: &str) -> &str {
    if id.starts_with("ENS") {
        if let Some((base, ver)) = id.rsplit_once('.') {
            if !ver.is_empty() && ver.chars().all(|c| c.is_ascii_digit()) {
                return base;
            }
        }
    }
    id
}

pub struct GeneResolver {
    exact: HashMap<String, usize>,
    lower: HashMap<String, Option<usize>>,
    info: GeneInfo,
    orthologs: Option<HashMap<String, Vec<String>>>,
    other_info: Option<GeneInfo>,
}

impl GeneResolver {
    /// Resolve names of genes from `species` onto `targets` (e.g. the store's symbols).
    pub fn new(targets: &[String], species: Species, ortholog_fallback: bool) -> Result<Self> {
        let mut exact = HashMap::new();
        let mut lower: HashMap<String, Option<usize>> = HashMap::new();
        for (i, t) in targets.iter().enumerate() {
            exact.entry(t.clone()).or_insert(i);
            lower
                .entry(t.to_lowercase())
                .and_modify(|v| {
                    if *v != Some(i) {
                        *v = None
                    }
                })
                .or_insert(Some(i));
        }
        let (orthologs, other_info) = if ortholog_fallback {
            let other = if species == Species::Human {
                Species::Mouse
            } else {
                Species::Human
            };
            (
                Some(bundled_orthologs(species)?),
                Some(GeneInfo::bundled(other)?),
            )
        } else {
            (None, None)
        };
        Ok(Self {
            exact,
            lower,
            info: GeneInfo::bundled(species)?,
            orthologs,
            other_info,
        })
    }

    fn direct(&self, sym: &str) -> Option<(usize, Route)> {
        if let Some(&i) = self.exact.get(sym) {
            return Some((i, Route::Exact));
        }
        if let Some(Some(i)) = self.lower.get(&sym.to_lowercase()) {
            return Some((*i, Route::CaseInsensitive));
        }
        None
    }

    /// The target row for a gene name and the route that found it.
    pub fn resolve(&self, name: &str) -> Option<(usize, Route)> {
        let name = name.trim();
        if let Some(hit) = self.direct(name) {
            return Some(hit);
        }
        let official = if let Some(s) = self.info.alias.get(name) {
            if let Some((i, _)) = self.direct(s) {
                return Some((i, Route::Alias));
            }
            Some(s.clone())
        } else if let Some(s) = self.info.ensembl.get(strip_ensembl_version(name)) {
            if let Some((i, _)) = self.direct(s) {
                return Some((i, Route::Ensembl));
            }
            Some(s.clone())
        } else {
            None
        };
        let orth = self.orthologs.as_ref()?;
        let sym = official.unwrap_or_else(|| name.to_string());
        let candidates = orth.get(&sym).or_else(|| {
            orth.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&sym))
                .map(|(_, v)| v)
        })?;
        for c in candidates {
            if let Some((i, _)) = self.direct(c) {
                return Some((i, Route::Ortholog));
            }
            if let Some(s) = self.other_info.as_ref().and_then(|o| o.alias.get(c)) {
                if let Some((i, _)) = self.direct(s) {
                    return Some((i, Route::Ortholog));
                }
            }
        }
        None
    }

    pub fn full_name(&self, symbol: &str) -> Option<&str> {
        self.info.full_name.get(symbol).map(String::as_str)
    }

    /// The official symbol for a name via alias or Ensembl ID, if the tables know it.
    pub fn official_symbol(&self, name: &str) -> Option<String> {
        if self.info.full_name.contains_key(name) {
            return Some(name.to_string());
        }
        self.info
            .alias
            .get(name)
            .or_else(|| self.info.ensembl.get(strip_ensembl_version(name)))
            .cloned()
    }
}

/// Per-route counts of a mapping, the unmatched names, and (with a matrix) the expression share.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    pub n_genes: usize,
    pub by_route: Vec<(Route, usize)>,
    pub n_unmatched: usize,
    pub unmatched: Vec<String>,
    pub expression_fraction: Option<f64>,
}

/// Map `names` onto resolver targets; column j → Some(target row).
pub fn map_genes(resolver: &GeneResolver, names: &[String]) -> (Vec<Option<usize>>, Coverage) {
    let mut counts: HashMap<Route, usize> = HashMap::new();
    let mut rows = Vec::with_capacity(names.len());
    let mut unmatched = vec![];
    for n in names {
        match resolver.resolve(n) {
            Some((i, r)) => {
                *counts.entry(r).or_default() += 1;
                rows.push(Some(i));
            }
            None => {
                unmatched.push(n.clone());
                rows.push(None);
            }
        }
    }
    let by_route = Route::ALL
        .iter()
        .map(|r| (*r, counts.get(r).copied().unwrap_or(0)))
        .collect();
    let cov = Coverage {
        n_genes: names.len(),
        by_route,
        n_unmatched: unmatched.len(),
        unmatched,
        expression_fraction: None,
    };
    (rows, cov)
}

/// For each target (a store's or a model's genes), the name that resolves onto it best: exact
/// before case, alias, Ensembl ID and ortholog, the first in `names` order among equals (`None`:
/// no name resolves onto it). Where several names reach one target (pbmc3k holds C9orf47, an
/// alias of S1PR3, beside S1PR3), the target's own name must win, whichever comes first.
pub fn best_name_per_target(
    resolver: &GeneResolver,
    n_targets: usize,
    names: &[String],
) -> Vec<Option<usize>> {
    let mut best: Vec<Option<(Route, usize)>> = vec![None; n_targets];
    for (j, name) in names.iter().enumerate() {
        if let Some((k, route)) = resolver.resolve(name) {
            if best[k].is_none_or(|(r, _)| route < r) {
                best[k] = Some((route, j));
            }
        }
    }
    best.into_iter().map(|b| b.map(|(_, j)| j)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    fn targets(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }
    #[test]
    fn routes_on_real_tables() {
        let t = targets(&["TP53", "CD3E", "HLA-DRB1", "MT-CO1", "PTPRC"]);
        let r = GeneResolver::new(&t, Species::Human, false).unwrap();
        assert_eq!(r.resolve("TP53"), Some((0, Route::Exact)));
        assert_eq!(r.resolve("tp53"), Some((0, Route::CaseInsensitive)));
        // ENSG00000141510 is TP53 (org.Hs.eg.db); the version suffix is ignored
        assert_eq!(r.resolve("ENSG00000141510"), Some((0, Route::Ensembl)));
        assert_eq!(r.resolve("ENSG00000141510.17"), Some((0, Route::Ensembl)));
        // CD45 is PTPRC's classic alias
        assert_eq!(r.resolve("CD45"), Some((4, Route::Alias)));
        assert_eq!(r.resolve("NOT_A_GENE_42"), None);
    }
    #[test]
    fn mouse_to_human_orthologs() {
        let t = targets(&["TP53", "CD3E", "INS"]);
        let r = GeneResolver::new(&t, Species::Mouse, true).unwrap();
        assert_eq!(r.resolve("Trp53"), Some((0, Route::Ortholog)));
        assert_eq!(r.resolve("Cd3e"), Some((1, Route::CaseInsensitive)));
        let no = GeneResolver::new(&t, Species::Mouse, false).unwrap();
        assert_eq!(no.resolve("Trp53"), None);
    }
    #[test]
    fn ensembl_version_strip() {
        assert_eq!(
            strip_ensembl_version("ENSG00000141510.17"),
            "ENSG00000141510"
        );
        assert_eq!(strip_ensembl_version("RP11-34P13.7"), "RP11-34P13.7");
        assert_eq!(
            strip_ensembl_version("ENSMUSG00000059552"),
            "ENSMUSG00000059552"
        );
    }
}
