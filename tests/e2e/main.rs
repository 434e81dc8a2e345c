//! End-to-end tests: pgveil in front of a real PostgreSQL, driven by real clients.
//! One test binary (faster to link); a module per area.
mod cli;
mod clients;
mod common;
mod hops;
mod masking;
mod proxy;
mod raw;
