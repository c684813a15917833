//! LISTEN for wake-ups. Notifications are hints: on any listener error the
//! task backs off, reconnects, and wakes the worker once so it polls
//! (notifications sent while disconnected are lost).

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tracing::{debug, warn};

pub(crate) async fn listen(pool: PgPool, wake: Arc<Notify>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut l) => {
                if let Err(e) = l.listen(crate::CHANNEL).await {
                    warn!(error = %e, "LISTEN failed");
                } else {
                    debug!("listening for wake-ups");
                    backoff = Duration::from_millis(100);
                    wake.notify_one();
                    loop {
                        match l.try_recv().await {
                            Ok(Some(_)) => wake.notify_one(),
                            // The connection dropped; sqlx reconnects on the next call.
                            Ok(None) => {
                                warn!("wake-up listener lost its connection; reconnecting");
                                wake.notify_one();
                            }
                            Err(e) => {
                                warn!(error = %e, "wake-up listener failed");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => debug!(error = %e, "wake-up listener cannot connect"),
        }
        wake.notify_one();
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
