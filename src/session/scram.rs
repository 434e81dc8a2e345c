//! Server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) over verifiers in PostgreSQL's format,
//! and the MD5 check for logins explicitly marked legacy.
//!
//! The verifier `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` is what
//! `pgveil hash-password` prints and what PostgreSQL stores in `pg_authid`: it lets pgveil
//! check a client's proof without ever holding the password.
//!
//! Channel binding (`-PLUS`) is not offered: a client that insists on it (`p=`) is refused.
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// A parsed SCRAM-SHA-256 verifier.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier(..)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    #[error(
        "not a SCRAM-SHA-256 verifier (expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)"
    )]
    BadVerifier,
    #[error("malformed SCRAM message: {0}")]
    Protocol(&'static str),
    #[error("channel binding is not supported by pgveil")]
    ChannelBinding,
    #[error("password authentication failed")]
    BadProof,
}

fn key32(s: &str) -> Option<[u8; 32]> {
    B64.decode(s).ok()?.try_into().ok()
}

impl Verifier {
    pub fn parse(s: &str) -> Result<Verifier, ScramError> {
        let rest = s.strip_prefix("SCRAM-SHA-256$").ok_or(ScramError::BadVerifier)?;
        let (params, keys) = rest.split_once('$').ok_or(ScramError::BadVerifier)?;
        let (iter, salt) = params.split_once(':').ok_or(ScramError::BadVerifier)?;
        let (stored, server) = keys.split_once(':').ok_or(ScramError::BadVerifier)?;
        let iterations: u32 = iter.parse().map_err(|_| ScramError::BadVerifier)?;
        if iterations == 0 {
            return Err(ScramError::BadVerifier);
        }
        Ok(Verifier {
            iterations,
            salt: B64.decode(salt).map_err(|_| ScramError::BadVerifier)?,
            stored_key: key32(stored).ok_or(ScramError::BadVerifier)?,
            server_key: key32(server).ok_or(ScramError::BadVerifier)?,
        })
    }

    /// A verifier for a user that does not exist: derived from the name and a per-process
    /// secret, so repeated attempts see a stable salt and the exchange looks like a real
    /// one, but no proof can match (the keys are random).
    pub fn decoy(user: &str, secret: &[u8; 32]) -> Verifier {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret).unwrap_or_else(|_| unreachable_hmac());
        mac.update(user.as_bytes());
        let salt = mac.finalize().into_bytes()[..16].to_vec();
        Verifier {
            iterations: 4096,
            salt,
            stored_key: rand::random(),
            server_key: rand::random(),
        }
    }
}

