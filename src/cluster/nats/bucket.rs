//! The snapshot bucket: find or create it, load the newest snapshot, store new ones.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, object_store, stream};
use tokio::sync::mpsc;

use super::{cold, objects, Wiring, KEEP_SNAPSHOTS};
use crate::cluster::state::{bump, ClusterState};
use crate::cluster::ClusterCold;
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
    // A listing that fails part way gives what it read: fewer snapshots to load or delete.
    let found: BTreeSet<u64> = objects::numbered(store, "ring-", true)
        .await
        .unwrap_or_default();
    found.into_iter().rev().collect()
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

/// The object metadata key that records the newest hour a snapshot's ring had taken: the
/// older kept snapshot's decides which cold files may go (`cold::prune`).
const NEWEST_KEY: &str = "newest_hour";

/// The newest hour of the older kept snapshot's ring, if every kept snapshot records it.
async fn kept_floor(store: &object_store::ObjectStore) -> Option<u32> {
    let mut floor: Option<u32> = None;
    for seq in list_snapshots(store).await.into_iter().take(KEEP_SNAPSHOTS) {
        let info = store.info(object_name(seq)).await.ok()?;
        let newest: u32 = info.metadata.get(NEWEST_KEY)?.parse().ok()?;
        floor = Some(floor.map_or(newest, |f| f.min(newest)));
    }
    floor
}

/// Stores each capture the writer hands over, recording that it was taken from the stream
/// whose identity is `stream` ([`Loaded::stream`]), then deletes all but the newest few.
/// One at a time: the writer begins no capture while one is being stored
/// (`ClusterState::snapshot_done`), so images never pile up here.
/// With a cold tier, a capture first waits for the hours that left before it to be stored
/// and for its late counts (`journal::Waits`), and the files the bucket lacks go up before
/// it: a server that restores it finds every file it needs.
pub(super) async fn store_snapshots(
    store: object_store::ObjectStore,
    mut images: mpsc::UnboundedReceiver<RingImage>,
    state: Arc<ClusterState>,
    stream: String,
    cold: Option<ClusterCold>,
) {
    while let Some(mut image) = images.recv().await {
        let covered = image.covered;
        let started = Instant::now();
        let for_blocking = cold.clone();
        let encoded = tokio::task::spawn_blocking(move || {
            let mut needed = Vec::new();
            if let Some(cold) = for_blocking {
                cold.waits.complete(&mut image)?;
                needed = cold::needed(&cold.tier, &image);
            }
            Ok::<_, String>((snapshot::encode(&image), image.newest_hour(), needed))
        })
        .await;
        let failed = |why: &str| {
            bump(&state.snapshot_failures, 1);
            tracing::warn!(covers = covered, error = %why, "cluster: cannot store a snapshot");
        };
        let (bytes, newest, needed) = match encoded {
            Ok(Ok(done)) => done,
            Ok(Err(why)) => {
                failed(&why);
                state.snapshot_done();
                continue;
            }
            Err(e) => {
                failed(&e.to_string());
                state.snapshot_done();
                continue;
            }
        };
        if let Some(cold) = &cold {
            match cold::upload_missing(&store, &cold.tier, &needed).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    files = n,
                    covers = covered,
                    "cluster: uploaded cold files the snapshot needs"
                ),
                Err(why) => {
                    failed(&why);
                    state.snapshot_done();
                    continue;
                }
            }
        }
        let meta = object_store::ObjectMetadata {
            name: object_name(covered),
            description: Some(format!("hourtally ring, stream sequences 1..={covered}")),
            chunk_size: Some(512 << 10),
            metadata: HashMap::from([
                ("covers".to_owned(), covered.to_string()),
                (STREAM_KEY.to_owned(), stream.clone()),
                (NEWEST_KEY.to_owned(), newest.to_string()),
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
                if let Some(cold) = &cold {
                    if let Some(floor) = kept_floor(&store).await {
                        cold::prune(&store, cold, floor, newest).await;
                    }
                }
            }
            Ok(Err(e)) => failed(&e.to_string()),
            Err(_) => failed("timed out"),
        }
        state.snapshot_done();
    }
}
