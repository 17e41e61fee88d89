//! A file's metadata, read for backup and given back on restore: its type,
//! permission bits, modification time and (as root) owner. Links are read
//! and made as links, never followed; a restored file's runs of zeros stay
//! holes.

use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use arca_shared::meta::{FileKind, FileMeta, PERMISSION_BITS};
use rustix::fs::{AtFlags, CWD, FileType, Timespec, Timestamps, UTIME_OMIT};
use rustix::io::Errno;

use super::local::{Skip, not_regular};

/// What went wrong reading or applying metadata, and to which file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {why}", path.display())]
pub struct MetaError {
    pub path: PathBuf,
    /// What happened, without the path (for a line that names the file
    /// otherwise, as a [`Skip`] does).
    pub why: String,
}

impl MetaError {
    fn new(path: &Path, why: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            why: why.into(),
        }
    }

    fn io(path: &Path, doing: impl std::fmt::Display, e: impl Into<io::Error>) -> Self {
        Self::new(path, format!("cannot {doing}: {}", e.into()))
    }
}

/// The metadata of a regular file, from its `fstat` (or `lstat`).
pub fn of_file(meta: &Metadata) -> FileMeta {
    recorded(meta, FileKind::File)
}

/// The metadata of what is at `path` itself, a link never followed: a
/// regular file, or a symbolic link and its target. Anything else (a FIFO,
/// a device, a folder) is an error.
pub fn capture(path: &Path) -> Result<FileMeta, MetaError> {
    let meta =
        std::fs::symlink_metadata(path).map_err(|e| MetaError::io(path, "read its metadata", e))?;
    let kind = match FileType::from_raw_mode(meta.mode()) {
        FileType::RegularFile => FileKind::File,
        FileType::Symlink => {
            let target = std::fs::read_link(path).map_err(|e| match e.raw_os_error() {
                // No longer a link: it changed since the lstat.
                Some(code) if code == Errno::INVAL.raw_os_error() => {
                    MetaError::new(path, Skip::changed().0)
                }
                _ => MetaError::io(path, "read the link", e),
            })?;
            FileKind::Symlink {
                target: target.into_os_string().into_vec(),
            }
        }
        other => return Err(MetaError::new(path, not_regular(other).0)),
    };
    Ok(recorded(&meta, kind))
}

fn recorded(meta: &Metadata, kind: FileKind) -> FileMeta {
    let ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    FileMeta {
        kind,
        mode: meta.mode() & PERMISSION_BITS,
        // i64 nanoseconds reach 1677 to 2262; a time beyond is bogus, and
        // kept as the nearest rather than failing the backup.
        mtime_ns: ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
        owner: Some((meta.uid(), meta.gid())),
    }
}

/// Gives the open regular `file` (at `path`, for messages) its owner when
/// root, mode and modification time: a restore applies them to its temp
/// file before renaming it into place, where nothing can swap the file in
/// between.
pub fn apply_to(file: &File, path: &Path, meta: &FileMeta) -> Result<(), MetaError> {
    if let FileKind::Symlink { .. } = meta.kind {
        return Err(MetaError::new(
            path,
            "the backup is a symbolic link, not a regular file",
        ));
    }
    // Owner first: a change of owner can clear the setuid and setgid bits.
    if let Some((uid, gid)) = meta.owner.filter(|_| is_root()) {
        std::os::unix::fs::fchown(file, Some(uid), Some(gid))
            .map_err(|e| MetaError::io(path, format!("set its owner to {uid}:{gid}"), e))?;
    }
    let mode = meta.mode & PERMISSION_BITS;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| MetaError::io(path, format!("set its mode to {mode:o}"), e))?;
    rustix::fs::futimens(file, &modified_at(meta.mtime_ns))
        .map_err(|e| MetaError::io(path, "set its modification time", e))
}

/// What [`restore_symlink`] found to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linked {
    Created,
    /// The same link (same target) was there already; it is left as is.
    AlreadyThere,
}

