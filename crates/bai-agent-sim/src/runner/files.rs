//! The file methods of the local runner on a kernel's scratch folder, which stands for the
//! container's `/home/work`: `upload_file`, `download_file` (a tar archive, as Docker's
//! `get_archive`), `download_single` (the file's bytes) and `list_files` (the Docker agent's
//! answer `{"files": json text, "errors": text, "abspath": path}`). A path that leaves
//! `/home/work` is refused with the Docker agent's `PermissionError`, also through a symbolic
//! link; this module must not touch anything outside the folder.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::methods::{Answer, failure};

/// The container's home folder the paths of the file methods are relative to.
const CONTAINER_HOME: &str = "/home/work";

/// The largest archive `download_file` and `download_single` give (the Docker agent's limit).
const ARCHIVE_LIMIT: u64 = 1 << 20;

/// `container_path` (absolute under `/home/work`, or relative to it) as a path in `home`;
/// `Err(())` when it leaves `/home/work`, lexically or through a link.
fn resolve(home: &Path, container_path: &str) -> Result<PathBuf, ()> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    let joined = Path::new(CONTAINER_HOME).join(container_path);
    for component in joined.components() {
        match component {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                parts.pop();
            }
            Component::Normal(part) => parts.push(part),
        }
    }
    let inside = parts
        .strip_prefix(&[std::ffi::OsStr::new("home"), std::ffi::OsStr::new("work")][..])
        .ok_or(())?;
    let mut path = home.to_path_buf();
    path.extend(inside);
    // A link inside the folder may point out of it: the deepest existing ancestor decides.
    let home_real = fs::canonicalize(home).map_err(|_| ())?;
    let mut existing = path.as_path();
    loop {
        match fs::canonicalize(existing) {
            Ok(real) if real.starts_with(&home_real) => return Ok(path),
            Ok(_) => return Err(()),
            Err(_) => existing = existing.parent().ok_or(())?,
        }
    }
}

/// [`resolve`], a path leaving `/home/work` refused with the Docker agent's `PermissionError`
/// saying `refusal`.
fn resolve_or_refuse(home: &Path, container_path: &str, refusal: &str) -> Result<PathBuf, Answer> {
    resolve(home, container_path).map_err(|()| failure("PermissionError", refusal))
}

/// The path in `home` of a download's `filepath`, and its `/home/work/...` for messages.
fn download_path(home: &Path, filepath: &str) -> Result<(PathBuf, String), Answer> {
    let path = resolve_or_refuse(
        home,
        filepath,
        "You cannot download files outside /home/work",
    )?;
    let abspath = container_abspath(home, &path);
    Ok((path, abspath))
}

/// The Docker agent's failure of a download of something that is not there.
fn download_failed(abspath: &str) -> Answer {
    failure(
        "RuntimeError",
        &format!("Could not download the archive to: {abspath}"),
    )
}

/// `/home/work/...` of a path under `home`, for messages.
fn container_abspath(home: &Path, path: &Path) -> String {
    let inside = path.strip_prefix(home).unwrap_or(path);
    if inside.as_os_str().is_empty() {
        CONTAINER_HOME.to_owned()
    } else {
        format!("{CONTAINER_HOME}/{}", inside.display())
    }
}

/// `upload_file(kernel_id, filename, filedata)`.
pub fn upload(home: &Path, kernel_id: &str, filename: &str, data: &[u8]) -> Result<(), Answer> {
    let path = resolve_or_refuse(
        home,
        filename,
        "Not allowed to upload files outside /home/work",
    )?;
    let write = || -> io::Result<()> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, data)
    };
    write().map_err(|error| {
        failure(
            "RuntimeError",
            &format!(
                "{kernel_id}: writing uploaded file failed: {filename} -> {} ({error})",
                path.display()
            ),
        )
    })
}

