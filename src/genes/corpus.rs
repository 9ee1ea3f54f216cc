//! Gene summary corpora: the bundled NCBI RefSeq summaries (compiled in from `assets/genes/`) or a
//! user file — GenePT's JSON `{symbol: text}`, or TSV/CSV with symbol and text columns.

use anyhow::{bail, Context, Result};
use serde::de::{Deserializer, MapAccess, Visitor};
use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

/// Species of gene names (`--species human|mouse`, also `hs` / `homo_sapiens`, `mm` / `mus_musculus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Species {
    Human,
    Mouse,
}

crate::choices!(Species {
    Human = "human" | "hs" | "homo_sapiens",
    Mouse = "mouse" | "mm" | "mus_musculus",
});

/// One gene's text and where it came from (`human`, `mouse`, `human-ortholog:SYMBOL`, `user`,
/// `fallback-name`).
#[derive(Debug, Clone, PartialEq)]
pub struct GeneText {
    pub symbol: String,
    pub text: String,
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct SummaryCorpus {
    pub genes: Vec<GeneText>,
    /// `bundled:human`, `bundled:mouse` or the user file's path.
    pub origin: String,
    pub sha256: String,
}

const HUMAN_SUMMARIES: &[u8] = include_bytes!("../../assets/genes/human_summaries.tsv.gz");
const MOUSE_SUMMARIES: &[u8] = include_bytes!("../../assets/genes/mouse_summaries.tsv.gz");

pub fn gunzip(bytes: &[u8], what: &str) -> Result<String> {
    let mut s = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut s)
        .with_context(|| format!("{what}: corrupt or truncated gzip data"))?;
    Ok(s)
}

impl SummaryCorpus {
    pub fn bundled(species: Species) -> Result<Self> {
        let (bytes, name) = match species {
            Species::Human => (HUMAN_SUMMARIES, "bundled:human"),
            Species::Mouse => (MOUSE_SUMMARIES, "bundled:mouse"),
        };
        let text = gunzip(bytes, name)?;
        let mut genes = vec![];
        for line in text.lines().skip(1) {
            let mut f = line.splitn(3, '\t');
            if let (Some(s), Some(src), Some(t)) = (f.next(), f.next(), f.next()) {
                genes.push(GeneText {
                    symbol: s.into(),
                    text: t.into(),
                    source: src.into(),
                });
            }
        }
        Ok(Self {
            genes,
            origin: name.into(),
            sha256: crate::io::sha256_bytes(bytes),
        })
    }

    /// Load a user file: `.json` (GenePT `{symbol: text}`), else TSV/CSV with a header naming a
    /// symbol column (`symbol`, `gene`, `gene_symbol`, `gene_name`) and a text column (`text`,
    /// `summary`, `description`).
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("{}: cannot read summaries", path.display()))?;
        let sha256 = crate::io::sha256_bytes(&bytes);
        let bytes = if path.extension().is_some_and(|e| e == "gz") {
            crate::limits::gunzip_limited(&bytes, path)?
        } else {
            bytes
        };
        let text = String::from_utf8(bytes).map_err(|e| {
            anyhow::anyhow!(
                "{}: not valid UTF-8 at byte {}",
                path.display(),
                e.utf8_error().valid_up_to()
            )
        })?;
        if text.trim().is_empty() {
            bail!("{}: the summaries file is empty", path.display());
        }
        let name = path.to_string_lossy().to_ascii_lowercase();
        let name = name.trim_end_matches(".gz");
        let pairs = if name.ends_with(".json") || text.trim_start().starts_with('{') {
            parse_json_map(&text).with_context(|| format!("{}", path.display()))?
        } else {
            parse_table(&text, name.ends_with(".csv"))
                .with_context(|| format!("{}", path.display()))?
        };
        let mut seen = HashSet::new();
        let mut genes = vec![];
        for (line, sym, txt) in pairs {
            let sym = sym.trim().to_string();
            if sym.is_empty() {
                bail!("{}: {line}: empty gene symbol", path.display());
            }
            crate::genes::store::check_symbol(&sym, path, &format!("{line}: "))?;
            if txt.trim().is_empty() {
                bail!(
                    "{}: {line}: gene `{sym}` has an empty summary; remove it or give it text",
                    path.display()
                );
            }
            if !seen.insert(sym.clone()) {
                bail!(
                    "{}: {line}: gene `{sym}` appears twice; keep one summary per symbol",
                    path.display()
                );
            }
            genes.push(GeneText {
                symbol: sym,
                text: txt.split_whitespace().collect::<Vec<_>>().join(" "),
                source: "user".into(),
            });
        }
        if genes.is_empty() {
            bail!("{}: no gene summaries found", path.display());
        }
        Ok(Self {
            genes,
            origin: path.display().to_string(),
            sha256,
        })
    }
}

