//! pgveil: a PostgreSQL wire-protocol proxy that lets restricted roles query a live
//! database while every protected column reads as its masked value.
//!
//! Layout (see ARCHITECTURE.md for the invariants):
//! - [`wire`]: framing and typed views of protocol messages over raw bytes. No policy.
//! - [`session`]: one client connection: startup, TLS, authentication, the message pumps.
//! - [`server`], [`workers`]: the listener, and the threads that run sessions (one
//!   single-threaded runtime each, so a session never hops between threads).
//! - [`upstream`]: the connection from pgveil to the real PostgreSQL.
//! - [`sql`]: statement analysis and rewriting with PostgreSQL's own parser. Pure.
//! - [`catalog`]: tables, columns and types read from upstream.
//! - [`policy`]: rules + catalog -> a per-role plan (clear / mask / deny per column). Pure.
//! - [`mask`]: the masking functions, text and binary. Pure.
//! - [`rules`]: loading and validating the YAML rules directory.
//! - [`cluster`]: throwaway PostgreSQL clusters for tests, the demo and benchmarks.
//! - [`demo`]: the built-in demo (sample seller data + rules).
//! - [`audit`], [`metrics`], [`reload`]: running during a deal (audit trail, Prometheus
//!   metrics, hot reload of rules and catalog).
pub mod audit;
pub mod catalog;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod mask;
pub mod metrics;
pub mod net;
pub mod policy;
pub mod reload;
pub mod report;
pub mod rules;
pub mod scan;
pub mod server;
pub mod session;
pub mod sql;
pub mod state;
pub mod upstream;
pub mod wire;
pub mod workers;
