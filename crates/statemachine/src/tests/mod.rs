//! Unit and property tests of the whole fold: a small driver (`harness`), table-driven
//! transition and rejection tests (`transitions`), scenario tests (`scenarios`) and the
//! model-based property tests (`properties`).

mod harness;
mod properties;
mod scenarios;
mod transitions;
