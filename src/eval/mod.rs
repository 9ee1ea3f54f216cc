//! Metrics, clustering scores, reports and plots.
pub mod metrics;
pub mod clustering;
pub mod plots;
pub mod embedding2d;
