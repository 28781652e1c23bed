//! Waits of the nats thread that a stop cuts short: a pause, any question to NATS, and a
//! question retried until it is answered.

use std::time::Duration;

use tokio::sync::watch;

/// Sleeps `d`; true if shutdown began meanwhile.
pub(super) async fn pause(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    unless_stopped(tokio::time::sleep(d), shutdown)
        .await
        .is_none()
        || *shutdown.borrow()
}

/// What `f` gives, or `None` once shutdown begins (or its sender is gone) before it does: a
/// question to NATS that a stop must not wait for (a node that stopped answering holds it
/// for the client's request timeout, [`ACK_TIMEOUT`](super::ACK_TIMEOUT)).
pub(super) async fn unless_stopped<T>(
    f: impl std::future::Future<Output = T>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<T> {
    tokio::select! {
        value = f => Some(value),
        _ = shutdown.wait_for(|stop| *stop) => None,
    }
}

/// Runs `attempt` until it succeeds or shutdown begins, logging a failure now and then.
pub(super) async fn retry<T, F, Fut>(
    what: &str,
    shutdown: &mut watch::Receiver<bool>,
    mut attempt: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut failures = 0u32;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), attempt()).await {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(e)) if failures.is_multiple_of(10) => {
                tracing::warn!(error = %e, failures, "cluster: cannot {what}; retrying")
            }
            Err(_) if failures.is_multiple_of(10) => {
                tracing::warn!(failures, "cluster: cannot {what}: timed out; retrying")
            }
            _ => {}
        }
        failures += 1;
        if pause(Duration::from_millis(500), shutdown).await {
            return None;
        }
    }
}
