//! Unit and property tests of the whole fold: a small driver (`harness`), table-driven
//! transition and rejection tests (`transitions`), scenario tests (`scenarios`), the recorded
//! workflow exits (`outputs`) and the model-based property tests (`properties`).

mod harness;
mod outputs;
mod properties;
mod scenarios;
mod transitions;
