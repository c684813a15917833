//! Fuzz target: arbitrary bytes read as mt940 must give items or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let source = feeds::SourceInfo::named("fuzz");
    if let Ok(feed) = feeds::parse(std::io::Cursor::new(data.to_vec()), Some(feeds::Format::Mt940), None, source) {
        for item in feed {
            let _ = item;
        }
    }
    let _ = feeds::Format::detect(data);
});
