//! The `land` step: finds a feed's files in the landing directory, hashes
//! each, registers it in `etl.landed_files` and makes it read-only. An
//! identical re-delivery (same sha256) is a no-op.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use workflow_core::{ResultExt, Step, StepContext, StepError, StepOutcome, async_trait};

use crate::config::matches;
use crate::workflow::Job;

/// One landed file, as passed from `land` to `parse`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandedFile {
    /// sha256 of the content, hex.
    pub sha256: String,
    /// File name.
    pub name: String,
    /// Absolute path.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// Lands one feed's files.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Land {
    /// The branch.
    pub job: Job,
    /// The landing directory.
    pub landing: String,
}

/// The feed's files in `dir`, sorted by name.
pub fn feed_files(dir: &Path, pattern: &str) -> Result<Vec<PathBuf>, std::io::Error> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_file() && matches(pattern, &name) {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

fn make_read_only(path: &Path) -> std::io::Result<()> {
    let mut perms = std::fs::metadata(path)?.permissions();
    if !perms.readonly() {
        perms.set_readonly(true);
        std::fs::set_permissions(path, perms)?;
    }
    Ok(())
}

#[typetag::serde(name = "etl.land")]
#[async_trait]
impl Step for Land {
    async fn run(&self, ctx: &StepContext) -> Result<StepOutcome, StepError> {
        let pool = ctx.resource::<PgPool>()?;
        let dir = PathBuf::from(&self.landing);
        let paths = feed_files(&dir, &self.job.feed.pattern).permanent(&format!("landing {}", dir.display()))?;
        let mut files: Vec<LandedFile> = Vec::new();
        let mut new = 0;
        for path in paths {
            let p = path.clone();
            let sha = tokio::task::spawn_blocking(move || feeds::file_sha256(&p))
                .await
                .retryable("hash task")?
                .permanent(&format!("unreadable file {}", path.display()))?;
            if files.iter().any(|f| f.sha256 == sha) {
                continue; // the same bytes delivered twice under two names
            }
            make_read_only(&path).permanent(&format!("cannot make {} read-only", path.display()))?;
            let bytes = std::fs::metadata(&path).retryable("stat")?.len();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let inserted = sqlx::query(
                "INSERT INTO etl.landed_files (sha256, feed, business_date, name, path, bytes)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(&sha)
            .bind(&self.job.feed.name)
            .bind(self.job.date)
            .bind(&name)
            .bind(path.display().to_string())
            .bind(bytes as i64)
            .execute(pool)
            .await
            .retryable("register landed file")?
            .rows_affected();
            new += inserted;
            files.push(LandedFile { sha256: sha, name, path: path.display().to_string(), bytes });
        }
        Ok(StepOutcome::output(json!({ "files": files, "newly_landed": new })))
    }
}
