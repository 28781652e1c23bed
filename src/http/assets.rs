//! The dashboard (`GET /`) and its files, embedded in the binary at build time: no build
//! step, no network, one binary. Each is a `&'static [u8]` answered as it is.
//!
//! The page and its own script and style sheet change with the build, so they are
//! revalidated on every load (`no-cache`); uPlot's files carry its version in their path and
//! never change under it, so browsers may keep them for a year. Each file has an `ETag` (a
//! hash of its bytes, computed once, at the first request for a file): a revalidation that
//! names it (`If-None-Match`) gets `304 Not Modified` and no body.
//!
//! Every file goes out with a Content-Security-Policy that lets the page load only this
//! server's own scripts, style sheets and data (no inline code: the page has none, and uPlot
//! styles its elements through the DOM, which the policy allows), never be framed, and post
//! no form; plus `X-Frame-Options: DENY` for browsers without `frame-ancestors`, and
//! `nosniff`. tests/dashboard.rs checks in Chromium that the page works under it and that
//! the browser reported no violation.

use std::sync::LazyLock;

/// The version of uPlot vendored in `assets/vendor/uplot/` (from the npm registry's
/// `uplot` package; its LICENSE is served beside it).
pub const UPLOT_VERSION: &str = "1.6.32";

/// A file the server answers with.
#[derive(Debug)]
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    /// Its `Cache-Control` line (ending in CRLF).
    pub cache: &'static str,
    pub body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Changes with every build: ask the server again each time (the files are small, and an
/// unchanged one costs a 304).
const REVALIDATE: &str = "Cache-Control: no-cache\r\n";
/// A versioned path: its bytes never change.
const IMMUTABLE: &str = "Cache-Control: public, max-age=31536000, immutable\r\n";

/// What the dashboard's files may load and who may frame them. `img-src data:` is for the
/// page's empty icon (`<link rel="icon" href="data:,">`, so that no favicon request is made).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Every file, by path.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: HTML,
        cache: REVALIDATE,
        body: include_bytes!("../../assets/dashboard/index.html"),
    },
    Asset {
        path: "/assets/dashboard.js",
        content_type: JS,
        cache: REVALIDATE,
        body: include_bytes!("../../assets/dashboard/dashboard.js"),
    },
    Asset {
        path: "/assets/dashboard.css",
        content_type: CSS,
        cache: REVALIDATE,
        body: include_bytes!("../../assets/dashboard/dashboard.css"),
    },
    Asset {
        path: "/assets/uplot-1.6.32/uPlot.iife.min.js",
        content_type: JS,
        cache: IMMUTABLE,
        body: include_bytes!("../../assets/vendor/uplot/uPlot.iife.min.js"),
    },
    Asset {
        path: "/assets/uplot-1.6.32/uPlot.min.css",
        content_type: CSS,
        cache: IMMUTABLE,
        body: include_bytes!("../../assets/vendor/uplot/uPlot.min.css"),
    },
    Asset {
        path: "/assets/uplot-1.6.32/LICENSE",
        content_type: TEXT,
        cache: IMMUTABLE,
        body: include_bytes!("../../assets/vendor/uplot/LICENSE"),
    },
];

/// A file as it is served: its validator and every header line it carries.
#[derive(Debug)]
pub struct Served {
    pub asset: &'static Asset,
    /// `"` + 16 hex digits of the XXH3 hash of its bytes + `"`.
    pub etag: String,
    /// `Cache-Control`, the security headers and `ETag`, each line ending in CRLF: the same
    /// on a 200 and on a 304.
    pub headers: String,
}

/// Every file with its validator, in the order of [`ASSETS`].
static SERVED: LazyLock<Vec<Served>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let etag = format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(asset.body));
            let headers = format!(
                "{}Content-Security-Policy: {CONTENT_SECURITY_POLICY}\r\n\
                 X-Frame-Options: DENY\r\nX-Content-Type-Options: nosniff\r\nETag: {etag}\r\n",
                asset.cache
            );
            Served {
                asset,
                etag,
                headers,
            }
        })
        .collect()
});

/// The file at `path`, if any.
pub fn find(path: &[u8]) -> Option<&'static Served> {
    SERVED.iter().find(|s| s.asset.path.as_bytes() == path)
}

