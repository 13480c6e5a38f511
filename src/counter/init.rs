//! `statelab counter init`: seed 003's busybox init container, done safely. It creates the
//! counter files when absent (atomically, so it can never clobber a file another process
//! creates at the same moment), gives them the app's owner when asked, and never overwrites an
//! existing value. A corrupt file is reported and left alone: the init succeeds so the app
//! starts, reports not ready with the reason, and someone can `kubectl exec` in to fix it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

use super::config::InitArgs;
use super::store::CounterFile;

pub fn run(args: &InitArgs) -> anyhow::Result<()> {
    let dir = &args.files.data_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    if let Some((uid, gid)) = args.owner {
        // A volume's root directory may belong to root while this container runs as the app's
        // user (fsGroup gives it write access): it cannot be given away then, and need not be.
        let owned = std::fs::metadata(dir).is_ok_and(|m| (m.uid(), m.gid()) == (uid, gid));
        if !owned && let Err(error) = chown(dir, uid, gid) {
            if crate::sys::is_root() {
                return Err(error);
            }
            println!("{} stays as it is: {error:#}", dir.display());
        }
    }
    for name in [&args.files.counter_file, &args.files.visits_file] {
        let file = CounterFile::new(dir, name.as_str());
        let path = file.path();
        if file.create_if_absent()? {
            println!("Initializing {} to 0", path.display());
        } else {
            match file.read() {
                Ok(value) => println!("{} already holds {value}; left as it is", path.display()),
                Err(error) => println!("WARNING: {error}"),
            }
        }
        if let Some((uid, gid)) = args.owner {
            // Only files this run may own: the value file if it is ours to fix, and the lock
            // file the app must open for writing.
            chown(&file.lock_path(), uid, gid)?;
            if path.exists() {
                chown(&path, uid, gid)?;
            }
        }
    }
    if args.owner.is_some() {
        println!("Permissions set:");
    }
    list(dir)
}

fn chown(path: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .with_context(|| format!("cannot give {} to {uid}:{gid}", path.display()))
}

/// Prints the directory like `ls -ln`, so the init container's log shows owners and modes.
fn list(dir: &Path) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    println!("{}:", dir.display());
    for entry in entries {
        let Ok(meta) = entry.metadata() else { continue };
        let kind = if meta.is_dir() { 'd' } else { '-' };
        println!(
            "{kind}{} {:>6} {:>6} {:>8} {}",
            mode_string(meta.permissions().mode()),
            meta.uid(),
            meta.gid(),
            meta.len(),
            entry.file_name().to_string_lossy()
        );
    }
    Ok(())
}

fn mode_string(mode: u32) -> String {
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    bits.iter()
        .map(|&(bit, c)| if mode & bit != 0 { c } else { '-' })
        .collect()
}
