//! The PostgreSQL wire protocol (version 3) over raw bytes.
//!
//! pgveil frames messages itself: a [`Frame`] is the whole message (tag, length, body) as
//! the peer sent it, so a frame pgveil does not change leaves byte for byte. Typed views
//! ([`frontend`], [`backend`]) are decoded only when the session needs them, and every
//! decoder must consume its body exactly: a body with trailing bytes is malformed, never
//! silently read as something else (PostgreSQL reads one Query as one string, and so must
//! we, or the proxy and the server would see different statements).
//!
//! Invariant: nothing in this module knows about roles, rules or SQL.
pub mod backend;
mod body;
pub mod copy;
pub mod frame;
pub mod frontend;
pub mod startup;

pub use body::{Body, BodyWriter};
pub use frame::{Frame, FrameReader};

/// Errors in a peer's bytes. Each names what was expected and what arrived.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("message {tag:?} declares length {len}, below the minimum of 4")]
    BadLength { tag: char, len: i32 },
    #[error("message {tag:?} of {len} bytes is over the limit of {max} bytes")]
    TooLarge { tag: char, len: usize, max: usize },
    #[error("malformed {what}: {problem}")]
    Malformed { what: &'static str, problem: String },
    #[error("connection closed in the middle of a message")]
    UnexpectedEof,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl WireError {
    pub(crate) fn malformed(what: &'static str, problem: impl Into<String>) -> WireError {
        WireError::Malformed {
            what,
            problem: problem.into(),
        }
    }
}
