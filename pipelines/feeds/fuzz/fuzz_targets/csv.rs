//! Fuzz target: arbitrary bytes read as CSV with a fixed profile must give
//! items or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

const PROFILE: &str = r#"
name = "fuzz"
date_format = "%d.%m.%Y"
decimal_separator = ","
thousands_separator = "."
strip = ["$"]
currency = "EUR"
credit_values = ["C"]
debit_values = ["D"]
[columns]
booking_date = "Date"
value_date = "Value"
amount = "Amount"
direction = "Dir"
currency = "Ccy"
description = ["Text"]
"#;

fuzz_target!(|data: &[u8]| {
    let Ok(profile) = feeds::CsvProfile::from_toml("fuzz", PROFILE) else {
        return;
    };
    let source = feeds::SourceInfo::named("fuzz");
    let mut bytes = b"Date,Value,Amount,Dir,Ccy,Text\n".to_vec();
    bytes.extend_from_slice(data);
    if let Ok(feed) = feeds::parse(std::io::Cursor::new(bytes), Some(feeds::Format::Csv), Some(&profile), source) {
        for item in feed {
            let _ = item;
        }
    }
});
