//! Fuzzes the exec message parser and the server session: decode(encode(m)) == m, byte
//! bodies unchanged, no program without authentication, refused sessions stay done.
//! See `sockit::fuzzing::check_exec_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sockit::fuzzing::check_exec_message(data));
