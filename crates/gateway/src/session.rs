//! Browser sessions, created by a login and named by an opaque cookie.
//!
//! Guarantees: a session id and its CSRF token are 32 random bytes each; the table is
//! keyed by the SHA-256 of the cookie value, so lookups never compare the secret itself;
//! a session ends after `idle` without use or `max` after creation, whichever is first,
//! and is then gone (not merely refused); at most [`MAX_SESSIONS`] live at once.
//!
//! Does not: survive a gateway restart (sessions live in memory), or outlive its token
//! (the auth layer checks the token on every request).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use store::TokenScope;

use crate::error::GatewayError;

const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Session {
    pub token_id: String,
    pub scope: TokenScope,
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

pub struct Sessions {
    idle: Duration,
    max: Duration,
    map: Mutex<HashMap<[u8; 32], Session>>,
}

fn random() -> Result<String, GatewayError> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| GatewayError::Random(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn key(cookie: &str) -> [u8; 32] {
    Sha256::digest(cookie.as_bytes()).into()
}

impl Sessions {
    pub fn new(idle: Duration, max: Duration) -> Sessions {
        Sessions {
            idle,
            max,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn max(&self) -> Duration {
        self.max
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn live(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last_seen) < self.idle && now.duration_since(s.created) < self.max
    }

    /// Start a session; returns (cookie value, session).
    pub fn create(
        &self,
        token_id: &str,
        scope: TokenScope,
        now: Instant,
    ) -> Result<(String, Session), GatewayError> {
        let cookie = random()?;
        let session = Session {
            token_id: token_id.to_string(),
            scope,
            csrf: random()?,
            created: now,
            last_seen: now,
        };
        let mut map = self.map();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| self.live(s, now));
            if map.len() >= MAX_SESSIONS
                && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        map.insert(key(&cookie), session.clone());
        Ok((cookie, session))
    }

    /// The live session named by `cookie`, marked as used now.
    pub fn touch(&self, cookie: &str, now: Instant) -> Option<Session> {
        let k = key(cookie);
        let mut map = self.map();
        let live = map.get(&k).map(|s| self.live(s, now))?;
        if !live {
            map.remove(&k);
            return None;
        }
        let s = map.get_mut(&k)?;
        s.last_seen = now;
        Some(s.clone())
    }

    pub fn remove(&self, cookie: &str) {
        self.map().remove(&key(cookie));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_and_absolute_lifetimes_end_sessions() {
        let s = Sessions::new(Duration::from_secs(10), Duration::from_secs(25));
        let t = Instant::now();
        let (c, sess) = s.create("t1", TokenScope::Read, t).unwrap();
        assert_ne!(c, sess.csrf);
        assert!(s.touch(&c, t + Duration::from_secs(9)).is_some());
        assert!(s.touch(&c, t + Duration::from_secs(18)).is_some());
        // Kept alive by use, but the absolute lifetime still ends it.
        assert!(s.touch(&c, t + Duration::from_secs(26)).is_none());
        let (c2, _) = s.create("t1", TokenScope::Read, t).unwrap();
        assert!(s.touch(&c2, t + Duration::from_secs(11)).is_none());
        // Gone, not merely refused.
        assert!(s.touch(&c2, t).is_none());
    }

    #[test]
    fn unknown_and_removed_cookies_find_nothing() {
        let s = Sessions::new(Duration::from_secs(10), Duration::from_secs(25));
        let t = Instant::now();
        let (c, _) = s.create("t1", TokenScope::Admin, t).unwrap();
        assert!(s.touch("nope", t).is_none());
        s.remove(&c);
        assert!(s.touch(&c, t).is_none());
    }
}
