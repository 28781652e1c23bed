//! What one accepted POST becomes: an [`Event`] of an hour, a user fingerprint, a kind and,
//! if the client gave one, the fingerprint of its event id.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Milliseconds in an hour: the hour of a timestamp is `timestamp / MILLIS_PER_HOUR`.
pub const MILLIS_PER_HOUR: u64 = 3_600_000;

/// The largest timestamp accepted: 9999-12-31T23:59:59.999Z.
pub const MAX_TIMESTAMP_MS: u64 = 253_402_300_799_999;

/// The seed of the user fingerprint. Fixed forever: every build, machine and replica of a
/// cluster must map a user name to the same fingerprint, and journals outlive builds.
pub const FINGERPRINT_SEED: u64 = 0x686f_7572_7461_6c79; // "hourtally"

/// The UTC hour of a timestamp, counted from the Unix epoch. Every valid timestamp maps to an
/// hour below 2^27, so a `u32` holds it.
#[inline]
pub fn hour_of(timestamp_ms: u64) -> u32 {
    debug_assert!(timestamp_ms <= MAX_TIMESTAMP_MS);
    (timestamp_ms / MILLIS_PER_HOUR) as u32
}

/// The 64-bit fingerprint of a (percent-decoded) user name: xxh3 with [`FINGERPRINT_SEED`].
///
/// Only the fingerprint is kept, so two names with the same fingerprint count as one user.
/// For `n` distinct users in one hour the chance of any such pair is about `n² / 2⁶⁵`
/// (3·10⁻⁶ for ten million users). xxh3 rather than ahash because ahash's output changes
/// with the CPU and the crate version.
#[inline]
pub fn fingerprint(user: &[u8]) -> u64 {
    xxh3_64_with_seed(user, FINGERPRINT_SEED)
}

/// The seed of the event-id fingerprint, fixed forever for the same reasons as
/// [`FINGERPRINT_SEED`]; another seed, so that an id never maps where its user name would.
pub const EVENT_ID_SEED: u64 = 0x6576_656e_745f_6964; // "event_id"

/// The longest event id, in bytes (after percent-decoding, or inside the header's quotes).
pub const MAX_EVENT_ID_BYTES: usize = 128;

/// The fingerprint of an event id (`event_id`, or the `Idempotency-Key` header): xxh3 with
/// [`EVENT_ID_SEED`], never 0 (0 is "no id"; the one id that would hash to 0 shares 1's
/// fingerprint).
///
/// Two ids of one hour with the same fingerprint count as one event. For `n` events with
/// ids in one hour the chance of any such pair is about `n² / 2⁶⁵` (3·10⁻⁸ for a million),
/// the same bound as two users sharing a fingerprint.
#[inline]
pub fn event_id_fingerprint(id: &[u8]) -> u64 {
    xxh3_64_with_seed(id, EVENT_ID_SEED).max(1)
}

/// Which counter an event adds to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    Click = 0,
    Impression = 1,
}

/// One accepted POST, as the writer applies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    /// The UTC hour, `timestamp / 3_600_000`.
    pub hour: u32,
    /// Click or impression.
    pub kind: Kind,
    /// With `--fsync always`, the connection slot that queued it (1-based; 0: none), so
    /// that the writer can tell a connection which of its events a failed group refused
    /// (`ingest::Refusals`). Lives in what would be padding; never journaled or published.
    pub src: u16,
    /// [`fingerprint`] of the user name.
    pub user: u64,
    /// [`event_id_fingerprint`] of the client's event id; 0: the event has none. The apply
    /// rule counts an event with an id once per hour, however often it is sent.
    pub id: u64,
}

// The tag costs nothing: it fills padding. The id takes 8 bytes of its own.
const _: () = assert!(std::mem::size_of::<Event>() == 24);

impl Event {
    pub fn new(hour: u32, user: u64, kind: Kind) -> Self {
        Self {
            hour,
            kind,
            src: 0,
            user,
            id: 0,
        }
    }

    /// This event with the event-id fingerprint `id` (0: none).
    pub fn with_id(self, id: u64) -> Self {
        Self { id, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_boundaries() {
        assert_eq!(hour_of(0), 0);
        assert_eq!(hour_of(3_599_999), 0);
        assert_eq!(hour_of(3_600_000), 1);
        assert_eq!(hour_of(MAX_TIMESTAMP_MS), 70_389_527);
        assert!(hour_of(MAX_TIMESTAMP_MS) < 1 << 27);
    }

    #[test]
    fn fingerprint_is_stable_and_case_sensitive() {
        // Pinned values: a change here breaks every journal and every cluster peer.
        assert_ne!(fingerprint(b"alice"), fingerprint(b"Alice"));
        assert_eq!(fingerprint(b"alice"), 0x6cca_9007_aa62_a1a1);
        assert_eq!(fingerprint(b""), 0x2cb5_b248_fde1_e121);
    }

    #[test]
    fn an_event_id_has_a_fingerprint_of_its_own_that_is_never_zero() {
        assert_ne!(event_id_fingerprint(b"alice"), fingerprint(b"alice"));
        assert_ne!(event_id_fingerprint(b"a"), event_id_fingerprint(b"A"));
        assert!((0..10_000u32).all(|i| event_id_fingerprint(&i.to_le_bytes()) != 0));
        // Pinned: a change here makes a retry after an upgrade count twice.
        assert_eq!(event_id_fingerprint(b"e-1"), 0xd077_e338_3c15_81f5);
    }
}
