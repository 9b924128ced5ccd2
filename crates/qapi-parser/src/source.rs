//! Source files, byte spans and QEMU-style locations.

use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Index of a file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// A byte range in one source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, range: Range<usize>) -> Span {
        Span {
            file,
            start: range.start as u32,
            end: range.end as u32,
        }
    }

    pub fn range(&self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Where an `include` directive pulled a file in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IncludeSite {
    pub file: FileId,
    pub line: u32,
}

/// One schema file as read, with a newline appended when missing (QEMU
/// does the same, which fixes where end-of-file errors point).
#[derive(Debug)]
pub struct SourceFile {
    /// The name used in messages: the root path as given, or an include
    /// path joined to the including file's directory.
    pub name: String,
    /// Absolute, lexically normalized path; identifies repeated includes.
    pub abs_path: PathBuf,
    pub text: Arc<str>,
    pub included_from: Option<IncludeSite>,
    line_starts: Vec<u32>,
}

impl SourceFile {
    pub fn new(name: String, abs_path: PathBuf, mut text: String, included_from: Option<IncludeSite>) -> Self {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let mut line_starts = vec![0u32];
        line_starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i as u32 + 1));
        SourceFile {
            name,
            abs_path,
            text: text.into(),
            included_from,
            line_starts,
        }
    }

    /// 1-based line number of a byte offset.
    pub fn line_of(&self, offset: usize) -> u32 {
        match self.line_starts.binary_search(&(offset as u32)) {
            Ok(i) => i as u32 + 1,
            Err(i) => i as u32,
        }
    }

    /// Byte offset where the 1-based `line` starts.
    pub fn line_start(&self, line: u32) -> usize {
        self.line_starts[(line as usize - 1).min(self.line_starts.len() - 1)] as usize
    }

    /// The text of a 1-based line without its newline.
    pub fn line_text(&self, line: u32) -> &str {
        let start = self.line_start(line);
        let end = self.text[start..].find('\n').map_or(self.text.len(), |i| start + i);
        &self.text[start..end]
    }

    /// 1-based column of a byte offset, counted in characters with tabs
    /// advancing to the next tab stop (every 8 columns).
    pub fn col_of(&self, offset: usize) -> u32 {
        let start = self.line_start(self.line_of(offset));
        self.text[start..offset].chars().fold(1, next_col)
    }
}

/// The 1-based column after character `ch` at column `col`: tabs advance
/// to the next tab stop (every 8 columns).
pub fn next_col(col: u32, ch: char) -> u32 {
    if ch == '\t' {
        (col - 1) / 8 * 8 + 9
    } else {
        col + 1
    }
}

/// All files of one schema, the root first.
#[derive(Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn add(&mut self, file: SourceFile) -> FileId {
        self.files.push(file);
        FileId(self.files.len() as u32 - 1)
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files.iter().enumerate().map(|(i, f)| (FileId(i as u32), f))
    }

    pub fn find_by_abs_path(&self, path: &Path) -> Option<FileId> {
        self.files().find(|(_, f)| f.abs_path == path).map(|(id, _)| id)
    }

    /// The line-level location of a byte offset.
    pub fn line_loc(&self, file: FileId, offset: usize) -> Location {
        Location {
            file,
            line: self.get(file).line_of(offset),
            col: None,
        }
    }

    /// The line-and-column location of a byte offset.
    pub fn col_loc(&self, file: FileId, offset: usize) -> Location {
        let f = self.get(file);
        Location {
            file,
            line: f.line_of(offset),
            col: Some(f.col_of(offset)),
        }
    }
}

/// A place in the schema as QEMU reports it: file and line, plus a column
/// for lexical and syntax errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: FileId,
    pub line: u32,
    pub col: Option<u32>,
}

/// `path` made absolute against the current directory and normalized
/// lexically (like Python's `os.path.abspath`: `..` is resolved without
/// following symlinks).
pub fn lexical_abs_path(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut out = PathBuf::new();
    for comp in joined.components() {
        match comp {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Python's `os.path.join(os.path.dirname(base), rel)` on strings, so that
/// include names in messages look exactly like QEMU's.
pub fn join_include_name(base: &str, rel: &str) -> String {
    if rel.starts_with('/') {
        return rel.to_string();
    }
    let dir = match base.rfind('/') {
        Some(i) => {
            let head = &base[..=i];
            // dirname() strips trailing slashes unless the head is all slashes
            let trimmed = head.trim_end_matches('/');
            if trimmed.is_empty() {
                head.to_string()
            } else {
                trimmed.to_string()
            }
        }
        None => String::new(),
    };
    if dir.is_empty() {
        rel.to_string()
    } else if dir.ends_with('/') {
        format!("{dir}{rel}")
    } else {
        format!("{dir}/{rel}")
    }
}

/// Python's `os.path.relpath(path, start)` for lexically normalized paths.
pub fn relative_name(path: &Path, start: &Path) -> String {
    let p: Vec<_> = path.components().collect();
    let s: Vec<_> = start.components().collect();
    let common = p.iter().zip(&s).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..s.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c.as_os_str());
    }
    if out.as_os_str().is_empty() {
        ".".to_string()
    } else {
        out.to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_tabs_to_next_stop() {
        let f = SourceFile::new("t".into(), "/t".into(), "a\tb\n\t\tc\n".into(), None);
        assert_eq!(f.col_of(0), 1);
        assert_eq!(f.col_of(2), 9);
        assert_eq!(f.col_of(6), 17);
        assert_eq!(f.line_of(6), 2);
    }

    #[test]
    fn include_names_join_like_python() {
        assert_eq!(join_include_name("a.json", "b.json"), "b.json");
        assert_eq!(join_include_name("dir/a.json", "b.json"), "dir/b.json");
        assert_eq!(join_include_name("dir/a.json", "../b.json"), "dir/../b.json");
        assert_eq!(join_include_name("/a.json", "b.json"), "/b.json");
        assert_eq!(join_include_name("x/a.json", "/abs.json"), "/abs.json");
    }

    #[test]
    fn relative_names() {
        assert_eq!(relative_name(Path::new("/a/b/c.json"), Path::new("/a")), "b/c.json");
        assert_eq!(relative_name(Path::new("/a/c.json"), Path::new("/a/b")), "../c.json");
    }
}
