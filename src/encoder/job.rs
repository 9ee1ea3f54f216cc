//! Resumable embedding jobs: batches are planned deterministically from token lengths and
//! grouped into chunks; each finished chunk is written atomically to `PARTIAL/chunk-NNNNNN.npy`.
//! Killed at any moment, the same command resumes from the last finished chunk, and the result is
//! bit-identical to an uninterrupted run (same batches, same math, f32 stored exactly).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{Embedded, Encoder, PackedBatch, PaddingStats};
use crate::io::{read_npy_f32, write_json, write_npy_f32};

/// Where a job writing `output` keeps its finished chunks: `OUTPUT.partial` beside it.
pub fn partial_dir_for(output: &Path) -> PathBuf {
    let mut s = output.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

pub struct ResumableJob<'a> {
    /// Directory for finished chunks; removed by the caller once the final output is in place.
    pub partial_dir: PathBuf,
    /// Everything that must match for partial work to be reused (model checksum, params, inputs).
    pub fingerprint: serde_json::Value,
    pub texts: &'a [String],
    pub batch_tokens: usize,
    /// Texts per chunk (a chunk is whole batches; the last may be smaller).
    pub chunk_texts: usize,
    pub quiet: bool,
    pub unit: &'a str,
    /// Testing hook: fail with "interrupted" after this many chunks are computed in this run.
    pub stop_after_chunks: Option<usize>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct JobReport {
    pub n: usize,
    pub n_truncated: usize,
    pub padding: PaddingStats,
    pub chunks_total: usize,
    pub chunks_resumed: usize,
    pub seconds: f64,
    pub tokens_per_second: f64,
}

impl ResumableJob<'_> {
    pub fn run(&self, encoder: &Encoder) -> Result<(Embedded, JobReport)> {
        self.run_cancellable(encoder, None)
    }

    /// [`ResumableJob::run`]; with `check`, it is called before each round of batches (one batch
    /// per device) and its error stops the work: a caller's interrupt (the Python module's
    /// Ctrl-C). Finished chunks stay on disk, so the same job resumes from them; each batch is
    /// still computed whole by one worker, so the vectors are the same as without `check`.
    pub fn run_cancellable(
        &self,
        encoder: &Encoder,
        check: Option<&dyn Fn() -> Result<()>>,
    ) -> Result<(Embedded, JobReport)> {
        let start = Instant::now();
        let n = self.texts.len();
        let dim = encoder.dim();
        let refs: Vec<&str> = self.texts.iter().map(String::as_str).collect();
        let (toks, batches, padding) = encoder.plan_batches(&refs, self.batch_tokens)?;
        let chunks = group_batches(&batches, self.chunk_texts.max(1));
        let padding = encoder.processed_padding(padding);

        self.prepare_partial_dir()?;
        let mut data = vec![0f32; n * dim];
        let done = self.resume_chunks(&chunks, &batches, dim, &mut data)?;
        let resumed = done.iter().filter(|&&d| d).count();

        let texts_done: usize = chunks
            .iter()
            .enumerate()
            .filter(|(c, _)| done[*c])
            .map(|(_, ch)| ch.iter().map(|&b| batches[b].len()).sum::<usize>())
            .sum();
        let pb = crate::progress::bar(n as u64, self.unit, self.quiet);
        pb.set_position(texts_done as u64);
        if resumed > 0 && !self.quiet {
            pb.println(format!(
                "resuming: {resumed}/{} chunks ({texts_done} {}) already done in {}",
                chunks.len(),
                self.unit,
                self.partial_dir.display()
            ));
        }
        let mut computed = 0usize;
        let mut tokens_now = 0usize;
        let t0 = Instant::now();
        for (c, chunk) in chunks.iter().enumerate() {
            if done[c] {
                continue;
            }
            if self.stop_after_chunks == Some(computed) {
                bail!("interrupted (test hook) after {computed} chunks");
            }
            let packed: Vec<PackedBatch> = chunk
                .iter()
                .map(|&b| PackedBatch::gather(&batches[b], |i| toks[i].ids.as_slice()))
                .collect();
            let on_batch = |k: usize| pb.inc(k as u64);
            let rows = embed_chunk(encoder, &packed, check, &on_batch)?;
            let idx = chunk_rows(chunk, &batches);
            tokens_now += packed.iter().map(|p| p.ids.len()).sum::<usize>();
            let el = t0.elapsed().as_secs_f64().max(1e-9);
            pb.set_message(format!("{:.0} tokens/s", tokens_now as f64 / el));
            write_npy_f32(&self.chunk_path(c), &rows, idx.len(), dim)?;
            scatter_rows(&mut data, &idx, &rows, dim);
            computed += 1;
        }
        pb.finish_and_clear();
        let seconds = start.elapsed().as_secs_f64();
        let n_truncated = toks.iter().filter(|t| t.truncated).count();
        let report = JobReport {
            n,
            n_truncated,
            padding: padding.clone(),
            chunks_total: chunks.len(),
            chunks_resumed: resumed,
            seconds,
            tokens_per_second: tokens_now as f64 / t0.elapsed().as_secs_f64().max(1e-9),
        };
        Ok((
            Embedded {
                data,
                dim,
                n_truncated,
                padding,
            },
            report,
        ))
    }

    /// Chunks finished by an earlier run, read back into `data`; which chunks they were.
    fn resume_chunks(
        &self,
        chunks: &[Vec<usize>],
        batches: &[Vec<usize>],
        dim: usize,
        data: &mut [f32],
    ) -> Result<Vec<bool>> {
        let mut done = vec![false; chunks.len()];
        for (c, chunk) in chunks.iter().enumerate() {
            let path = self.chunk_path(c);
            if !path.exists() {
                continue;
            }
            let idx = chunk_rows(chunk, batches);
            let (rows, r, d) = read_npy_f32(&path).with_context(|| {
                format!(
                    "{}: unreadable chunk; delete it to recompute",
                    path.display()
                )
            })?;
            if r != idx.len() || d != dim {
                bail!(
                    "{}: chunk has shape [{r}, {d}], expected [{}, {dim}]; delete {} to start over",
                    path.display(),
                    idx.len(),
                    self.partial_dir.display()
                );
            }
            scatter_rows(data, &idx, &rows, dim);
            done[c] = true;
        }
        Ok(done)
    }

    fn chunk_path(&self, c: usize) -> PathBuf {
        self.partial_dir.join(format!("chunk-{c:06}.npy"))
    }

    fn prepare_partial_dir(&self) -> Result<()> {
        let job = self.partial_dir.join("job.json");
        if job.exists() {
            let text = std::fs::read_to_string(&job)
                .with_context(|| format!("{}: cannot read", job.display()))?;
            let prev: serde_json::Value =
                serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
            if prev != self.fingerprint {
                bail!(
                    "{} holds partial work from a different run (model, parameters or inputs differ); \
                     delete that directory to start over, or rerun with the original parameters",
                    self.partial_dir.display()
                );
            }
            return Ok(());
        }
        std::fs::create_dir_all(&self.partial_dir)
            .with_context(|| format!("{}: cannot create", self.partial_dir.display()))?;
        write_json(&job, &self.fingerprint)
    }

    /// Remove the partial directory after the final output has been written.
    pub fn cleanup(&self) -> Result<()> {
        remove_partial(&self.partial_dir)
    }
}

