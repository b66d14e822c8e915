#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| layerstore::fuzzing::oci_layout(data));
