//! Sans-IO SWIM failure detection with Lifeguard and Vivaldi coordinates.
#![deny(missing_docs)]
