//! What the guest keeps in its writable folder: every entry, dotfiles and links included, at
//! any depth. The walk goes folder by folder through open folder handles (`openat`), so no host
//! path is ever built whole and no path length limit hides a file from the count; removing
//! files works the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What identifies one version of a file: modification time, size and inode.
pub(crate) type Stamp = (Option<SystemTime>, u64, u64);

/// Folders nested deeper than this are over the limits (the walk keeps one open handle per
/// level).
pub(crate) const MAX_DEPTH: usize = 64;

/// One walk of the folder.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Regular files, by path relative to the folder.
    pub files: BTreeMap<PathBuf, Stamp>,
    /// Folders, relative.
    pub dirs: std::collections::BTreeSet<PathBuf>,
    /// Bytes of those files.
    pub bytes: u64,
    /// Entries of any kind (files, folders, links): what the file cap counts.
    pub entries: u64,
    /// Whether a folder was nested deeper than [`MAX_DEPTH`] (or the entry limit cut the walk).
    pub cut: bool,
}

/// Removes what a cell over its limits added: its new or changed files, and folders that were
/// not there before (with everything in them).
pub(crate) fn undo(root: &Path, before: &Scan, after: &Scan) {
    for rel in changed(before, after) {
        remove(root, &rel);
    }
    let mut new_dirs: Vec<&PathBuf> = after
        .dirs
        .iter()
        .filter(|d| !before.dirs.contains(*d))
        .collect();
    // The top-most new folders only; removing one removes what is below it.
    new_dirs.sort_by_key(|d| d.components().count());
    let mut removed: Vec<&PathBuf> = Vec::new();
    for d in new_dirs {
        if removed.iter().any(|r| d.starts_with(r)) {
            continue;
        }
        remove_tree(root, d);
        removed.push(d);
    }
}

/// Files in `after` that are not in `before` or whose stamp changed, relative, sorted.
pub(crate) fn changed(before: &Scan, after: &Scan) -> Vec<PathBuf> {
    after
        .files
        .iter()
        .filter(|(path, stamp)| before.files.get(*path) != Some(stamp))
        .map(|(path, _)| path.clone())
        .collect()
}

/// Whether a relative path has a component starting with a dot (not shown to the model).
pub(crate) fn hidden(rel: &Path) -> bool {
    rel.components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
}

