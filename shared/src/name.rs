//! Catalog names: '/'-separated relative paths that can never escape a folder.

use crate::limits::NAME_MAX;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is empty")]
    Empty,
    #[error("name is longer than {NAME_MAX} bytes")]
    TooLong,
    #[error("name must be relative, not start with '/'")]
    Absolute,
    #[error("name has an empty, '.' or '..' component")]
    BadComponent,
    #[error("name contains a NUL, a backslash or a control character")]
    BadCharacter,
}

/// Checks that `name` is a safe relative path: every daemon and the client
/// call this independently, so no single bug lets a name escape a data folder.
pub fn validate(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > NAME_MAX {
        return Err(NameError::TooLong);
    }
    if name.starts_with('/') {
        return Err(NameError::Absolute);
    }
    if name.chars().any(|c| c == '\\' || c.is_control()) {
        return Err(NameError::BadCharacter);
    }
    if name
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(NameError::BadComponent);
    }
    Ok(())
}

/// Checks a folder prefix such as `photos/` (a name followed by one '/').
pub fn validate_prefix(prefix: &str) -> Result<(), NameError> {
    validate(prefix.strip_suffix('/').unwrap_or(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in ["a", "docs/report.pdf", "with space/ünï cödé.txt", ".hidden"] {
            assert_eq!(validate(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn rejects_escapes_and_junk() {
        let long = "a".repeat(NAME_MAX + 1);
        let cases = [
            ("", NameError::Empty),
            (long.as_str(), NameError::TooLong),
            ("/etc/passwd", NameError::Absolute),
            ("../x", NameError::BadComponent),
            ("a/../../x", NameError::BadComponent),
            ("a//b", NameError::BadComponent),
            ("a/./b", NameError::BadComponent),
            ("a/", NameError::BadComponent),
            ("a\\b", NameError::BadCharacter),
            ("a\0b", NameError::BadCharacter),
            ("a\nb", NameError::BadCharacter),
        ];
        for (name, want) in cases {
            assert_eq!(validate(name), Err(want), "{name:?}");
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(validate_prefix("photos/"), Ok(()));
        assert!(validate_prefix("../").is_err());
    }
}
