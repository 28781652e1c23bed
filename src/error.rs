//! Every way a request can fail, and the one place each maps to an HTTP status.
//!
//! Each error's `Display` is the one line of plain text the client gets as the body.

use crate::event::MAX_TIMESTAMP_MS;

/// A query string that does not make a valid GET or POST of `/analytics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("timestamp: missing (give milliseconds since the Unix epoch)")]
    TimestampMissing,
    #[error("timestamp: empty (give milliseconds since the Unix epoch)")]
    TimestampEmpty,
    #[error("timestamp: not plain ASCII digits")]
    TimestampNotDigits,
    #[error("timestamp: above {MAX_TIMESTAMP_MS} (year 9999)")]
    TimestampTooLarge,
    #[error("user: missing")]
    UserMissing,
    #[error("user: empty")]
    UserEmpty,
    #[error("user: longer than {max} bytes after percent-decoding", max = crate::query::MAX_USER_BYTES)]
    UserTooLong,
    #[error("user: bad percent escape (want % and two hex digits)")]
    UserBadEscape,
    #[error("click/impression: give exactly one of them (neither was given)")]
    KindMissing,
    #[error("click/impression: give exactly one of them (both were given)")]
    KindBoth,
    #[error("{0}: given more than once (ambiguous)")]
    Duplicate(&'static str),
}

/// A valid POST that is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RejectError {
    #[error("timestamp: the hour is in the future (more than {max_future_hours} hour(s) past the server's clock)")]
    FutureHour { max_future_hours: u32 },
    #[error("timestamp: the hour is sealed (its slot now holds a newer hour)")]
    SealedHour,
    #[error("queue full: the writer cannot keep up; the event was not taken, retry")]
    QueueFull,
    #[error("shutting down: the event was not taken, retry on another server")]
    ShuttingDown,
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
    #[error("Content-Length: not a number")]
    BadContentLength,
    #[error("request body over {0} bytes")]
    BodyTooLarge(usize),
    #[error("Transfer-Encoding is not supported (send Content-Length)")]
    TransferEncoding,
    #[error("no complete request head within {0} s")]
    HeadTimeout(u64),
    #[error("method not allowed: /analytics takes GET or POST")]
    MethodNotAllowed,
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
}

/// An HTTP status this server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Ok,
    NoContent,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    PayloadTooLarge,
    UriTooLong,
    UnprocessableContent,
    HeaderFieldsTooLarge,
    NotImplemented,
    ServiceUnavailable,
}

