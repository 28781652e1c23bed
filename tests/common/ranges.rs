//! Unique users over ranges, as the tests check them: a model of what the clients sent
//! (every POST answered 204), the requests for ranges, and checks of every range of a span.

use std::collections::{BTreeMap, BTreeSet};

use super::{parse_counts, Conn, Response, TestServer};
use hourtally::event::MILLIS_PER_HOUR;

const HOUR: u64 = MILLIS_PER_HOUR;

/// The hours' users and kinds, as the clients sent them (every POST was answered 204).
#[derive(Default, Clone)]
pub struct Model {
    pub users: BTreeMap<u64, BTreeSet<String>>,
    pub clicks: BTreeMap<u64, u64>,
    pub impressions: BTreeMap<u64, u64>,
}

impl Model {
    pub fn add(&mut self, hour: u64, user: &str, click: bool) {
        self.users.entry(hour).or_default().insert(user.to_string());
        let kind = if click {
            &mut self.clicks
        } else {
            &mut self.impressions
        };
        *kind.entry(hour).or_default() += 1;
    }

    /// `(unique users, clicks, impressions)` of `hour`.
    pub fn hour(&self, hour: u64) -> (u64, u64, u64) {
        self.range(hour, hour)
    }

    pub fn merge(&mut self, o: Model) {
        for (h, us) in o.users {
            self.users.entry(h).or_default().extend(us);
        }
        for (h, c) in o.clicks {
            *self.clicks.entry(h).or_default() += c;
        }
        for (h, c) in o.impressions {
            *self.impressions.entry(h).or_default() += c;
        }
    }

    /// `(unique users over the hours, clicks, impressions)` of `first..=last`.
    pub fn range(&self, first: u64, last: u64) -> (u64, u64, u64) {
        let users: BTreeSet<&String> = self
            .users
            .range(first..=last)
            .flat_map(|(_, u)| u)
            .collect();
        let sum = |m: &BTreeMap<u64, u64>| m.range(first..=last).map(|(_, c)| c).sum();
        (
            users.len() as u64,
            sum(&self.clicks),
            sum(&self.impressions),
        )
    }
}

/// POSTs a click (or an impression) of `user` at `ts` on `conn`, checks its 204, and adds it
/// to `model`.
pub fn post_counted(conn: &mut Conn, model: &mut Model, ts: u64, user: &str, click: bool) {
    let kind = if click { "click" } else { "impression" };
    conn.write(
        format!("POST /analytics?timestamp={ts}&user={user}&{kind} HTTP/1.1\r\nHost: t\r\n\r\n")
            .as_bytes(),
    );
    let r = conn.response(false);
    assert_eq!(r.status, 204, "{r:?}");
    model.add(ts / HOUR, user, click);
}

/// `GET /analytics/range` from the start of hour `first` to the start of hour `last` on
/// `conn`: its counts, once it answered 200.
pub fn ask_range(conn: &mut Conn, first: u64, last: u64) -> (u64, u64, u64) {
    conn.write(
        format!(
            "GET /analytics/range?from={}&to={} HTTP/1.1\r\nHost: t\r\n\r\n",
            first * HOUR,
            last * HOUR
        )
        .as_bytes(),
    );
    let r = conn.response(false);
    assert_eq!(r.status, 200, "{r:?}");
    parse_counts(&r.body)
}

pub fn range(s: &TestServer, from: u64, to: u64) -> Response {
    s.get(&format!("/analytics/range?from={from}&to={to}"))
}

/// The answer for the hours `first..=last`, from inside the first to inside the last.
pub fn range_counts(s: &TestServer, first: u64, last: u64) -> (u64, u64, u64) {
    let r = range(s, first * HOUR + 17, last * HOUR + HOUR - 1);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
    parse_counts(&r.body)
}

/// Every range of `hours` answers its model.
pub fn assert_every_range(s: &TestServer, model: &Model, hours: std::ops::RangeInclusive<u64>) {
    for first in hours.clone() {
        for last in first..=*hours.end() {
            assert_eq!(
                range_counts(s, first, last),
                model.range(first, last),
                "hours {first}..={last}"
            );
        }
    }
}

/// Waits (bounded) until every hour of the model reads its counts.
pub fn wait_applied(s: &TestServer, model: &Model) {
    for (&hour, users) in &model.users {
        let want = (
            users.len() as u64,
            model.clicks.get(&hour).copied().unwrap_or(0),
            model.impressions.get(&hour).copied().unwrap_or(0),
        );
        assert_eq!(s.wait_counts(hour * HOUR, want), want, "hour {hour}");
    }
}

/// `clients` threads POST `per_client` events each on `s`, client `c`'s `i`-th being
/// `event(c, i)` (timestamp, user, click), each answered 204; meanwhile this thread asks for
/// the range from hour `first(asked)` to hour `last` (at least once, until the clients are
/// done) and checks each answer with `check`. Returns what the clients sent.
pub fn post_while_asking(
    s: &TestServer,
    clients: u64,
    per_client: u64,
    event: impl Fn(u64, u64) -> (u64, String, bool) + Send + Copy + 'static,
    first: impl Fn(u64) -> u64,
    last: u64,
    check: impl Fn((u64, u64, u64)),
) -> Model {
    let addr = s.addr;
    let posters: Vec<_> = (0..clients)
        .map(|c| {
            std::thread::spawn(move || {
                let mut model = Model::default();
                let mut conn = Conn::new(std::net::TcpStream::connect(addr).expect("connect"));
                for i in 0..per_client {
                    let (ts, user, click) = event(c, i);
                    post_counted(&mut conn, &mut model, ts, &user, click);
                }
                model
            })
        })
        .collect();
    let mut conn = Conn::new(std::net::TcpStream::connect(addr).expect("connect"));
    let mut asked = 0;
    while asked == 0 || !posters.iter().all(|p| p.is_finished()) {
        check(ask_range(&mut conn, first(asked), last));
        asked += 1;
    }
    let mut model = Model::default();
    for p in posters {
        model.merge(p.join().expect("a client"));
    }
    model
}
