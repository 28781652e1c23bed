//! The cold tier's files in the snapshot bucket.
//!
//! Every server stores its own files as hours leave its ring (the same hours, with the same
//! users, on every server: the ring follows the stream). A server that catches up from a
//! snapshot did not see the hours that left before it, so before a snapshot is stored the
//! files it needs are uploaded (`cold-{hour:010}`, the file's bytes, checked first), and a
//! server that restores it fetches the ones it lacks before it replays the stream. The
//! bucket's files go once the older kept snapshot's ring had taken an hour more than the cold
//! retention after them, as a single server's do.
//!
//! A fetch never takes a failed read for an absent file: the servers would then count that
//! hour's late events differently. A read that fails is tried again for [`FETCH_FOR`], then
//! the start stops; "not found" is asked [`NOT_FOUND_TRIES`] times, [`FETCH_PAUSE`] apart (a
//! replica that answers direct gets may not have an upload yet), and only then taken for an
//! hour nobody kept (it left before the cluster kept a cold tier), as it is on every server.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use async_nats::jetstream::object_store::{self, GetErrorKind, ObjectStore};
use tokio::sync::watch;

use crate::cluster::ClusterCold;
use crate::cold::{AdoptError, ColdTier};
use crate::coldset::ColdSet;
use crate::ring::RingImage;
use crate::sync::Arc;

/// How long one file's upload or download may take.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a fetch keeps trying files it could not read before the start stops.
const FETCH_FOR: Duration = Duration::from_secs(60);

/// Times a file must be "not found" before it counts as absent, and the pause between rounds.
const NOT_FOUND_TRIES: u32 = 3;
const FETCH_PAUSE: Duration = Duration::from_secs(2);

/// The object that holds `hour`'s file.
fn object_name(hour: u32) -> String {
    format!("cold-{hour:010}")
}

/// The hours the bucket holds files of (a listing that fails part way fails: an upload or a
/// removal decided on part of it could be wrong).
async fn listed(store: &ObjectStore) -> Result<BTreeSet<u32>, String> {
    super::objects::numbered(store, "cold-", false).await
}

/// The hours a server restoring `image` needs files of, with the users each had when it left:
/// those that left its ring with users, within the retention of its newest hour.
pub(super) fn needed(tier: &ColdTier, image: &RingImage) -> Vec<(u32, u64)> {
    let newest = image.newest_hour();
    image
        .left_with_users()
        .filter(|&(hour, _)| tier.keeps(hour, newest))
        .collect()
}

