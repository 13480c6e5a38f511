//! One counter kept in one small text file (`42\n`), safe across processes and crashes.
//!
//! - Every update holds an exclusive lock on a lock file beside it (`.counter.txt.lock`), so two
//!   processes on one volume never lose an increment. The data file itself cannot carry the lock:
//!   it is replaced by a rename on every write.
//! - A write goes to a temporary file in the same directory, is fsynced, renamed over the old
//!   file, and the directory is fsynced: a crash at any instant leaves the old value or the new
//!   one, never a torn or empty file, and an acknowledged value survives power loss.
//! - A missing file means 0. A file that does not hold a number is corrupt: it is reported and
//!   left exactly as it is, never reset.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The longest content a valid counter file can have: 20 digits of a u64 plus a newline.
const MAX_FILE_BYTES: u64 = 64;

/// Mode of the counter files: the owner writes, everyone may read (`kubectl exec … cat`).
pub const FILE_MODE: u32 = 0o644;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error(
        "counter file {path} is corrupt ({reason}); it was left untouched: fix it by hand \
         (write a number into it) or move it aside"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot {action} {path}: {message}")]
    Io {
        action: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("counter in {path} is at its maximum value and cannot be incremented")]
    Overflow { path: PathBuf },
}

impl StoreError {
    fn io(action: &'static str, path: &Path, error: std::io::Error) -> StoreError {
        StoreError::Io {
            action,
            path: path.to_owned(),
            message: error.to_string(),
        }
    }

    pub fn is_corrupt(&self) -> bool {
        matches!(self, StoreError::Corrupt { .. })
    }

    /// A short machine-readable kind for metrics and JSON bodies.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::Io { .. } => "io",
            StoreError::Overflow { .. } => "overflow",
        }
    }
}

/// What one update does to the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Increment,
    Reset,
}

/// A counter file: `<dir>/<name>`, locked through `<dir>/.<name>.lock`.
#[derive(Debug, Clone)]
pub struct CounterFile {
    dir: PathBuf,
    name: String,
}

/// Holds the exclusive lock until dropped (closing the file releases it).
pub struct LockGuard {
    _file: File,
}

impl CounterFile {
    pub fn new(dir: impl Into<PathBuf>, name: impl Into<String>) -> CounterFile {
        CounterFile {
            dir: dir.into(),
            name: name.into(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    pub fn lock_path(&self) -> PathBuf {
        self.dir.join(format!(".{}.lock", self.name))
    }

    /// The current value: 0 when the file does not exist. Needs no lock: the file is only ever
    /// replaced whole by a rename, so a reader sees the old or the new content.
    pub fn read(&self) -> Result<u64, StoreError> {
        let path = self.path();
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(StoreError::io("open", &path, e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| StoreError::io("read", &path, e))?;
        parse(&path, &bytes)
    }

    /// Takes the exclusive lock, waiting for another process that holds it.
    pub fn lock(&self) -> Result<LockGuard, StoreError> {
        let path = self.lock_path();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io("open the lock file", &path, e))?;
        file.lock().map_err(|e| StoreError::io("lock", &path, e))?;
        Ok(LockGuard { _file: file })
    }

    /// Applies `ops` in order under the lock and writes the final value once (group commit).
    /// Returns the value after each op. Nothing is written when the current file is corrupt or
    /// an op fails.
    pub fn apply(&self, ops: &[Op]) -> Result<Vec<u64>, StoreError> {
        let guard = self.lock()?;
        let mut value = self.read()?;
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            value = match op {
                Op::Increment => value
                    .checked_add(1)
                    .ok_or_else(|| StoreError::Overflow { path: self.path() })?,
                Op::Reset => 0,
            };
            results.push(value);
        }
        self.write_locked(&guard, value)?;
        Ok(results)
    }

    /// Replaces the file with `value`: temporary file, fsync, rename, directory fsync.
    pub fn write_locked(&self, _lock: &LockGuard, value: u64) -> Result<(), StoreError> {
        let path = self.path();
        let mut tmp = self.temp_file()?;
        tmp.write_all(format!("{value}\n").as_bytes())
            .map_err(|e| StoreError::io("write", tmp.path(), e))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| StoreError::io("fsync", tmp.path(), e))?;
        tmp.persist(&path)
            .map_err(|e| StoreError::io("rename a temporary file over", &path, e.error))?;
        sync_dir(&self.dir)
    }

    /// Creates the file with `0` when it does not exist; never replaces an existing file, even
    /// one created by another process at the same moment. Returns whether it created it.
    pub fn create_if_absent(&self) -> Result<bool, StoreError> {
        let path = self.path();
        let _guard = self.lock()?;
        if path.symlink_metadata().is_ok() {
            return Ok(false);
        }
        let mut tmp = self.temp_file()?;
        tmp.write_all(b"0\n")
            .map_err(|e| StoreError::io("write", tmp.path(), e))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| StoreError::io("fsync", tmp.path(), e))?;
        match tmp.persist_noclobber(&path) {
            Ok(_) => {}
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(StoreError::io("create", &path, e.error)),
        }
        sync_dir(&self.dir)?;
        Ok(true)
    }

