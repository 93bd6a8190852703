//! Fuzzes HTTP's own parsing (not httparse): the chunked decoder cut anywhere agrees with
//! itself and round-trips, response heads respect the limits.
//! See `sockit::fuzzing::check_http_chunked`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sockit::fuzzing::check_http_chunked(data));
