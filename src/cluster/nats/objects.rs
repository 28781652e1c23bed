//! The snapshot bucket's objects by name: what the snapshots (`bucket`) and the cold tier's
//! files (`cold`) both list.

use std::collections::BTreeSet;

use async_nats::jetstream::object_store;
use futures_util::StreamExt;

/// The numbers of the objects named `{prefix}{number}` in `store`. An object the listing
/// fails to read is skipped if `partial`, else the listing fails.
pub(super) async fn numbered<T: std::str::FromStr + Ord>(
    store: &object_store::ObjectStore,
    prefix: &str,
    partial: bool,
) -> Result<BTreeSet<T>, String> {
    let mut found = BTreeSet::new();
    let mut list = store.list().await.map_err(|e| e.to_string())?;
    while let Some(info) = list.next().await {
        let info = match info {
            Ok(info) => info,
            Err(_) if partial => break,
            Err(e) => return Err(e.to_string()),
        };
        if let Some(n) = info.name.strip_prefix(prefix).and_then(|n| n.parse().ok()) {
            found.insert(n);
        }
    }
    Ok(found)
}
