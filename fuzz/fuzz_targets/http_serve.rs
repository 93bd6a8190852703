//! Fuzzes the file server's request path: requests cut anywhere get the same answers, no
//! file outside the root is ever served, responses frame their bodies exactly, and the
//! pure request → decision function keeps its invariants (redirects are paths, 304 and
//! 206 only when asked, ranges inside the file, doubtful body framing refused).
//! See `sockit::fuzzing::check_http_serve` and `check_http_decisions`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sockit::fuzzing::check_http_serve(data));
