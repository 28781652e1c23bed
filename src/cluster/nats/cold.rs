//! The cold tier's files in the snapshot bucket.
//!
//! Every server stores its own files as hours leave its ring (the same hours, with the same
//! users, on every server: the ring follows the stream). A server that catches up from a
//! snapshot did not see the hours that left before it, so before a snapshot is stored the
//! files it would need are uploaded (`cold-{hour:010}`, the file's bytes), and a server that
//! restores it fetches the ones it lacks before it replays the stream. The bucket's files
//! go once the older kept snapshot's ring had taken an hour more than the cold retention
//! after them, as a single server's do.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use async_nats::jetstream::object_store::{self, ObjectStore};
use futures_util::StreamExt;

use crate::cluster::ClusterCold;
use crate::cold::{AdoptError, ColdTier};
use crate::ring::RingImage;
use crate::sync::Arc;

/// How long one file's upload or download may take.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);

/// The object that holds `hour`'s file.
fn object_name(hour: u32) -> String {
    format!("cold-{hour:010}")
}

/// The hours the bucket holds files of.
async fn listed(store: &ObjectStore) -> Result<BTreeSet<u32>, String> {
    let mut hours = BTreeSet::new();
    let mut list = store.list().await.map_err(|e| e.to_string())?;
    while let Some(info) = list.next().await {
        let info = info.map_err(|e| e.to_string())?;
        if let Some(hour) = info.name.strip_prefix("cold-").and_then(|h| h.parse().ok()) {
            hours.insert(hour);
        }
    }
    Ok(hours)
}

/// Uploads every file of `tier` that the bucket lacks; the number uploaded. Called before a
/// snapshot is stored, once every hour that left before it is in `tier`.
pub(super) async fn upload_missing(
    store: &ObjectStore,
    tier: &Arc<ColdTier>,
) -> Result<usize, String> {
    let there = listed(store).await?;
    let mut uploaded = 0;
    for hour in tier.hours() {
        if there.contains(&hour) {
            continue;
        }
        let t = tier.clone();
        let bytes = match tokio::task::spawn_blocking(move || t.read_file(hour)).await {
            Ok(Ok(bytes)) => bytes,
            // Removed meanwhile (past the retention): nothing to upload.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Ok(Err(e)) => {
                return Err(format!(
                    "cannot read cold/{}: {e}",
                    crate::cold::file_name(hour)
                ))
            }
            Err(e) => return Err(e.to_string()),
        };
        let meta = object_store::ObjectMetadata {
            name: object_name(hour),
            description: Some(format!("hourtally cold tier: the users of hour {hour}")),
            chunk_size: Some(512 << 10),
            metadata: HashMap::from([("hour".to_owned(), hour.to_string())]),
            ..Default::default()
        };
        let mut reader = bytes.as_slice();
        match tokio::time::timeout(TRANSFER_TIMEOUT, store.put(meta, &mut reader)).await {
            Ok(Ok(_)) => uploaded += 1,
            Ok(Err(e)) => return Err(format!("cannot upload {}: {e}", object_name(hour))),
            Err(_) => return Err(format!("uploading {} timed out", object_name(hour))),
        }
    }
    Ok(uploaded)
}

/// Fetches into `tier` the files of the hours that had left the ring of `image` with users,
/// within the retention, that `tier` lacks: `(fetched, missing from the bucket)`. A file the
/// bucket does not have is an hour nobody kept (it left before the cluster kept a cold
/// tier, or was removed past the retention): its users are not kept here either, as on
/// every server. A damaged one is an error: this server would count that hour's late events
/// differently from the others.
pub(super) async fn fetch_missing(
    store: &ObjectStore,
    tier: &Arc<ColdTier>,
    image: &RingImage,
) -> Result<(usize, usize), String> {
    use tokio::io::AsyncReadExt;
    let newest = image.newest_hour();
    let (mut fetched, mut missing) = (0, 0);
    let have: BTreeSet<u32> = tier.hours().into_iter().collect();
    for (hour, users) in image.left_with_users() {
        if have.contains(&hour) || !tier.keeps(hour, newest) {
            continue;
        }
        let mut bytes = Vec::new();
        let read = async {
            let mut object = store.get(object_name(hour)).await?;
            object.read_to_end(&mut bytes).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        };
        match tokio::time::timeout(TRANSFER_TIMEOUT, read).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(hour_start_ms = u64::from(hour) * crate::event::MILLIS_PER_HOUR, error = %e, "cluster: the bucket has no file of an hour that left the ring with users; its users are not kept");
                missing += 1;
                continue;
            }
            Err(_) => return Err(format!("fetching {} timed out", object_name(hour))),
        }
        let t = tier.clone();
        match tokio::task::spawn_blocking(move || t.adopt(hour, &bytes, users)).await {
            Ok(Ok(())) => fetched += 1,
            Ok(Err(AdoptError::Fault(fault))) => {
                return Err(format!(
                    "the bucket's {} is damaged ({fault}); remove it, and a server that has \
                     the hour's file uploads it again before its next snapshot",
                    object_name(hour)
                ))
            }
            Ok(Err(e)) => return Err(format!("cannot take in {}: {e}", object_name(hour))),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok((fetched, missing))
}

/// Removes the bucket's files of the hours past the retention once a ring has taken
/// `newest` (the older kept snapshot's newest hour), and asks the late thread to remove
/// this server's own (`late::LateCounts::request_prune`).
pub(super) async fn prune(store: &ObjectStore, cold: &ClusterCold, newest: u32) {
    if let Some(late) = &cold.waits.late {
        late.request_prune(newest);
    }
    let Ok(there) = listed(store).await else {
        return;
    };
    for hour in there
        .into_iter()
        .take_while(|&h| !cold.tier.keeps(h, newest))
    {
        if let Err(e) = store.delete(object_name(hour)).await {
            tracing::warn!(object = %object_name(hour), error = %e, "cluster: cannot remove a cold file past the retention from the bucket");
        }
    }
}
