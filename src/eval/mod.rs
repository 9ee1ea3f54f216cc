//! Metrics, clustering scores, reports and plots.
pub mod clustering;
pub mod embedding2d;
pub mod integration;
pub mod metrics;
#[cfg(feature = "plots")]
pub mod plots;
