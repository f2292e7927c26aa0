//! The fault suite: what imagebump survives, one file per kind of fault. A newcomer can read it
//! as the list of guarantees; docs/reliability.md is the same list as a table, with the test that
//! proves each row. Every loop here is bounded in count and time, and talks to loopback only.

mod config;
mod git;
mod process;
mod registry;
mod webhook;
