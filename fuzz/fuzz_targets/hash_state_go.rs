#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| layerstore::fuzzing::hash_state_go(data));
