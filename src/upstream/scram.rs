//! The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) for pgveil's own logins to the
//! upstream, with a small cache of salted passwords.
//!
//! # Why not `postgres_protocol`'s client
//!
//! A SCRAM client must turn the password into `SaltedPassword = Hi(password, salt, i)`:
//! PBKDF2-HMAC-SHA-256 with the salt and iteration count the server sends (4096 by default).
//! `postgres_protocol::authentication::sasl::ScramSha256` does that at every login, and for
//! a proxy that opens one upstream connection per client connection it was about half of
//! pgveil's CPU per connection. But the salt and the iteration count are those stored in
//! `pg_authid` with the password's verifier: they only change when the password does. So
//! `SaltedPassword` is a pure function of (password, salt, iterations), and this module keeps
//! the last few in a cache ([`CACHE_ENTRIES`]). A login with a cached entry does four HMACs
//! and one SHA-256 instead of 8192 HMACs.
//!
//! Everything else is as before: the same messages byte for byte (empty user name,
//! `n,,` GS2 header: no channel binding, the nonce alphabet), the same limit on the
//! iteration count a server may ask for ([`MAX_ITERATIONS`]), the password normalised with
//! SASLprep when it can be (and used as is otherwise, as PostgreSQL and libpq do), and the
//! server signature checked in constant time: a server that does not know the password's
//! verifier still fails the login.
//!
//! # Secrets
//!
//! The cache holds secrets equivalent to the password for this server (a `SaltedPassword`
//! lets anyone log in as the user). They live in [`Zeroizing`] buffers, are wiped when
//! evicted or dropped, and no type here prints them: the `Debug` forms are opaque.
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

type HmacSha256 = Hmac<Sha256>;

/// The most iterations a server may ask for. The count drives the PBKDF2 loop before the
/// server has proven anything, so an unbounded one would let an impersonating server make
/// pgveil spin; 100 000 is about 24 times PostgreSQL's default (and `postgres_protocol`'s
/// and pgjdbc's limit).
pub const MAX_ITERATIONS: u32 = 100_000;

/// How many (password, salt, iterations) entries the cache keeps. pgveil logs in upstream
/// with a handful of credentials at most (its own, and logins mapped to upstream users), so
/// a few entries cover them; the least recently used entry is evicted first.
pub const CACHE_ENTRIES: usize = 8;

/// Length of the client nonce, in printable characters (as `postgres_protocol`).
const NONCE_LEN: usize = 24;

/// Why an exchange failed. No variant carries a secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramClientError {
    #[error("malformed server message: {0}")]
    Protocol(&'static str),
    #[error("the server nonce does not extend the client nonce")]
    Nonce,
    #[error("iteration count {0} is above the limit of {MAX_ITERATIONS}")]
    Iterations(u32),
    #[error("the server reported an error: {0}")]
    Server(String),
    #[error("wrong server signature (the server does not know this password)")]
    ServerSignature,
    #[error("message out of order")]
    State,
}

/// One cached `SaltedPassword` and what it was derived from.
struct Entry {
    /// The password after SASLprep (the exact PBKDF2 input).
    password: Zeroizing<Vec<u8>>,
    salt: Vec<u8>,
    iterations: u32,
    salted: Zeroizing<[u8; 32]>,
}

/// Most recently used first; at most [`CACHE_ENTRIES`].
static CACHE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// Byte-slice equality whose time does not depend on where the slices differ (only on
/// their lengths).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `SaltedPassword` from the cache, or computed (PBKDF2) and cached.
fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> Zeroizing<[u8; 32]> {
    {
        // A poisoned lock only means another login panicked mid-update of a Vec of
        // independent entries; the entries themselves are still whole.
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = cache
            .iter()
            .position(|e| e.iterations == iterations && e.salt == salt && ct_eq(&e.password, password))
        {
            let entry = cache.remove(i);
            let salted = entry.salted.clone();
            cache.insert(0, entry);
            return salted;
        }
    }
    // Not under the lock: concurrent first logins each pay PBKDF2 once, but no login waits
    // for another's.
    let salted = Zeroizing::new(hi(password, salt, iterations));
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if !cache
        .iter()
        .any(|e| e.iterations == iterations && e.salt == salt && ct_eq(&e.password, password))
    {
        cache.truncate(CACHE_ENTRIES - 1);
        cache.insert(
            0,
            Entry {
                password: Zeroizing::new(password.to_vec()),
                salt: salt.to_vec(),
                iterations,
                salted: salted.clone(),
            },
        );
    }
    salted
}

