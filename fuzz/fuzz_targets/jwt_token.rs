#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| layerstore::fuzzing::jwt_token(data));
