//! Sharded runs: `--shard I/N` picks a contiguous row range decided only by `I`, `N` and the
//! input's row count, so every machine of a scattered run agrees on its rows without talking to
//! the others; [`check_cover`] is the gather side's proof that the shards cover every row exactly
//! once. Exact fixed-point sums ([`ExactSum`]) make dataset-wide totals independent of the split.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::io::{manifest_path, write_json, write_npy_f32};

/// `--shard I/N`: shard `I` (1-based) of `N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            anyhow::anyhow!(
                "--shard {s:?}: expected I/N with 1 ≤ I ≤ N (e.g. --shard 1/4 … --shard 4/4)"
            )
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Rows `floor((I-1)·n/N) .. floor(I·n/N)`: contiguous, in order, sizes differing by at most
    /// one, together exactly `0..n`.
    pub fn range(&self, n: usize) -> Range<usize> {
        let at = |i: usize| ((i as u128 * n as u128) / self.count as u128) as usize;
        at(self.index - 1)..at(self.index)
    }

    /// The record written into a shard's manifest.
    pub fn info(&self, n_rows: usize) -> ShardInfo {
        let r = self.range(n_rows);
        ShardInfo {
            index: self.index,
            count: self.count,
            start: r.start,
            end: r.end,
            n_rows,
        }
    }
}

/// Which rows a shard output holds: `start..end` of `n_rows`, as shard `index` of `count`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    pub index: usize,
    pub count: usize,
    pub start: usize,
    pub end: usize,
    pub n_rows: usize,
}

/// Check that `parts` (file, info) cover `0..n_rows` exactly once and agree on `count` and
/// `n_rows`; return the part indices in row order. Errors name the files and the missing or
/// doubly covered rows.
pub fn check_cover(parts: &[(PathBuf, ShardInfo)]) -> Result<Vec<usize>> {
    let Some((f0, first)) = parts.first() else {
        bail!("merge: no shard outputs given");
    };
    for (f, s) in parts {
        if s.n_rows != first.n_rows || s.count != first.count {
            bail!(
                "{} is shard {}/{} of {} rows but {} is shard {}/{} of {} rows; shards of one run \
                 share N and the input",
                f.display(),
                s.index,
                s.count,
                s.n_rows,
                f0.display(),
                first.index,
                first.count,
                first.n_rows
            );
        }
        if s.start > s.end || s.end > s.n_rows {
            bail!(
                "{}: shard rows {}..{} do not lie in 0..{}",
                f.display(),
                s.start,
                s.end,
                s.n_rows
            );
        }
    }
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&k| (parts[k].1.start, parts[k].1.end, parts[k].1.index));
    let mut problems = vec![];
    let mut covered = 0usize;
    let mut prev: Option<usize> = None;
    for &k in &order {
        let (f, s) = &parts[k];
        if s.start > covered {
            problems.push(format!(
                "rows {}..{} are missing (no shard between {} and {})",
                covered,
                s.start,
                prev.map_or("the start".into(), |p| parts[p].0.display().to_string()),
                f.display()
            ));
        } else if s.start < covered {
            let p = prev
                .map(|p| parts[p].0.display().to_string())
                .unwrap_or_default();
            problems.push(format!(
                "rows {}..{} are covered twice ({} and {})",
                s.start,
                covered.min(s.end),
                p,
                f.display()
            ));
        }
        covered = covered.max(s.end);
        prev = Some(k);
    }
    if covered < first.n_rows {
        problems.push(format!(
            "rows {}..{} are missing (no shard after {})",
            covered,
            first.n_rows,
            prev.map(|p| parts[p].0.display().to_string())
                .unwrap_or_default()
        ));
    }
    let mut seen = std::collections::HashMap::new();
    for (f, s) in parts {
        if let Some(other) = seen.insert(s.index, f) {
            if !problems
                .iter()
                .any(|p| p.contains(&f.display().to_string()))
            {
                problems.push(format!(
                    "shard {}/{} is given twice ({} and {})",
                    s.index,
                    s.count,
                    other.display(),
                    f.display()
                ));
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "the shards do not cover the {} rows exactly once: {}; pass every shard output of one \
             run once (shards 1/{} … {}/{})",
            first.n_rows,
            problems.join("; "),
            first.count,
            first.count,
            first.count
        );
    }
    Ok(order)
}

/// Sum of f32 values in fixed point (units of 2⁻⁴⁰, in an i128): integer addition is
/// associative, so a total over all rows equals the sum of the shards' totals bit for bit.
/// Values below 2⁻⁴⁰ in magnitude are dropped, the same way in every split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExactSum(pub i128);

impl ExactSum {
    const SCALE: f64 = (1u64 << 40) as f64;
    pub fn add(&mut self, v: f32) {
        // `as` saturates out of range; the product of an f32 and a power of two is exact
        self.0 = self.0.saturating_add((v as f64 * Self::SCALE) as i128);
    }
    pub fn merge(&mut self, o: ExactSum) {
        self.0 = self.0.saturating_add(o.0);
    }
    /// `self / total` as f64 (0 when `total` is 0).
    pub fn fraction_of(&self, total: ExactSum) -> f64 {
        if total.0 == 0 {
            0.0
        } else {
            self.0 as f64 / total.0 as f64
        }
    }
}

impl Serialize for ExactSum {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for ExactSum {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<i128>()
            .map(ExactSum)
            .map_err(serde::de::Error::custom)
    }
}