impl Status {
    /// Every status, for metrics.
    pub const ALL: [Status; 12] = [
        Status::Ok,
        Status::NoContent,
        Status::BadRequest,
        Status::NotFound,
        Status::MethodNotAllowed,
        Status::RequestTimeout,
        Status::PayloadTooLarge,
        Status::UriTooLong,
        Status::UnprocessableContent,
        Status::HeaderFieldsTooLarge,
        Status::NotImplemented,
        Status::ServiceUnavailable,
    ];

    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::NoContent => 204,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::PayloadTooLarge => 413,
            Status::UriTooLong => 414,
            Status::UnprocessableContent => 422,
            Status::HeaderFieldsTooLarge => 431,
            Status::NotImplemented => 501,
            Status::ServiceUnavailable => 503,
        }
    }

    /// The status line, without the version: `"204 No Content"`.
    pub fn line(self) -> &'static str {
        match self {
            Status::Ok => "200 OK",
            Status::NoContent => "204 No Content",
            Status::BadRequest => "400 Bad Request",
            Status::NotFound => "404 Not Found",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::RequestTimeout => "408 Request Timeout",
            Status::PayloadTooLarge => "413 Content Too Large",
            Status::UriTooLong => "414 URI Too Long",
            Status::UnprocessableContent => "422 Unprocessable Content",
            Status::HeaderFieldsTooLarge => "431 Request Header Fields Too Large",
            Status::NotImplemented => "501 Not Implemented",
            Status::ServiceUnavailable => "503 Service Unavailable",
        }
    }

    /// Index into [`Status::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl ApiError {
    /// The status this error is answered with. The one place errors meet HTTP statuses.
    pub fn status(&self) -> Status {
        match self {
            ApiError::Query(_) => Status::BadRequest,
            ApiError::Reject(r) => match r {
                RejectError::FutureHour { .. } | RejectError::SealedHour => {
                    Status::UnprocessableContent
                }
                RejectError::QueueFull | RejectError::ShuttingDown => Status::ServiceUnavailable,
            },
            ApiError::Http(h) => match h {
                HttpError::HeadTooLarge(_) | HttpError::TooManyHeaders(_) => {
                    Status::HeaderFieldsTooLarge
                }
                HttpError::UriTooLong(_) => Status::UriTooLong,
                HttpError::Malformed | HttpError::BadContentLength => Status::BadRequest,
                HttpError::BodyTooLarge(_) => Status::PayloadTooLarge,
                HttpError::TransferEncoding => Status::NotImplemented,
                HttpError::HeadTimeout(_) => Status::RequestTimeout,
                HttpError::MethodNotAllowed => Status::MethodNotAllowed,
                HttpError::NotFound => Status::NotFound,
            },
        }
    }

    /// Whether the connection must be closed after the answer: the byte stream can no longer
    /// be trusted to be at a request boundary.
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            ApiError::Http(
                HttpError::HeadTooLarge(_)
                    | HttpError::UriTooLong(_)
                    | HttpError::TooManyHeaders(_)
                    | HttpError::Malformed
                    | HttpError::BadContentLength
                    | HttpError::BodyTooLarge(_)
                    | HttpError::TransferEncoding
                    | HttpError::HeadTimeout(_)
            )
        )
    }

    /// Extra header lines (each ending in CRLF) this error's answer carries.
    pub fn extra_headers(&self) -> &'static str {
        match self {
            ApiError::Reject(RejectError::QueueFull) => "Retry-After: 1\r\n",
            ApiError::Reject(RejectError::ShuttingDown) => "Retry-After: 1\r\n",
            ApiError::Http(HttpError::MethodNotAllowed) => "Allow: GET, POST\r\n",
            _ => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        let cases: [(ApiError, u16, bool); 12] = [
            (QueryError::TimestampMissing.into(), 400, false),
            (QueryError::Duplicate("user").into(), 400, false),
            (
                RejectError::FutureHour {
                    max_future_hours: 1,
                }
                .into(),
                422,
                false,
            ),
            (RejectError::SealedHour.into(), 422, false),
            (RejectError::QueueFull.into(), 503, false),
            (HttpError::HeadTooLarge(16384).into(), 431, true),
            (HttpError::UriTooLong(16384).into(), 414, true),
            (HttpError::TooManyHeaders(100).into(), 431, true),
            (HttpError::BodyTooLarge(65536).into(), 413, true),
            (HttpError::TransferEncoding.into(), 501, true),
            (HttpError::HeadTimeout(10).into(), 408, true),
            (HttpError::MethodNotAllowed.into(), 405, false),
        ];
        for (err, code, closes) in cases {
            assert_eq!(err.status().code(), code, "{err}");
            assert_eq!(err.closes_connection(), closes, "{err}");
            let reason = err.to_string();
            assert!(!reason.is_empty() && !reason.contains('\n'), "{reason:?}");
        }
        assert_eq!(
            ApiError::from(RejectError::QueueFull).extra_headers(),
            "Retry-After: 1\r\n"
        );
        assert_eq!(
            ApiError::from(HttpError::MethodNotAllowed).extra_headers(),
            "Allow: GET, POST\r\n"
        );
        for (i, s) in Status::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
            assert!(s.line().starts_with(&s.code().to_string()));
        }
    }
}
