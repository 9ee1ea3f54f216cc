//! A pre-pass over an h5ad's bytes for the corruption that still hangs HDF5 2.2 (measured with
//! `tests/fuzz/h5ad_census.py`, docs/hostile-input.md): a global heap collection (`GCOL`, where
//! HDF5 keeps variable-length strings) in which an object at index 0 has size 0 before the
//! collection's end. HDF5's decoder (`H5HG__cache_heap_deserialize`) then never advances and
//! loops forever. HDF5 decodes a collection only where its `GCOL` signature is, so walking the
//! objects at every place the signature occurs, as HDF5 would, finds every collection that can
//! hang it; a valid file never has such an object (HDF5 itself could not read it).

use std::path::Path;

use anyhow::{bail, Context, Result};

/// HDF5's file signature; the superblock starts with it at byte 0, 512, 1024, 2048, …
const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";
/// `H5HG_MINSIZE`: HDF5 refuses a smaller collection before walking it.
const MIN_COLLECTION: u64 = 4096;

/// Refuse the file if one of its global heap collections would make HDF5 loop forever.
pub fn check_global_heaps(path: &Path) -> Result<()> {
    // a FIFO would block the open below (and HDF5's) forever
    crate::outputs::require_regular_file(path, "an .h5ad file")?;
    let file = std::fs::File::open(path)
        .with_context(|| format!("{}: cannot open as HDF5/h5ad", path.display()))?;
    let len = file
        .metadata()
        .with_context(|| format!("{}: cannot read", path.display()))?
        .len();
    if len == 0 {
        return Ok(()); // HDF5 refuses an empty file by itself
    }
    // SAFETY: the map is read-only and lives only inside this function; a file changed under it
    // while it is scanned gives wrong bytes, never unsafety in this byte-only scan.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let bytes: &[u8] = &map;
    let len_size = length_size(bytes).unwrap_or(8);
    for at in memchr::memmem::find_iter(bytes, b"GCOL") {
        if let Some(object) = endless_object(bytes, at, len_size) {
            bail!(
                "{}: the HDF5 global heap collection at byte {at} is corrupt (an object of size 0 \
                 at byte {object}, where its strings are stored), which makes HDF5 read it \
                 forever; the file is damaged: write it again (e.g. anndata's write_h5ad) or \
                 fetch a fresh copy",
                path.display()
            );
        }
    }
    Ok(())
}

/// The superblock's "size of lengths" (2, 4, 8, 16 or 32 bytes), where a superblock is found.
fn length_size(bytes: &[u8]) -> Option<usize> {
    let mut at = 0usize;
    while at + 16 <= bytes.len() {
        if &bytes[at..at + 8] == SIGNATURE {
            let size = match bytes[at + 8] {
                0 | 1 => bytes[at + 14],
                2 | 3 => bytes[at + 10],
                _ => return None,
            };
            return [2u8, 4, 8, 16, 32].contains(&size).then_some(size as usize);
        }
        at = if at == 0 { 512 } else { at * 2 };
    }
    None
}

fn align8(x: u64) -> Option<u64> {
    x.checked_add(7).map(|v| v / 8 * 8)
}

/// Little-endian unsigned of `n` bytes at `at`; bytes past the file's end read as 0, as HDF5's
/// file driver fills them.
fn read_le(bytes: &[u8], at: u64, n: usize) -> u64 {
    (0..n.min(8)).rev().fold(0u64, |v, k| {
        let b = usize::try_from(at + k as u64)
            .ok()
            .and_then(|i| bytes.get(i))
            .copied()
            .unwrap_or(0);
        (v << 8) | b as u64
    })
}

/// Walk the collection at byte `at` as `H5HG__cache_heap_deserialize` does: the byte offset of
/// an object that would stop the walk from advancing, or `None` when HDF5 would finish (or
/// refuse the collection with an error).
fn endless_object(bytes: &[u8], at: usize, len_size: usize) -> Option<u64> {
    let at = at as u64;
    if read_le(bytes, at + 4, 1) != 1 {
        return None; // HDF5: wrong version number in global heap
    }
    let size = read_le(bytes, at + 8, len_size);
    if size < MIN_COLLECTION {
        return None; // HDF5: global heap size is too small
    }
    let header = align8(8 + len_size as u64)?;
    let object_header = align8(8 + len_size as u64)?;
    let mut p = header;
    while p < size {
        if p + object_header > size {
            return None; // the rest is free space: the walk ends
        }
        let idx = read_le(bytes, at + p, 2);
        let object_size = read_le(bytes, at + p + 8, len_size);
        let need = if idx > 0 {
            object_header.checked_add(align8(object_size)?)?
        } else {
            object_size
        };
        if need == 0 {
            return Some(at + p);
        }
        if p.checked_add(need)? > size {
            return None; // HDF5: ran off end of input buffer while decoding
        }
        p += need;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A collection of `size` bytes (lengths of 8 bytes) holding one string object and then
    /// `free` as object 0's size.
    fn collection(size: u64, free: u64) -> Vec<u8> {
        let mut v = b"GCOL\x01\0\0\0".to_vec();
        v.extend(size.to_le_bytes());
        // object 1: "hello" (5 bytes, padded to 8)
        v.extend(1u16.to_le_bytes());
        v.extend(1u16.to_le_bytes());
        v.extend([0u8; 4]);
        v.extend(5u64.to_le_bytes());
        v.extend(b"hello\0\0\0");
        // object 0: the free space
        v.extend(0u16.to_le_bytes());
        v.extend([0u8; 6]);
        v.extend(free.to_le_bytes());
        v.resize(size as usize, 0);
        v
    }

    #[test]
    fn a_well_formed_collection_walks_to_its_end() {
        // 16 header + 24 object 1 = 40; the free-space object covers the rest
        let v = collection(4096, 4096 - 40);
        assert_eq!(endless_object(&v, 0, 8), None);
    }

    #[test]
    fn an_empty_free_space_object_is_found() {
        let v = collection(4096, 0);
        assert_eq!(endless_object(&v, 0, 8), Some(40));
    }

    #[test]
    fn a_collection_past_the_end_of_the_file_reads_zeros_and_is_found() {
        let mut v = collection(4096, 4096 - 40);
        v.truncate(40);
        v[8..16].copy_from_slice(&8192u64.to_le_bytes());
        assert_eq!(endless_object(&v, 0, 8), Some(40));
    }

    #[test]
    fn collections_hdf5_refuses_by_itself_are_left_to_it() {
        let mut v = collection(4096, 0);
        v[4] = 2; // version
        assert_eq!(endless_object(&v, 0, 8), None);
        let v = collection(4096, 0);
        let mut small = v.clone();
        small[8..16].copy_from_slice(&64u64.to_le_bytes());
        assert_eq!(endless_object(&small, 0, 8), None);
    }

    #[test]
    fn the_superblock_gives_the_size_of_lengths() {
        let mut v = vec![0u8; 1024];
        v[512..520].copy_from_slice(SIGNATURE);
        v[520] = 0;
        v[526] = 4;
        assert_eq!(length_size(&v), Some(4));
        v[520] = 2;
        v[522] = 8;
        assert_eq!(length_size(&v), Some(8));
    }
}
