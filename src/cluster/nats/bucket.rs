//! The snapshot bucket: find or create it, load the newest snapshot, store new ones.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, object_store, stream};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{Wiring, KEEP_SNAPSHOTS};
use crate::cluster::state::{bump, ClusterState};
use crate::journal::snapshot;
use crate::ring::RingImage;
use crate::sync::Arc;

pub(super) async fn ensure_bucket(
    js: &jetstream::Context,
    w: &Wiring,
) -> Result<object_store::ObjectStore, String> {
    if let Ok(store) = js.get_object_store(&w.bucket).await {
        return Ok(store);
    }
    js.create_object_store(object_store::Config {
        bucket: w.bucket.clone(),
        num_replicas: w.replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())
}

/// The name of the snapshot that covers the stream up to `covered`.
fn object_name(covered: u64) -> String {
    format!("ring-{covered:020}")
}

/// The stream sequences of the snapshots in the bucket, newest first.
pub(super) async fn list_snapshots(store: &object_store::ObjectStore) -> Vec<u64> {
    let mut found: Vec<u64> = Vec::new();
    if let Ok(mut list) = store.list().await {
        while let Some(Ok(info)) = list.next().await {
            if let Some(seq) = info.name.strip_prefix("ring-").and_then(|s| s.parse().ok()) {
                found.push(seq);
            }
        }
    }
    found.sort_unstable_by(|a, b| b.cmp(a));
    found
}

/// The object metadata key that records which stream a snapshot was taken from: the stream's
/// creation time (nanoseconds since the epoch), which a stream deleted and re-created under
/// the same name does not keep.
const STREAM_KEY: &str = "stream_created";

/// A snapshot read back, and the stream it was taken from (`None`: a snapshot stored before
/// snapshots recorded it).
pub(super) struct Loaded {
    pub image: RingImage,
    pub stream: Option<String>,
}

/// The newest snapshot that reads back whole, falling back on older ones.
pub(super) async fn load_newest(store: &object_store::ObjectStore) -> Option<Loaded> {
    use tokio::io::AsyncReadExt;
    for seq in list_snapshots(store).await {
        let started = Instant::now();
        let mut bytes = Vec::new();
        let read = async {
            let mut object = store
                .get(object_name(seq))
                .await
                .map_err(|e| e.to_string())?;
            object
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| e.to_string())
        };
        let stream = store
            .info(object_name(seq))
            .await
            .ok()
            .and_then(|info| info.metadata.get(STREAM_KEY).cloned());
        let outcome = match tokio::time::timeout(Duration::from_secs(60), read).await {
            Ok(Ok(_)) => tokio::task::spawn_blocking(move || snapshot::decode(&bytes))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("timed out".into()),
        };
        match outcome {
            Ok(image) if image.covered == seq => {
                tracing::info!(
                    covers = seq,
                    took_ms = started.elapsed().as_millis() as u64,
                    "cluster: loaded the newest snapshot"
                );
                return Some(Loaded { image, stream });
            }
            Ok(_) => tracing::warn!(
                covers = seq,
                "cluster: snapshot's name and content disagree; trying an older one"
            ),
            Err(e) => {
                tracing::warn!(covers = seq, error = %e, "cluster: snapshot unreadable; trying an older one")
            }
        }
    }
    None
}

/// Stores each capture the writer hands over, recording that it was taken from the stream
/// whose identity is `stream` ([`Loaded::stream`]), then deletes all but the newest few.
pub(super) async fn store_snapshots(
    store: object_store::ObjectStore,
    mut images: mpsc::UnboundedReceiver<RingImage>,
    state: Arc<ClusterState>,
    stream: String,
) {
    while let Some(image) = images.recv().await {
        let covered = image.covered;
        let started = Instant::now();
        let Ok(bytes) = tokio::task::spawn_blocking(move || snapshot::encode(&image)).await else {
            continue;
        };
        let meta = object_store::ObjectMetadata {
            name: object_name(covered),
            description: Some(format!("hourtally ring, stream sequences 1..={covered}")),
            chunk_size: Some(512 << 10),
            metadata: HashMap::from([
                ("covers".to_owned(), covered.to_string()),
                (STREAM_KEY.to_owned(), stream.clone()),
            ]),
            ..Default::default()
        };
        let mut reader = bytes.as_slice();
        let put = store.put(meta, &mut reader);
        match tokio::time::timeout(Duration::from_secs(120), put).await {
            Ok(Ok(_)) => {
                bump(&state.snapshots_stored, 1);
                tracing::info!(
                    covers = covered,
                    bytes = bytes.len(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "cluster: snapshot stored"
                );
                for old in list_snapshots(&store)
                    .await
                    .into_iter()
                    .skip(KEEP_SNAPSHOTS)
                {
                    let _ = store.delete(object_name(old)).await;
                }
            }
            Ok(Err(e)) => {
                bump(&state.snapshot_failures, 1);
                tracing::warn!(covers = covered, error = %e, "cluster: cannot store a snapshot");
            }
            Err(_) => {
                bump(&state.snapshot_failures, 1);
                tracing::warn!(covers = covered, "cluster: storing a snapshot timed out");
            }
        }
    }
}
