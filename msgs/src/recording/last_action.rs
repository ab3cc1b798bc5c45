//! A recorded state's `last_action`, filled back in: recordings keep
//! actions on their own channel (`action[t]` applied at `state[t]`), while a
//! live robot sends each state with the action it last applied. The one
//! place that turns the first form into the second, for every reader that
//! replays a recording as robot traffic.

use std::collections::HashMap;

use crate::types::{Action, RobotState};

/// The last action of each robot in its current episode, from a
/// recording's events in file order.
#[derive(Debug, Clone, Default)]
pub struct LastActions {
    by_robot: HashMap<String, (u64, Vec<f32>)>,
}

impl LastActions {
    /// Takes note of a recorded action.
    pub fn record(&mut self, action: Action) {
        self.by_robot
            .insert(action.robot_id, (action.episode, action.action));
    }

    /// Sets `state.last_action` to the action recorded after the previous
    /// state of the same robot and episode (`None` at an episode's start).
    pub fn fill(&self, state: &mut RobotState) {
        state.last_action = self
            .by_robot
            .get(&state.robot_id)
            .filter(|(episode, _)| *episode == state.episode)
            .map(|(_, a)| a.clone());
    }
}