/// Makes the symbolic link `meta` describes at `path`, with its
/// modification time and, when root, its owner. The link is made beside
/// `path` and renamed into place, whole: something already at `path` is an
/// error unless `force` (a folder is never replaced). Nothing is followed.
pub fn restore_symlink(path: &Path, meta: &FileMeta, force: bool) -> Result<Linked, MetaError> {
    let FileKind::Symlink { target } = &meta.kind else {
        return Err(MetaError::new(
            path,
            "the backup is a regular file, not a symbolic link",
        ));
    };
    let target = OsStr::from_bytes(target);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let made = tempfile::Builder::new()
        .prefix(".arca-link-")
        .make_in(dir, |temp| std::os::unix::fs::symlink(target, temp))
        .map_err(|e| MetaError::io(path, format!("create a link to {target:?}"), e))?
        .into_temp_path();
    // Set on the temp link: a rename keeps the modification time.
    if let Some((uid, gid)) = meta.owner.filter(|_| is_root()) {
        std::os::unix::fs::lchown(&made, Some(uid), Some(gid))
            .map_err(|e| MetaError::io(path, format!("set its owner to {uid}:{gid}"), e))?;
    }
    rustix::fs::utimensat(
        CWD,
        &*made,
        &modified_at(meta.mtime_ns),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| MetaError::io(path, "set its modification time", e))?;
    let placed = if force {
        made.persist(path)
    } else {
        made.persist_noclobber(path)
    };
    match placed {
        Ok(()) => Ok(Linked::Created),
        // The temp link is removed as the error drops.
        Err(e) if !force && e.error.kind() == io::ErrorKind::AlreadyExists => {
            match std::fs::read_link(path) {
                Ok(there) if there.as_os_str() == target => Ok(Linked::AlreadyThere),
                _ => Err(MetaError::new(
                    path,
                    "it exists and is not this link; pass --force to replace it",
                )),
            }
        }
        Err(e) => Err(MetaError::io(path, "put the link in place", e.error)),
    }
}

