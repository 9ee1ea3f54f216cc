//! What every output of celltext shares besides the atomic write in `io`: one advisory lock per
//! output (a second writer fails fast, naming the first), the file mode of new and replaced
//! outputs, removal of temp files left by killed runs, and directories committed by one rename.
//!
//! Temp names are `.NAME.PID-N.tmp[.EXT]` ([`temp_path_for`]), lock files `.NAME.celltext-lock`,
//! both beside the output, so what belongs to which output (and which process) reads off the name.

use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

fn dir_and_name(path: &Path) -> (PathBuf, String) {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "out".into());
    (dir, name)
}

/// A temporary path beside `path` (same directory, so the final rename is atomic). It keeps the
/// final extension, so writers that pick a format from the name (plotters, hdf5) work on it, and
/// is unique per process and call, so concurrent writers never share a temp file.
pub fn temp_path_for(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "out".into());
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let unique = format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    match path.extension().and_then(|e| e.to_str()) {
        Some(ext) => dir.join(format!(".{name}.{unique}.tmp.{ext}")),
        None => dir.join(format!(".{name}.{unique}.tmp")),
    }
}

/// `.NAME.celltext-lock` beside `output`.
pub fn lock_path_for(output: &Path) -> PathBuf {
    let (dir, name) = dir_and_name(output);
    dir.join(format!(".{name}.celltext-lock"))
}

/// An exclusive advisory lock (`flock`) on one output, held until dropped. The lock file holds the
/// holder's PID, so a second writer's error names it; it is removed again on drop (a run killed
/// with -9 leaves it, and the next run takes it over: the kernel released the lock).
#[derive(Debug)]
pub struct OutputLock {
    path: PathBuf,
    file: File,
}

impl OutputLock {
    /// Take the lock of `output` or fail at once naming the process that holds it. Creates the
    /// output's directory if it is missing (as `io::atomic_write_with` does).
    pub fn acquire(output: &Path) -> Result<Self> {
        let lock = lock_path_for(output);
        let (dir, _) = dir_and_name(output);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("{}: cannot create directory", dir.display()))?;
        // A holder removes the file before unlocking, so a lock taken on an unlinked file is
        // stale: retry on the new one.
        for _ in 0..64 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&lock)
                .with_context(|| {
                    format!(
                        "{}: cannot create the lock file {}",
                        output.display(),
                        lock.display()
                    )
                })?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut s = String::new();
                    let _ = file.read_to_string(&mut s);
                    let who = match s.split_whitespace().next() {
                        Some(pid) => format!("PID {pid}"),
                        None => "PID not yet recorded".into(),
                    };
                    bail!(
                        "{}: another celltext process ({who}) is writing this output; wait for it \
                         to finish or choose another output (lock file {})",
                        output.display(),
                        lock.display()
                    );
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| {
                        format!("{}: cannot lock {}", output.display(), lock.display())
                    })
                }
            }
            if !same_file(&file, &lock) {
                continue;
            }
            file.set_len(0)
                .and_then(|_| file.rewind())
                .and_then(|_| writeln!(file, "{}", std::process::id()))
                .and_then(|_| file.flush())
                .with_context(|| format!("{}: cannot write", lock.display()))?;
            return Ok(Self { path: lock, file });
        }
        bail!(
            "{}: the lock file {} keeps being replaced; is another celltext process starting \
             on this output?",
            output.display(),
            lock.display()
        )
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Unlink while still holding the lock; `acquire` retries on a file that was unlinked.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// Whether process `pid` is alive (unknown platforms: assume it is).
fn pid_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// The writer PID of a temp of `name` (`.NAME.PID-N.tmp`, `.NAME.PID-N.tmp.EXT`, or a directory
/// set aside during a commit, `.NAME.PID-N.old`), or None for any other file.
pub fn temp_writer_pid(file_name: &str, name: &str) -> Option<u32> {
    let rest = file_name
        .strip_prefix('.')?
        .strip_prefix(name)?
        .strip_prefix('.')?;
    let (pid, rest) = rest.split_once('-')?;
    let (n, tail) = rest.split_once('.')?;
    if pid.is_empty()
        || n.is_empty()
        || !pid.bytes().all(|b| b.is_ascii_digit())
        || !n.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let ok = tail == "tmp"
        || tail == "old"
        || tail.strip_prefix("tmp.").is_some_and(|e| !e.contains('.'));
    if !ok {
        return None;
    }
    pid.parse().ok()
}

