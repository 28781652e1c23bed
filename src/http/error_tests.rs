use super::*;

#[test]
fn every_error_maps_to_its_status_close_and_headers() {
    let cases: [(ApiError, u16, bool, &str); 42] = [
        (RangeError::NoUsers { hour: 7 }.into(), 422, false, ""),
        (RangeError::Failed.into(), 500, false, ""),
        (
            RangeError::Unreadable {
                hour: 7,
                fault: crate::cold::ColdFault::Count {
                    found: 1,
                    expected: 2,
                },
            }
            .into(),
            500,
            false,
            "",
        ),
        (RangeError::Busy.into(), 503, false, "Retry-After: 1\r\n"),
        (QueryError::BoundMissing("from").into(), 400, false, ""),
        (QueryError::BoundEmpty("to").into(), 400, false, ""),
        (QueryError::BoundNotDigits("from").into(), 400, false, ""),
        (QueryError::BoundTooLarge("to").into(), 400, false, ""),
        (QueryError::RangeReversed.into(), 400, false, ""),
        (
            QueryError::RangeTooLong { max_hours: 168 }.into(),
            400,
            false,
            "",
        ),
        (
            RejectError::LogFailing.into(),
            503,
            false,
            "Retry-After: 1\r\n",
        ),
        (
            RejectError::NotFresh.into(),
            504,
            false,
            "Retry-After: 1\r\n",
        ),
        (QueryError::FreshInvalid.into(), 400, false, ""),
        (
            RejectError::Recovering(Starting::ReplayingJournal).into(),
            503,
            false,
            "Retry-After: 1\r\n",
        ),
        (
            RejectError::Recovering(Starting::WaitingForNats).into(),
            503,
            false,
            "Retry-After: 1\r\n",
        ),
        (
            RejectError::Recovering(Starting::CatchingUp).into(),
            503,
            false,
            "Retry-After: 1\r\n",
        ),
        (
            RejectError::JournalFailing.into(),
            503,
            false,
            "Retry-After: 1\r\n",
        ),
        (QueryError::TimestampMissing.into(), 400, false, ""),
        (QueryError::Duplicate("user").into(), 400, false, ""),
        (
            RejectError::FutureHour {
                max_future_hours: 1,
            }
            .into(),
            422,
            false,
            "",
        ),
        (
            RejectError::TooOldForId { max_past_hours: 45 }.into(),
            422,
            false,
            "",
        ),
        (
            RejectError::TooOldHour { max_past_hours: 46 }.into(),
            422,
            false,
            "",
        ),
        (RejectError::SealedHour.into(), 422, false, ""),
        (RejectError::LateWithoutUsers.into(), 422, false, ""),
        (
            RejectError::QueueFull.into(),
            503,
            false,
            "Retry-After: 1\r\n",
        ),
        (
            RejectError::ShuttingDown.into(),
            503,
            false,
            "Retry-After: 1\r\n",
        ),
        (HttpError::HeadTooLarge(16384).into(), 431, true, ""),
        (HttpError::UriTooLong(16384).into(), 414, true, ""),
        (HttpError::TooManyHeaders(100).into(), 431, true, ""),
        (HttpError::Malformed.into(), 400, true, ""),
        (HttpError::BadHost.into(), 400, true, ""),
        (HttpError::VersionNotSupported.into(), 505, true, ""),
        (HttpError::BadContentLength.into(), 400, true, ""),
        (HttpError::ConflictingContentLength.into(), 400, true, ""),
        (HttpError::BodyTooLarge(65536).into(), 413, true, ""),
        (HttpError::TransferEncoding.into(), 501, true, ""),
        (HttpError::HeadTimeout(10).into(), 408, true, ""),
        (HttpError::BodyTimeout(10).into(), 408, true, ""),
        (
            HttpError::TooManyConnections.into(),
            503,
            true,
            "Retry-After: 1\r\n",
        ),
        (
            HttpError::MethodNotAllowed.into(),
            405,
            false,
            "Allow: GET, HEAD, POST\r\n",
        ),
        (
            HttpError::ReadOnlyMethodNotAllowed.into(),
            405,
            false,
            "Allow: GET, HEAD\r\n",
        ),
        (HttpError::NotFound.into(), 404, false, ""),
    ];
    for (err, code, closes, headers) in cases {
        assert_eq!(err.status().code(), code, "{err}");
        assert_eq!(err.closes_connection(), closes, "{err}");
        assert_eq!(err.extra_headers(), headers, "{err}");
        let reason = err.to_string();
        assert!(!reason.is_empty() && !reason.contains('\n'), "{reason:?}");
        assert_eq!(Reason::ALL[err.reason().index()], err.reason());
    }
}
