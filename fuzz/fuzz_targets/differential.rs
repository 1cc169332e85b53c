//! Scenarios decoded from bytes (the first byte draws the constants, then 4 bytes an operation),
//! run on the engine and the reference model: they must never disagree.
#![no_main]

use bgsync_model::{run_scenario_with, Op, Reached};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (setup, ops) = Op::decode(data);
    if let Err(d) = run_scenario_with(&setup, &ops, &mut Reached::default()) {
        panic!("the engine diverged from the model {d}\nsetup: {setup:?}\n{ops:#?}");
    }
});
