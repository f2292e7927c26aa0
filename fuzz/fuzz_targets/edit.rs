//! Fuzz target for `imagebump::edit`: any input must give `Ok` or `Err`, never a panic or an
//! unbounded amount of work; an `Ok` edit must re-parse, be idempotent, and leave the input
//! unchanged when it reports no change.
#![no_main]

use imagebump::edit::{self, HelmField, Target, Update};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, yaml)) = data.split_first() else {
        return;
    };
    let Ok(update) = Update::new("ghcr.io/org/app", Some("1.10"), None) else {
        return;
    };
    let target = match selector % 5 {
        0 => Target::Auto,
        1 => Target::Kustomize,
        2 => Target::Manifest,
        3 => Target::Marker { policy: "ns:app".into() },
        _ => match edit::parse_value_path("image.tag") {
            Ok(path) => Target::Helm { path, field: HelmField::Tag },
            Err(_) => return,
        },
    };
    let _ = edit::find(yaml, &target, &update.image);
    if let Ok(edited) = edit::apply(yaml, &target, &update) {
        if edited.changes.is_empty() {
            assert_eq!(edited.bytes, yaml);
        }
        let again = edit::apply(&edited.bytes, &target, &update).expect("an edited file edits again");
        assert!(again.changes.is_empty(), "second edit changed {:?}", again.changes);
    }
});
