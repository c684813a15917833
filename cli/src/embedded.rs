//! The embedded default database: with no `DATABASE_URL`, `wf` runs a
//! PostgreSQL cluster of its own from the machine's binaries, in a per-user
//! directory, listening only on a unix socket in a private directory.
//!
//! As root, initdb and pg_ctl refuse to run, so the cluster belongs to the
//! `postgres` OS user and lives outside /root (`/var/lib/wf/root`). Start-up
//! holds a file lock, so two commands racing to start it cannot collide.

use anyhow::{Context, Result, bail};
use sqlx::Connection;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Name of the database `wf` uses inside its cluster.
pub const DB_NAME: &str = "wf";

/// A located (not necessarily running) embedded cluster.
#[derive(Debug, Clone)]
pub struct Embedded {
    base: PathBuf,
    bindir: PathBuf,
    as_postgres: bool,
}

/// What `wf db status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// No cluster has been created yet.
    Absent,
    /// Created, not running.
    Stopped,
    /// Running.
    Running,
}

fn is_root() -> bool {
    // The effective uid of this process, as the kernel reports it.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        .unwrap_or(false)
}

/// Finds initdb and pg_ctl: Debian's versioned directories (newest first), then PATH.
pub fn find_bindir() -> Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    candidates.sort_by_key(|p| {
        std::cmp::Reverse(
            p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok()),
        )
    });
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates.into_iter().find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file()).context(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install them \
             (Debian/Ubuntu: apt-get install postgresql) or set DATABASE_URL",
    )
}

impl Embedded {
    /// Locates the cluster for the current user: `$WF_HOME`, else
    /// `/var/lib/wf/root` for root, else `$XDG_DATA_HOME/wf` or `~/.local/share/wf`.
    pub fn locate() -> Result<Self> {
        let root = is_root();
        let base = match std::env::var_os("WF_HOME") {
            Some(h) => PathBuf::from(h),
            None if root => PathBuf::from("/var/lib/wf/root"),
            None => match std::env::var_os("XDG_DATA_HOME") {
                Some(x) => PathBuf::from(x).join("wf"),
                None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set; set WF_HOME")?)
                    .join(".local/share/wf"),
            },
        };
        if root && base.starts_with("/root") {
            bail!(
                "as root the embedded cluster belongs to the postgres user and cannot live under /root ({}); set WF_HOME elsewhere",
                base.display()
            );
        }
        Ok(Self { base, bindir: find_bindir()?, as_postgres: root })
    }

    /// A cluster in `base` (for tests and tools that own a server).
    pub fn at(base: PathBuf) -> Result<Self> {
        let root = is_root();
        if root && base.starts_with("/root") {
            bail!("as root the cluster cannot live under /root ({})", base.display());
        }
        Ok(Self { base, bindir: find_bindir()?, as_postgres: root })
    }

    /// The superuser URL of database `db` in this cluster.
    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://postgres@localhost/{db}?host={}", self.sock().display())
    }

    fn data(&self) -> PathBuf {
        self.base.join("data")
    }

    fn sock(&self) -> PathBuf {
        self.base.join("sock")
    }

    /// The connection URL (socket in the private directory).
    pub fn url(&self) -> String {
        self.url_for(DB_NAME)
    }

    fn admin_url(&self) -> String {
        self.url_for("postgres")
    }

    /// Runs a PostgreSQL binary as the cluster's owner.
    fn pg(&self, bin: &str, args: &[&str]) -> Command {
        let exe = self.bindir.join(bin);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        c.args(args);
        c
    }

    /// Creates the directories the owner needs, with private permissions.
    fn prepare_dirs(&self) -> Result<()> {
        fs::create_dir_all(&self.base).with_context(|| format!("cannot create {}", self.base.display()))?;
        for dir in [self.data(), self.sock()] {
            fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
            if self.as_postgres {
                let st = Command::new("chown").arg("postgres:").arg(&dir).status().context("chown")?;
                if !st.success() {
                    bail!(
                        "running as root needs the `postgres` OS user to own the cluster; create it or set DATABASE_URL"
                    );
                }
            }
        }
        if self.as_postgres {
            // The owner must be able to reach its directories.
            fs::set_permissions(&self.base, fs::Permissions::from_mode(0o755))?;
        }
        Ok(())
    }

    /// Where the cluster is and whether it runs.
    pub fn status(&self) -> Result<Status> {
        if !self.data().join("PG_VERSION").exists() {
            return Ok(Status::Absent);
        }
        let out = self.pg("pg_ctl", &["status", "-D", path_str(&self.data())?]).output().context("pg_ctl status")?;
        Ok(if out.status.success() { Status::Running } else { Status::Stopped })
    }

    /// Creates and starts the cluster if needed (under a lock), creates the
    /// `wf` database, and returns its URL.
    pub async fn ensure_started(&self) -> Result<String> {
        fs::create_dir_all(&self.base).with_context(|| format!("cannot create {}", self.base.display()))?;
        let lock = fs::File::create(self.base.join("lock")).context("cannot create the start-up lock")?;
        lock.lock().context("cannot take the start-up lock")?;
        let status = self.status()?;
        if status == Status::Absent {
            self.prepare_dirs()?;
            let data = path_str(&self.data())?.to_owned();
            let out = self
                .pg("initdb", &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"])
                .output()
                .context("cannot run initdb")?;
            if !out.status.success() {
                bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
        }
        if status != Status::Running {
            self.prepare_dirs()?;
            let opts = format!("-k {} -c listen_addresses='' -c max_connections=300", path_str(&self.sock())?);
            let log = self.data().join("wf-server.log");
            let out = self
                .pg(
                    "pg_ctl",
                    &["-D", path_str(&self.data())?, "-l", path_str(&log)?, "-w", "-t", "60", "-o", &opts, "start"],
                )
                .output()
                .context("cannot run pg_ctl")?;
            if !out.status.success() {
                bail!(
                    "the embedded PostgreSQL did not start ({}); see {}",
                    String::from_utf8_lossy(&out.stderr).trim(),
                    log.display()
                );
            }
        }
        let mut admin = sqlx::PgConnection::connect(&self.admin_url())
            .await
            .context("cannot connect to the embedded PostgreSQL")?;
        let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(DB_NAME)
            .fetch_optional(&mut admin)
            .await?;
        if exists.is_none() {
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {DB_NAME}"))).execute(&mut admin).await?;
        }
        drop(lock);
        Ok(self.url())
    }

    /// Stops the cluster; false if it was not running.
    pub fn stop(&self) -> Result<bool> {
        if self.status()? != Status::Running {
            return Ok(false);
        }
        let out = self.pg("pg_ctl", &["-D", path_str(&self.data())?, "-m", "fast", "-w", "stop"]).output()?;
        if !out.status.success() {
            bail!("pg_ctl stop failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(true)
    }

    /// The data directory, for `wf db status`.
    pub fn base(&self) -> &Path {
        &self.base
    }
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().with_context(|| format!("path is not UTF-8: {}", p.display()))
}
