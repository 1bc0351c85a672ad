//! A report plugin that performs one filesystem operation per run, to test the `files` capability: the
//! plugin's own directory (preopened as `/`) and nothing else.
//!
//! Report `fs` has the text columns `op`, `path` and `result`. The parameter `op` chooses:
//!
//! | `op` | does |
//! |---|---|
//! | `write` | writes the parameter `content` to `path` |
//! | `read` | reads `path` |
//! | `list` | lists the directory `path` (names sorted, comma-separated) |
//! | `symlink` | creates a symbolic link at `path` pointing to `target` (through the C library's `symlink`) |
//! | `read-through` | reads `path`, which may be a symbolic link |
//! | `fill` | writes `size` zero bytes to `path`, 64 KiB at a time |
//! | `remove` | removes the file `path` |
//!
//! The one row's `result` is `ok:<content or listing>` (`ok:` after a write or a link) or
//! `err:<error>`. Failures are rows, never a failed run.

use std::fs;

use aula_sdk::log;
use aula_sdk::reports::{Cell, Column, Params, Report, Reports, Rows};

fn perform(op: &str, path: &str, params: &Params) -> Result<String, String> {
    let err = |e: std::io::Error| e.to_string();
    match op {
        "write" => fs::write(path, params.get("content").unwrap_or_default())
            .map(|()| String::new())
            .map_err(err),
        "read" | "read-through" => fs::read_to_string(path).map_err(err),
        "list" => {
            let mut names = Vec::new();
            for entry in fs::read_dir(path).map_err(err)? {
                names.push(entry.map_err(err)?.file_name().to_string_lossy().into_owned());
            }
            names.sort();
            Ok(names.join(","))
        }
        "fill" => {
            use std::io::Write;
            let size: usize = params
                .get("size")
                .unwrap_or_default()
                .parse()
                .map_err(|e| format!("size: {e}"))?;
            let mut file = fs::File::create(path).map_err(err)?;
            let chunk = vec![0u8; 64 * 1024];
            let mut left = size;
            while left > 0 {
                let n = left.min(chunk.len());
                file.write_all(&chunk[..n]).map_err(err)?;
                left -= n;
            }
            Ok(String::new())
        }
        "remove" => fs::remove_file(path).map(|()| String::new()).map_err(err),
        "symlink" => symlink(params.get("target").unwrap_or_default(), path).map(|()| String::new()),
        other => Err(format!("unknown op `{other}`")),
    }
}

/// `std::os::wasi::fs::symlink_path` is still unstable, so this calls the C library's `symlink`, which the
/// standard library links on this target anyway and which resolves `path` against the preopened directory
/// like every other file operation.
#[cfg(target_os = "wasi")]
#[allow(unsafe_code)]
fn symlink(target: &str, path: &str) -> Result<(), String> {
    use std::ffi::{CString, c_char, c_int};

    unsafe extern "C" {
        fn symlink(target: *const c_char, path: *const c_char) -> c_int;
    }
    let target = CString::new(target).map_err(|e| e.to_string())?;
    let path = CString::new(path).map_err(|e| e.to_string())?;
    // SAFETY: both arguments are NUL-terminated strings that outlive the call.
    match unsafe { symlink(target.as_ptr(), path.as_ptr()) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error().to_string()),
    }
}

#[cfg(not(target_os = "wasi"))]
fn symlink(_target: &str, _path: &str) -> Result<(), String> {
    Err("symbolic links are only tried inside the component".into())
}

/// The plugin as registered with the host.
pub struct Files;

impl Reports for Files {
    fn reports() -> Vec<Report> {
        vec![
            Report::new("fs", "Filesystem probe")
                .description("One filesystem operation in the plugin's directory")
                .column(Column::text("op", "Operation"))
                .column(Column::text("path", "Path"))
                .column(Column::text("result", "Result")),
        ]
    }

    fn run(key: String, params: Params, _cursor: Option<String>) -> Result<Rows, String> {
        if key != "fs" {
            return Err(format!("no report `{key}`"));
        }
        let op = params.get("op").unwrap_or_default();
        let path = params.get("path").unwrap_or_default();
        let result = match perform(op, path, &params) {
            Ok(out) => format!("ok:{out}"),
            Err(e) => format!("err:{e}"),
        };
        log::info(format_args!("{op} {path}: {result}"));
        Ok(Rows::complete(vec![vec![
            Cell::from(op),
            Cell::from(path),
            Cell::from(result),
        ]]))
    }
}

aula_sdk::register!(reports: Files);