    /// Removes temporary files left by a process killed between creating and renaming one.
    /// Holds the lock, so no live writer's temporary file is touched.
    pub fn remove_stale_temp_files(&self) -> Result<usize, StoreError> {
        let _guard = self.lock()?;
        let prefix = format!(".{}.", self.name);
        let entries =
            std::fs::read_dir(&self.dir).map_err(|e| StoreError::io("list", &self.dir, e))?;
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(&prefix)
                && name.ends_with(".tmp")
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn temp_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.", self.name))
            .suffix(".tmp")
            .tempfile_in(&self.dir)
            .map_err(|e| StoreError::io("create a temporary file in", &self.dir, e))?;
        tmp.as_file()
            .set_permissions(Permissions::from_mode(FILE_MODE))
            .map_err(|e| StoreError::io("set the mode of", tmp.path(), e))?;
        Ok(tmp)
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("fsync the directory", dir, e))
}

/// A counter file holds decimal digits, optionally surrounded by whitespace (`0`, `42\n`).
fn parse(path: &Path, bytes: &[u8]) -> Result<u64, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(corrupt(format!("longer than {MAX_FILE_BYTES} bytes")));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| corrupt("not text".into()))?;
    let digits = text.trim();
    if digits.is_empty() {
        return Err(corrupt("empty".into()));
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(corrupt(format!("expected a number, found {digits:?}")));
    }
    digits
        .parse()
        .map_err(|_| corrupt(format!("number out of range: {digits}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_seeds_write_and_rejects_the_rest() {
        let p = Path::new("x");
        assert_eq!(parse(p, b"0").unwrap(), 0);
        assert_eq!(parse(p, b"15").unwrap(), 15);
        assert_eq!(parse(p, b"42\n").unwrap(), 42);
        for bad in [
            &b""[..],
            b"\n",
            b"abc",
            b"-1",
            b"1.5",
            b"12 3",
            b"\xff",
            b"99999999999999999999",
        ] {
            assert!(parse(p, bad).unwrap_err().is_corrupt(), "{bad:?}");
        }
        assert!(parse(p, &[b'1'; 100]).unwrap_err().is_corrupt());
    }

    #[test]
    fn group_commit_applies_ops_in_order_and_writes_the_last_value() {
        let dir = tempfile::tempdir().unwrap();
        let file = CounterFile::new(dir.path(), "counter.txt");
        assert_eq!(file.read().unwrap(), 0);
        let ops = [Op::Increment, Op::Increment, Op::Reset, Op::Increment];
        assert_eq!(file.apply(&ops).unwrap(), vec![1, 2, 0, 1]);
        assert_eq!(std::fs::read_to_string(file.path()).unwrap(), "1\n");
        let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, FILE_MODE);
    }
}