/// Only root may give files away; others keep them as their own.
fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The modification time `mtime_ns`; the access time is left as the
/// restore's own.
fn modified_at(mtime_ns: i64) -> Timestamps {
    const NS: i64 = 1_000_000_000;
    Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: mtime_ns.div_euclid(NS),
            tv_nsec: mtime_ns.rem_euclid(NS),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mtime_ns(meta: &Metadata) -> i64 {
        meta.mtime() * 1_000_000_000 + meta.mtime_nsec()
    }

    #[test]
    fn a_file_and_a_link_are_captured_and_the_link_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o2751)).unwrap();
        let meta = capture(&file).unwrap();
        let stat = std::fs::metadata(&file).unwrap();
        assert_eq!(
            meta,
            FileMeta {
                kind: FileKind::File,
                mode: 0o2751,
                mtime_ns: mtime_ns(&stat),
                owner: Some((stat.uid(), stat.gid())),
            }
        );
        assert_eq!(of_file(&stat), meta);

        // A dangling link with a name that is not UTF-8: read, not followed.
        let target = b"../nowhere-\xe9".to_vec();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(OsStr::from_bytes(&target), &link).unwrap();
        let meta = capture(&link).unwrap();
        assert_eq!(meta.kind, FileKind::Symlink { target });
        assert_eq!(meta.mtime_ns, mtime_ns(&link.symlink_metadata().unwrap()));
        // A link to a file is the link, not the file.
        let to_file = dir.path().join("to-file");
        std::os::unix::fs::symlink(&file, &to_file).unwrap();
        let target = file.as_os_str().as_bytes().to_vec();
        assert_eq!(
            capture(&to_file).unwrap().kind,
            FileKind::Symlink { target }
        );

        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(CWD, &fifo, FileType::Fifo, rustix::fs::Mode::RUSR, 0).unwrap();
        let e = capture(&fifo).unwrap_err();
        assert!(e.to_string().contains("fifo: it is a FIFO"), "{e}");
        assert!(capture(dir.path()).is_err());
        let e = capture(&dir.path().join("missing")).unwrap_err();
        assert!(e.why.starts_with("cannot read its metadata"), "{e}");
    }

    #[test]
    fn a_restored_file_gets_its_mode_time_and_as_root_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("restored");
        std::fs::write(&path, "x").unwrap();
        let meta = FileMeta {
            kind: FileKind::File,
            mode: 0o4750,
            // Before the epoch, with nanoseconds.
            mtime_ns: -1_234_567_891,
            owner: Some((4321, 8765)),
        };
        let open = || File::open(&path).unwrap();
        apply_to(&open(), &path, &meta).unwrap();
        let stat = std::fs::metadata(&path).unwrap();
        assert_eq!(stat.mode() & 0o7777, 0o4750);
        assert_eq!(mtime_ns(&stat), -1_234_567_891);
        if is_root() {
            assert_eq!((stat.uid(), stat.gid()), (4321, 8765));
        } else {
            assert_eq!(stat.uid(), rustix::process::geteuid().as_raw());
        }
        assert_eq!(capture(&path).unwrap().mode, 0o4750);

        // Mode bits beyond the permissions are not applied.
        let wide = FileMeta {
            mode: 0o100644,
            mtime_ns: 1_700_000_000_000_000_001,
            ..meta.clone()
        };
        apply_to(&open(), &path, &wide).unwrap();
        let stat = std::fs::metadata(&path).unwrap();
        assert_eq!(stat.mode() & 0o7777, 0o644);
        assert_eq!(mtime_ns(&stat), 1_700_000_000_000_000_001);
    }

    #[test]
    fn a_link_is_never_applied_to_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let as_link = FileMeta {
            kind: FileKind::Symlink {
                target: b"x".to_vec(),
            },
            mode: 0o777,
            mtime_ns: 0,
            owner: None,
        };
        let e = apply_to(&File::open(&file).unwrap(), &file, &as_link).unwrap_err();
        assert!(e.why.contains("is a symbolic link"), "{e}");
    }

    fn link_meta(target: &[u8]) -> FileMeta {
        FileMeta {
            kind: FileKind::Symlink {
                target: target.to_vec(),
            },
            mode: 0o777,
            mtime_ns: 1_600_000_000_123_456_789,
            owner: Some((4321, 8765)),
        }
    }

    /// The names in `dir`, to see that no temp link is left behind.
    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_link_is_restored_as_a_link_with_its_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("link");
        let meta = link_meta(b"../elsewhere/\xe9");
        assert_eq!(
            restore_symlink(&path, &meta, false).unwrap(),
            Linked::Created
        );
        let stat = path.symlink_metadata().unwrap();
        assert!(stat.file_type().is_symlink());
        assert_eq!(mtime_ns(&stat), meta.mtime_ns);
        if is_root() {
            assert_eq!((stat.uid(), stat.gid()), (4321, 8765));
        }
        // What a backup of it reads is what was restored.
        let again = capture(&path).unwrap();
        assert_eq!(again.kind, meta.kind);
        assert_eq!(again.mtime_ns, meta.mtime_ns);
        // Restoring it again finds it there.
        assert_eq!(
            restore_symlink(&path, &meta, false).unwrap(),
            Linked::AlreadyThere
        );
        assert_eq!(listing(dir.path()), ["link"]);
        let file_meta = FileMeta {
            kind: FileKind::File,
            ..meta
        };
        assert!(restore_symlink(&dir.path().join("other"), &file_meta, false).is_err());
    }

    #[test]
    fn a_link_replaces_something_else_only_with_force_and_never_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("name");
        std::fs::write(&path, "keep me").unwrap();
        let meta = link_meta(b"target");
        let e = restore_symlink(&path, &meta, false).unwrap_err();
        assert!(e.why.contains("--force"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
        // A different link is something else too.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("other", &link).unwrap();
        assert!(restore_symlink(&link, &meta, false).is_err());
        assert_eq!(listing(dir.path()), ["link", "name"]);

        assert_eq!(
            restore_symlink(&path, &meta, true).unwrap(),
            Linked::Created
        );
        assert_eq!(std::fs::read_link(&path).unwrap(), Path::new("target"));

        let folder = dir.path().join("folder");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("inside"), "x").unwrap();
        let e = restore_symlink(&folder, &meta, true).unwrap_err();
        assert!(e.why.starts_with("cannot put the link in place"), "{e}");
        assert!(folder.join("inside").exists());
        assert_eq!(listing(dir.path()), ["folder", "link", "name"]);
    }
}
