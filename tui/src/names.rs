//! From local paths to catalog names and back.

use std::ffi::OsStr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use arca_shared::name;
use rustix::fs::{AtFlags, CWD, Dir, FileType, Mode, OFlags};

use crate::client::{Skip, not_regular};

/// What a walk found: regular files and symbolic links with their catalog
/// names, and what it passed over.
#[derive(Debug, Default)]
pub struct Walked {
    pub files: Vec<Found>,
    pub skipped: Vec<Skipped>,
}

/// Something to back up, a regular file or a symbolic link (backed up as
/// the link itself, never followed): where it is and its catalog name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    pub name: String,
}

/// Something not backed up, named for people: its catalog name or, when it
/// has no valid one, its path (quoted, escapes and all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub what: String,
    pub why: Skip,
    /// Whether a file meant to be backed up was left out. Special files are
    /// never backed up, so passing one over is not a loss.
    pub partial: bool,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.why)
    }
}

/// Every regular file and symbolic link under the argument `root` (itself,
/// if it is a file), sorted, with its catalog name: relative to the files
/// folder when inside it, else relative to the argument's parent (so `put
/// /tmp/x.txt` is `x.txt`). Paths come back absolute. No symbolic link is
/// followed below `root`: a link is found as a link (one to a folder is not
/// entered), and a folder replaced by a link while it is walked is not
/// entered either. A name that cannot be a catalog name is skipped, as is a
/// folder that cannot be read. Only a `root` that cannot be found is an
/// error.
pub fn files_to_back_up(files: &Path, root: &Path) -> Result<Walked, String> {
    let root = absolute(root)?;
    let base = match absolute(files) {
        Ok(files) if root.starts_with(&files) => files,
        _ => root
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| root.clone()),
    };
    let meta = std::fs::symlink_metadata(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let mut walked = Walked::default();
    let relative = root.strip_prefix(&base).unwrap_or(Path::new(""));
    let mut prefix = String::new();
    for part in relative {
        match child_name(&prefix, part) {
            Ok(name) => prefix = name,
            Err(why) => {
                walked.skip(&root, None, why, true);
                return Ok(walked);
            }
        }
    }
    if meta.is_dir() {
        let dir = open_folder(CWD, root.as_os_str())
            .map_err(|e| format!("{}: {}", root.display(), std::io::Error::from(e)))?;
        walk(dir, &root, &prefix, &mut walked);
    } else if meta.is_file() {
        walked.found(root, prefix);
    } else {
        walked.skip(&root, Some(&prefix), not_regular(file_type(&meta)), false);
    }
    Ok(walked)
}

impl Walked {
    fn found(&mut self, path: PathBuf, name: String) {
        self.files.push(Found { path, name });
    }

    fn skip(&mut self, path: &Path, name: Option<&str>, why: Skip, partial: bool) {
        let what = name.map_or_else(|| format!("{path:?}"), str::to_owned);
        self.skipped.push(Skipped { what, why, partial });
    }
}

fn file_type(meta: &std::fs::Metadata) -> FileType {
    use std::os::unix::fs::MetadataExt;
    FileType::from_raw_mode(meta.mode())
}

/// The catalog name of `part` inside the folder named `prefix` ("" at the
/// top), if it can be one.
fn child_name(prefix: &str, part: &OsStr) -> Result<String, Skip> {
    let part = part
        .to_str()
        .ok_or_else(|| Skip("its name is not valid UTF-8".into()))?;
    let name = if prefix.is_empty() {
        part.to_owned()
    } else {
        format!("{prefix}/{part}")
    };
    name::validate(&name).map_err(|e| Skip(format!("it cannot be backed up: {e}")))?;
    Ok(name)
}

/// Opens a folder to list it, relative to its parent; a link there (one
/// that replaced the folder since it was listed) is refused, not followed.
fn open_folder(parent: BorrowedFd<'_>, part: &OsStr) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(parent, part, flags, Mode::empty())
}

