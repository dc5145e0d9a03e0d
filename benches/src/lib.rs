//! Criterion benches live in `benches/benches/`; see README.md.
