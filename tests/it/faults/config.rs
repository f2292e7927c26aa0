//! Fault suite: config faults (see docs/reliability.md).
