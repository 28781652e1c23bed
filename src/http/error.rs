//! Every way an HTTP request can fail, and the one place each meets its HTTP status, its
//! extra headers and whether the connection closes.
//!
//! Each error's `Display` is the one line of plain text the client gets as the body. Query
//! errors are the query module's own ([`QueryError`]); everything here is the edge's.

use super::status::Status;
use crate::query::QueryError;
use crate::readiness::Starting;
use crate::uniques::RangeError;

/// A valid POST that is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RejectError {
    #[error("timestamp: the hour is in the future (more than {max_future_hours} hour(s) past the server's clock)")]
    FutureHour { max_future_hours: u32 },
    #[error("timestamp: the hour is too old (this server takes events up to {max_past_hours} hour(s) before its clock's hour)")]
    TooOldHour { max_past_hours: u32 },
    #[error("timestamp: the hour is too old for an event with an id (ids are remembered for events up to {max_past_hours} hour(s) before the server's clock's hour, so a retry could not be told from a new event; without an id an older event is counted late)")]
    TooOldForId { max_past_hours: u32 },
    #[error("timestamp: the hour is sealed (its slot now holds a newer hour)")]
    SealedHour,
    #[error("timestamp: the hour left the ring before this server kept its users (no cold file), so a late event for it cannot be counted exactly")]
    LateWithoutUsers,
    #[error("queue full: the writer cannot keep up; the event was not taken, retry")]
    QueueFull,
    #[error("shutting down: the event was not taken, retry on another server")]
    ShuttingDown,
    /// Not ready yet: the reason names what the server is doing.
    #[error("{}", not_ready_reason(.0))]
    Recovering(Starting),
    #[error("journal: the server cannot write to its disk; the event was not taken, retry later")]
    JournalFailing,
    #[error("log: the replicated log (NATS JetStream) is not taking events; the event was not taken, retry later")]
    LogFailing,
    #[error(
        "fresh: this server did not catch up with the log in time; retry, or read without fresh=1"
    )]
    NotFresh,
}

/// The reason a server gives while it is not ready, by what it is doing.
fn not_ready_reason(phase: &Starting) -> &'static str {
    match phase {
        Starting::ReplayingJournal => {
            "recovering: the server is replaying its journal; retry shortly"
        }
        Starting::WaitingForNats => {
            "starting: the server is waiting for NATS (the replicated log); retry shortly"
        }
        Starting::CatchingUp => {
            "catching up: the server is applying the replicated log up to where it stood at \
             its start; retry shortly"
        }
    }
}

/// A request the HTTP layer refuses before any route sees it, or a route error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("request head over {0} bytes")]
    HeadTooLarge(usize),
    #[error("request line over {0} bytes")]
    UriTooLong(usize),
    #[error("more than {0} header fields")]
    TooManyHeaders(usize),
    #[error("malformed HTTP request")]
    Malformed,
    #[error("Host: an HTTP/1.1 request needs exactly one Host header")]
    BadHost,
    #[error("HTTP version not supported (send HTTP/1.1 or HTTP/1.0)")]
    VersionNotSupported,
    #[error("Content-Length: not a number")]
    BadContentLength,
    #[error("Content-Length: given more than once with different values")]
    ConflictingContentLength,
    #[error("request body over {0} bytes")]
    BodyTooLarge(usize),
    #[error("Transfer-Encoding is not supported (send Content-Length)")]
    TransferEncoding,
    #[error("no complete request head within {0} s")]
    HeadTimeout(u64),
    #[error("request body not complete within {0} s")]
    BodyTimeout(u64),
    #[error("too many connections: try again shortly")]
    TooManyConnections,
    #[error("method not allowed: /analytics takes GET, HEAD or POST")]
    MethodNotAllowed,
    /// Another method on a read-only route (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`,
    /// `/analytics/hours`, the dashboard and its assets).
    #[error("method not allowed: this path takes GET or HEAD")]
    ReadOnlyMethodNotAllowed,
    #[error("not found")]
    NotFound,
}

/// Any error a response can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Reject(#[from] RejectError),
    #[error(transparent)]
    Http(#[from] HttpError),
    /// `/analytics/range` cannot count unique users over the range.
    #[error(transparent)]
    Range(#[from] RangeError),
}

/// Declares [`Reason`] from `Variant "label" Status` rows.
macro_rules! reasons {
    ($($variant:ident $label:literal $status:ident,)+) => {
        /// Why a request was refused, one per refusal row of the API and transport tables:
        /// the label of `hourtally_http_rejections_total{reason=...}` and of the log's
        /// rejection summary.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($variant,)+
        }

        impl Reason {
            /// Every reason, in table order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)+];

            /// The metric label: `timestamp_missing`.
            pub const fn label(self) -> &'static str {
                match self {
                    $(Reason::$variant => $label,)+
                }
            }

            /// The status this refusal is answered with.
            pub const fn status(self) -> Status {
                match self {
                    $(Reason::$variant => Status::$status,)+
                }
            }

            /// Index into [`Reason::ALL`].
            pub fn index(self) -> usize {
                self as usize
            }
        }
    };
}

