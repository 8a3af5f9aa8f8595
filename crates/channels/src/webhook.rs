//! The signature of a webhook delivery: `X-Cordon-Timestamp: UNIX_SECONDS` and
//! `X-Cordon-Signature: sha256=HEX`, the HMAC-SHA256 of `TIMESTAMP.BODY` under the hook's
//! secret. Signing the timestamp with the body makes the timestamp unforgeable, so the
//! window bounds how long a captured delivery could be replayed; the store's replay guard
//! (each signature accepted once) closes the window itself.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a delivery's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no X-Cordon-Timestamp header")]
    NoTimestamp,
    #[error("X-Cordon-Timestamp `{0}` is not Unix seconds")]
    BadTimestamp(String),
    #[error(
        "the timestamp is {0} s from now, outside the window of {1} s (replayed or clock skew)"
    )]
    OutsideWindow(i64, u64),
    #[error("no X-Cordon-Signature header")]
    NoSignature,
    #[error("X-Cordon-Signature must be `sha256=` and 64 hex digits")]
    BadSignatureFormat,
    #[error("the signature does not match the body and timestamp")]
    Mismatch,
}

/// The signature header value for `body` sent at `timestamp` (what a sender computes).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(mac(secret, timestamp, body)))
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Check a delivery: the timestamp within `window_secs` of `now`, the signature right.
/// Returns the signature's hex digits (the replay guard's key).
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
    window_secs: u64,
) -> Result<String, SignatureError> {
    let ts = timestamp.ok_or(SignatureError::NoTimestamp)?;
    let t: i64 = ts
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp(ts.chars().take(40).collect()))?;
    let skew = t.saturating_sub(now);
    if skew.unsigned_abs() > window_secs {
        return Err(SignatureError::OutsideWindow(skew, window_secs));
    }
    let sig = signature.ok_or(SignatureError::NoSignature)?;
    let hex_part = sig
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::BadSignatureFormat)?;
    let given = hex::decode(hex_part).map_err(|_| SignatureError::BadSignatureFormat)?;
    if given.len() != 32 {
        return Err(SignatureError::BadSignatureFormat);
    }
    let mut check =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    check.update(t.to_string().as_bytes());
    check.update(b".");
    check.update(body);
    // Constant-time comparison.
    check
        .verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)?;
    Ok(hex::encode(given))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_is_accepted_only_signed_in_time_and_unchanged() {
        let secret = b"s3cret";
        let body = br#"{"event":"push"}"#;
        let now = 1_800_000_000;
        let sig = sign(secret, now, body);
        let ts = now.to_string();
        assert!(verify(secret, Some(&ts), Some(&sig), body, now + 10, 300).is_ok());
        assert_eq!(
            verify(secret, Some(&ts), Some(&sig), b"{}", now, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", Some(&ts), Some(&sig), body, now, 300),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            verify(secret, Some(&ts), Some(&sig), body, now + 301, 300),
            Err(SignatureError::OutsideWindow(..))
        ));
        // A fresh timestamp on an old signature does not match.
        let later = (now + 400).to_string();
        assert_eq!(
            verify(secret, Some(&later), Some(&sig), body, now + 400, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(secret, None, Some(&sig), body, now, 300),
            Err(SignatureError::NoTimestamp)
        );
        assert_eq!(
            verify(secret, Some(&ts), None, body, now, 300),
            Err(SignatureError::NoSignature)
        );
        assert_eq!(
            verify(secret, Some(&ts), Some("md5=abc"), body, now, 300),
            Err(SignatureError::BadSignatureFormat)
        );
        assert!(matches!(
            verify(secret, Some("yesterday"), Some(&sig), body, now, 300),
            Err(SignatureError::BadTimestamp(_))
        ));
    }
}
