//! The nats thread's connection to NATS: how the client picks a node, notices a dead link and
//! reports its events.

use std::time::Duration;

use tokio::sync::watch;

use super::{pause, ACK_TIMEOUT};
use crate::sync::{Arc, AtomicUsize, Ordering};

/// How often the client pings its NATS server. A link that goes dead without a reset (a
/// partition, a cable) is noticed after two unanswered pings, and the client reconnects to
/// another node: with the library's default (60 s) a server cut from its node stalled for
/// minutes while the rest of the cluster went on.
const PING_EVERY: Duration = Duration::from_secs(1);

/// Connects, retrying every second until NATS answers or shutdown begins.
pub(super) async fn connect(
    urls: &[String],
    shutdown: &mut watch::Receiver<bool>,
) -> Option<async_nats::Client> {
    let mut failures = 0u32;
    loop {
        // Each reconnect tries the next server of the pool in turn. The library's own choice
        // puts the servers with the fewest failed connects since their last success first:
        // a node that failed while it was out of reach stays behind the one this server just
        // left, and `unstick`'s reconnects went back to that same cut-off node every time
        // (the partition test's move scenario, 5 runs in 15).
        let turn = Arc::new(AtomicUsize::new(0));
        let options = async_nats::ConnectOptions::new()
            .reconnect_to_server_callback(move |servers, info| {
                // The first connect (no server has answered yet) tries every server, as the
                // library does.
                let pick = (!info.server_id.is_empty())
                    .then(|| {
                        let i = turn.fetch_add(1, Ordering::SeqCst);
                        servers.get(i % servers.len().max(1))
                    })
                    .flatten()
                    .map(|s| async_nats::ReconnectToServer {
                        addr: s.addr.clone(),
                        delay: None,
                    });
                async move { pick }
            })
            .connection_timeout(Duration::from_secs(2))
            .ping_interval(PING_EVERY)
            .request_timeout(Some(ACK_TIMEOUT))
            .max_reconnects(None)
            .event_callback(|event| async move {
                use async_nats::Event;
                match event {
                    Event::Connected => tracing::info!("cluster: connected to NATS"),
                    Event::Disconnected => {
                        tracing::warn!("cluster: disconnected from NATS; reconnecting")
                    }
                    Event::LameDuckMode => {
                        tracing::warn!("cluster: a NATS server is entering lame duck mode")
                    }
                    Event::SlowConsumer(_) => {
                        tracing::warn!("cluster: NATS reports this client as a slow consumer")
                    }
                    // Each failed reconnect attempt, and the rest: not worth a line each.
                    other => tracing::debug!(event = %other, "cluster: NATS client event"),
                }
            });
        match options.connect(urls).await {
            Ok(client) => return Some(client),
            Err(e) => {
                if failures.is_multiple_of(10) {
                    tracing::warn!(error = %e, urls = ?urls, failures, "cluster: cannot connect to NATS; retrying");
                }
                failures += 1;
            }
        }
        if pause(Duration::from_secs(1), shutdown).await {
            return None;
        }
    }
}
