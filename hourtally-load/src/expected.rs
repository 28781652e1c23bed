//! What `--verify` expects the server to answer: per hour, the clicks, impressions and set
//! of users of the POSTs it accepted (answered `204`), tallied per client thread and merged.

use std::collections::{HashMap, HashSet};

use hourtally::event::Kind;

/// The users seen in one hour: a bitmap over `0..users` when that is small, else a set; or,
/// for the hour of the visibility probes, a count (every probe has a user of its own).
pub enum SeenUsers {
    Bits(Vec<u64>),
    Set(HashSet<u64>),
    Distinct(u64),
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
            SeenUsers::Distinct(n) => *n += 1,
        }
    }

    fn union(&mut self, o: &SeenUsers) {
        match (self, o) {
            (SeenUsers::Bits(a), SeenUsers::Bits(b)) => {
                a.iter_mut().zip(b).for_each(|(x, y)| *x |= y)
            }
            (SeenUsers::Set(a), SeenUsers::Set(b)) => a.extend(b),
            (SeenUsers::Distinct(a), SeenUsers::Distinct(b)) => *a += b,
            _ => unreachable!("one --users for the whole run, and probes only in their own hour"),
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            SeenUsers::Bits(b) => b.iter().map(|w| u64::from(w.count_ones())).sum(),
            SeenUsers::Set(s) => s.len() as u64,
            SeenUsers::Distinct(n) => *n,
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

    /// Counts an accepted visibility probe of `kind` in `hour`: a user no other POST names.
    pub fn add_probe(&mut self, hour: u64, kind: Kind) {
        let h = self.hours.entry(hour).or_insert_with(|| ExpectedHour {
            clicks: 0,
            impressions: 0,
            users: SeenUsers::Distinct(0),
        });
        match kind {
            Kind::Click => h.clicks += 1,
            Kind::Impression => h.impressions += 1,
        }
        h.users.insert(0);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_count_as_distinct_users_and_merge_by_adding() {
        let mut a = Expected::default();
        a.add_probe(7, Kind::Click);
        a.add_probe(7, Kind::Impression);
        let mut b = Expected::default();
        b.add_probe(7, Kind::Click);
        b.add(100, 8, 3, Kind::Click);
        b.add(100, 8, 3, Kind::Click);
        a.merge(b);
        let h = &a.hours[&7];
        assert_eq!((h.users.len(), h.clicks, h.impressions), (3, 2, 1));
        let h = &a.hours[&8];
        assert_eq!((h.users.len(), h.clicks), (1, 2));
    }
}