#[cfg(unix)]
mod imp {
    use std::ffi::OsStr;
    use std::os::fd::OwnedFd;
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, SystemTime};

    use rustix::fs::{AtFlags, CWD, Dir, FileType, Mode, OFlags};

    use super::Scan;

    fn open_dir(at: impl rustix::fd::AsFd, name: &OsStr) -> Option<OwnedFd> {
        rustix::fs::openat(
            at,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()
    }

    /// Walks `root`; `limit` stops the walk once that many entries were seen (the count is
    /// then over any cap and the rest does not matter). Open handles: one per level. With
    /// `record` false only the totals are kept (the polls while a cell runs).
    pub(crate) fn scan(root: &Path, limit: u64, record: bool) -> Scan {
        let mut scan = Scan::default();
        let Ok(top) = rustix::fs::openat(
            CWD,
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return scan;
        };
        walk(&top, &PathBuf::new(), 0, limit, record, &mut scan);
        scan
    }

    fn walk(fd: &OwnedFd, rel: &Path, depth: usize, limit: u64, record: bool, scan: &mut Scan) {
        if depth > super::MAX_DEPTH {
            scan.cut = true;
            return;
        }
        let Ok(mut dir) = Dir::read_from(fd) else {
            return;
        };
        let mut subdirs = Vec::new();
        while let Some(Ok(entry)) = dir.read() {
            let name = OsStr::from_bytes(entry.file_name().to_bytes()).to_owned();
            if name == "." || name == ".." {
                continue;
            }
            scan.entries += 1;
            if scan.entries > limit {
                scan.cut = true;
                return;
            }
            let Ok(stat) = rustix::fs::statat(fd, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
            else {
                continue;
            };
            match FileType::from_raw_mode(stat.st_mode) {
                FileType::Directory => subdirs.push(name),
                FileType::RegularFile => {
                    let len = u64::try_from(stat.st_size).unwrap_or(0);
                    let modified = u64::try_from(stat.st_mtime).ok().map(|s| {
                        SystemTime::UNIX_EPOCH
                            + Duration::new(s, u32::try_from(stat.st_mtime_nsec).unwrap_or(0))
                    });
                    scan.bytes = scan.bytes.saturating_add(len);
                    if record {
                        scan.files
                            .insert(rel.join(&name), (modified, len, stat.st_ino));
                    }
                }
                _ => {}
            }
        }
        drop(dir);
        for name in subdirs {
            let sub_rel = rel.join(&name);
            if record {
                scan.dirs.insert(sub_rel.clone());
            }
            if let Some(sub) = open_dir(fd, &name) {
                walk(&sub, &sub_rel, depth + 1, limit, record, scan);
                if scan.entries > limit {
                    return;
                }
            }
        }
    }

    /// Removes the folder at `rel` under `root` and everything in it, at any depth: each
    /// folder is reached one level at a time from `root` and emptied from its own handle, with
    /// one handle open at a time.
    pub(crate) fn remove_tree(root: &Path, rel: &Path) {
        let mut subdirs = Vec::new();
        {
            let Some(fd) = open_rel(root, rel) else {
                return;
            };
            let Ok(mut dir) = Dir::read_from(&fd) else {
                return;
            };
            while let Some(Ok(entry)) = dir.read() {
                let name = OsStr::from_bytes(entry.file_name().to_bytes()).to_owned();
                if name == "." || name == ".." {
                    continue;
                }
                if rustix::fs::unlinkat(&fd, name.as_os_str(), AtFlags::empty()).is_err() {
                    subdirs.push(name);
                }
            }
        }
        for name in subdirs {
            remove_tree(root, &rel.join(&name));
        }
        if let (Some(parent), Some(last)) = (rel.parent(), rel.file_name())
            && let Some(pfd) = open_rel(root, parent)
        {
            let _ = rustix::fs::unlinkat(&pfd, last, AtFlags::REMOVEDIR);
        }
    }

    fn open_rel(root: &Path, rel: &Path) -> Option<OwnedFd> {
        let mut fd = rustix::fs::openat(
            CWD,
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        for part in rel.iter() {
            fd = open_dir(&fd, part)?;
        }
        Some(fd)
    }

    /// Removes the file at `rel` under `root`, opening one folder at a time.
    pub(crate) fn remove(root: &Path, rel: &Path) {
        let Ok(mut fd) = rustix::fs::openat(
            CWD,
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return;
        };
        let parts: Vec<&OsStr> = rel.iter().collect();
        let Some((file, dirs)) = parts.split_last() else {
            return;
        };
        for d in dirs {
            match open_dir(&fd, d) {
                Some(next) => fd = next,
                None => return,
            }
        }
        let _ = rustix::fs::unlinkat(&fd, *file, AtFlags::empty());
    }
}

#[cfg(not(unix))]
mod imp {
    use std::path::Path;

    use super::Scan;

    pub(crate) fn scan(root: &Path, limit: u64, record: bool) -> Scan {
        let mut scan = Scan::default();
        let mut stack = vec![std::path::PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(root.join(&rel)) else {
                continue;
            };
            for entry in entries.flatten() {
                scan.entries += 1;
                if scan.entries > limit {
                    return scan;
                }
                let Ok(meta) = entry.metadata() else { continue };
                let name = rel.join(entry.file_name());
                if meta.is_dir() {
                    scan.dirs.insert(name.clone());
                    stack.push(name);
                } else if meta.is_file() {
                    scan.bytes = scan.bytes.saturating_add(meta.len());
                    scan.files
                        .insert(name, (meta.modified().ok(), meta.len(), 0));
                }
            }
        }
        scan
    }

    pub(crate) fn remove(root: &Path, rel: &Path) {
        let _ = std::fs::remove_file(root.join(rel));
    }

    pub(crate) fn remove_tree(root: &Path, rel: &Path) {
        let _ = std::fs::remove_dir_all(root.join(rel));
    }
}

pub(crate) use imp::{remove, remove_tree, scan};

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_file_stamped_before_the_scan_is_still_found_and_dotfiles_count() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("old.txt"), "kept").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let before = scan(dir.path(), 100, true);
        // A file whose time lags the scan, as the kernel's coarse clock can make it.
        let file = std::fs::File::create(dir.path().join("sub/new.txt")).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
        drop(file);
        std::fs::write(dir.path().join(".hidden"), "xy").unwrap();
        let after = scan(dir.path(), 100, true);
        assert_eq!(
            changed(&before, &after),
            vec![PathBuf::from(".hidden"), PathBuf::from("sub/new.txt")]
        );
        assert_eq!(after.bytes, 6);
        assert!(hidden(Path::new(".hidden")) && !hidden(Path::new("sub/new.txt")));
        let b = dir.path().join("old.txt");
        std::fs::write(&b, "rewritten").unwrap();
        assert!(changed(&after, &scan(dir.path(), 100, true)).contains(&PathBuf::from("old.txt")));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn files_past_the_host_path_limit_are_counted_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let before = scan(dir.path(), 1_000, true);
        // 30 levels of 200-character names: 6,000 characters, past PATH_MAX.
        let name = "d".repeat(200);
        let mut rel = PathBuf::new();
        for _ in 0..30 {
            rel.push(&name);
        }
        make_deep(dir.path(), &rel);
        let after = scan(dir.path(), 1_000, true);
        assert_eq!(after.bytes, 5, "{after:?}");
        assert!(!after.cut);
        undo(dir.path(), &before, &after);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn too_many_entries_or_levels_cut_the_walk() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..20 {
            std::fs::write(dir.path().join(format!("f{i}")), "").unwrap();
        }
        assert!(scan(dir.path(), 10, false).cut);
        let deep: PathBuf = (0..MAX_DEPTH + 2).map(|_| "a").collect();
        std::fs::create_dir_all(dir.path().join(&deep)).unwrap();
        assert!(scan(dir.path(), 10_000, false).cut);
    }

    #[cfg(target_os = "linux")]
    /// Makes `rel` (folders) under `root` and writes a 5-byte file at its end, one level at a
    /// time (the whole path is too long for one call).
    fn make_deep(root: &Path, rel: &Path) {
        let mut here = root.to_path_buf();
        for part in rel.iter() {
            // Relative creation through /proc/self/fd keeps each call short.
            let fd = std::fs::File::open(&here).unwrap();
            let short = PathBuf::from(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&fd)
            ));
            std::fs::create_dir(short.join(part)).unwrap();
            let next = std::fs::File::open(short.join(part)).unwrap();
            here = PathBuf::from(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&next)
            ));
            std::mem::forget(next);
        }
        std::fs::write(here.join("f.txt"), "12345").unwrap();
    }
}
