//! Login rate limiting with lockout, per client address.
//!
//! Guarantees: after `max_failures` failed logins from one address (IPv6: one /64) within
//! `lockout`, every login attempt from it is refused — without checking the token — until
//! `lockout` has passed; the failure that starts a lockout is reported once so it can be
//! recorded as an alert. A successful login clears the address's failures. Memory is
//! bounded: stale entries are dropped, and at most [`MAX_ENTRIES`] addresses are tracked
//! (beyond that the oldest unlocked entry is forgotten).
//!
//! Does not: persist across restarts, or stop an attacker spreading guesses over many
//! addresses (tokens are 256-bit, so guessing is hopeless anyway; the limiter stops
//! noise and surfaces attempts).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::client::limit_key;

const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

/// A lockout that just started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockedOut {
    pub key: IpAddr,
    pub failures: u32,
}

pub struct LoginLimiter {
    max_failures: u32,
    lockout: Duration,
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

impl LoginLimiter {
    pub fn new(max_failures: u32, lockout: Duration) -> LoginLimiter {
        LoginLimiter {
            max_failures: max_failures.max(1),
            lockout,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Entry>> {
        // A panic while holding this lock cannot leave an entry half-written in a way that
        // weakens the limit, so recover the map rather than fail every login.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err(retry_after)` while `ip` is locked out.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        match self
            .entries()
            .get(&limit_key(ip))
            .and_then(|e| e.locked_until)
        {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Count a failed login; returns the lockout it started, if any.
    pub fn failure(&self, ip: IpAddr, now: Instant) -> Option<LockedOut> {
        let key = limit_key(ip);
        let mut map = self.entries();
        if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
            let lockout = self.lockout;
            map.retain(|_, e| {
                now.duration_since(e.first) < lockout || e.locked_until.is_some_and(|u| u > now)
            });
            if map.len() >= MAX_ENTRIES
                && let Some(oldest) = map
                    .iter()
                    .filter(|(_, e)| e.locked_until.is_none())
                    .min_by_key(|(_, e)| e.first)
                    .map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        let entry = map.entry(key).or_insert(Entry {
            failures: 0,
            first: now,
            locked_until: None,
        });
        let expired_lock = entry.locked_until.is_some_and(|u| u <= now);
        if expired_lock || now.duration_since(entry.first) >= self.lockout {
            *entry = Entry {
                failures: 0,
                first: now,
                locked_until: None,
            };
        }
        entry.failures += 1;
        if entry.failures >= self.max_failures && entry.locked_until.is_none() {
            entry.locked_until = Some(now + self.lockout);
            return Some(LockedOut {
                key,
                failures: entry.failures,
            });
        }
        None
    }

    /// A successful login: forget the address's failures.
    pub fn success(&self, ip: IpAddr) {
        self.entries().remove(&limit_key(ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_out_after_max_failures_and_only_that_address() {
        let l = LoginLimiter::new(3, Duration::from_secs(60));
        let t = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(l.failure(a, t), None);
        assert_eq!(l.failure(a, t), None);
        assert_eq!(
            l.failure(a, t),
            Some(LockedOut {
                key: a,
                failures: 3
            })
        );
        assert!(l.check(a, t).is_err());
        assert!(l.check(b, t).is_ok());
        // Further failures while locked do not report a second lockout.
        assert_eq!(l.failure(a, t), None);
        // The lock ends after `lockout`.
        assert!(l.check(a, t + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn old_failures_are_forgotten_and_success_clears() {
        let l = LoginLimiter::new(2, Duration::from_secs(60));
        let t = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        l.failure(a, t);
        assert_eq!(l.failure(a, t + Duration::from_secs(61)), None);
        l.success(a);
        assert_eq!(l.failure(a, t + Duration::from_secs(62)), None);
    }
}
