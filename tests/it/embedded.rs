//! The embedded default database, started from nothing by `wf` itself: as
//! root (the cluster then belongs to the `postgres` user) and as an
//! ordinary user with a fresh HOME.

use crate::support::{stderr, stdout};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Runs `wf` with no DATABASE_URL, optionally as another user, with `env`.
fn wf_as(user: Option<&str>, env: &[(&str, &Path)], args: &[&str]) -> Output {
    let exe = env!("CARGO_BIN_EXE_wf");
    let mut c = match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--", "env"]);
            for (k, v) in env {
                c.arg(format!("{k}={}", v.display()));
            }
            c.arg(exe);
            c
        }
        None => {
            let mut c = Command::new(exe);
            c.envs(env.iter().map(|(k, v)| (*k, *v)));
            c
        }
    };
    c.args(args).env_remove("DATABASE_URL").env("RUST_LOG", "warn");
    c.output().expect("run wf")
}

/// Stops the cluster and removes the directory, even when the test fails.
struct Cleanup {
    user: Option<&'static str>,
    env: Vec<(&'static str, PathBuf)>,
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let env: Vec<(&str, &Path)> = self.env.iter().map(|(k, v)| (*k, v.as_path())).collect();
        let _ = wf_as(self.user, &env, &["db", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = PathBuf::from(format!("/tmp/wf-embedded-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn demo_from_nothing(user: Option<&'static str>, env: Vec<(&'static str, PathBuf)>, dir: PathBuf) {
    let guard = Cleanup { user, env, dir };
    let env: Vec<(&str, &Path)> = guard.env.iter().map(|(k, v)| (*k, v.as_path())).collect();
    let status = wf_as(user, &env, &["db", "status"]);
    assert!(stdout(&status).starts_with("absent"), "{} {}", stdout(&status), stderr(&status));
    // Two commands racing to create and start the cluster both succeed.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| wf_as(user, &env, &["migrate"]));
        let b = s.spawn(|| wf_as(user, &env, &["migrate"]));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a.status.success() && b.status.success(), "{} | {}", stderr(&a), stderr(&b));
    let demo = wf_as(user, &env, &["demo", "--records", "500"]);
    assert!(demo.status.success(), "{}", stderr(&demo));
    let shown = stdout(&demo);
    assert!(shown.contains("status       succeeded"), "{shown}");
    assert!(shown.contains("wf run history"), "{shown}");
    let runs = wf_as(user, &env, &["runs", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&runs.stdout).expect("json");
    assert_eq!(list.as_array().unwrap().len(), 1);
    let url = stdout(&wf_as(user, &env, &["db", "url"]));
    assert!(url.contains("host=") && !url.contains("127.0.0.1"), "a unix socket only: {url}");
    assert!(stdout(&wf_as(user, &env, &["db", "status"])).starts_with("running"));
}

#[test]
fn embedded_database_starts_from_nothing_for_this_user() {
    let dir = temp_dir("self");
    if is_root() {
        // As root the cluster belongs to `postgres`, outside /root.
        demo_from_nothing(None, vec![("WF_HOME", dir.join("wf"))], dir);
    } else {
        demo_from_nothing(None, vec![("HOME", dir.clone())], dir);
    }
}

#[test]
fn embedded_database_starts_from_nothing_for_an_ordinary_user() {
    if !is_root() {
        // Already an ordinary user: covered by the test above.
        return embedded_database_starts_from_nothing_for_this_user();
    }
    let dir = temp_dir("nobody");
    let chown = Command::new("chown").arg("nobody:").arg(&dir).status().unwrap();
    assert!(chown.success());
    demo_from_nothing(Some("nobody"), vec![("HOME", dir.clone())], dir);
}