/// Uploads the files of `needed` (a snapshot's [`needed`]) that the bucket lacks, each checked
/// whole and against its users first; the number uploaded. Called before the snapshot is
/// stored, once every hour that left before it is in `tier`. An hour this server has no file
/// of left before it kept one: nothing to upload.
pub(super) async fn upload_missing(
    store: &ObjectStore,
    tier: &Arc<ColdTier>,
    needed: &[(u32, u64)],
) -> Result<usize, String> {
    let there = listed(store).await?;
    let mut uploaded = 0;
    for &(hour, users) in needed.iter().filter(|(h, _)| !there.contains(h)) {
        let t = tier.clone();
        let read = tokio::task::spawn_blocking(move || {
            let bytes = t.read_file(hour)?;
            // Never upload a damaged file: a server fetching it would refuse to start.
            match ColdSet::parse(&bytes) {
                Ok(set) if set.len() == users => Ok(bytes),
                Ok(set) => Err(std::io::Error::other(format!(
                    "holds {} users, but its hour had {users}",
                    set.len()
                ))),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            }
        });
        let bytes = match read.await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Ok(Err(e)) => {
                return Err(format!("cold/{}: {e}", crate::cold::file_name(hour)));
            }
            Err(e) => return Err(e.to_string()),
        };
        // Another server may have uploaded it since the listing: a second put would drop
        // the chunks of the first under a reader.
        if store.info(object_name(hour)).await.is_ok() {
            continue;
        }
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

/// One file's fetch.
enum Fetched {
    Bytes(Vec<u8>),
    NotFound,
    Failed(String),
}

async fn fetch_one(store: &ObjectStore, hour: u32) -> Fetched {
    use tokio::io::AsyncReadExt;
    let read = async {
        let mut object = match store.get(object_name(hour)).await {
            Ok(object) => object,
            Err(e) if e.kind() == GetErrorKind::NotFound => return Fetched::NotFound,
            Err(e) => return Fetched::Failed(e.to_string()),
        };
        let mut bytes = Vec::new();
        match object.read_to_end(&mut bytes).await {
            Ok(_) => Fetched::Bytes(bytes),
            Err(e) => Fetched::Failed(e.to_string()),
        }
    };
    tokio::time::timeout(TRANSFER_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| Fetched::Failed("timed out".into()))
}

/// Why a fetch did not finish.
pub(super) enum FetchError {
    /// The server is stopping.
    Stopping,
    /// What went wrong, for the operator: the start stops.
    Failed(String),
}

/// Fetches into `tier` the files of `needed` that it lacks: `(fetched, absent)`. Each is
/// checked whole and against its hour's users before it is written ([`ColdTier::adopt`]).
/// Module doc: how failed reads and "not found" are told apart.
pub(super) async fn fetch_missing(
    store: &ObjectStore,
    tier: &Arc<ColdTier>,
    needed: &[(u32, u64)],
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(usize, usize), FetchError> {
    let have: BTreeSet<u32> = tier.hours().into_iter().collect();
    // (hour, users, times not found)
    let mut todo: Vec<(u32, u64, u32)> = needed
        .iter()
        .filter(|(h, _)| !have.contains(h))
        .map(|&(h, users)| (h, users, 0))
        .collect();
    let (mut fetched, mut absent) = (0, 0);
    let deadline = Instant::now() + FETCH_FOR;
    loop {
        let mut again = Vec::new();
        for (hour, users, not_found) in todo {
            if *shutdown.borrow() {
                return Err(FetchError::Stopping);
            }
            match fetch_one(store, hour).await {
                Fetched::Bytes(bytes) => {
                    let t = tier.clone();
                    match tokio::task::spawn_blocking(move || t.adopt(hour, &bytes, users)).await {
                        Ok(Ok(())) => fetched += 1,
                        Ok(Err(AdoptError::Fault(fault))) => {
                            return Err(FetchError::Failed(format!(
                                "the bucket's {} is damaged ({fault}); remove it, and a server \
                                 that has the hour's file uploads it again before its next \
                                 snapshot",
                                object_name(hour)
                            )))
                        }
                        Ok(Err(e)) => {
                            return Err(FetchError::Failed(format!(
                                "cannot take in {}: {e}",
                                object_name(hour)
                            )))
                        }
                        Err(e) => return Err(FetchError::Failed(e.to_string())),
                    }
                }
                Fetched::NotFound if not_found + 1 >= NOT_FOUND_TRIES => {
                    tracing::warn!(
                        hour_start_ms = u64::from(hour) * crate::event::MILLIS_PER_HOUR,
                        "cluster: the bucket has no file of an hour that left the ring with users (it left before the cluster kept a cold tier); its users are not kept here either"
                    );
                    absent += 1;
                }
                Fetched::NotFound => again.push((hour, users, not_found + 1)),
                Fetched::Failed(why) if Instant::now() >= deadline => {
                    return Err(FetchError::Failed(format!(
                        "cannot read {} for {} s: {why}",
                        object_name(hour),
                        FETCH_FOR.as_secs()
                    )))
                }
                Fetched::Failed(_) => again.push((hour, users, not_found)),
            }
        }
        if again.is_empty() {
            return Ok((fetched, absent));
        }
        todo = again;
        // A pause before the next round, cut short by a stop.
        if tokio::time::timeout(FETCH_PAUSE, shutdown.wait_for(|stop| *stop))
            .await
            .is_ok()
        {
            return Err(FetchError::Stopping);
        }
    }
}

/// Removes the bucket's files of the hours past the retention once a ring has taken `floor`
/// (the older kept snapshot's newest hour), and asks the late thread to remove this server's
/// own up to `own`: the lower of `floor` and the newest hour of the snapshot this server just
/// stored (a server that lags the others must keep what its own replay could need).
pub(super) async fn prune(store: &ObjectStore, cold: &ClusterCold, floor: u32, own: u32) {
    if let Some(late) = &cold.waits.late {
        late.request_prune(floor.min(own));
    }
    let Ok(there) = listed(store).await else {
        return;
    };
    for hour in there
        .into_iter()
        .take_while(|&h| !cold.tier.keeps(h, floor))
    {
        if let Err(e) = store.delete(object_name(hour)).await {
            tracing::warn!(object = %object_name(hour), error = %e, "cluster: cannot remove a cold file past the retention from the bucket");
        }
    }
}