reasons! {
    TimestampMissing "timestamp_missing" BadRequest,
    TimestampEmpty "timestamp_empty" BadRequest,
    TimestampNotDigits "timestamp_not_digits" BadRequest,
    TimestampTooLarge "timestamp_too_large" BadRequest,
    UserMissing "user_missing" BadRequest,
    UserEmpty "user_empty" BadRequest,
    UserTooLong "user_too_long" BadRequest,
    UserBadEscape "user_bad_escape" BadRequest,
    KindMissing "kind_missing" BadRequest,
    KindBoth "kind_both" BadRequest,
    EventIdEmpty "event_id_empty" BadRequest,
    EventIdTooLong "event_id_too_long" BadRequest,
    EventIdBadEscape "event_id_bad_escape" BadRequest,
    EventIdBoth "event_id_both" BadRequest,
    Duplicate "duplicate_parameter" BadRequest,
    FreshInvalid "fresh_invalid" BadRequest,
    BoundMissing "range_bound_missing" BadRequest,
    BoundEmpty "range_bound_empty" BadRequest,
    BoundNotDigits "range_bound_not_digits" BadRequest,
    BoundTooLarge "range_bound_too_large" BadRequest,
    RangeReversed "range_reversed" BadRequest,
    RangeTooLong "range_too_long" BadRequest,
    RangeWithoutUsers "range_without_users" UnprocessableContent,
    RangeBusy "range_busy" ServiceUnavailable,
    RangeFailed "range_failed" InternalServerError,
    ColdSetUnreadable "cold_set_unreadable" InternalServerError,
    FutureHour "future_hour" UnprocessableContent,
    TooOldHour "too_old_hour" UnprocessableContent,
    TooOldForId "too_old_for_id" UnprocessableContent,
    SealedHour "sealed_hour" UnprocessableContent,
    LateWithoutUsers "late_without_users" UnprocessableContent,
    QueueFull "queue_full" ServiceUnavailable,
    ShuttingDown "shutting_down" ServiceUnavailable,
    Recovering "recovering" ServiceUnavailable,
    JournalFailing "journal_failing" ServiceUnavailable,
    LogFailing "log_failing" ServiceUnavailable,
    NotFresh "not_fresh" GatewayTimeout,
    HeadTooLarge "head_too_large" HeaderFieldsTooLarge,
    UriTooLong "uri_too_long" UriTooLong,
    TooManyHeaders "too_many_headers" HeaderFieldsTooLarge,
    Malformed "malformed" BadRequest,
    BadHost "bad_host" BadRequest,
    VersionNotSupported "version_not_supported" VersionNotSupported,
    BadContentLength "bad_content_length" BadRequest,
    ConflictingContentLength "conflicting_content_length" BadRequest,
    BodyTooLarge "body_too_large" PayloadTooLarge,
    TransferEncoding "transfer_encoding" NotImplemented,
    HeadTimeout "head_timeout" RequestTimeout,
    BodyTimeout "body_timeout" RequestTimeout,
    TooManyConnections "too_many_connections" ServiceUnavailable,
    MethodNotAllowed "method_not_allowed" MethodNotAllowed,
    NotFound "not_found" NotFound,
}

/// The number of reasons in the table.
pub const REASON_COUNT: usize = Reason::ALL.len();

