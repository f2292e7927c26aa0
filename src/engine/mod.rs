//! The write-back spine: for every app, read what is deployed, ask the registry what exists,
//! let the policy choose, edit the files, commit and push (or open a merge request).
//!
//! Invariant: the engine is the only module that knows every other stage; each stage knows
//! nothing of the others. It owns the order of work, the sharing (one tag list per repository
//! per pass, one push per repository and branch) and the failure isolation (a failing registry,
//! repo or app never stops the others).

pub mod message;