/// `download_file(kernel_id, filepath)`: a tar archive of the file or folder, its entries named
/// from the path's last component as Docker names them.
pub fn download(home: &Path, filepath: &str) -> Result<Vec<u8>, Answer> {
    let (path, abspath) = download_path(home, filepath)?;
    let not_found = || download_failed(&abspath);
    let metadata = fs::symlink_metadata(&path).map_err(|_| not_found())?;
    let name = path
        .file_name()
        .map_or_else(|| "work".into(), |name| name.to_os_string());
    let mut size = 0;
    archive_size(&path, &metadata, &mut size).map_err(|_| not_found())?;
    if size > ARCHIVE_LIMIT {
        return Err(too_large());
    }
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    let appended = if metadata.is_dir() {
        builder.append_dir_all(&name, &path)
    } else {
        builder.append_path_with_name(&path, &name)
    };
    let archive = appended
        .and_then(|()| builder.into_inner())
        .map_err(|_| not_found())?;
    if archive.len() as u64 > ARCHIVE_LIMIT {
        return Err(too_large());
    }
    Ok(archive)
}

fn too_large() -> Answer {
    failure("ValueError", "Too large archive file exceeding 1 MiB")
}

/// Adds the archive size of `path` (512-byte headers and padded contents) to `size`, stopping
/// early past the limit.
fn archive_size(path: &Path, metadata: &fs::Metadata, size: &mut u64) -> io::Result<()> {
    *size += 512;
    if metadata.is_file() {
        *size += metadata.len().div_ceil(512) * 512;
    } else if metadata.is_dir() {
        for entry in fs::read_dir(path)? {
            if *size > ARCHIVE_LIMIT {
                return Ok(());
            }
            let entry = entry?;
            archive_size(&entry.path(), &fs::symlink_metadata(entry.path())?, size)?;
        }
    }
    Ok(())
}

/// `download_single(kernel_id, filepath)`: the bytes of one file.
pub fn download_single(home: &Path, filepath: &str) -> Result<Vec<u8>, Answer> {
    let (path, abspath) = download_path(home, filepath)?;
    let metadata = fs::metadata(&path).map_err(|_| download_failed(&abspath))?;
    if metadata.is_dir() {
        let empty = fs::read_dir(&path)
            .map(|mut entries| entries.next().is_none())
            .unwrap_or(true);
        let name = path.file_name().map_or_else(
            || "work".to_owned(),
            |name| name.to_string_lossy().into_owned(),
        );
        return Err(if empty {
            failure(
                "ValueError",
                &format!("Could not read {name:?} the archive file {abspath}"),
            )
        } else {
            failure(
                "ValueError",
                &format!("Expected a single-file archive but found multiple files from {abspath}"),
            )
        });
    }
    if metadata.len() + 1024 > ARCHIVE_LIMIT {
        return Err(too_large());
    }
    fs::read(&path).map_err(|error| {
        failure(
            "RuntimeError",
            &format!("Could not download the archive to: {abspath} ({error})"),
        )
    })
}

/// `list_files(kernel_id, path)`: the Docker agent's answer, the entries as the JSON its
/// in-container script prints (Python's `json.dumps`), a failure of the listing as the script's
/// error output, and `abspath` the path as asked.
pub fn list(home: &Path, container_path: &str) -> Result<serde_json::Value, Answer> {
    let path = resolve_or_refuse(
        home,
        container_path,
        "You cannot list files outside /home/work",
    )?;
    let (files, errors) = match list_entries(&path) {
        Ok(files) => (files, String::new()),
        Err(error) => (
            String::new(),
            format!(
                "Traceback (most recent call last):\n  File \"<string>\", line 9, in <module>\n\
                 {}: [Errno {}] {}: '{}'\n",
                python_error_class(&error),
                error.raw_os_error().unwrap_or(0),
                errno_text(&error),
                container_abspath(home, &path)
            ),
        ),
    };
    Ok(serde_json::json!({"files": files, "errors": errors, "abspath": container_path}))
}

