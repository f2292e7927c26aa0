//! Fault suite: process faults (see docs/reliability.md).
