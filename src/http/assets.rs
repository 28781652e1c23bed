//! The dashboard (`GET /`) and its files, embedded in the binary at build time: no build
//! step, no network, one binary. Each is a `&'static [u8]` answered as it is.
//!
//! The page and its own script and style sheet change with the build, so they are
//! revalidated on every load (`no-cache`); uPlot's files carry its version in their path and
//! never change under it, so browsers may keep them for a year.

/// The version of uPlot vendored in `assets/vendor/uplot/` (from the npm registry's
/// `uplot` package; its LICENSE is served beside it).
pub const UPLOT_VERSION: &str = "1.6.32";

/// A file the server answers with.
#[derive(Debug)]
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    /// Header lines (each ending in CRLF): `Cache-Control` and `X-Content-Type-Options`.
    pub headers: &'static str,
    pub body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Changes with every build: ask the server again each time (the files are small).
const REVALIDATE: &str = "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n";
/// A versioned path: its bytes never change.
const IMMUTABLE: &str =
    "Cache-Control: public, max-age=31536000, immutable\r\nX-Content-Type-Options: nosniff\r\n";

/// Every file, by path.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: HTML,
        headers: REVALIDATE,
        body: include_bytes!("../../assets/dashboard/index.html"),
    },
    Asset {
        path: "/assets/dashboard.js",
        content_type: JS,
        headers: REVALIDATE,
        body: include_bytes!("../../assets/dashboard/dashboard.js"),
    },
    Asset {
        path: "/assets/dashboard.css",
        content_type: CSS,
        headers: REVALIDATE,
        body: include_bytes!("../../assets/dashboard/dashboard.css"),
    },
    Asset {
        path: "/assets/uplot-1.6.32/uPlot.iife.min.js",
        content_type: JS,
        headers: IMMUTABLE,
        body: include_bytes!("../../assets/vendor/uplot/uPlot.iife.min.js"),
    },
    Asset {
        path: "/assets/uplot-1.6.32/uPlot.min.css",
        content_type: CSS,
        headers: IMMUTABLE,
        body: include_bytes!("../../assets/vendor/uplot/uPlot.min.css"),
    },
    Asset {
        path: "/assets/uplot-1.6.32/LICENSE",
        content_type: TEXT,
        headers: IMMUTABLE,
        body: include_bytes!("../../assets/vendor/uplot/LICENSE"),
    },
];

/// The file at `path`, if any.
pub fn find(path: &[u8]) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path.as_bytes() == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_found_by_its_path_and_nothing_else_is() {
        for a in ASSETS {
            assert_eq!(find(a.path.as_bytes()).map(|f| f.path), Some(a.path));
            assert!(!a.body.is_empty(), "{}", a.path);
            assert!(a.headers.ends_with("\r\n") && a.headers.contains("Cache-Control: "));
        }
        assert!(find(b"/index.html").is_none());
        assert!(find(b"/assets/").is_none());
        assert!(find(b"/assets/dashboard.js/").is_none());
    }

    #[test]
    fn the_page_names_the_files_it_loads_and_uplot_is_the_vendored_version() {
        let page = std::str::from_utf8(ASSETS[0].body).expect("UTF-8");
        for a in &ASSETS[1..5] {
            // Relative links, so the page also works behind a proxy under a path prefix.
            let link = a.path.trim_start_matches('/');
            assert!(page.contains(link), "the page does not load {link}");
        }
        let uplot = find(b"/assets/uplot-1.6.32/uPlot.iife.min.js").expect("uPlot");
        let banner = format!("(v{UPLOT_VERSION})");
        assert!(uplot
            .body
            .starts_with(b"/*! https://github.com/leeoniya/uPlot "));
        assert!(std::str::from_utf8(&uplot.body[..80])
            .unwrap_or("")
            .contains(&banner));
        assert!(ASSETS
            .iter()
            .all(|a| !a.path.contains("uplot-")
                || a.path.contains(&format!("uplot-{UPLOT_VERSION}/"))));
    }
}
