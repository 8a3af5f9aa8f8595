//! [`Secret`]: a secret value that cannot be printed by accident.
//!
//! Guarantees: `Debug` prints `Secret(***)`, there is no `Display` and no `Serialize`, and
//! the bytes are overwritten with zeros when the value is dropped. [`Secret::expose`] is
//! the only way to read the value, so every use is visible in review.
//!
//! Not guaranteed: copies the caller made before wrapping the value (the `String` it was
//! built from is moved in, but earlier reallocations of it are not ours to wipe), copies
//! made through `expose`, or memory paged to swap.

use std::fmt;

use zeroize::Zeroizing;

/// A secret value. See the module docs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wrap a value. The `String` is moved in, so its buffer is wiped on drop.
    pub fn new(value: String) -> Secret {
        Secret(Zeroizing::new(value))
    }

    /// The value. Call this only where the value must leave Cordon (the egress
    /// boundary) or be compared.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// The value as bytes.
    pub fn expose_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Length in bytes (not secret: it is visible on the wire anyway).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret::new(value.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_value() {
        let s = Secret::from("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{s:#?}"), "Secret(***)");
        let nested = Some(vec![s.clone()]);
        assert!(!format!("{nested:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2-very-secret");
        assert_eq!(s.expose_bytes(), b"hunter2-very-secret");
        assert_eq!(s.len(), 19);
    }
}
