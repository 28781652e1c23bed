//! The HTTP statuses this server sends, in one table: code, reason phrase and the status line
//! come from the same row, so they cannot drift apart.

/// Declares [`Status`] from `Variant = code "Reason Phrase"` rows.
macro_rules! statuses {
    ($($variant:ident = $code:literal $reason:literal,)+) => {
        /// An HTTP status this server sends.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Status {
            $($variant,)+
        }

        impl Status {
            /// Every status, in table order (for metrics).
            pub const ALL: &'static [Status] = &[$(Status::$variant,)+];

            /// The numeric code: `204`.
            pub const fn code(self) -> u16 {
                match self {
                    $(Status::$variant => $code,)+
                }
            }

            /// The status line without the version: `"204 No Content"`.
            pub const fn line(self) -> &'static str {
                match self {
                    $(Status::$variant => concat!(stringify!($code), " ", $reason),)+
                }
            }
        }
    };
}

statuses! {
    Continue = 100 "Continue",
    Ok = 200 "OK",
    NoContent = 204 "No Content",
    NotModified = 304 "Not Modified",
    BadRequest = 400 "Bad Request",
    NotFound = 404 "Not Found",
    MethodNotAllowed = 405 "Method Not Allowed",
    RequestTimeout = 408 "Request Timeout",
    PayloadTooLarge = 413 "Content Too Large",
    UriTooLong = 414 "URI Too Long",
    UnprocessableContent = 422 "Unprocessable Content",
    HeaderFieldsTooLarge = 431 "Request Header Fields Too Large",
    InternalServerError = 500 "Internal Server Error",
    NotImplemented = 501 "Not Implemented",
    ServiceUnavailable = 503 "Service Unavailable",
    GatewayTimeout = 504 "Gateway Timeout",
    VersionNotSupported = 505 "HTTP Version Not Supported",
}

/// The number of statuses in the table.
pub const COUNT: usize = Status::ALL.len();

impl Status {
    /// Index into [`Status::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_start_with_their_code_and_indexes_follow_the_table() {
        for (i, s) in Status::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
            assert_eq!(s.line()[..3], s.code().to_string());
        }
        assert_eq!(Status::NoContent.line(), "204 No Content");
    }
}
