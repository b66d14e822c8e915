#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| layerstore::fuzzing::s3_xml(data));