/// HMAC accepts keys of any length; this is never reached.
fn unreachable_hmac() -> HmacSha256 {
    unreachable!("HMAC-SHA-256 accepts keys of any length")
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The state between the server-first and the client-final message.
pub struct ScramServer {
    verifier: Verifier,
    client_first_bare: String,
    server_first: String,
    gs2_header: String,
    nonce: String,
}

impl ScramServer {
    /// Takes the client-first message; returns the state and the server-first message.
    pub fn start(verifier: Verifier, client_first: &[u8]) -> Result<(ScramServer, String), ScramError> {
        let msg =
            std::str::from_utf8(client_first).map_err(|_| ScramError::Protocol("client-first not UTF-8"))?;
        let mut parts = msg.splitn(3, ',');
        let cb = parts.next().ok_or(ScramError::Protocol("client-first"))?;
        let authzid = parts.next().ok_or(ScramError::Protocol("client-first"))?;
        let bare = parts.next().ok_or(ScramError::Protocol("client-first"))?;
        match cb {
            "n" | "y" => {}
            c if c.starts_with("p=") => return Err(ScramError::ChannelBinding),
            _ => return Err(ScramError::Protocol("gs2 header")),
        }
        if !authzid.is_empty() {
            return Err(ScramError::Protocol("authzid is not supported"));
        }
        // PostgreSQL ignores the user name here (the startup packet's is used).
        let cnonce = bare
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Protocol("client nonce missing"))?;
        if cnonce.is_empty() || !cnonce.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',') {
            return Err(ScramError::Protocol("client nonce"));
        }
        let snonce: [u8; 18] = rand::random();
        let nonce = format!("{cnonce}{}", B64.encode(snonce));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&verifier.salt),
            verifier.iterations
        );
        let st = ScramServer {
            verifier,
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            gs2_header: format!("{cb},{authzid},"),
            nonce,
        };
        Ok((st, server_first))
    }

    /// Checks the client-final message; returns the server-final message on success.
    pub fn finish(self, client_final: &[u8]) -> Result<String, ScramError> {
        let msg =
            std::str::from_utf8(client_final).map_err(|_| ScramError::Protocol("client-final not UTF-8"))?;
        let (without_proof, proof) = msg
            .rsplit_once(",p=")
            .ok_or(ScramError::Protocol("proof missing"))?;
        let mut cbind = None;
        let mut nonce = None;
        for a in without_proof.split(',') {
            if let Some(v) = a.strip_prefix("c=") {
                cbind = Some(v);
            } else if let Some(v) = a.strip_prefix("r=") {
                nonce = Some(v);
            }
        }
        if cbind != Some(B64.encode(self.gs2_header.as_bytes()).as_str()) {
            return Err(ScramError::Protocol("channel binding data"));
        }
        if nonce != Some(self.nonce.as_str()) {
            return Err(ScramError::Protocol("nonce mismatch"));
        }
        let proof: [u8; 32] = B64
            .decode(proof)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or(ScramError::Protocol("proof"))?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let client_signature = hmac(&self.verifier.stored_key, auth_message.as_bytes());
        let mut client_key = [0u8; 32];
        for i in 0..32 {
            client_key[i] = proof[i] ^ client_signature[i];
        }
        let computed: [u8; 32] = Sha256::digest(client_key).into();
        // Constant-time comparison.
        let diff = computed
            .iter()
            .zip(self.verifier.stored_key.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(ScramError::BadProof);
        }
        let server_signature = hmac(&self.verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

/// Produces a verifier for a password (SASLprep applied, random salt, 4096 iterations).
pub fn hash_password(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

/// Checks an MD5 response (`md5` + md5(md5(password || user) || salt)) against the stored
/// `md5` + md5(password || user).
pub fn md5_matches(stored: &str, salt: [u8; 4], response: &str) -> bool {
    use md5::Md5;
    let Some(hex) = stored.strip_prefix("md5") else {
        return false;
    };
    let mut h = Md5::new();
    h.update(hex.as_bytes());
    h.update(salt);
    let digest = h.finalize();
    let mut expected = String::with_capacity(35);
    expected.push_str("md5");
    for b in digest.iter() {
        expected.push_str(&format!("{b:02x}"));
    }
    expected.len() == response.len()
        && expected
            .bytes()
            .zip(response.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_round_trip_and_rejects_garbage() {
        let v = hash_password("secret");
        assert!(Verifier::parse(&v).is_ok());
        assert_eq!(Verifier::parse("md5abc"), Err(ScramError::BadVerifier));
        assert_eq!(
            Verifier::parse("SCRAM-SHA-256$0:AAAA$AAAA:AAAA"),
            Err(ScramError::BadVerifier)
        );
    }

    #[test]
    fn full_exchange_with_postgres_protocol_client() {
        use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
        for (stored_pw, given_pw, ok) in [("secret", "secret", true), ("secret", "wrong", false)] {
            let v = Verifier::parse(&hash_password(stored_pw)).unwrap();
            let mut client = ScramSha256::new(given_pw.as_bytes(), ChannelBinding::unsupported());
            let (server, first) = ScramServer::start(v, client.message()).unwrap();
            client.update(first.as_bytes()).unwrap();
            let res = server.finish(client.message());
            assert_eq!(res.is_ok(), ok);
            if let Ok(fin) = res {
                client.finish(fin.as_bytes()).unwrap();
            }
        }
    }

    #[test]
    fn md5_check() {
        let stored = postgres_protocol::password::md5(b"pw", "bob");
        let salt = [1, 2, 3, 4];
        let resp = postgres_protocol::authentication::md5_hash(b"bob", b"pw", salt);
        assert!(md5_matches(&stored, salt, &resp));
        assert!(!md5_matches(&stored, [0, 0, 0, 0], &resp));
    }
}
