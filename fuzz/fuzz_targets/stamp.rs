//! One item (DynamoDB JSON) through `Schema::decode`, then merge, restamp
//! and encode on the version it decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    resolver::fuzzing::stamp_one(data);
});
