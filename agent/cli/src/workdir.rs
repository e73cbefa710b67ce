//! The folder a command's tools write into (python's `/mnt/data`): a fresh private temporary
//! folder, removed when the command ends unless the user keeps it, or a folder the user names.

use std::path::{Path, PathBuf};

use crate::cli::Failure;

/// The work-folder flags of `run`, `chat` and `tools call`.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkDirOptions {
    /// Keep the files the tools write (python's /mnt/data) afterwards; they are in a fresh
    /// private temporary folder, removed at the end otherwise.
    #[arg(long)]
    keep_files: bool,
    /// The folder for the files the tools write, kept afterwards [default: a fresh private
    /// temporary folder].
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
}

impl WorkDirOptions {
    /// The work folder these flags ask for; `kind` names a temporary one.
    pub fn open(&self, kind: &str) -> Result<WorkDir, Failure> {
        WorkDir::new(kind, self.work_dir.as_deref(), self.keep_files)
    }
}

/// A command's work folder.
pub struct WorkDir {
    path: PathBuf,
    /// The temporary folder, removed on drop; `None` for a folder the user named.
    temp: Option<tempfile::TempDir>,
    keep: bool,
}

impl WorkDir {
    /// `given` (created 0700 where missing, never removed), else a fresh 0700 folder
    /// `glm-agent-KIND-XXXXXX` in the system's temporary folder, removed at the end unless
    /// `keep`.
    pub fn new(kind: &str, given: Option<&Path>, keep: bool) -> Result<WorkDir, Failure> {
        if let Some(dir) = given {
            glm_agent::trace::private_dir(dir).map_err(|e| {
                Failure::bad_input(anyhow::anyhow!("--work-dir {}: {e}", dir.display()))
            })?;
            return Ok(WorkDir {
                path: dir.to_path_buf(),
                temp: None,
                keep: true,
            });
        }
        let temp = tempfile::Builder::new()
            .prefix(&format!("glm-agent-{kind}-"))
            .tempdir()
            .map_err(|e| {
                Failure::bad_input(anyhow::anyhow!(
                    "cannot make a work folder in {}: {e}",
                    std::env::temp_dir().display()
                ))
            })?;
        Ok(WorkDir {
            path: temp.path().to_path_buf(),
            temp: Some(temp),
            keep,
        })
    }

    /// Whether the folder stays after the command.
    pub fn keeps(&self) -> bool {
        self.keep
    }

    /// Where the tools write.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Ends the command's use of the folder (removed unless kept, as on drop); says where kept
    /// files are when there are any, or how to keep the ones removed.
    pub fn finish(self, quiet: bool) {
        let has_files = std::fs::read_dir(&self.path).is_ok_and(|mut d| d.next().is_some());
        if has_files && !quiet {
            if self.keep {
                eprintln!("files: {}", self.path.display());
            } else {
                eprintln!(
                    "files: the files the tools wrote are removed with the run's temporary folder; \
--keep-files or --work-dir DIR keeps them"
                );
            }
        }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take()
            && self.keep
        {
            let _ = temp.keep();
        }
    }
}