impl Served {
    /// Whether the request's `If-None-Match` values (`values`: one per header line) name
    /// this file's entity tag, or are `*`: then the answer is `304 Not Modified`. Weak
    /// comparison (RFC 9110 §13.1.2): `W/"…"` matches too. A malformed list matches nothing
    /// from where it goes wrong (the client gets the file).
    pub fn not_modified<'h>(&self, values: impl IntoIterator<Item = &'h [u8]>) -> bool {
        values
            .into_iter()
            .any(|v| names_tag(v, self.etag.as_bytes()))
    }
}

/// Whether one `If-None-Match` value (`*`, or entity tags separated by commas) names `etag`.
fn names_tag(value: &[u8], etag: &[u8]) -> bool {
    let value = value.trim_ascii();
    if value == b"*" {
        return true;
    }
    let mut rest = value;
    loop {
        // Empty list elements (`a, , b`) are allowed (RFC 9110 §5.6.1).
        while let Some(after) = rest.strip_prefix(b",") {
            rest = after.trim_ascii_start();
        }
        if rest.is_empty() {
            return false;
        }
        let opaque = rest.strip_prefix(b"W/").unwrap_or(rest);
        let Some(inside) = opaque.strip_prefix(b"\"") else {
            return false;
        };
        let Some(close) = inside.iter().position(|&b| b == b'"') else {
            return false;
        };
        rest = inside[close + 1..].trim_ascii_start();
        if !rest.is_empty() && !rest.starts_with(b",") {
            return false;
        }
        // The tag with its quotes: `"` + `close` bytes + `"`.
        if &opaque[..close + 2] == etag {
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_found_by_its_path_and_nothing_else_is() {
        for a in ASSETS {
            assert_eq!(find(a.path.as_bytes()).map(|f| f.asset.path), Some(a.path));
            assert!(!a.body.is_empty(), "{}", a.path);
            assert!(a.cache.starts_with("Cache-Control: ") && a.cache.ends_with("\r\n"));
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
        let uplot = find(b"/assets/uplot-1.6.32/uPlot.iife.min.js")
            .expect("uPlot")
            .asset;
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

    #[test]
    fn every_file_carries_the_policy_and_an_etag_of_its_own_bytes() {
        let mut tags = std::collections::HashSet::new();
        for f in SERVED.iter() {
            assert!(f.headers.starts_with(f.asset.cache), "{}", f.asset.path);
            assert!(f.headers.contains(&format!(
                "Content-Security-Policy: {CONTENT_SECURITY_POLICY}\r\n"
            )));
            assert!(f.headers.contains("X-Frame-Options: DENY\r\n"));
            assert!(f.headers.contains("X-Content-Type-Options: nosniff\r\n"));
            assert!(f.headers.ends_with(&format!("ETag: {}\r\n", f.etag)));
            assert_eq!(f.etag.len(), 18, "{}", f.etag);
            assert!(tags.insert(f.etag.clone()), "{} twice", f.etag);
        }
    }

    #[test]
    fn if_none_match_names_the_tag_weakly_among_others_or_with_a_star() {
        let f = find(b"/").expect("the page");
        let tag = f.etag.as_str();
        let matches = |values: &[&str]| f.not_modified(values.iter().map(|v| v.as_bytes()));
        assert!(matches(&[tag]));
        assert!(matches(&[&format!("W/{tag}")]));
        assert!(matches(&[&format!("\"a\", \"b,c\" ,{tag}")]));
        assert!(matches(&[&format!(" , {tag} , ")]));
        assert!(matches(&["\"a\"", tag]));
        assert!(matches(&["*"]));
        assert!(!matches(&[]));
        assert!(!matches(&[""]));
        assert!(!matches(&["\"a\""]));
        assert!(!matches(&[&tag[1..]]));
        assert!(!matches(&[&tag[..tag.len() - 1]]));
        assert!(!matches(&[&format!("w/{tag}")]));
        assert!(!matches(&[&format!("\"a\" junk {tag}")]));
        assert!(!matches(&[&format!("{tag}x")]));
        assert!(!matches(&["W/", "\"", "*x"]));
    }
}
