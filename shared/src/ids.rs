//! Parsed identifiers. An id that reaches Firestore or DynamoDB has been through one of
//! these, so a path segment can never smuggle `/`, `..` or an empty string into a path.

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// Longest id accepted in a path.
pub const MAX_ID_LEN: usize = 128;
/// Length of a server-generated id, like Firestore's auto ids.
pub const GENERATED_ID_LEN: usize = 20;
const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Whether `s` is a valid path id: 1 to 128 of `[A-Za-z0-9_-]`.
pub fn is_id(s: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn generate() -> String {
    let mut rng = rand::rng();
    (0..GENERATED_ID_LEN)
        .map(|_| char::from(ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())]))
        .collect()
}

macro_rules! path_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses a path segment; anything but 1 to 128 of `[A-Za-z0-9_-]` is a 400.
            pub fn parse(raw: &str) -> Result<Self, AppError> {
                if is_id(raw) {
                    Ok(Self(raw.to_owned()))
                } else {
                    Err(AppError::BadRequest(format!(
                        "{} must be 1 to {MAX_ID_LEN} characters of A-Z, a-z, 0-9, '_' or '-'",
                        $what
                    )))
                }
            }

            /// A fresh server-side id (20 characters, like Firestore's auto ids).
            pub fn generate() -> Self {
                Self(generate())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

path_id!(
    /// A Firebase user id (the token's `sub`).
    Uid,
    "uid"
);
path_id!(
    /// A business document id under `users/{uid}/businesses`.
    BusinessId,
    "businessId"
);
path_id!(
    /// A product document id under `users/{uid}/businesses/{businessId}/products`.
    ProductId,
    "productId"
);

/// An API Gateway WebSocket connection id (base64-ish, e.g. `L0SM9cOFvHcCIhw=`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectionId(String);

impl ConnectionId {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let ok = (1..=MAX_ID_LEN).contains(&raw.len())
            && raw.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'=' | b'+' | b'/')
            });
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(AppError::BadRequest("invalid connection id".into()))
        }
    }

    /// A connection id as the local gateway hands them out (API Gateway's are 16 characters).
    pub fn generate() -> Self {
        Self(generate())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_id_alphabet_and_rejects_the_rest() {
        assert!(BusinessId::parse("abc_DEF-123").is_ok());
        assert!(BusinessId::parse(&"a".repeat(128)).is_ok());
        for bad in ["", "a/b", "..", "a b", "é", &"a".repeat(129)] {
            assert!(
                BusinessId::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn generated_ids_are_twenty_valid_characters() {
        let id = ProductId::generate();
        assert_eq!(id.as_str().len(), GENERATED_ID_LEN);
        assert!(ProductId::parse(id.as_str()).is_ok());
        assert_ne!(id, ProductId::generate());
    }
}