/// After a successful commit of `output`: remove temps of celltext's naming for that output whose
/// writer is gone (a kill -9 leaves them). Best effort; returns what it removed.
pub fn remove_stale_temps(output: &Path) -> Vec<PathBuf> {
    let (dir, name) = dir_and_name(output);
    let me = std::process::id();
    let mut removed = vec![];
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return removed;
    };
    for e in entries.flatten() {
        let fname = e.file_name().to_string_lossy().to_string();
        let Some(pid) = temp_writer_pid(&fname, &name) else {
            continue;
        };
        if pid == me || pid_alive(pid) {
            continue;
        }
        let p = e.path();
        let ok = match e.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p).is_ok(),
            Ok(_) => std::fs::remove_file(&p).is_ok(),
            Err(_) => false,
        };
        if ok {
            removed.push(p);
        }
    }
    removed
}

/// The process umask (Linux: /proc/self/status; elsewhere the common 022).
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// Give the finished temp `tmp` the mode its final name should have: the replaced file's mode, or
/// for a new output the default of a newly created file (0666, or 0777 for a directory, less the
/// umask) — some writers create their files 0600.
pub fn set_output_mode(tmp: &Path, output: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = match std::fs::metadata(output) {
            Ok(m) => m.permissions().mode() & 0o7777,
            Err(_) => {
                let base = if tmp.is_dir() { 0o777 } else { 0o666 };
                base & !umask()
            }
        };
        std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("{}: cannot set permissions", tmp.display()))?;
    }
    #[cfg(not(unix))]
    let _ = (tmp, output);
    Ok(())
}

/// Build the directory `dir` in a temp directory beside it, then commit it whole: a new `dir` by
/// one rename; an existing one is swapped with the new one in one step where the OS can
/// (Linux `renameat2(RENAME_EXCHANGE)`), else set aside, replaced, then deleted. On failure the
/// temp directory is removed and the old `dir` is left as it was.
pub fn atomic_dir_with<F>(dir: &Path, build: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
    if let Ok(m) = std::fs::symlink_metadata(dir) {
        if !m.is_dir() {
            bail!(
                "{}: exists and is not a directory; choose another path",
                dir.display()
            );
        }
    }
    let tmp = temp_path_for(dir);
    if let Some(parent) = tmp.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("{}: cannot create directory", parent.display()))?;
    }
    std::fs::create_dir(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
    let done = build(&tmp).and_then(|_| set_output_mode(&tmp, dir));
    if let Err(e) = done {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let commit = if dir.exists() {
        replace_dir(&tmp, dir)
    } else {
        std::fs::rename(&tmp, dir).with_context(|| {
            format!(
                "{}: cannot move the finished folder into place",
                dir.display()
            )
        })
    };
    if let Err(e) = commit {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    remove_stale_temps(dir);
    fault_point(dir);
    Ok(())
}

/// Swap the finished `tmp` in for the existing `dir`, then delete the old contents.
fn replace_dir(tmp: &Path, dir: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let a = CString::new(tmp.as_os_str().as_bytes())?;
        let b = CString::new(dir.as_os_str().as_bytes())?;
        // SAFETY: two NUL-terminated paths relative to the working directory; no memory is shared.
        let r = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if r == 0 {
            // `tmp` now holds the old folder.
            let _ = std::fs::remove_dir_all(tmp);
            return Ok(());
        }
    }
    let old = {
        let t = temp_path_for(dir);
        let s = t.to_string_lossy();
        PathBuf::from(format!("{}.old", s.trim_end_matches(".tmp")))
    };
    std::fs::rename(dir, &old)
        .with_context(|| format!("{}: cannot set the old folder aside", dir.display()))?;
    if let Err(e) = std::fs::rename(tmp, dir) {
        let _ = std::fs::rename(&old, dir);
        return Err(e).with_context(|| {
            format!(
                "{}: cannot move the finished folder into place",
                dir.display()
            )
        });
    }
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

// ---------------------------------------------------------------- the output contract

/// `path` made absolute and resolved through symlinks: the existing part canonicalized, the rest
/// (not yet created) appended with `.`/`..` folded, so two spellings of one place compare equal.
pub fn resolve(path: &Path) -> PathBuf {
    use std::path::Component;
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let mut clean = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                // `a/link/..` must follow the link first: canonicalize what exists so far
                if let Ok(real) = std::fs::canonicalize(&clean) {
                    clean = real;
                }
                clean.pop();
            }
            other => clean.push(other),
        }
    }
    let mut existing = clean.clone();
    let mut rest = vec![];
    loop {
        if let Ok(real) = std::fs::canonicalize(&existing) {
            let mut out = real;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return out;
        }
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return clean,
        }
    }
}

