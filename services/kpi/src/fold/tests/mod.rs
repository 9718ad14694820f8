//! Tests of the fold with hand-computed expectations on fixed event sets.

mod decisions;
mod experiments;
mod records;
mod sessions;
mod support;
mod surveys;