impl ApiError {
    /// Which refusal row this is.
    pub fn reason(&self) -> Reason {
        match self {
            ApiError::Query(q) => match q {
                QueryError::TimestampMissing => Reason::TimestampMissing,
                QueryError::TimestampEmpty => Reason::TimestampEmpty,
                QueryError::TimestampNotDigits => Reason::TimestampNotDigits,
                QueryError::TimestampTooLarge => Reason::TimestampTooLarge,
                QueryError::UserMissing => Reason::UserMissing,
                QueryError::UserEmpty => Reason::UserEmpty,
                QueryError::UserTooLong => Reason::UserTooLong,
                QueryError::UserBadEscape => Reason::UserBadEscape,
                QueryError::KindMissing => Reason::KindMissing,
                QueryError::KindBoth => Reason::KindBoth,
                QueryError::EventIdEmpty(_) => Reason::EventIdEmpty,
                QueryError::EventIdTooLong(_) => Reason::EventIdTooLong,
                QueryError::EventIdBadEscape => Reason::EventIdBadEscape,
                QueryError::EventIdBoth => Reason::EventIdBoth,
                QueryError::Duplicate(_) => Reason::Duplicate,
                QueryError::FreshInvalid => Reason::FreshInvalid,
                QueryError::BoundMissing(_) => Reason::BoundMissing,
                QueryError::BoundEmpty(_) => Reason::BoundEmpty,
                QueryError::BoundNotDigits(_) => Reason::BoundNotDigits,
                QueryError::BoundTooLarge(_) => Reason::BoundTooLarge,
                QueryError::RangeReversed => Reason::RangeReversed,
                QueryError::RangeTooLong { .. } => Reason::RangeTooLong,
            },
            ApiError::Reject(r) => match r {
                RejectError::FutureHour { .. } => Reason::FutureHour,
                RejectError::TooOldHour { .. } => Reason::TooOldHour,
                RejectError::TooOldForId { .. } => Reason::TooOldForId,
                RejectError::SealedHour => Reason::SealedHour,
                RejectError::LateWithoutUsers => Reason::LateWithoutUsers,
                RejectError::QueueFull => Reason::QueueFull,
                RejectError::ShuttingDown => Reason::ShuttingDown,
                RejectError::Recovering(_) => Reason::Recovering,
                RejectError::JournalFailing => Reason::JournalFailing,
                RejectError::LogFailing => Reason::LogFailing,
                RejectError::NotFresh => Reason::NotFresh,
            },
            ApiError::Http(h) => match h {
                HttpError::HeadTooLarge(_) => Reason::HeadTooLarge,
                HttpError::UriTooLong(_) => Reason::UriTooLong,
                HttpError::TooManyHeaders(_) => Reason::TooManyHeaders,
                HttpError::Malformed => Reason::Malformed,
                HttpError::BadHost => Reason::BadHost,
                HttpError::VersionNotSupported => Reason::VersionNotSupported,
                HttpError::BadContentLength => Reason::BadContentLength,
                HttpError::ConflictingContentLength => Reason::ConflictingContentLength,
                HttpError::BodyTooLarge(_) => Reason::BodyTooLarge,
                HttpError::TransferEncoding => Reason::TransferEncoding,
                HttpError::HeadTimeout(_) => Reason::HeadTimeout,
                HttpError::BodyTimeout(_) => Reason::BodyTimeout,
                HttpError::TooManyConnections => Reason::TooManyConnections,
                HttpError::MethodNotAllowed | HttpError::ReadOnlyMethodNotAllowed => {
                    Reason::MethodNotAllowed
                }
                HttpError::NotFound => Reason::NotFound,
            },
            ApiError::Range(r) => match r {
                RangeError::NoUsers { .. } => Reason::RangeWithoutUsers,
                RangeError::Busy => Reason::RangeBusy,
                RangeError::Failed => Reason::RangeFailed,
                RangeError::Unreadable { .. } => Reason::ColdSetUnreadable,
            },
        }
    }

    /// The status this error is answered with: its reason's row of the `reasons!` table,
    /// the one place errors meet HTTP statuses.
    pub fn status(&self) -> Status {
        self.reason().status()
    }

    /// Whether the connection must be closed after the answer: the byte stream can no longer
    /// be trusted to be at a request boundary (or, for too many connections, was never let in).
    pub fn closes_connection(&self) -> bool {
        match self {
            ApiError::Query(_) | ApiError::Reject(_) | ApiError::Range(_) => false,
            ApiError::Http(h) => !matches!(
                h,
                HttpError::MethodNotAllowed
                    | HttpError::ReadOnlyMethodNotAllowed
                    | HttpError::NotFound
            ),
        }
    }

    /// Extra header lines (each ending in CRLF) this error's answer carries.
    pub fn extra_headers(&self) -> &'static str {
        match self {
            ApiError::Reject(
                RejectError::QueueFull
                | RejectError::ShuttingDown
                | RejectError::Recovering(_)
                | RejectError::JournalFailing
                | RejectError::LogFailing
                | RejectError::NotFresh,
            )
            | ApiError::Range(RangeError::Busy)
            | ApiError::Http(HttpError::TooManyConnections) => "Retry-After: 1\r\n",
            ApiError::Http(HttpError::MethodNotAllowed) => "Allow: GET, HEAD, POST\r\n",
            ApiError::Http(HttpError::ReadOnlyMethodNotAllowed) => "Allow: GET, HEAD\r\n",
            _ => "",
        }
    }
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
