use std::fmt;
use std::sync::OnceLock;

use crate::error::RpcKeyError;
use crate::z85;

/// Length of a Curve25519 key in bytes.
pub const KEY_LEN: usize = 32;

/// Length of a Curve25519 key in Z85 text.
pub const KEY_Z85_LEN: usize = 40;

/// A Curve25519 public key. Its `Display` is the 40-character Z85 text.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; KEY_LEN]);

/// A Curve25519 secret key. Its `Debug` output is redacted; its bytes are zeroed on drop.
#[derive(Clone)]
pub struct SecretKey([u8; KEY_LEN]);

/// A secret key together with the public key derived from it.
#[derive(Clone, Debug)]
pub struct CurveKeypair {
    public: PublicKey,
    secret: SecretKey,
}

impl PublicKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub fn to_z85(&self) -> String {
        encode_key(&self.0)
    }

    /// Parse 40 characters of Z85 text.
    pub fn from_z85(text: impl AsRef<[u8]>) -> Result<Self, RpcKeyError> {
        decode_key(text.as_ref()).map(Self)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_z85())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicKey").field(&self.to_z85()).finish()
    }
}

impl SecretKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key as Z85 text. The returned string is the caller's to keep out of logs.
    pub fn to_z85(&self) -> String {
        encode_key(&self.0)
    }

    /// Parse 40 characters of Z85 text.
    pub fn from_z85(text: impl AsRef<[u8]>) -> Result<Self, RpcKeyError> {
        decode_key(text.as_ref()).map(Self)
    }

    /// The public key of this secret key: X25519(secret, base point).
    pub fn public_key(&self) -> PublicKey {
        // Scalar multiplication works whether or not initialisation succeeded (it only picks a
        // faster implementation and prepares the random generator), so its result is not needed.
        let _ = sodium_init();
        let mut public = [0; KEY_LEN];
        // SAFETY: both buffers are `KEY_LEN` (= crypto_scalarmult_BYTES) bytes long.
        // The return value is always 0: libsodium clamps the scalar, and a clamped scalar times the
        // base point is never the identity, the only case in which scalar multiplication fails.
        unsafe { libsodium_sys::crypto_scalarmult_base(public.as_mut_ptr(), self.0.as_ptr()) };
        PublicKey(public)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl CurveKeypair {
    /// A fresh keypair from libsodium's CSPRNG, as `zmq.curve_keypair()` makes.
    pub fn generate() -> Result<Self, RpcKeyError> {
        sodium_init()?;
        let mut secret = SecretKey([0; KEY_LEN]);
        // SAFETY: the buffer is valid for writes of `KEY_LEN` bytes and libsodium is initialised.
        unsafe { libsodium_sys::randombytes_buf(secret.0.as_mut_ptr().cast(), KEY_LEN) };
        Ok(Self::from_secret_key(secret))
    }

    /// The keypair of a known secret key: public = X25519(secret, base point).
    pub fn from_secret(secret: [u8; KEY_LEN]) -> Self {
        Self::from_secret_key(SecretKey(secret))
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub fn secret_key(&self) -> &SecretKey {
        &self.secret
    }

    pub(crate) fn from_secret_key(secret: SecretKey) -> Self {
        Self {
            public: secret.public_key(),
            secret,
        }
    }
}

/// Bytes that held secret material, zeroed when dropped (file contents, decoded text).
pub(crate) struct SecretBuf(pub(crate) Vec<u8>);

impl Drop for SecretBuf {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

fn sodium_init() -> Result<(), RpcKeyError> {
    static INITIALISED: OnceLock<bool> = OnceLock::new();
    // sodium_init returns 0 on first success, 1 when already initialised and -1 on failure.
    // SAFETY: sodium_init takes no arguments and is safe to call from any thread.
    let ok = *INITIALISED.get_or_init(|| unsafe { libsodium_sys::sodium_init() } >= 0);
    if ok {
        Ok(())
    } else {
        Err(RpcKeyError::SodiumInit)
    }
}

fn wipe(bytes: &mut [u8]) {
    // SAFETY: the pointer and length describe one live, writable slice. sodium_memzero is
    // written so that the compiler cannot drop the stores as dead.
    unsafe { libsodium_sys::sodium_memzero(bytes.as_mut_ptr().cast(), bytes.len()) };
}

fn encode_key(key: &[u8; KEY_LEN]) -> String {
    z85::encode_groups(key)
}

fn decode_key(text: &[u8]) -> Result<[u8; KEY_LEN], RpcKeyError> {
    let length_error = RpcKeyError::KeyLength {
        expected: KEY_Z85_LEN,
        len: text.len(),
    };
    if text.len() != KEY_Z85_LEN {
        return Err(length_error);
    }
    let bytes = SecretBuf(z85::decode(text)?);
    <[u8; KEY_LEN]>::try_from(bytes.0.as_slice()).map_err(|_| length_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The public key of the dev keypair committed with the reference implementation.
    const DEV_PUBLIC: &str = "GqK]ZYY#h*9jAQbGxSwkeZX3Y*%b+DiY$7ju6sh{";

    /// Secret bytes 1..=32 and their public key, from pyzmq 26.2.0's `zmq.curve_public`.
    const VECTOR_SECRET: &str = "0rJua1Qkhq2)}4G4gS)W5Ft->6=4P585:Cl9uDpB";
    const VECTOR_PUBLIC: &str = "2CVWV6D&QXW]Ii55A)@qco1MAyn+7#3/w+9Xnrjk";

    fn vector_secret_bytes() -> [u8; KEY_LEN] {
        std::array::from_fn(|index| index as u8 + 1)
    }

    #[test]
    fn dev_public_key_decodes_to_32_bytes() {
        let key = PublicKey::from_z85(DEV_PUBLIC).unwrap();
        assert_eq!(key.as_bytes().len(), KEY_LEN);
        assert_eq!(key.to_z85(), DEV_PUBLIC);
        assert_eq!(key.to_string(), DEV_PUBLIC);
    }

    #[test]
    fn from_secret_derives_pyzmqs_public_key() {
        let keypair = CurveKeypair::from_secret(vector_secret_bytes());
        assert_eq!(keypair.secret_key().to_z85(), VECTOR_SECRET);
        assert_eq!(keypair.public_key().to_z85(), VECTOR_PUBLIC);
        let secret = SecretKey::from_z85(VECTOR_SECRET).unwrap();
        assert_eq!(secret.as_bytes(), &vector_secret_bytes());
        assert_eq!(secret.public_key().to_z85(), VECTOR_PUBLIC);
    }

    #[test]
    fn generated_keypairs_are_fresh_and_consistent() {
        let first = CurveKeypair::generate().unwrap();
        let second = CurveKeypair::generate().unwrap();
        assert_ne!(
            first.secret_key().as_bytes(),
            second.secret_key().as_bytes()
        );
        assert_ne!(first.public_key(), second.public_key());
        assert_eq!(first.secret_key().public_key(), *first.public_key());
        let text = first.public_key().to_z85();
        assert_eq!(text.len(), KEY_Z85_LEN);
        assert_eq!(PublicKey::from_z85(&text).unwrap(), *first.public_key());
        let secret = SecretKey::from_z85(first.secret_key().to_z85()).unwrap();
        assert_eq!(secret.as_bytes(), first.secret_key().as_bytes());
    }

    #[test]
    fn debug_output_never_shows_the_secret_key() {
        let keypair = CurveKeypair::from_secret(vector_secret_bytes());
        let debug = format!("{keypair:?}");
        assert!(debug.contains("SecretKey(<redacted>)"), "{debug}");
        assert!(debug.contains(VECTOR_PUBLIC), "{debug}");
        assert!(!debug.contains(VECTOR_SECRET), "{debug}");
    }

    #[test]
    fn rejects_keys_of_the_wrong_length() {
        let error = PublicKey::from_z85("HelloWorld").unwrap_err();
        assert_eq!(
            error.to_string(),
            "a CURVE key is 40 Z85 characters (32 bytes), got 10 characters"
        );
        assert!(SecretKey::from_z85(&VECTOR_SECRET[1..]).is_err());
    }

    #[test]
    fn rejects_keys_with_bad_characters() {
        let text = VECTOR_PUBLIC.replace('&', "~");
        let error = PublicKey::from_z85(text).unwrap_err();
        assert_eq!(error.to_string(), "invalid Z85 character '~' at position 7");
    }
}
