//! Integrated Storage: openraft over a redb log store and state machine.