pub fn remove_partial(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("{}: cannot remove", dir.display()))?;
    }
    Ok(())
}

/// Consecutive batches grouped until each group holds at least `chunk_texts` texts.
fn group_batches(batches: &[Vec<usize>], chunk_texts: usize) -> Vec<Vec<usize>> {
    let mut out = vec![];
    let mut cur = vec![];
    let mut count = 0;
    for (b, batch) in batches.iter().enumerate() {
        cur.push(b);
        count += batch.len();
        if count >= chunk_texts {
            out.push(std::mem::take(&mut cur));
            count = 0;
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The text indices of one chunk's batches, in order.
fn chunk_rows(chunk: &[usize], batches: &[Vec<usize>]) -> Vec<usize> {
    chunk
        .iter()
        .flat_map(|&b| batches[b].iter().copied())
        .collect()
}

/// Row `k` of `rows` into row `idx[k]` of `data`.
fn scatter_rows(data: &mut [f32], idx: &[usize], rows: &[f32], dim: usize) {
    for (k, &i) in idx.iter().enumerate() {
        data[i * dim..(i + 1) * dim].copy_from_slice(&rows[k * dim..(k + 1) * dim]);
    }
}

/// One chunk's batches through the encoder; with `check`, called before each round of batches
/// (one batch per device), whose error stops the work.
fn embed_chunk(
    encoder: &Encoder,
    packed: &[PackedBatch],
    check: Option<&dyn Fn() -> Result<()>>,
    on_batch: &(dyn Fn(usize) + Sync),
) -> Result<Vec<f32>> {
    Ok(match check {
        None => encoder.embed_batches(packed, on_batch)?.concat(),
        Some(check) => {
            let mut rows = Vec::with_capacity(packed.len());
            for round in packed.chunks(encoder.workers.len().max(1)) {
                check()?;
                rows.extend(encoder.embed_batches(round, on_batch)?);
            }
            rows.concat()
        }
    })
}
