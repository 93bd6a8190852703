//! Fuzzes the length-prefix decoder: whole vs chunked decoding agree, frames respect the
//! limit, re-encoding gives back the input, over-long headers allocate nothing.
//! See `sockit::fuzzing::check_frame_decoder`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sockit::fuzzing::check_frame_decoder(data));
