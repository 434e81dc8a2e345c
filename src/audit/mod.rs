//! Audit trail (issue 5).
