//! Fault suite: webhook faults (see docs/reliability.md).