/// Parse `{symbol: text}` keeping order and reporting duplicate keys (serde_json's map would
/// silently keep the last one). Returns (location, symbol, text).
fn parse_json_map(text: &str) -> Result<Vec<(String, String, String)>> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object {symbol: summary text}")
        }
        fn visit_map<A: MapAccess<'de>>(
            self,
            mut m: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut out = vec![];
            while let Some((k, v)) = m.next_entry::<String, serde_json::Value>()? {
                let t = match v {
                    serde_json::Value::String(s) => s,
                    other => {
                        return Err(serde::de::Error::custom(format!(
                            "value for `{k}` must be a string, found {}",
                            match other {
                                serde_json::Value::Null => "null",
                                serde_json::Value::Array(_) => "an array",
                                serde_json::Value::Object(_) => "an object",
                                _ => "a number or boolean",
                            }
                        )))
                    }
                };
                out.push((k, t));
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let pairs = de
        .deserialize_map(V)
        .map_err(|e| anyhow::anyhow!("invalid summaries JSON: {e}"))?;
    de.end()
        .map_err(|e| anyhow::anyhow!("invalid summaries JSON: trailing data: {e}"))?;
    // locate each key's line for messages about duplicates / empty text
    let mut out = vec![];
    let mut search_from = 0;
    for (k, t) in pairs {
        let needle = serde_json::to_string(&k).unwrap_or_default();
        let line = match text[search_from..].find(&needle) {
            Some(p) => {
                search_from += p + needle.len();
                format!("line {}", text[..search_from].matches('\n').count() + 1)
            }
            None => "entry".into(),
        };
        out.push((line, k, t));
    }
    Ok(out)
}

fn parse_table(text: &str, csv_hint: bool) -> Result<Vec<(String, String, String)>> {
    let first = text.lines().next().unwrap_or("");
    let delim = if first.contains('\t') {
        b'\t'
    } else if csv_hint || first.contains(',') {
        b','
    } else {
        b'\t'
    };
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delim)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = rdr
        .headers()?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let find = |names: &[&str]| headers.iter().position(|h| names.contains(&h.as_str()));
    let si = find(&["symbol", "gene", "gene_symbol", "gene_name", "genes"]).with_context(|| {
        format!("line 1: no symbol column in header {headers:?}; name one of symbol, gene, gene_symbol, gene_name")
    })?;
    let ti = find(&["text", "summary", "description", "summaries"]).with_context(|| {
        format!(
            "line 1: no text column in header {headers:?}; name one of text, summary, description"
        )
    })?;
    let mut out = vec![];
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| anyhow::anyhow!("line {}: {e}", i + 2))?;
        out.push((
            format!("line {}", i + 2),
            rec.get(si).unwrap_or("").to_string(),
            rec.get(ti).unwrap_or("").to_string(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn bundled_corpora_have_expected_sizes() {
        let h = SummaryCorpus::bundled(Species::Human).unwrap();
        assert_eq!(h.genes.len(), 15_136);
        assert!(h.genes.iter().any(|g| g.symbol == "CD3E"));
        let m = SummaryCorpus::bundled(Species::Mouse).unwrap();
        assert_eq!(m.genes.len(), 15_075);
        assert_eq!(
            m.genes.iter().filter(|g| g.source == "mouse").count(),
            3_832
        );
    }
    #[test]
    fn json_duplicates_and_empty_are_errors_with_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        std::fs::write(&p, "{\n\"A\": \"x y\",\n\"B\": \"z\",\n\"A\": \"again\"\n}").unwrap();
        let e = format!("{:#}", SummaryCorpus::from_file(&p).unwrap_err());
        assert!(
            e.contains("line 4") && e.contains("`A` appears twice"),
            "{e}"
        );
        std::fs::write(&p, "{\"A\": \"\"}").unwrap();
        let e = format!("{:#}", SummaryCorpus::from_file(&p).unwrap_err());
        assert!(e.contains("empty summary"), "{e}");
        std::fs::write(&p, "{\"A\": \"x\",").unwrap();
        let e = format!("{:#}", SummaryCorpus::from_file(&p).unwrap_err());
        assert!(
            e.contains("s.json") && e.contains("invalid summaries JSON"),
            "{e}"
        );
        std::fs::write(&p, "").unwrap();
        assert!(format!("{:#}", SummaryCorpus::from_file(&p).unwrap_err()).contains("empty"));
    }
    #[test]
    fn tsv_and_csv() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.tsv");
        std::fs::write(&p, "gene\tsummary\nA\thello  world\nB\tbye\n").unwrap();
        let c = SummaryCorpus::from_file(&p).unwrap();
        assert_eq!(
            c.genes[0],
            GeneText {
                symbol: "A".into(),
                text: "hello world".into(),
                source: "user".into()
            }
        );
        let p = dir.path().join("s.csv");
        std::fs::write(&p, "symbol,text\nA,\"a, b\"\nA,c\n").unwrap();
        let e = format!("{:#}", SummaryCorpus::from_file(&p).unwrap_err());
        assert!(e.contains("line 3"), "{e}");
        std::fs::write(&p, "name,blurb\nA,b\n").unwrap();
        let e = format!("{:#}", SummaryCorpus::from_file(&p).unwrap_err());
        assert!(e.contains("no symbol column"), "{e}");
    }
}
