//! Tests of the statistics core: hand-computed reference values, merge laws, and seeded
//! simulations that measure the coverage of the intervals.

mod coverage;
mod estimators;
mod merge;
mod srm;
mod uplift;