/// Empties the cache (tests, and a hook should credentials ever be rotated in process).
pub fn clear_cache() {
    CACHE.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// Number of cached entries (for tests).
pub fn cache_len() -> usize {
    CACHE.lock().unwrap_or_else(|e| e.into_inner()).len()
}

fn keyed(key: &[u8]) -> HmacSha256 {
    match <HmacSha256 as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-SHA-256 accepts keys of any length"),
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = keyed(key);
    m.update(data);
    m.finalize().into_bytes().into()
}

/// `Hi(str, salt, i)` of RFC 5802: PBKDF2-HMAC-SHA-256 with one 32-byte block.
///
/// The keyed HMAC state is built once and cloned for every iteration, which saves the two
/// compressions of the padded key that `Hmac::new_from_slice` would redo each time: half
/// the work of a naive loop.
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let base = keyed(password);
    let mut m = base.clone();
    m.update(salt);
    m.update(&1u32.to_be_bytes());
    let mut u: [u8; 32] = m.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..iterations {
        let mut m = base.clone();
        m.update(&u);
        u = m.finalize().into_bytes().into();
        for (o, x) in out.iter_mut().zip(u) {
            *o ^= x;
        }
    }
    u.zeroize();
    out
}

/// SASLprep of the password when it is valid UTF-8 and SASLprep accepts it; the bytes as
/// they are otherwise (PostgreSQL's rule: its passwords need not be SASLprep-clean).
fn normalize(password: &[u8]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(match std::str::from_utf8(password) {
        Ok(s) => match stringprep::saslprep(s) {
            Ok(p) => p.into_owned().into_bytes(),
            Err(_) => password.to_vec(),
        },
        Err(_) => password.to_vec(),
    })
}

/// A random nonce of printable ASCII without `,` (as `postgres_protocol`).
fn new_nonce() -> String {
    (0..NONCE_LEN)
        .map(|_| {
            let mut v = rand::random_range(0x21u8..0x7e);
            if v == b',' {
                v = 0x7e;
            }
            v as char
        })
        .collect()
}

enum State {
    /// Client-first sent; waiting for server-first.
    First {
        nonce: String,
        password: Zeroizing<Vec<u8>>,
    },
    /// Client-final sent; waiting for server-final.
    Final {
        server_key: Zeroizing<[u8; 32]>,
        auth_message: String,
    },
    Done,
}

/// One SCRAM-SHA-256 exchange as the client, without channel binding.
///
/// Use as `postgres_protocol`'s `ScramSha256`: send [`message`](Self::message) in the
/// SASLInitialResponse, pass AuthenticationSASLContinue to [`update`](Self::update) and send
/// the new `message` in a SASLResponse, then pass AuthenticationSASLFinal to
/// [`finish`](Self::finish); only its `Ok` means the server proved it knows the verifier.
pub struct ScramClient {
    message: String,
    /// `n=<user>,r=<nonce>`, the client-first message without its GS2 header.
    client_first_bare: String,
    state: State,
}

impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScramClient(..)")
    }
}

/// GS2 header of a client that supports no channel binding (`n`), no authzid.
const GS2_HEADER: &str = "n,,";

impl ScramClient {
    /// Starts an exchange. The user name is left empty, as libpq does: PostgreSQL takes the
    /// user from the startup message.
    pub fn new(password: &[u8]) -> ScramClient {
        ScramClient::with_nonce("", password, new_nonce())
    }

    fn with_nonce(user: &str, password: &[u8], nonce: String) -> ScramClient {
        let client_first_bare = format!("n={user},r={nonce}");
        ScramClient {
            message: format!("{GS2_HEADER}{client_first_bare}"),
            client_first_bare,
            state: State::First {
                nonce,
                password: normalize(password),
            },
        }
    }

    /// The message to send next (client-first, then client-final).
    pub fn message(&self) -> &[u8] {
        self.message.as_bytes()
    }