/// `SHARD.manifest.json` of a shard output, parsed.
pub fn read_manifest(shard_output: &Path) -> Result<serde_json::Value> {
    let p = crate::io::manifest_path(shard_output);
    if !shard_output.exists() {
        bail!(
            "{}: no such shard output; run the shard's command first",
            shard_output.display()
        );
    }
    crate::outputs::require_regular_file(shard_output, "a shard .npy")?;
    if p.exists() {
        crate::outputs::require_regular_file(&p, "a shard manifest")?;
    }
    let text = std::fs::read_to_string(&p).with_context(|| {
        format!(
            "{}: cannot read the manifest of shard output {} (it is written last; rerun the shard)",
            p.display(),
            shard_output.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", p.display()))
}

/// With `--shard`, the output must be a `.npy` (the shard's rows); checked before any work.
pub fn check_shard_output(out: &Path, shard: Option<Shard>) -> Result<()> {
    let Some(s) = shard else { return Ok(()) };
    let npy = out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    if !npy {
        bail!(
            "{}: with --shard {s} the output is this shard's rows as a .npy (plus \
             OUT.npy.manifest.json); name it e.g. shards/part-{}-of-{}.npy and gather the shards \
             with `celltext merge SHARDS… -o OUT`",
            out.display(),
            s.index,
            s.count
        );
    }
    Ok(())
}

/// Write a shard's vectors (`.npy`, f32 [rows, dim]) and then its manifest: the command's
/// manifest plus `shard` (which rows) and `shard_rows` (ids and the per-row values to merge).
pub fn write_shard_file(
    path: &Path,
    info: ShardInfo,
    mut manifest: Value,
    ids: &[String],
    data: &[f32],
    dim: usize,
    mut rows: Value,
) -> Result<String> {
    let n = info.end - info.start;
    if ids.len() != n {
        bail!("internal: shard of {n} rows has {} ids", ids.len());
    }
    rows["ids"] = json!(ids);
    let written = format!(
        "shard {}/{}: rows {}..{} of {}",
        info.index, info.count, info.start, info.end, info.n_rows
    );
    manifest["shard"] = serde_json::to_value(&info)?;
    manifest["shard_rows"] = rows;
    // the .npy first, then the manifest recording its size and sha256: a run killed between the
    // two leaves a pair that `merge` refuses (the old manifest does not match the new vectors)
    write_npy_f32(path, data, n, dim)?;
    let mut record = crate::outputs::part_record(path)?;
    record["rows"] = json!(n);
    record["cols"] = json!(dim);
    manifest["shard"]["npy"] = record;
    write_json(&manifest_path(path), &manifest)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_rows_once_in_order() {
        for n in [0usize, 1, 5, 601, 1_000_000] {
            for count in 1..=9 {
                let mut next = 0;
                for index in 1..=count {
                    let r = Shard { index, count }.range(n);
                    assert_eq!(r.start, next);
                    assert!(r.len() <= n / count + 1 && r.len() + 1 >= n / count);
                    next = r.end;
                }
                assert_eq!(next, n);
            }
        }
        assert_eq!(Shard { index: 2, count: 4 }.range(601), 150..300);
    }

    #[test]
    fn parses_and_refuses() {
        assert_eq!(
            "3/8".parse::<Shard>().unwrap(),
            Shard { index: 3, count: 8 }
        );
        for bad in ["0/4", "5/4", "1/0", "x/4", "4", "1/4/2", "-1/4"] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains("I/N"), "{bad}: {e}");
        }
    }

    fn part(name: &str, index: usize, count: usize, n: usize) -> (PathBuf, ShardInfo) {
        (PathBuf::from(name), Shard { index, count }.info(n))
    }

    #[test]
    fn cover_errors_name_files_and_rows() {
        let all: Vec<_> = (1..=4)
            .map(|i| part(&format!("s{i}.npy"), i, 4, 601))
            .collect();
        let rev: Vec<_> = all.iter().rev().cloned().collect();
        assert_eq!(check_cover(&rev).unwrap(), vec![3, 2, 1, 0]);
        let missing = vec![all[0].clone(), all[1].clone(), all[3].clone()];
        let e = check_cover(&missing).unwrap_err().to_string();
        assert!(e.contains("rows 300..450 are missing"), "{e}");
        assert!(e.contains("s2.npy") && e.contains("s4.npy"), "{e}");
        let last_missing = vec![all[0].clone(), all[1].clone(), all[2].clone()];
        let e = check_cover(&last_missing).unwrap_err().to_string();
        assert!(
            e.contains("rows 450..601 are missing") && e.contains("s3.npy"),
            "{e}"
        );
        let mut dup = all.clone();
        dup.push((PathBuf::from("again.npy"), all[1].1.clone()));
        let e = check_cover(&dup).unwrap_err().to_string();
        assert!(
            e.contains("covered twice") && e.contains("again.npy"),
            "{e}"
        );
        assert!(e.contains("s2.npy"), "{e}");
        let mut mixed = all[..2].to_vec();
        mixed.push(part("other.npy", 3, 3, 601));
        let e = check_cover(&mixed).unwrap_err().to_string();
        assert!(e.contains("other.npy") && e.contains("3/3"), "{e}");
    }

    #[test]
    fn exact_sums_do_not_depend_on_the_split() {
        let v: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 1000) as f32 / 7.0 + 1e-3)
            .collect();
        let mut all = ExactSum::default();
        v.iter().for_each(|&x| all.add(x));
        let mut parts = ExactSum::default();
        for c in v.chunks(77).rev() {
            let mut s = ExactSum::default();
            c.iter().for_each(|&x| s.add(x));
            parts.merge(s);
        }
        assert_eq!(all, parts);
        let json = serde_json::to_string(&all).unwrap();
        assert_eq!(serde_json::from_str::<ExactSum>(&json).unwrap(), all);
        let total: f64 = v.iter().map(|&x| x as f64).sum();
        assert!((all.0 as f64 / (1u64 << 40) as f64 - total).abs() < 1e-6 * total);
    }
}
