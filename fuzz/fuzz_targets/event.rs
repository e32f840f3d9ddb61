//! A DynamoDB stream event (JSON) through the resolver's decoder and
//! `triage`, then the stamp decoder and merge on the images it decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    resolver::fuzzing::event_one(data);
});
