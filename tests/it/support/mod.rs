//! Shared test harness: temp dirs, free ports, and the real servers the tests talk to.
#![allow(dead_code)]

use std::net::TcpListener;

/// A free TCP port on 127.0.0.1 (bound, then released for the server under test).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}
pub mod config;
pub mod forge;
pub mod git;
pub mod imagebump;

pub mod registry;
pub mod replica;
