//! Publishing batches: each with its de-duplication id, its acknowledgement awaited, and
//! retried with the same id (inside the duplicate window) until it is acknowledged.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use crossbeam_queue::SegQueue;
use tokio::sync::mpsc;

use super::ACK_TIMEOUT;
use crate::cluster::outbox::{Outgoing, RETRY_FOR};
use crate::cluster::state::{bump, ClusterState};
use crate::ingest::Ingest;
use crate::publisher::Outcome;
use crate::sync::Arc;

/// Publishes every batch, each in a task of its own.
pub(super) async fn publish_all(
    js: jetstream::Context,
    subject: String,
    id_prefix: String,
    mut batches: mpsc::UnboundedReceiver<Outgoing>,
    outcomes: Arc<SegQueue<Outcome>>,
    publish_ingest: Arc<Ingest>,
    state: Arc<ClusterState>,
) {
    while let Some(batch) = batches.recv().await {
        let (js, subject) = (js.clone(), subject.clone());
        let msg_id = format!("{id_prefix}{}", batch.id);
        let (outcomes, publish_ingest, state) =
            (outcomes.clone(), publish_ingest.clone(), state.clone());
        tokio::spawn(async move {
            let outcome = publish_one(&js, subject, msg_id, batch, &state).await;
            outcomes.push(outcome);
            publish_ingest.wake_popper();
        });
    }
}

/// Publishes one batch until the stream acknowledges it, or gives up after [`RETRY_FOR`].
async fn publish_one(
    js: &jetstream::Context,
    subject: String,
    msg_id: String,
    batch: Outgoing,
    state: &ClusterState,
) -> Outcome {
    let give_up = Instant::now() + RETRY_FOR;
    let mut backoff = Duration::from_millis(50);
    let mut attempts = 0u32;
    loop {
        let message = jetstream::message::PublishMessage::build()
            .payload(batch.payload.clone())
            .message_id(&msg_id);
        let attempt = async {
            js.send_publish(subject.clone(), message)
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())
        };
        let error = match tokio::time::timeout(ACK_TIMEOUT, attempt).await {
            Ok(Ok(ack)) => {
                bump(&state.batches_acked, 1);
                if ack.duplicate {
                    bump(&state.batches_duplicate, 1);
                }
                return Outcome::Acked(batch.id);
            }
            Ok(Err(e)) => e,
            Err(_) => "no acknowledgement in time".to_owned(),
        };
        bump(&state.publish_retries, 1);
        if state.publish_log_due() {
            // At most one line a second for every batch together (the rest are counted).
            tracing::warn!(batch = batch.id, attempts, error = %error, retries_so_far = state.figures().publish_retries, "cluster: publish failed; retrying with the same de-duplication id");
        }
        attempts += 1;
        if Instant::now() >= give_up {
            return Outcome::Abandoned(batch.id);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}
