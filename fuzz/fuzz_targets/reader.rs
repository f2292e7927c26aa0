//! Fuzz target for the editor's quick reader: for any UTF-8 text, reading it as the editor does
//! (the quick reader, the full parser where it gives up) must give exactly what the full parser
//! gives alone: the same tree, node for node and byte for byte, or the same error.
#![no_main]

use imagebump::edit::{read, scan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    assert_eq!(read::parse(text), scan::parse_full(text), "{text:?}");
});
