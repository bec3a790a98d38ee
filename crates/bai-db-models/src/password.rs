//! Password hashes as the reference stores them in `users.password` (db-fixtures.md §5): bcrypt
//! with cost 12 in the `$2b$` spelling, passwords longer than 72 bytes truncated as pyca/bcrypt 4.x
//! does, any stored prefix (`$2a$`, `$2b$`, `$2x$`, `$2y$`) and cost accepted when verifying.
//!
//! Both functions take a quarter of a second of CPU on purpose: async callers run them on a
//! blocking thread (`tokio::task::spawn_blocking`), never on the runtime's workers.

/// bcrypt cost of new hashes, as the reference's `_hash_password` uses.
pub const BCRYPT_COST: u32 = 12;

/// The `$2b$12$...` hash (60 characters) of `plaintext`, with a fresh random salt.
pub fn hash(plaintext: &str) -> Result<String, bcrypt::BcryptError> {
    bcrypt::hash_with_result(plaintext, BCRYPT_COST)
        .map(|parts| parts.format_for_version(bcrypt::Version::TwoB))
}

/// Whether `plaintext` is the password `stored_hash` was made from. A stored value that is not a
/// bcrypt hash matches nothing, as the reference's `check_credential` treats bcrypt's `ValueError`.
pub fn verify(plaintext: &str, stored_hash: &str) -> bool {
    bcrypt::verify(plaintext, stored_hash).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::{hash, verify};

    /// The reference's hash of the example superadmin's password (db-fixtures.md §5).
    const PYTHON_HASH: &str = "$2b$12$cwNwL5zb8GkEbnIMjyU5Xe5X0wCp0Fqzds4/gj20DIpwIjkXUCKKe";

    #[test]
    fn hashes_of_the_reference_verify() {
        assert!(verify("wJalrXUt", PYTHON_HASH));
        assert!(verify("wJalrXUt", &PYTHON_HASH.replace("$2b$", "$2y$")));
        assert!(!verify("wJalrXU", PYTHON_HASH));
        assert!(
            !verify("wJalrXUt", "wJalrXUt"),
            "a plaintext column matches nothing"
        );
        assert!(!verify("wJalrXUt", &PYTHON_HASH[..59]));
        assert!(!verify("", ""));
    }

    #[test]
    fn new_hashes_are_2b_cost_12_and_truncate_at_72_bytes() {
        let long = "a".repeat(100);
        let hashed = hash(&long).expect("hash");
        assert_eq!(hashed.len(), 60);
        assert!(hashed.starts_with("$2b$12$"), "{hashed}");
        assert!(verify(&long, &hashed));
        assert!(
            verify(&"a".repeat(72), &hashed),
            "pyca/bcrypt 4.x truncates"
        );
        assert!(!verify(&"a".repeat(71), &hashed));
        assert_ne!(hash(&long).expect("hash"), hashed, "a fresh salt each time");
    }
}
