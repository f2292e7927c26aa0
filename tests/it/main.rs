//! Integration tests, compiled into one binary (one link instead of one per file).
//!
//! Each module tests one I/O stage against real servers that `support` starts on 127.0.0.1:
//! the CNCF registry (Debian's `docker-registry`), git remotes (file://, smart HTTP, SSH) and
//! local HTTP stand-ins for the forge APIs.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod examples;
mod select;
mod set;
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod git;
mod support;

mod forge;
