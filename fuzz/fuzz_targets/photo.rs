//! Fuzzes photo validation (through `xingweinong::fuzzing::photo`): any
//! bytes, never a panic, and what is accepted re-decodes as a JPEG of the
//! size reported, without EXIF.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    xingweinong::fuzzing::photo(data);
});