/// Adds every regular file and link under the open folder `dir` (at `path`,
/// named `prefix`), in name order. Each subfolder is opened relative to its
/// parent with `O_NOFOLLOW`: a folder swapped for a link is not entered.
fn walk(dir: OwnedFd, path: &Path, prefix: &str, walked: &mut Walked) {
    let mut dir = match Dir::new(dir) {
        Ok(dir) => dir,
        Err(e) => {
            return walked.skip(
                path,
                Some(prefix),
                Skip::from(std::io::Error::from(e)),
                true,
            );
        }
    };
    let mut entries: Vec<(Vec<u8>, FileType)> = Vec::new();
    for entry in dir.by_ref() {
        match entry {
            Ok(entry) => {
                let name = entry.file_name().to_bytes();
                if name != b"." && name != b".." {
                    entries.push((name.to_vec(), entry.file_type()));
                }
            }
            Err(e) => {
                let why = Skip(format!(
                    "cannot list this folder: {}",
                    std::io::Error::from(e)
                ));
                return walked.skip(path, Some(prefix), why, true);
            }
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let Ok(fd) = dir.fd() else {
        return;
    };
    for (part, mut kind) in entries {
        let part = OsStr::from_bytes(&part);
        let child = path.join(part);
        if kind == FileType::Unknown {
            // Some file systems do not say in the listing.
            kind = rustix::fs::statat(fd, part, AtFlags::SYMLINK_NOFOLLOW)
                .map_or(FileType::Unknown, |st| FileType::from_raw_mode(st.st_mode));
        }
        let name = child_name(prefix, part);
        match (kind, name) {
            (FileType::RegularFile | FileType::Directory | FileType::Symlink, Err(why)) => {
                walked.skip(&child, None, why, true)
            }
            (FileType::RegularFile | FileType::Symlink, Ok(name)) => walked.found(child, name),
            (FileType::Directory, Ok(name)) => match open_folder(fd, part) {
                Ok(sub) => walk(sub, &child, &name, walked),
                Err(e) => {
                    let why = Skip::from(std::io::Error::from(e));
                    walked.skip(&child, Some(&name), why, true);
                }
            },
            (kind, name) => walked.skip(&child, name.ok().as_deref(), not_regular(kind), false),
        }
    }
}

/// Where a catalog name lands under a folder, for reading what is there.
pub fn local_path(root: &Path, name: &str) -> PathBuf {
    name.split('/')
        .fold(root.to_owned(), |path, part| path.join(part))
}

/// Where a restored name is written under `root`. The name comes from the
/// manager, which the client does not take on trust: it must be a valid
/// catalog name (relative, no '..', no backslash or control character), and
/// no folder it passes through under `root` may be a symbolic link, which
/// could lead out of `root`. (A link put there while the restore runs is
/// the local user's own doing, not the network's.)
pub fn restore_path(root: &Path, name: &str) -> Result<PathBuf, String> {
    name::validate(name).map_err(|e| format!("refusing to restore {name:?}: {e}"))?;
    let mut path = root.to_owned();
    let mut parts = name.split('/').peekable();
    while let Some(part) = parts.next() {
        path.push(part);
        let is_folder = parts.peek().is_some();
        if is_folder && path.symlink_metadata().is_ok_and(|m| m.is_symlink()) {
            return Err(format!(
                "refusing to restore {name}: {} is a symbolic link, which could lead outside {}; \
                 remove it or restore elsewhere with -o",
                path.display(),
                root.display()
            ));
        }
    }
    Ok(path)
}

fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_relative_to_the_files_folder_or_the_argument() {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("files");
        std::fs::create_dir_all(files.join("docs")).unwrap();
        std::fs::write(files.join("docs/a b.txt"), "x").unwrap();
        let outside = dir.path().join("elsewhere");
        std::fs::create_dir_all(outside.join("sub")).unwrap();
        std::fs::write(outside.join("sub/c.txt"), "x").unwrap();

        let names = |root: &Path| -> Vec<String> {
            files_to_back_up(&files, root)
                .unwrap()
                .files
                .into_iter()
                .map(|f| f.name)
                .collect()
        };
        assert_eq!(names(&files.join("docs/a b.txt")), ["docs/a b.txt"]);
        assert_eq!(names(&files), ["docs/a b.txt"]);
        assert_eq!(names(&outside.join("sub/c.txt")), ["c.txt"]);
        assert_eq!(names(&outside), ["elsewhere/sub/c.txt"]);
        assert!(files_to_back_up(&files, &dir.path().join("missing")).is_err());
        assert_eq!(local_path(Path::new("/r"), "a/b"), Path::new("/r/a/b"));
    }

    use std::os::fd::AsFd;

    #[test]
    fn unacceptable_names_are_skipped_one_by_one_and_the_rest_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("files");
        let write = |path: &Path| {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        };
        write(&files.join("ok.txt"));
        for bad in ["back\\slash", "new\nline", "tab\there"] {
            write(&files.join(bad));
        }
        write(&files.join(OsStr::from_bytes(b"latin-\xe9.txt")));
        // One folder with a bad name: one line for it, not one per file.
        write(&files.join("bad\tfolder/a"));
        write(&files.join("bad\tfolder/b"));
        // Over-long: every part is fine, the whole is over the limit.
        let long: PathBuf = (0..4).map(|i| format!("{i}{}", "d".repeat(240))).collect();
        write(
            &files
                .join(&long)
                .join(format!("deep{}.txt", "f".repeat(80))),
        );

        let walked = files_to_back_up(&files, &files).unwrap();
        let names: Vec<&str> = walked.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["ok.txt"]);
        let said: Vec<String> = walked.skipped.iter().map(|s| s.to_string()).collect();
        assert_eq!(said.len(), 6, "{said:#?}");
        assert!(walked.skipped.iter().all(|s| s.partial));
        for (what, why) in [
            ("back\\\\slash", "backslash"),
            ("new\\nline", "control character"),
            ("tab\\there", "control character"),
            ("latin-\\xE9.txt", "not valid UTF-8"),
            ("bad\\tfolder", "control character"),
            ("deepfff", "longer than"),
        ] {
            assert!(
                said.iter().any(|s| s.contains(what) && s.contains(why)),
                "no line for {what}: {said:#?}"
            );
        }
    }

    #[test]
    fn links_are_found_as_links_never_followed_and_special_files_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("files");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(files.join("real")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(files.join("real/a.txt"), "a").unwrap();
        std::fs::write(outside.join("secret.txt"), "s").unwrap();
        std::os::unix::fs::symlink(&outside, files.join("folder-link")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret.txt"), files.join("file-link")).unwrap();
        // Within the tree, dangling, and with a name no catalog takes.
        std::os::unix::fs::symlink("a.txt", files.join("real/inner-link")).unwrap();
        std::os::unix::fs::symlink("nowhere", files.join("dangling")).unwrap();
        std::os::unix::fs::symlink("a.txt", files.join("bad\tlink")).unwrap();
        rustix::fs::mknodat(CWD, files.join("fifo"), FileType::Fifo, Mode::RUSR, 0).unwrap();

        let walked = files_to_back_up(&files, &files).unwrap();
        let found: Vec<(&str, bool)> = walked
            .files
            .iter()
            .map(|f| (f.name.as_str(), f.path.is_symlink()))
            .collect();
        let (file, link) = (false, true);
        // Nothing of `outside` comes through folder-link.
        assert_eq!(
            found,
            [
                ("dangling", link),
                ("file-link", link),
                ("folder-link", link),
                ("real/a.txt", file),
                ("real/inner-link", link),
            ]
        );
        // The path is the link's own, not its target's.
        assert_eq!(walked.files[2].path, files.join("folder-link"));
        let said: Vec<String> = walked.skipped.iter().map(|s| s.to_string()).collect();
        assert_eq!(said.len(), 2, "{said:#?}");
        assert!(said[0].contains("bad\\tlink") && said[0].contains("control character"));
        assert!(walked.skipped[0].partial, "a link meant to be backed up");
        // Never backed up by design, so not a partial backup.
        assert_eq!(said[1], "fifo: it is a FIFO, not a regular file");
        assert!(!walked.skipped[1].partial);

        // A folder swapped for a link after it was listed as a folder: the
        // walk enters folders only through this, which refuses the link.
        let top = open_folder(CWD, files.as_os_str()).unwrap();
        assert!(open_folder(top.as_fd(), OsStr::new("real")).is_ok());
        std::fs::remove_dir_all(files.join("real")).unwrap();
        std::os::unix::fs::symlink(&outside, files.join("real")).unwrap();
        assert!(open_folder(top.as_fd(), OsStr::new("real")).is_err());
    }

    #[test]
    fn restored_names_cannot_leave_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&target).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, target.join("link")).unwrap();
        assert_eq!(
            restore_path(&target, "a/b.txt").unwrap(),
            target.join("a/b.txt")
        );
        for hostile in [
            "../escape",
            "a/../../escape",
            "/etc/passwd",
            "a\\..\\..\\x",
            "",
            "a//b",
            "a/./b",
            "link/inside.txt",
            "link/deeper/inside.txt",
        ] {
            assert!(
                restore_path(&target, hostile).is_err(),
                "{hostile:?} was let through"
            );
        }
        // A link as the last part is replaced by the restore, not written through.
        assert_eq!(restore_path(&target, "link").unwrap(), target.join("link"));
    }
}