    /// Takes the server-first message (`r=<nonce>,s=<salt>,i=<iterations>`) and prepares
    /// the client-final message with the proof.
    pub fn update(&mut self, server_first: &[u8]) -> Result<(), ScramClientError> {
        let State::First { nonce, password } = std::mem::replace(&mut self.state, State::Done) else {
            return Err(ScramClientError::State);
        };
        let msg = std::str::from_utf8(server_first)
            .map_err(|_| ScramClientError::Protocol("server-first not UTF-8"))?;
        let (server_nonce, salt, iterations) = parse_server_first(msg)?;
        if !server_nonce.starts_with(nonce.as_str()) {
            return Err(ScramClientError::Nonce);
        }
        if iterations > MAX_ITERATIONS {
            return Err(ScramClientError::Iterations(iterations));
        }
        let salt = B64
            .decode(salt)
            .map_err(|_| ScramClientError::Protocol("salt is not base64"))?;
        let salted = salted_password(&password, &salt, iterations);

        let client_key = Zeroizing::new(hmac(&salted[..], b"Client Key"));
        let stored_key: [u8; 32] = Sha256::digest(&client_key[..]).into();
        let server_key = Zeroizing::new(hmac(&salted[..], b"Server Key"));

        // c= is base64 of the GS2 header (no channel binding data): "biws".
        let without_proof = format!("c={},r={server_nonce}", B64.encode(GS2_HEADER));
        let auth_message = format!("{},{msg},{without_proof}", self.client_first_bare);
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let mut proof = *client_key;
        for (p, s) in proof.iter_mut().zip(signature) {
            *p ^= s;
        }
        self.message = format!("{without_proof},p={}", B64.encode(proof));
        proof.zeroize();
        self.state = State::Final {
            server_key,
            auth_message,
        };
        Ok(())
    }

    /// Takes the server-final message and checks the server signature (`v=`), in constant
    /// time. An `e=` message or a wrong signature is an error.
    pub fn finish(&mut self, server_final: &[u8]) -> Result<(), ScramClientError> {
        let State::Final {
            server_key,
            auth_message,
        } = std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(ScramClientError::State);
        };
        let msg = std::str::from_utf8(server_final)
            .map_err(|_| ScramClientError::Protocol("server-final not UTF-8"))?;
        if let Some(e) = msg.strip_prefix("e=") {
            // The error value ends at the first `,` (extensions may follow).
            let e = e.split(',').next().unwrap_or_default();
            return Err(ScramClientError::Server(e.chars().take(64).collect()));
        }
        let v = msg
            .strip_prefix("v=")
            .ok_or(ScramClientError::Protocol("server-final without v="))?;
        if !is_base64(v) {
            return Err(ScramClientError::Protocol("server-final with trailing data"));
        }
        let v = B64
            .decode(v)
            .map_err(|_| ScramClientError::Protocol("server signature is not base64"))?;
        let mut m = keyed(&server_key[..]);
        m.update(auth_message.as_bytes());
        m.verify_slice(&v).map_err(|_| ScramClientError::ServerSignature)
    }
}

fn is_base64(s: &str) -> bool {
    s.bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'/' || c == b'+' || c == b'=')
}

