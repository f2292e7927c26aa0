//! Fault suite: registry faults (see docs/reliability.md).
