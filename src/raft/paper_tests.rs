//! Paper tests (placeholder).
