//! What `celltext classify` writes: the report directory (plots first, in `figures`, then report.md and
//! report.json) and the output h5ad (a copy of the input with the predictions in obs and the run
//! manifest in uns).

use std::path::Path;

use anyhow::Result;

use super::arguments::ClassifyArgs;
use super::report::{render_markdown, ClassifyReport};
use super::{say, OBS_CONF, OBS_PRED, OBS_SPLIT};
use crate::cells::matrix::ObsColumn;
use crate::io::{atomic_write, write_json};

/// `--report DIR` is replaced whole, so it must be new, empty, or an earlier report (it holds a
/// report.json): never a folder of other files (the library's one folder guard).
pub(super) fn check_report_dir(dir: &Path) -> Result<()> {
    crate::outputs::check_replaceable_dir(dir, "--report", "report.json", None)
}

/// report.md and report.json into the report directory (after the plots, so report.json lists
/// every file).
pub(super) fn write_report_files(dir: &Path, report: &ClassifyReport) -> Result<()> {
    atomic_write(&dir.join("report.md"), render_markdown(report).as_bytes())?;
    write_json(&dir.join("report.json"), report)
}

/// The output h5ad `output`: a copy of the input plus obs celltext_pred / celltext_conf /
/// celltext_split and the run manifest in uns; listed in `report.files`.
pub(super) fn write_obs_output(
    args: &ClassifyArgs,
    output: &Path,
    report: &mut ClassifyReport,
    names: &[String],
    pred: &[(usize, f32)],
    split_col: Vec<String>,
) -> Result<()> {
    report.files.push(output.display().to_string());
    say(args.quiet, format!("writing {}", output.display()));
    let obs_cols = vec![
        (
            OBS_PRED.to_string(),
            ObsColumn::Text(pred.iter().map(|p| names[p.0].clone()).collect()),
        ),
        (
            OBS_CONF.to_string(),
            ObsColumn::Number(pred.iter().map(|p| p.1 as f64).collect()),
        ),
        (OBS_SPLIT.to_string(), ObsColumn::Text(split_col)),
    ];
    let uns = serde_json::to_string(&report.manifest)?;
    write_h5ad(&args.input, output, args.in_place, &obs_cols, &uns)
}

#[cfg(feature = "h5ad")]
fn write_h5ad(
    input: &Path,
    output: &Path,
    in_place: bool,
    obs: &[(String, ObsColumn)],
    uns: &str,
) -> Result<()> {
    crate::cells::h5ad::write_h5ad_with_obsm(
        input,
        output,
        in_place,
        &[],
        obs,
        Some((super::UNS_KEY, uns)),
    )
}

#[cfg(not(feature = "h5ad"))]
fn write_h5ad(
    input: &Path,
    _output: &Path,
    _in_place: bool,
    _obs: &[(String, ObsColumn)],
    _uns: &str,
) -> Result<()> {
    Err(super::features::no_h5ad(input))
}
