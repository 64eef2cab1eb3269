//! Reading the files an operator points the gate at (configuration, keys,
//! secrets, certificates, the workspaces file) without hanging and without
//! unbounded work: only regular files are read (a FIFO or device given by
//! mistake would block `check-config` and `serve` forever), each up to a
//! size limit, and YAML is refused before parsing when its flow
//! collections nest deeper than any configuration needs (the parser spends
//! quadratic time on deep nesting before its own recursion limit).

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Configuration, keys, secrets and certificates.
pub const SMALL: u64 = 1 << 20;
/// The workspaces file (tens of thousands of workspaces).
pub const LARGE: u64 = 64 << 20;

/// Deeper `[` / `{` nesting than this is refused.
pub const MAX_YAML_NESTING: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a regular file (a FIFO, socket, device or directory)")]
    NotRegular,
    #[error("larger than {0} bytes")]
    TooLarge(u64),
    #[error("not UTF-8 text")]
    NotText,
    #[error("YAML nested deeper than {MAX_YAML_NESTING} levels")]
    TooDeep,
}

/// The bytes of the regular file at `path`, at most `limit` of them.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    // Opened without blocking: opening a FIFO for reading would otherwise
    // wait for a writer. The type is then checked on the opened file.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(FileError::NotRegular);
    }
    if meta.len() > limit {
        return Err(FileError::TooLarge(limit));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // A file that grows while read is still bounded.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(FileError::TooLarge(limit));
    }
    Ok(bytes)
}

/// [`read`] as UTF-8 text.
pub fn read_text(path: &Path, limit: u64) -> Result<String, FileError> {
    String::from_utf8(read(path, limit)?).map_err(|_| FileError::NotText)
}

/// Refuses YAML whose flow collections nest deeper than
/// [`MAX_YAML_NESTING`]. Quoted scalars and comments are skipped, so a `[`
/// inside a string does not count; block nesting is bounded by the
/// parser's own limit, which it reaches in linear time.
pub fn check_yaml_nesting(text: &str) -> Result<(), FileError> {
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut comment = false;
    let mut prev = b'\n';
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match (quote, comment) {
            (_, true) => comment = b != b'\n',
            (Some(b'\''), _) if b == b'\'' => {
                // '' is an escaped quote inside a single-quoted scalar.
                if bytes.get(i + 1) == Some(&b'\'') {
                    i += 1;
                } else {
                    quote = None;
                }
            }
            (Some(b'"'), _) if b == b'\\' => i += 1,
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, false) => match b {
                b'#' if prev.is_ascii_whitespace() => comment = true,
                b'"' | b'\'' => quote = Some(b),
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_YAML_NESTING {
                        return Err(FileError::TooDeep);
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        prev = b;
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing() {
        let deep = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        let started = std::time::Instant::now();
        assert!(matches!(check_yaml_nesting(&deep), Err(FileError::TooDeep)));
        // Linear: a bound only against a quadratic regression.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let ok = format!("a: {}{}", "[".repeat(64), "]".repeat(64));
        assert!(check_yaml_nesting(&ok).is_ok());
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let text = format!(
            "a: \"{}\"\nb: '{}'' x'\nc: 1 # {}\nd: it's {}\n",
            "[".repeat(100),
            "{".repeat(100),
            "[".repeat(100),
            "fine"
        );
        assert!(check_yaml_nesting(&text).is_ok(), "{text}");
    }

    #[test]
    fn only_regular_files_are_read() {
        let dir = std::env::temp_dir().join(format!("wg-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(
            made.is_ok_and(|s| s.success()),
            "mkfifo (coreutils) is needed"
        );
        // Returns at once instead of waiting for a writer.
        assert!(matches!(read(&fifo, SMALL), Err(FileError::NotRegular)));
        assert!(matches!(
            read(&dir, SMALL),
            Err(FileError::NotRegular) | Err(FileError::Io(_))
        ));
        let big = dir.join("big");
        std::fs::write(&big, vec![b'a'; 100]).unwrap();
        assert!(matches!(read(&big, 99), Err(FileError::TooLarge(99))));
        assert_eq!(read(&big, 100).unwrap().len(), 100);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
