//! Operation sequences decoded from bytes, run on the engine and the reference model: they must
//! never disagree.
#![no_main]

use bgsync_model::{run_scenario, Op};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ops = Op::decode(data);
    if let Err(d) = run_scenario(&ops) {
        panic!("the engine diverged from the model {d}\n{ops:#?}");
    }
});
