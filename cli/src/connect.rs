//! Connecting: the given URL or the embedded cluster; short timeouts for
//! one-shot commands, lazy pools that wait an outage out for workers.

use anyhow::{Context, Result};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use std::time::Duration;

/// The URL with its password masked, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The URL to use: the given one, or the embedded cluster's (started if needed).
pub async fn resolve(url: Option<&str>) -> Result<String> {
    match url {
        Some(u) if !u.trim().is_empty() => Ok(u.to_owned()),
        _ => crate::embedded::Embedded::locate()?.ensure_started().await,
    }
}

/// A small pool for a one-shot command: fails after a short connect timeout
/// with the address (minus its password) in the message.
pub async fn one_shot(url: &str) -> Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .with_context(|| format!("cannot connect to {}", redact(url)))
}

/// A one-shot pool for bulk statements that are expected to run for
/// seconds (benchmark fixtures, counts over millions of rows): sqlx's
/// slow-statement warnings are turned off on it.
pub async fn bulk(url: &str) -> Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(parse(url)?.disable_statement_logging())
        .await
        .with_context(|| format!("cannot connect to {}", redact(url)))
}

/// A pool that connects on demand, for long-running commands that wait out
/// an unreachable database.
/// `idle_tx` bounds how long a session may sit idle inside a transaction.
pub fn lazy(url: &str, max: u32, idle_tx: Option<Duration>) -> Result<PgPool> {
    let mut opts = parse(url)?;
    if let Some(t) = idle_tx {
        opts = opts.options([("idle_in_transaction_session_timeout", format!("{}ms", t.as_millis()))]);
    }
    Ok(lazy_pool(opts, max))
}

/// A lazy pool for one worker's control plane (claims, completions,
/// heartbeats, its wake-up listener), sized for everything the worker may
/// have in flight, with the engine's session settings
/// ([`workflow_pg::ENGINE_SESSION`]) on every connection.
pub fn control(url: &str, config: &workflow_core::WorkerConfig) -> Result<PgPool> {
    let opts = parse(url)?.options(workflow_pg::ENGINE_SESSION.iter().copied());
    // The listener keeps one connection of its own.
    Ok(lazy_pool(opts, config.store_calls_in_flight() as u32 + 1))
}

fn parse(url: &str) -> Result<PgConnectOptions> {
    url.parse().with_context(|| format!("bad database URL {}", redact(url)))
}

fn lazy_pool(opts: PgConnectOptions, max: u32) -> PgPool {
    PgPoolOptions::new().max_connections(max).acquire_timeout(Duration::from_secs(5)).connect_lazy_with(opts)
}

#[cfg(test)]
mod tests {
    use super::{control, redact};
    use workflow_core::WorkerConfig;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres:///db?host=/tmp"), "postgres:///db?host=/tmp");
    }

    #[tokio::test]
    async fn a_control_pool_has_a_connection_for_every_call_in_flight_and_the_listener() {
        let url = "postgres://u@localhost/db";
        let default = WorkerConfig::default();
        // 1 claim + 4 batch calls + heartbeat + rescuer + listener.
        assert_eq!(control(url, &default).unwrap().options().get_max_connections(), 8);
        let wide = WorkerConfig { max_claims: 3, max_flushes: 8, ..WorkerConfig::default() };
        assert_eq!(control(url, &wide).unwrap().options().get_max_connections(), 14);
    }
}
