//! The route table: which route a request's path and method name, the labels its series
//! carry in `/metrics`, and why a request that names none is refused. The routes' answers
//! are in `routes`, one arm per [`Route`].

use super::assets;
use super::error::HttpError;

/// The request methods the routes tell apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Other,
}

impl Method {
    pub fn parse(method: &[u8]) -> Self {
        match method {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            _ => Method::Other,
        }
    }
}

/// The routes (labels `path` and `method` of their series; a `HEAD` is filed with the `GET`
/// of its path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    AnalyticsGet,
    AnalyticsPost,
    AnalyticsHours,
    AnalyticsRange,
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    /// `/` and the files under `/assets/`.
    Dashboard,
    /// Anything else: unknown paths, methods a path does not take.
    Other,
}

/// How many [`Route`]s there are.
pub const ROUTE_COUNT: usize = 10;

impl Route {
    pub const ALL: [Route; ROUTE_COUNT] = [
        Route::AnalyticsGet,
        Route::AnalyticsPost,
        Route::AnalyticsHours,
        Route::AnalyticsRange,
        Route::Healthz,
        Route::Readyz,
        Route::Metrics,
        Route::OpenApi,
        Route::Dashboard,
        Route::Other,
    ];

    /// The `(path, method)` labels of the route's series.
    pub fn labels(self) -> (&'static str, &'static str) {
        match self {
            Route::AnalyticsGet => ("/analytics", "GET"),
            Route::AnalyticsPost => ("/analytics", "POST"),
            Route::AnalyticsHours => ("/analytics/hours", "GET"),
            Route::AnalyticsRange => ("/analytics/range", "GET"),
            Route::Healthz => ("/healthz", "GET"),
            Route::Readyz => ("/readyz", "GET"),
            Route::Metrics => ("/metrics", "GET"),
            Route::OpenApi => ("/openapi.json", "GET"),
            Route::Dashboard => ("dashboard", "GET"),
            Route::Other => ("other", "other"),
        }
    }
}

/// The route a request's path and method name ([`Route::Other`]: none).
#[inline]
pub fn route_of(path: &[u8], method: Method) -> Route {
    let read = matches!(method, Method::Get | Method::Head);
    match path {
        b"/analytics" if read => Route::AnalyticsGet,
        b"/analytics" if method == Method::Post => Route::AnalyticsPost,
        b"/analytics/hours" if read => Route::AnalyticsHours,
        b"/analytics/range" if read => Route::AnalyticsRange,
        b"/healthz" if read => Route::Healthz,
        b"/readyz" if read => Route::Readyz,
        b"/metrics" if read => Route::Metrics,
        b"/openapi.json" if read => Route::OpenApi,
        _ if read && assets::find(path).is_some() => Route::Dashboard,
        _ => Route::Other,
    }
}

/// Why a request of [`Route::Other`] is refused: its path takes other methods, or there is
/// no such path.
pub fn misroute(path: &[u8]) -> HttpError {
    match path {
        b"/analytics" => HttpError::MethodNotAllowed,
        b"/healthz" | b"/readyz" | b"/metrics" | b"/openapi.json" | b"/analytics/hours"
        | b"/analytics/range" => HttpError::ReadOnlyMethodNotAllowed,
        _ if assets::find(path).is_some() => HttpError::ReadOnlyMethodNotAllowed,
        _ => HttpError::NotFound,
    }
}
