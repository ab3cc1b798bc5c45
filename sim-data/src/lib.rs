//! `ebm-sim-data`: the hand-cube simulator on rapier3d (24 joints, 20
//! actuators, a free cube), scripted manipulation policies, MCAP recordings
//! and replay over Zenoh. Filled by the simulator issue; until then it holds
//! no code.
