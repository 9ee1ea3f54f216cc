//! Resource limits for hostile inputs: how far compressed data (gzip text, zip checkpoints) may
//! inflate, and how many objects one pickle may build. Each limit can be raised with the
//! environment variable its error names, so genuine but unusual files still load.

use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, Result};

/// `CELLTEXT_MAX_INFLATE_RATIO=N`: compressed data may inflate to N × its compressed size.
pub const INFLATE_RATIO_ENV: &str = "CELLTEXT_MAX_INFLATE_RATIO";
/// Gene tables and count matrices compress 3–10×, float checkpoints barely at all; 100× leaves
/// room for very repetitive files while a 4.7 MB archive can no longer become gigabytes.
pub const DEFAULT_INFLATE_RATIO: u64 = 100;
/// Whatever the ratio, a file may always inflate to this many bytes (64 MiB).
pub const INFLATE_FLOOR: u64 = 64 << 20;
/// `CELLTEXT_MAX_PICKLE_OBJECTS=N`: the most objects, stack pushes and memo entries one pickle
/// may use (default [`crate::pickle`]'s work limit).
pub const PICKLE_OBJECTS_ENV: &str = "CELLTEXT_MAX_PICKLE_OBJECTS";

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|&n| n > 0)
}

/// The inflate ratio in force (the environment variable, else the default).
pub fn inflate_ratio() -> u64 {
    env_u64(INFLATE_RATIO_ENV).unwrap_or(DEFAULT_INFLATE_RATIO)
}

/// Most bytes `compressed` bytes may inflate to.
pub fn inflate_limit(compressed: u64) -> u64 {
    compressed
        .saturating_mul(inflate_ratio())
        .max(INFLATE_FLOOR)
}

/// The error for data that inflates past its limit: names the file, the limit and the fix.
pub fn inflate_error(file: &Path, compressed: u64, limit: u64) -> anyhow::Error {
    anyhow!("{}: {}", file.display(), inflate_message(compressed, limit))
}

/// [`inflate_error`]'s text without the file name (for callers that add it).
pub fn inflate_message(compressed: u64, limit: u64) -> String {
    format!(
        "decompresses to more than {limit} bytes ({}× its {compressed} compressed bytes, at \
         least {INFLATE_FLOOR}); refusing a possible decompression bomb. If the file is genuine, \
         raise the limit: {INFLATE_RATIO_ENV}={}",
        inflate_ratio(),
        inflate_ratio().saturating_mul(10)
    )
}

/// The pickle work limit in force: `default`, or the environment variable when it is larger.
pub fn pickle_units(default: usize) -> usize {
    env_u64(PICKLE_OBJECTS_ENV)
        .map(|n| (n as usize).max(default))
        .unwrap_or(default)
}

/// `CELLTEXT_MAX_ELEMENTS=N`: the most values (f32 or f64) one buffer sized by a user's flags may
/// hold before it is allocated (a `--latent`, `--hidden`, `--steps` or `--n-sentences` in the
/// billions is refused by name instead of aborting on allocation).
pub const ELEMENTS_ENV: &str = "CELLTEXT_MAX_ELEMENTS";
/// 2³⁰ values: 4 GiB of f32, far above any model or run celltext makes.
pub const DEFAULT_MAX_ELEMENTS: u64 = 1 << 30;

/// The element limit in force (the environment variable, else the default).
pub fn max_elements() -> u64 {
    env_u64(ELEMENTS_ENV).unwrap_or(DEFAULT_MAX_ELEMENTS)
}

/// Refuse a buffer of `elements` values (computed by the caller in u128, so no product
/// overflows) sized by `what` (the flags, e.g. "--latent 5000000000 × --hidden 256"), before it
/// is allocated. The error names the flags, the size, the limit and how to raise it.
pub fn check_elements(what: &str, elements: u128) -> Result<()> {
    let limit = max_elements();
    if elements > limit as u128 {
        return Err(anyhow!(
            "{what} needs {elements} values in one buffer, more than the limit of {limit};              give smaller sizes, or if the machine has the memory raise the limit:              {ELEMENTS_ENV}={}",
            elements.min(u64::MAX as u128)
        ));
    }
    Ok(())
}

/// The io error a [`Limited`] reader returns once its limit is passed (find it with
/// [`is_inflate_limit`]).
#[derive(Debug)]
pub struct InflateLimit {
    pub limit: u64,
}

impl std::fmt::Display for InflateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "decompressed data exceeds {} bytes", self.limit)
    }
}

impl std::error::Error for InflateLimit {}

/// Whether an io error is a [`Limited`] reader's limit.
pub fn is_inflate_limit(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|x| x.is::<InflateLimit>())
}

/// A reader that fails (with [`InflateLimit`]) once more than `limit` bytes came through.
pub struct Limited<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Limited<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        Self {
            inner,
            left: limit,
            limit,
        }
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // read one byte past the limit so "exactly at the limit" still succeeds
        let want = buf
            .len()
            .min(usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            return Err(std::io::Error::other(InflateLimit { limit: self.limit }));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Gunzip a whole in-memory file under the inflate limit; errors name `file`.
pub fn gunzip_limited(bytes: &[u8], file: &Path) -> Result<Vec<u8>> {
    let limit = inflate_limit(bytes.len() as u64);
    let mut out = Vec::new();
    Limited::new(flate2::read::MultiGzDecoder::new(bytes), limit)
        .read_to_end(&mut out)
        .map_err(|e| {
            if is_inflate_limit(&e) {
                inflate_error(file, bytes.len() as u64, limit)
            } else {
                anyhow!(
                    "{}: corrupt gzip stream ({e}); re-download or re-compress the file",
                    file.display()
                )
            }
        })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn a_gzip_bomb_is_refused_naming_the_file_and_the_fix() {
        let bomb = gz(&vec![0u8; (INFLATE_FLOOR + (1 << 20)) as usize]);
        assert!(bomb.len() < 200_000, "{}", bomb.len());
        let e = gunzip_limited(&bomb, Path::new("bomb.tsv.gz"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bomb.tsv.gz") && e.contains(INFLATE_RATIO_ENV),
            "{e}"
        );
        // at the limit it still reads
        let ok = gz(&vec![7u8; INFLATE_FLOOR as usize]);
        assert_eq!(
            gunzip_limited(&ok, Path::new("ok.gz")).unwrap().len() as u64,
            INFLATE_FLOOR
        );
    }

    #[test]
    fn huge_sizes_are_refused_by_name() {
        let e = check_elements("--latent 3000000000", 3_000_000_000 * 256)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--latent 3000000000") && e.contains(ELEMENTS_ENV),
            "{e}"
        );
        assert!(check_elements("--latent 32", 32 * 256).is_ok());
    }

    #[test]
    fn a_corrupt_gzip_stream_is_named() {
        let mut g = gz(b"hello world, hello world\n");
        let n = g.len();
        g[n - 6] ^= 0x40; // CRC
        let e = gunzip_limited(&g, Path::new("x.gz"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.gz: corrupt gzip stream"), "{e}");
    }
}
