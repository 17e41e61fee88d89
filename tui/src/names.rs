//! From local paths to catalog names and back.

use std::path::{Path, PathBuf};

use arca_shared::name;

/// Every regular file under the argument `root` (itself, if it is a file),
/// sorted, with its catalog name: relative to the files folder when inside
/// it, else relative to the argument's parent (so `put /tmp/x.txt` is
/// `x.txt`). Paths come back absolute.
pub fn files_to_back_up(files: &Path, root: &Path) -> Result<Vec<(PathBuf, String)>, String> {
    let root = absolute(root)?;
    let base = match absolute(files) {
        Ok(files) if root.starts_with(&files) => files,
        _ => root
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| root.clone()),
    };
    let mut found = Vec::new();
    for file in walk(&root)? {
        let relative = file
            .strip_prefix(&base)
            .map_err(|_| format!("{} is outside {}", file.display(), base.display()))?;
        let parts: Option<Vec<&str>> = relative.iter().map(|p| p.to_str()).collect();
        let name = parts
            .ok_or_else(|| format!("{}: the name is not valid UTF-8", file.display()))?
            .join("/");
        name::validate(&name).map_err(|e| format!("{}: {e}", file.display()))?;
        found.push((file, name));
    }
    Ok(found)
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

/// Every regular file under `path` (itself, if it is one), sorted; symbolic
/// links are not followed.
fn walk(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut entries: Vec<(PathBuf, std::fs::FileType)> = std::fs::read_dir(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_type().ok().map(|t| (e.path(), t)))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut found = Vec::new();
    for (entry, kind) in entries {
        if kind.is_dir() {
            found.extend(walk(&entry)?);
        } else if kind.is_file() {
            found.push(entry);
        }
    }
    Ok(found)
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
                .into_iter()
                .map(|(_, n)| n)
                .collect()
        };
        assert_eq!(names(&files.join("docs/a b.txt")), ["docs/a b.txt"]);
        assert_eq!(names(&files), ["docs/a b.txt"]);
        assert_eq!(names(&outside.join("sub/c.txt")), ["c.txt"]);
        assert_eq!(names(&outside), ["elsewhere/sub/c.txt"]);
        assert!(files_to_back_up(&files, &dir.path().join("missing")).is_err());
        assert_eq!(local_path(Path::new("/r"), "a/b"), Path::new("/r/a/b"));
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