/// `r=<printable>,s=<base64>,i=<positive number>` and nothing else (no extensions: PostgreSQL
/// sends none, and an unknown mandatory one must fail).
fn parse_server_first(msg: &str) -> Result<(&str, &str, u32), ScramClientError> {
    let bad = ScramClientError::Protocol;
    let mut parts = msg.split(',');
    let nonce = parts
        .next()
        .and_then(|p| p.strip_prefix("r="))
        .ok_or(bad("server-first without r="))?;
    let salt = parts
        .next()
        .and_then(|p| p.strip_prefix("s="))
        .ok_or(bad("server-first without s="))?;
    let iterations = parts
        .next()
        .and_then(|p| p.strip_prefix("i="))
        .ok_or(bad("server-first without i="))?;
    if parts.next().is_some() {
        return Err(bad("server-first with trailing data"));
    }
    if !nonce.bytes().all(|c| (0x21..=0x7e).contains(&c)) {
        return Err(bad("server nonce is not printable"));
    }
    if !is_base64(salt) {
        return Err(bad("salt is not base64"));
    }
    if iterations.is_empty() || !iterations.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad("iteration count is not a number"));
    }
    let iterations: u32 = iterations
        .parse()
        .map_err(|_| bad("iteration count is too large"))?;
    if iterations == 0 {
        return Err(bad("iteration count is zero"));
    }
    Ok((nonce, salt, iterations))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache is process-wide: tests that count its entries take this lock.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(user: &str, password: &str, nonce: &str, server_first: &str) -> ScramClient {
        let mut c = ScramClient::with_nonce(user, password.as_bytes(), nonce.to_string());
        c.update(server_first.as_bytes()).unwrap();
        c
    }

    /// RFC 7677, section 3: the SCRAM-SHA-256 example exchange (user "user", password
    /// "pencil"), byte for byte, then the same exchange again from the cache.
    #[test]
    fn rfc7677_test_vector() {
        let _g = serial();
        let server_first =
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let server_final = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
        for _ in 0..2 {
            let mut c = ScramClient::with_nonce("user", b"pencil", "rOprNGfwEbeRWgbNEkqO".into());
            assert_eq!(c.message(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
            c.update(server_first.as_bytes()).unwrap();
            assert_eq!(std::str::from_utf8(c.message()).unwrap(), client_final);
            c.finish(server_final.as_bytes()).unwrap();
        }
    }

    /// The exchange `postgres_protocol` tests against (recorded from psql: empty user name).
    #[test]
    fn recorded_psql_exchange() {
        let _g = serial();
        let mut c = run(
            "",
            "foobar",
            "9IZ2O01zb9IgiIZ1WJ/zgpJB",
            "r=9IZ2O01zb9IgiIZ1WJ/zgpJBjx/oIRLs02gGSHcw1KEty3eY,s=fs3IXBy7U7+IvVjZ,i=4096",
        );
        assert_eq!(
            std::str::from_utf8(c.message()).unwrap(),
            "c=biws,r=9IZ2O01zb9IgiIZ1WJ/zgpJBjx/oIRLs02gGSHcw1KEty3eY,p=AmNKosjJzS31NTlQYNs5BTeQjdHdk7lOflDo5re2an8="
        );
        c.finish(b"v=U+ppxD5XUKtradnv8e2MkeupiA8FU87Sg8CXzXHDAzw=")
            .unwrap();
    }

    #[test]
    fn wrong_server_signature_fails() {
        let _g = serial();
        let sf = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        // One bit off, the empty signature, an error, trailing data.
        for bad in [
            "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
            "v=",
            "e=invalid-proof",
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,x=1",
        ] {
            let mut c = run("user", "pencil", "rOprNGfwEbeRWgbNEkqO", sf);
            assert!(c.finish(bad.as_bytes()).is_err(), "{bad}");
        }
        // The right signature for another password (served from a warm cache) still fails.
        let mut c = run("user", "pencil2", "rOprNGfwEbeRWgbNEkqO", sf);
        assert_eq!(
            c.finish(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Err(ScramClientError::ServerSignature)
        );
    }

    #[test]
    fn malformed_server_first_is_refused() {
        let _g = serial();
        let n = "rOprNGfwEbeRWgbNEkqO";
        for bad in [
            "r=XXXX,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",   // nonce not extended
            "r=rOprNGfwEbeRWgbNEkqOabc,s=W22Z,i=1000000", // too many iterations
            "r=rOprNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
            "r=rOprNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1",
            "r=rOprNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ==",
            "r=rOprNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,m=x",
            "r=rOprNGfwEbeRWgbNEkqOabc,s=!!,i=4096",
        ] {
            let mut c = ScramClient::with_nonce("", b"pencil", n.into());
            assert!(c.update(bad.as_bytes()).is_err(), "{bad}");
        }
        // Out of order.
        let mut c = ScramClient::with_nonce("", b"pencil", n.into());
        assert_eq!(c.finish(b"v=AAAA"), Err(ScramClientError::State));
    }

    /// Agrees with `postgres_protocol`'s client (SASLprep included) on a password that
    /// SASLprep changes: a non-ASCII space and a soft hyphen (mapped to nothing).
    #[test]
    fn saslprep_as_postgres_protocol() {
        assert_eq!(&normalize("a\u{00A0}b\u{00AD}c".as_bytes())[..], b"a bc");
        assert_eq!(&normalize(b"\xff\xfe")[..], b"\xff\xfe");
        // A prohibited character (U+0007): the password is used as is.
        assert_eq!(&normalize(b"bell\x07")[..], b"bell\x07");
        assert_eq!(
            hi(b"pencil", b"salt", 2),
            {
                let u1 = hmac(b"pencil", b"salt\0\0\0\x01");
                let u2 = hmac(b"pencil", &u1);
                let mut o = u1;
                o.iter_mut().zip(u2).for_each(|(a, b)| *a ^= b);
                o
            },
            "Hi is PBKDF2 with one block"
        );
    }

    #[test]
    fn cache_is_bounded_and_keyed_by_everything() {
        let _g = serial();
        clear_cache();
        let a = salted_password(b"pw", b"salt", 16);
        assert_eq!(cache_len(), 1);
        assert_eq!(*salted_password(b"pw", b"salt", 16), *a);
        assert_eq!(cache_len(), 1);
        assert_ne!(*salted_password(b"pw2", b"salt", 16), *a);
        assert_ne!(*salted_password(b"pw", b"salt2", 16), *a);
        assert_ne!(*salted_password(b"pw", b"salt", 17), *a);
        assert_eq!(cache_len(), 4);
        for i in 0..2 * CACHE_ENTRIES {
            salted_password(format!("p{i}").as_bytes(), b"s", 2);
        }
        assert_eq!(cache_len(), CACHE_ENTRIES);
        assert_eq!(format!("{:?}", ScramClient::new(b"secret")), "ScramClient(..)");
        clear_cache();
    }
}
