//! The `files` capability's directories and the academy's quota on them.
//!
//! Each plugin granted `files` gets `<plugins.files_dir>/<tenant id>/<plugin id>/`. All the directories of
//! one academy share one quota (`plugins.files_quota_mib` bytes and `plugins.files_max_entries` files and
//! folders). The host measures the academy's directories before a call, every [`CHECK_EVERY`] while it
//! runs (on its way back from a host call, where writes happen) and after it: a call that takes them past
//! the quota, or past what they held when it started if that was more, stops with a `files` fault. What it
//! wrote before the fault stays (the directory is not transactional); a plugin over the quota can still
//! read and delete. Symbolic links are not allowed: the measurement removes any it finds and faults the
//! call that made them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often a running call's directories are measured: at most what it writes in this time can go past
/// the quota.
pub const CHECK_EVERY: Duration = Duration::from_millis(20);

/// What an academy's plugin directories hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of all files (their length, so a sparse file counts in full).
    pub bytes: u64,
    /// Files and folders.
    pub entries: u64,
    /// Symbolic links found (and removed).
    pub symlinks: u64,
}

/// The directory of all of one academy's plugins.
pub fn academy_dir(root: &Path, tenant_id: &str) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(is_id(tenant_id), "plugin directory ids must be UUIDs");
    Ok(root.join(tenant_id))
}

/// The private directory of one academy's plugin (not created here). Both parts are ids the host generated;
/// nothing from a request or a plugin reaches this path.
pub fn plugin_dir(root: &Path, tenant_id: &str, plugin_id: &str) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(is_id(plugin_id), "plugin directory ids must be UUIDs");
    Ok(academy_dir(root, tenant_id)?.join(plugin_id))
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// Remove a directory with everything in it; one that is not there is fine.
pub fn remove(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Measure `dir` (missing: empty), removing symbolic links. Stops counting once `max_entries` is passed
/// (the answer is then over the limit, which is all the caller needs to know).
pub fn measure(dir: &Path, max_entries: u64) -> std::io::Result<Usage> {
    let mut usage = Usage::default();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_symlink() {
                std::fs::remove_file(entry.path())?;
                usage.symlinks += 1;
                continue;
            }
            usage.entries += 1;
            if kind.is_dir() {
                pending.push(entry.path());
            } else {
                usage.bytes += entry.metadata()?.len();
            }
            if usage.entries > max_entries {
                return Ok(usage);
            }
        }
    }
    Ok(usage)
}

/// The quota of one call: what the academy's directories may hold when it returns.
#[derive(Debug, Clone)]
pub struct Quota {
    dir: PathBuf,
    max_bytes: u64,
    max_entries: u64,
    quota_bytes: u64,
    quota_entries: u64,
    last_check: Instant,
}

impl Quota {
    /// Measure the academy's directories before a call and set the call's bound: the quota, or what they
    /// hold now if that is more (so a plugin over the quota may still delete).
    pub async fn start(dir: PathBuf, quota_bytes: u64, quota_entries: u64) -> anyhow::Result<Quota> {
        let now = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || measure(&dir, quota_entries.saturating_mul(2))).await??
        };
        Ok(Quota {
            dir,
            max_bytes: quota_bytes.max(now.bytes),
            max_entries: quota_entries.max(now.entries),
            quota_bytes,
            quota_entries,
            last_check: Instant::now(),
        })
    }

    /// Whether a check is due.
    pub fn due(&self) -> bool {
        self.last_check.elapsed() >= CHECK_EVERY
    }

    /// Measure now: `Err` with what was wrong when the call went past its bound or made a symbolic link.
    pub async fn check(&mut self) -> anyhow::Result<Result<(), String>> {
        self.last_check = Instant::now();
        let dir = self.dir.clone();
        let limit = self.max_entries.saturating_add(1);
        let usage = tokio::task::spawn_blocking(move || measure(&dir, limit)).await??;
        Ok(if usage.symlinks > 0 {
            Err("created a symbolic link; links are not allowed in plugin files (removed)".to_owned())
        } else if usage.bytes > self.max_bytes {
            Err(format!(
                "wrote past its academy's files quota of {} MiB (the plugins' files now hold {} MiB)",
                self.quota_bytes / (1024 * 1024),
                usage.bytes.div_ceil(1024 * 1024)
            ))
        } else if usage.entries > self.max_entries {
            Err(format!(
                "created more than its academy's quota of {} files and folders",
                self.quota_entries
            ))
        } else {
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measure_counts_files_and_folders_and_removes_links() {
        let root = std::env::temp_dir().join(format!("aula-files-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/one"), vec![0u8; 1000]).unwrap();
        std::fs::write(root.join("a/b/two"), vec![0u8; 24]).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc", root.join("a/out")).unwrap();
        let usage = measure(&root, 100).unwrap();
        assert_eq!((usage.bytes, usage.entries), (1024, 4));
        #[cfg(unix)]
        {
            assert_eq!(usage.symlinks, 1);
            assert!(!root.join("a/out").exists());
        }
        assert_eq!(measure(&root.join("missing"), 100).unwrap(), Usage::default());
        // Counting stops once past the limit.
        assert_eq!(measure(&root, 1).unwrap().entries, 2);
        remove(&root).unwrap();
        remove(&root).unwrap();
        assert!(!root.exists());
    }
}
