//! What `--verify` expects the server to answer: per hour, the clicks, impressions and set
//! of users of the POSTs it accepted (answered `204`), tallied per client thread and merged.

use std::collections::{HashMap, HashSet};

use hourtally::event::Kind;

/// The users seen in one hour: a bitmap over `0..users` when that is small, else a set.
pub enum SeenUsers {
    Bits(Vec<u64>),
    Set(HashSet<u64>),
}

impl SeenUsers {
    fn new(users: u64) -> Self {
        if users <= 1 << 22 {
            SeenUsers::Bits(vec![0; users.div_ceil(64) as usize])
        } else {
            SeenUsers::Set(HashSet::new())
        }
    }

    fn insert(&mut self, u: u64) {
        match self {
            SeenUsers::Bits(b) => b[(u / 64) as usize] |= 1 << (u % 64),
            SeenUsers::Set(s) => {
                s.insert(u);
            }
        }
    }

    fn union(&mut self, o: &SeenUsers) {
        match (self, o) {
            (SeenUsers::Bits(a), SeenUsers::Bits(b)) => {
                a.iter_mut().zip(b).for_each(|(x, y)| *x |= y)
            }
            (SeenUsers::Set(a), SeenUsers::Set(b)) => a.extend(b),
            _ => unreachable!("one --users for the whole run"),
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            SeenUsers::Bits(b) => b.iter().map(|w| u64::from(w.count_ones())).sum(),
            SeenUsers::Set(s) => s.len() as u64,
        }
    }
}

/// What the server accepted in one hour.
pub struct ExpectedHour {
    pub clicks: u64,
    pub impressions: u64,
    pub users: SeenUsers,
}

/// What the server accepted, per hour (only with --verify).
#[derive(Default)]
pub struct Expected {
    pub hours: HashMap<u64, ExpectedHour>,
}

impl Expected {
    /// Counts an accepted POST of `kind` by user `u{user}` in `hour` (`users`: the --users
    /// of the run).
    pub fn add(&mut self, users: u64, hour: u64, user: u64, kind: Kind) {
        let h = self.hours.entry(hour).or_insert_with(|| ExpectedHour {
            clicks: 0,
            impressions: 0,
            users: SeenUsers::new(users),
        });
        match kind {
            Kind::Click => h.clicks += 1,
            Kind::Impression => h.impressions += 1,
        }
        h.users.insert(user);
    }

    pub fn merge(&mut self, o: Expected) {
        for (hour, t) in o.hours {
            match self.hours.get_mut(&hour) {
                Some(h) => {
                    h.clicks += t.clicks;
                    h.impressions += t.impressions;
                    h.users.union(&t.users);
                }
                None => {
                    self.hours.insert(hour, t);
                }
            }
        }
    }
}
