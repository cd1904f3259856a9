//! Sealed handles: what tsql hands a client to bring back later (a Flight
//! ticket) is encrypted and authenticated with a server key
//! (ChaCha20-Poly1305), so nobody can read what is inside, change it or make
//! one up. Replicas behind one load balancer that share `ticket_key` accept
//! each other's handles; without one every process draws a random key.

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// Marks sealed handles of this format.
const MAGIC: &[u8] = b"tsql2";

/// The shortest `ticket_key` accepted.
pub const MIN_KEY_CHARS: usize = 32;

/// Seals and opens handles with one key.
pub struct Sealer {
    key: LessSafeKey,
    random: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(…)")
    }
}

impl Sealer {
    /// A sealer with a key derived from the secret `ticket_key` (at least
    /// [`MIN_KEY_CHARS`] characters: `openssl rand -base64 32` makes one).
    pub fn from_secret(secret: &str) -> Result<Sealer, String> {
        Sealer::from_secret_for("tsql ticket key v1", "ticket_key", secret)
    }

    /// A sealer with a key derived from `secret` for one use (`context`
    /// keeps keys of different uses apart); `setting` names the config key
    /// in the error when the secret is too short.
    pub fn from_secret_for(context: &str, setting: &str, secret: &str) -> Result<Sealer, String> {
        if secret.trim().chars().count() < MIN_KEY_CHARS {
            return Err(format!(
                "{setting} is too short: give at least {MIN_KEY_CHARS} characters (e.g. the output of `openssl rand -base64 32`), the same on every node"
            ));
        }
        let mut material = context.as_bytes().to_vec();
        material.push(0);
        material.extend_from_slice(secret.trim().as_bytes());
        let digest = ring::digest::digest(&ring::digest::SHA256, &material);
        Ok(Sealer::with_key(digest.as_ref()))
    }

    /// A sealer with a random key: handles are good in this process only.
    pub fn random() -> Sealer {
        let random = SystemRandom::new();
        let mut key = [0u8; 32];
        random
            .fill(&mut key)
            .expect("the system's random source works");
        Sealer::with_key(&key)
    }

    fn with_key(key: &[u8]) -> Sealer {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte key");
        Sealer {
            key: LessSafeKey::new(unbound),
            random: SystemRandom::new(),
        }
    }

    /// `plain` sealed for `purpose` (a handle sealed for one purpose never
    /// opens for another).
    pub fn seal(&self, purpose: &str, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .expect("the system's random source works");
        let mut body = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.as_bytes()),
                &mut body,
            )
            .expect("sealing cannot fail for in-memory data");
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        out
    }

    /// The plain bytes of a handle this key sealed for `purpose`; `None` for
    /// anything else (foreign, altered, made up, or sealed with another key).
    pub fn open(&self, purpose: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        let rest = sealed.strip_prefix(MAGIC)?;
        if rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut body)
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_handles_open_only_unaltered_with_the_same_key_and_purpose() {
        let key = "k".repeat(40);
        let a = Sealer::from_secret(&key).unwrap();
        let sealed = a.seal("ticket", b"SELECT secret");
        assert!(
            !sealed.windows(6).any(|w| w == b"SELECT"),
            "the text is hidden"
        );
        assert_eq!(a.open("ticket", &sealed).unwrap(), b"SELECT secret");
        // Another replica with the same key opens it.
        let b = Sealer::from_secret(&key).unwrap();
        assert_eq!(b.open("ticket", &sealed).unwrap(), b"SELECT secret");
        // Another key, another purpose, any changed byte: nothing.
        assert!(Sealer::random().open("ticket", &sealed).is_none());
        assert!(a.open("handle", &sealed).is_none());
        for i in 0..sealed.len() {
            let mut changed = sealed.clone();
            changed[i] ^= 1;
            assert!(a.open("ticket", &changed).is_none(), "byte {i}");
        }
        assert!(a.open("ticket", b"tsql2").is_none());
        assert!(a.open("ticket", b"").is_none());
        assert!(Sealer::from_secret("short").is_err());
    }
}
