//! Fault suite: git faults (see docs/reliability.md).