/// The output contract's first rule: no output path is, contains, or lies inside an input
/// (compared after [`resolve`], so symlinks and `..` do not hide an overlap). Call it before any
/// work with every file or folder the command writes and every file or folder it reads (model
/// folders, gene store files, shards, input matrices). The error names both paths.
pub fn check_apart(outputs: &[&Path], inputs: &[&Path]) -> Result<()> {
    let ins: Vec<(&Path, PathBuf)> = inputs
        .iter()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| (*p, resolve(p)))
        .collect();
    for out in outputs.iter().filter(|p| !p.as_os_str().is_empty()) {
        let o = resolve(out);
        for (input, i) in &ins {
            let how = if o == *i {
                "is"
            } else if o.starts_with(i) {
                "lies inside"
            } else if i.starts_with(&o) {
                "contains"
            } else {
                continue;
            };
            bail!(
                "output {} {how} the input {}; celltext never writes over its inputs, so choose \
                 an output path outside every input",
                out.display(),
                input.display()
            );
        }
    }
    Ok(())
}

/// The output contract's second rule, for outputs that are folders replaced whole
/// ([`atomic_dir_with`]): `dir` must be new, empty, or a previous output of the same command,
/// recognised by its `marker` file (e.g. `report.json`), and, when `command` is given, by the
/// marker's JSON field `command` (at the top level or under `manifest`; `celltext_command` in a
/// synthetic model's config.json). Anything else is refused
/// before any work, naming `flag`, so a folder of other files is never deleted.
pub fn check_replaceable_dir(
    dir: &Path,
    flag: &str,
    marker: &str,
    command: Option<&str>,
) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return Ok(());
    };
    if !meta.is_dir() {
        bail!(
            "{flag} {}: exists and is not a folder; give a new folder name",
            dir.display()
        );
    }
    let mut entries = std::fs::read_dir(dir)
        .with_context(|| format!("{flag} {}: cannot read the folder", dir.display()))?;
    if entries.next().is_none() {
        return Ok(());
    }
    let m = dir.join(marker);
    let ours = match command {
        _ if !m.is_file() => false,
        None => true,
        Some(cmd) => std::fs::read(&m)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| {
                [
                    v.get("command"),
                    v.get("celltext_command"),
                    v.pointer("/manifest/command"),
                ]
                .iter()
                .flatten()
                .any(|c| c.as_str() == Some(cmd))
            }),
    };
    if !ours {
        let what = match command {
            Some(cmd) => format!("no {marker} of `celltext {cmd}`"),
            None => format!("no {marker}"),
        };
        bail!(
            "{flag} {}: the folder holds other files and {what}; this output replaces its folder \
             whole, so give a new (or empty) folder",
            dir.display()
        );
    }
    Ok(())
}

/// A regular file (or a link to one) at `path`, else an error naming it: FIFOs, sockets and
/// devices would block or never end, folders are not files.
pub fn require_regular_file(path: &Path, what: &str) -> Result<()> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("{}: cannot read {what}", path.display()))?;
    if meta.is_dir() {
        bail!("{}: is a folder, not {what}", path.display());
    }
    if !meta.is_file() {
        bail!(
            "{}: is not a regular file (a FIFO, socket or device); pass {what} as a file",
            path.display()
        );
    }
    Ok(())
}

/// `{"file": NAME, "bytes": N, "sha256": HEX}` of one finished part of a multi-file output. The
/// part written last (a manifest) records its siblings this way, so a reader can tell parts of
/// one run from parts of two (a kill between the renames); see [`verify_part`].
pub fn part_record(path: &Path) -> Result<serde_json::Value> {
    let bytes = std::fs::metadata(path)
        .with_context(|| format!("{}: cannot read", path.display()))?
        .len();
    Ok(serde_json::json!({
        "file": path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(),
        "bytes": bytes,
        "sha256": crate::checksum::sha256_file(path)?,
    }))
}

/// Check `path` against the [`part_record`] its manifest `manifest` holds; the error names both
/// files and what differs.
pub fn verify_part(path: &Path, record: &serde_json::Value, manifest: &Path) -> Result<()> {
    let want_sha = record.get("sha256").and_then(|v| v.as_str());
    let want_bytes = record.get("bytes").and_then(|v| v.as_u64());
    let (Some(want_sha), Some(want_bytes)) = (want_sha, want_bytes) else {
        bail!(
            "{}: the record of {} is malformed (want `bytes` and `sha256`); rewrite the output",
            manifest.display(),
            path.display()
        );
    };
    require_regular_file(path, "an output part")?;
    let got_bytes = std::fs::metadata(path)
        .with_context(|| format!("{}: cannot read", path.display()))?
        .len();
    let why = if got_bytes != want_bytes {
        format!("{got_bytes} bytes where the manifest records {want_bytes}")
    } else {
        let got = crate::checksum::sha256_file(path)?;
        if got == want_sha {
            return Ok(());
        }
        format!("sha256 {got} where the manifest records {want_sha}")
    };
    bail!(
        "{}: does not match its manifest {} ({why}): the two come from different runs (a run \
         killed between writing them, or a file replaced); rerun the command that wrote it",
        path.display(),
        manifest.display()
    )
}

