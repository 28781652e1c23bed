//! The routes a request's latency is filed under, and their labels.

/// The routes a request's latency is filed under (labels `path` and `method`; a `HEAD` is
/// filed with the `GET` of its path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    AnalyticsGet,
    AnalyticsPost,
    AnalyticsHours,
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
pub const ROUTE_COUNT: usize = 9;

impl Route {
    pub const ALL: [Route; ROUTE_COUNT] = [
        Route::AnalyticsGet,
        Route::AnalyticsPost,
        Route::AnalyticsHours,
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
            Route::Healthz => ("/healthz", "GET"),
            Route::Readyz => ("/readyz", "GET"),
            Route::Metrics => ("/metrics", "GET"),
            Route::OpenApi => ("/openapi.json", "GET"),
            Route::Dashboard => ("dashboard", "GET"),
            Route::Other => ("other", "other"),
        }
    }
}
