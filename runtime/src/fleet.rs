//! Several models in one daemon: each `[[models]]` entry (and the default
//! `[model]`) binds a robot-id pattern to a forecast model, its OOD models
//! and denoiser settings, and runs on an inference engine of its own, so
//! robots of different kinds are served side by side and batched per model.
//! A robot is served by the first binding whose pattern matches its id.

use std::sync::Arc;

use ebm_msgs::{RobotId, RobotPattern, ServedModel};
use tokio::sync::mpsc;

use crate::binding::Binding;
use crate::config::RuntimeConfig;
use crate::counters::Counters;
use crate::engine::{Engine, StreamOutput};
use crate::RuntimeError;

struct Served {
    robots: RobotPattern,
    engine: Engine,
    /// The status entry without its robot list.
    status: ServedModel,
    warnings: Vec<String>,
}

/// The running engines, one per binding.
pub struct Fleet {
    served: Vec<Served>,
}

impl Fleet {
    /// Starts one engine per binding; outputs of all go to `outputs`.
    pub fn start(
        bindings: Vec<Binding>,
        cfg: &RuntimeConfig,
        counters: &Arc<Counters>,
        outputs: &mpsc::Sender<StreamOutput>,
    ) -> Result<Self, RuntimeError> {
        if bindings.is_empty() {
            return Err(RuntimeError::Model("no model to serve".into()));
        }
        let mut served = Vec::with_capacity(bindings.len());
        for b in bindings {
            let status = ServedModel {
                robots_pattern: b.robots.to_string(),
                model_id: b.model.model_id.clone(),
                ood_model_id: b.ood.model_id().to_owned(),
                ood_percentiles: if b.ood.calibrated() {
                    "checkpoint"
                } else {
                    "online"
                }
                .into(),
                robot: b.model.robot.clone(),
                robots: Vec::new(),
            };
            let mut warnings: Vec<String> = b
                .model
                .warnings
                .iter()
                .map(|w| format!("{} (robots `{}`): {w}", b.model.model_id, b.robots))
                .collect();
            // OOD models not used, and the used ones' own problems (the
            // forecast model's, when it scores, are above already).
            warnings.extend(
                b.ood
                    .warnings()
                    .iter()
                    .map(|w| format!("robots `{}`: {w}", b.robots)),
            );
            for e in b.ood.experts() {
                if e.model.model_id != b.model.model_id {
                    warnings.extend(e.model.warnings.iter().map(|w| {
                        format!(
                            "OOD model {} (robots `{}`): {w}",
                            e.model.model_id, b.robots
                        )
                    }));
                }
            }
            let robots = b.robots.clone();
            let engine = Engine::start(b, cfg, Arc::clone(counters), outputs.clone())?;
            served.push(Served {
                robots,
                engine,
                status,
                warnings,
            });
        }
        Ok(Self { served })
    }

    /// The engine of binding `i` (an index from [`Fleet::route_index`]).
    pub fn engine(&self, i: usize) -> &Engine {
        &self.served[i].engine
    }

    /// The index (in matching order) of the binding serving `robot`: the
    /// first whose pattern matches.
    pub fn route_index(&self, robot: &RobotId) -> Option<usize> {
        self.served.iter().position(|s| s.robots.matches(robot))
    }

    /// The bound patterns, in matching order.
    pub fn patterns(&self) -> Vec<RobotPattern> {
        self.served.iter().map(|s| s.robots.clone()).collect()
    }

    /// Each served model and the robots it has served.
    pub fn status(&self) -> Vec<ServedModel> {
        self.served
            .iter()
            .map(|s| ServedModel {
                robots: s.engine.robot_ids(),
                ..s.status.clone()
            })
            .collect()
    }

    pub fn warnings(&self) -> Vec<String> {
        self.served
            .iter()
            .flat_map(|s| s.warnings.clone())
            .collect()
    }

    /// Robots seen by every engine.
    pub fn robots(&self) -> usize {
        self.served.iter().map(|s| s.engine.robots()).sum()
    }

    /// The patterns of bindings whose inference thread has died.
    pub fn dead(&self) -> Vec<String> {
        self.served
            .iter()
            .filter(|s| !s.engine.is_running())
            .map(|s| s.robots.to_string())
            .collect()
    }

    /// Stops every engine (each after its current job).
    pub fn stop(&self) {
        for s in &self.served {
            s.engine.stop();
        }
    }
}
