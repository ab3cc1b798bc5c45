//! Loading the OOD models of a served model: separate checkpoints (each
//! with its own context), checked against the served robot, or the
//! forecast model itself when none is configured or none loads.

use std::path::PathBuf;

use super::scorer::OodScorer;
use crate::model::RobotModel;

/// The OOD scorer of `checkpoints` (those that do not load, or model
/// another robot than `forecast`, are skipped with a warning), or of the
/// forecast model when none is left.
pub fn load_ood_scorer(checkpoints: &[PathBuf], forecast: &RobotModel) -> OodScorer {
    let mut experts = Vec::new();
    let mut skipped = Vec::new();
    let mut action = forecast.conditional().then(|| forecast.action_dim());
    for dir in checkpoints {
        match RobotModel::load(dir, &forecast.device) {
            Ok(b) if b.state_dim() != forecast.state_dim() => skipped.push(format!(
                "OOD model {} not used: it models {}-float states, the forecast model {}",
                dir.display(),
                b.state_dim(),
                forecast.state_dim()
            )),
            // Every model of a robot that takes actions takes the same size.
            Ok(b) if b.conditional() && action.is_some_and(|a| a != b.action_dim()) => {
                skipped.push(format!(
                    "OOD model {} not used: it takes {}-float actions, another model of the robot {}",
                    dir.display(),
                    b.action_dim(),
                    action.unwrap_or(0)
                ))
            }
            Ok(b) => {
                if b.conditional() {
                    action = Some(b.action_dim());
                }
                tracing::info!(model = %b.model_id, context = b.context_len(), "OOD scores from a separate model");
                experts.push(b);
            }
            Err(e) => skipped.push(format!("OOD model {} not loaded: {e}", dir.display())),
        }
    }
    if experts.is_empty() {
        experts.push(forecast.clone());
    }
    for w in &skipped {
        tracing::warn!("{w}");
    }
    OodScorer::new(experts).with_warnings(skipped)
}