/// Testing hook of the kill points: with `CELLTEXT_TEST_ABORT_AFTER=NAME`, the process aborts
/// (as if killed with -9) right after the output part named NAME is committed, before the parts
/// after it. Tests use it to prove that multi-file outputs are old-or-new or refused by readers.
pub fn fault_point(committed: &Path) {
    if let Ok(name) = std::env::var("CELLTEXT_TEST_ABORT_AFTER") {
        if committed
            .file_name()
            .is_some_and(|n| n.to_string_lossy() == name)
        {
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_parse() {
        assert_eq!(temp_writer_pid(".a.npy.123-4.tmp.npy", "a.npy"), Some(123));
        assert_eq!(
            temp_writer_pid(".store.genes.tsv.9-0.tmp.tsv", "store.genes.tsv"),
            Some(9)
        );
        assert_eq!(temp_writer_pid(".rep.77-2.tmp", "rep"), Some(77));
        assert_eq!(temp_writer_pid(".rep.77-2.old", "rep"), Some(77));
        assert_eq!(temp_writer_pid(".rep.celltext-lock", "rep"), None);
        assert_eq!(temp_writer_pid(".a.npy.12x-4.tmp.npy", "a.npy"), None);
        assert_eq!(temp_writer_pid("a.npy", "a.npy"), None);
        assert_eq!(temp_writer_pid(".a.npy.1-2.tmp.npy.keep", "a.npy"), None);
    }

    #[test]
    fn stale_temps_of_dead_writers_go_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x.npy");
        // PID 0x7fff_fff0 does not exist; our own PID does.
        let dead = dir.path().join(".x.npy.2147483632-0.tmp.npy");
        let mine = dir
            .path()
            .join(format!(".x.npy.{}-999.tmp.npy", std::process::id()));
        let other = dir.path().join(".y.npy.2147483632-0.tmp.npy");
        let dead_dir = dir.path().join(".x.npy.2147483632-1.tmp");
        for p in [&dead, &mine, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        std::fs::create_dir(&dead_dir).unwrap();
        std::fs::write(dead_dir.join("f"), b"x").unwrap();
        let removed = remove_stale_temps(&out);
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(!dead.exists() && !dead_dir.exists());
        assert!(mine.exists() && other.exists());
    }

    #[test]
    fn second_lock_fails_naming_pid_and_lock_file_goes_away() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("store");
        let a = OutputLock::acquire(&out).unwrap();
        let lock_file = a.path().to_path_buf();
        let e = OutputLock::acquire(&out).unwrap_err().to_string();
        assert!(e.contains(&format!("PID {}", std::process::id())), "{e}");
        assert!(e.contains("store"), "{e}");
        drop(a);
        assert!(!lock_file.exists());
        let b = OutputLock::acquire(&out).unwrap();
        drop(b);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn failed_dir_build_keeps_the_old_folder() {
        let dir = tempfile::tempdir().unwrap();
        let rep = dir.path().join("report");
        atomic_dir_with(&rep, |t| Ok(std::fs::write(t.join("a.md"), "one")?)).unwrap();
        let r = atomic_dir_with(&rep, |t| {
            std::fs::write(t.join("a.md"), "two")?;
            bail!("disk full")
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read_to_string(rep.join("a.md")).unwrap(), "one");
        atomic_dir_with(&rep, |t| Ok(std::fs::write(t.join("b.md"), "three")?)).unwrap();
        assert!(!rep.join("a.md").exists());
        assert_eq!(std::fs::read_to_string(rep.join("b.md")).unwrap(), "three");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp folders left"
        );
    }

    #[cfg(unix)]
    #[test]
    fn outputs_get_umask_mode_and_replacements_keep_theirs() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.safetensors");
        crate::io::write_embeddings(&p, &[1.0, 2.0], 1, 2, None).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask(), "new output: default mode");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        crate::io::write_embeddings(&p, &[3.0, 4.0], 1, 2, None).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "replaced output keeps its mode");
    }
}
