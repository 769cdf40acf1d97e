//! Password hashes: Argon2id in PHC string form (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`),
//! the form the users configuration stores. `servicewatch hash-password` prints one.

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use thiserror::Error;

/// Why a password could not be hashed or checked.
#[derive(Debug, Error)]
pub enum PasswordError {
    /// An empty password was given to hash.
    #[error("an empty password cannot be used")]
    Empty,
    /// A stored hash is not one this build can check.
    #[error("not an Argon2 PHC string such as $argon2id$v=19$...: {0}")]
    NotAHash(String),
    /// Argon2 itself failed (its parameters, or memory).
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
pub(crate) fn is_hash(text: &str) -> bool {
    text.starts_with("$argon2") && PasswordHash::new(text).is_ok()
}

/// Whether `password` matches the PHC string `phc` (the parameters are the hash's own).
pub fn verify(password: &str, phc: &str) -> Result<bool, PasswordError> {
    verify_in(password, phc, &mut Vec::new())
}

/// [`verify`] with Argon2's working memory (m KiB, 19 MiB with the default parameters) in
/// `memory`, grown to fit when the hash asks for more and otherwise reused as it is. Argon2
/// allocating and freeing that much for each check leaves it behind in the allocator's
/// per-thread arenas; a caller that keeps `memory` pays for it once.
pub(crate) fn verify_in(
    password: &str,
    phc: &str,
    memory: &mut Vec<Block>,
) -> Result<bool, PasswordError> {
    let not_a_hash = |e: &dyn std::fmt::Display| PasswordError::NotAHash(e.to_string());
    let parsed = PasswordHash::new(phc).map_err(|e| not_a_hash(&e))?;
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).map_err(|e| not_a_hash(&e))?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| not_a_hash(&e))?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(|e| not_a_hash(&e))?;
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Err(PasswordError::NotAHash("no salt or no hash".into()));
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::new());
    }
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt.as_ref(),
            &mut out,
            &mut memory[..blocks],
        )
        .map_err(|e| PasswordError::Hashing(e.to_string()))?;
    // `Output`'s equality compares in constant time.
    let computed = Output::new(&out).map_err(|e| PasswordError::Hashing(e.to_string()))?;
    Ok(computed == *expected)
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

    #[test]
    fn reused_memory_gives_the_same_answers_and_grows_only_to_fit() {
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw")
        .unwrap()
        .to_string();
        let default = hash("pw").unwrap();
        let mut memory = Vec::new();
        assert!(verify_in("pw", &default, &mut memory).unwrap());
        let grown = memory.len();
        assert_eq!(
            grown,
            Params::default().block_count(),
            "19 MiB for the default"
        );
        assert!(verify_in("pw", &small, &mut memory).unwrap());
        assert!(!verify_in("wrong", &small, &mut memory).unwrap());
        assert!(!verify_in("wrong", &default, &mut memory).unwrap());
        assert!(verify_in("pw", &default, &mut memory).unwrap());
        assert_eq!(memory.len(), grown, "reused, never reallocated");
        // Argon2i and Argon2d hashes check too: the algorithm is the hash's own.
        for algorithm in [Algorithm::Argon2i, Algorithm::Argon2d] {
            let other = Argon2::new(
                algorithm,
                Version::V0x13,
                Params::new(64, 1, 1, None).unwrap(),
            )
            .hash_password(b"pw")
            .unwrap()
            .to_string();
            assert!(verify_in("pw", &other, &mut memory).unwrap(), "{other}");
            assert!(!verify_in("px", &other, &mut memory).unwrap());
        }
    }
}
