//! Password hashes: Argon2id in PHC string form (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`),
//! the form the users configuration stores. `servicewatch hash-password` prints one.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use thiserror::Error;

/// Why a password could not be hashed or checked.
#[derive(Debug, Error)]
pub enum PasswordError {
    #[error("an empty password cannot be used")]
    Empty,
    #[error("not an Argon2 PHC string such as $argon2id$v=19$...: {0}")]
    NotAHash(String),
    #[error("hashing failed: {0}")]
    Hashing(String),
}

/// Hashes `password` with Argon2id, its default parameters and a fresh random salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

/// Whether `text` is an Argon2 hash in PHC form (what the users configuration must hold).
pub fn is_hash(text: &str) -> bool {
    text.starts_with("$argon2") && PasswordHash::new(text).is_ok()
}

/// Whether `password` matches the PHC string `phc` (the parameters are the hash's own).
pub fn verify(password: &str, phc: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(|e| PasswordError::NotAHash(e.to_string()))?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let a = hash("correct horse").unwrap();
        let b = hash("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(verify("correct horse", &a).unwrap());
        assert!(!verify("wrong horse", &a).unwrap());
        assert!(matches!(
            verify("x", "plaintext"),
            Err(PasswordError::NotAHash(_))
        ));
        assert!(matches!(hash(""), Err(PasswordError::Empty)));
        assert!(is_hash(&a));
        assert!(!is_hash("hunter2"));
        assert!(!is_hash("$argon2id$garbage"));
    }
}
