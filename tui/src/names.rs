//! From local paths to catalog names and back.

use std::path::{Path, PathBuf};

use arca_shared::name;

/// The catalog name of `file`, found while walking the argument `root`:
/// relative to the files folder when inside it, else relative to the
/// argument's parent (so `put /tmp/x.txt` is `x.txt`).
pub fn catalog_name(files: &Path, root: &Path, file: &Path) -> Result<String, String> {
    let file_abs = absolute(file)?;
    let base = match absolute(files) {
        Ok(files) if file_abs.starts_with(&files) => files,
        _ => {
            let root = absolute(root)?;
            root.parent().map(Path::to_owned).unwrap_or(root)
        }
    };
    let relative = file_abs
        .strip_prefix(&base)
        .map_err(|_| format!("{} is outside {}", file.display(), base.display()))?;
    let parts: Option<Vec<&str>> = relative.iter().map(|p| p.to_str()).collect();
    let name = parts
        .ok_or_else(|| format!("{}: the name is not valid UTF-8", file.display()))?
        .join("/");
    name::validate(&name).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(name)
}

/// Where a catalog name lands under a folder.
pub fn local_path(root: &Path, name: &str) -> PathBuf {
    name.split('/')
        .fold(root.to_owned(), |path, part| path.join(part))
}

fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every regular file under `path` (itself, if it is one), sorted.
pub fn walk(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut found = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for entry in entries {
        if entry.is_dir() || entry.is_file() {
            found.extend(walk(&entry)?);
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

        let inside = files.join("docs/a b.txt");
        assert_eq!(
            catalog_name(&files, &inside, &inside).unwrap(),
            "docs/a b.txt"
        );
        let c = outside.join("sub/c.txt");
        assert_eq!(catalog_name(&files, &c, &c).unwrap(), "c.txt");
        assert_eq!(
            catalog_name(&files, &outside, &c).unwrap(),
            "elsewhere/sub/c.txt"
        );
        assert_eq!(walk(&files).unwrap(), [inside]);
        assert_eq!(local_path(Path::new("/r"), "a/b"), Path::new("/r/a/b"));
    }
}
