//! Fuzzes the file server's request path: requests cut anywhere get the same answers, no
//! file outside the root is ever served, responses frame their bodies exactly.
//! See `sockit::fuzzing::check_http_serve`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sockit::fuzzing::check_http_serve(data));