fn list_entries(path: &Path) -> io::Result<String> {
    let mut items = Vec::new();
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        let metadata = fs::symlink_metadata(entry.path())?;
        let time = |seconds: i64, nanos: i64| seconds as f64 + nanos as f64 / 1e9;
        items.push(format!(
            "{{\"mode\": {}, \"size\": {}, \"ctime\": {}, \"mtime\": {}, \"atime\": {}, \
             \"filename\": {}}}",
            json_text(&filemode(metadata.permissions().mode())),
            metadata.len(),
            python_float(time(metadata.ctime(), metadata.ctime_nsec())),
            python_float(time(metadata.mtime(), metadata.mtime_nsec())),
            python_float(time(metadata.atime(), metadata.atime_nsec())),
            json_text(&entry.file_name().to_string_lossy()),
        ));
    }
    Ok(format!("[{}]", items.join(", ")))
}

/// A string as Python's `json.dumps` writes it (non-ASCII escaped).
fn json_text(text: &str) -> String {
    let mut out = String::from("\"");
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(character),
            other => {
                let mut units = [0u16; 2];
                for unit in other.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

/// A float as Python's `repr` writes it (the shortest round trip, `.0` for integers).
fn python_float(value: f64) -> String {
    let text = format!("{value:?}");
    if text.contains(['.', 'e', 'i', 'N']) {
        text
    } else {
        format!("{text}.0")
    }
}

/// Python's `stat.filemode`.
pub fn filemode(mode: u32) -> String {
    let kind = match mode & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        0o010000 => 'p',
        0o140000 => 's',
        0o020000 => 'c',
        0o060000 => 'b',
        _ => '-',
    };
    let mut text = String::from(kind);
    let triplets = [
        (0o400, 0o200, 0o100, 0o4000, 's', 'S'),
        (0o040, 0o020, 0o010, 0o2000, 's', 'S'),
        (0o004, 0o002, 0o001, 0o1000, 't', 'T'),
    ];
    for (read, write, execute, special, both, only_special) in triplets {
        text.push(if mode & read != 0 { 'r' } else { '-' });
        text.push(if mode & write != 0 { 'w' } else { '-' });
        text.push(match (mode & execute != 0, mode & special != 0) {
            (true, true) => both,
            (false, true) => only_special,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    text
}

fn python_error_class(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::NotFound => "FileNotFoundError",
        io::ErrorKind::NotADirectory => "NotADirectoryError",
        io::ErrorKind::PermissionDenied => "PermissionError",
        _ => "OSError",
    }
}

/// The C library's text of the error's errno, as Python puts it in an `OSError`.
fn errno_text(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_owned(),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_leaving_home_work_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("work");
        fs::create_dir(&home).unwrap();
        assert_eq!(resolve(&home, "a/b.txt").unwrap(), home.join("a/b.txt"));
        assert_eq!(resolve(&home, "/home/work/x").unwrap(), home.join("x"));
        assert_eq!(resolve(&home, ".").unwrap(), home);
        assert_eq!(resolve(&home, "a/../b").unwrap(), home.join("b"));
        assert!(resolve(&home, "../x").is_err());
        assert!(resolve(&home, "/etc/passwd").is_err());
        assert!(resolve(&home, "/home/workx").is_err());
        std::os::unix::fs::symlink("/etc", home.join("out")).unwrap();
        assert!(resolve(&home, "out/passwd").is_err());
    }

    #[test]
    fn file_modes_read_as_python_writes_them() {
        assert_eq!(filemode(0o100644), "-rw-r--r--");
        assert_eq!(filemode(0o040755), "drwxr-xr-x");
        assert_eq!(filemode(0o120777), "lrwxrwxrwx");
        assert_eq!(filemode(0o104755), "-rwsr-xr-x");
        assert_eq!(filemode(0o041777), "drwxrwxrwt");
        assert_eq!(python_float(3.0), "3.0");
        assert_eq!(python_float(1.5), "1.5");
        assert_eq!(json_text("é\"x"), "\"\\u00e9\\\"x\"");
    }
}
