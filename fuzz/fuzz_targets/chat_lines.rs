//! Fuzzes the chat core with a few clients' lines: every line sent to a client is clean
//! UTF-8 with one newline, nicks stay valid and distinct under case mapping, room member
//! lists match the clients' rooms, and nothing goes to a client that left.
//! See `sockit::fuzzing::check_chat`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sockit::fuzzing::check_chat(data));
