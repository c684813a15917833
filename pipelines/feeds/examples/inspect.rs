//! `cargo run --example inspect -- FILE [FORMAT|auto] [PROFILE] [--json]`:
//! the same summary `wf feed inspect` prints.

use std::path::Path;

use feeds::{CsvProfile, Format, inspect};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let args: Vec<&String> = args.iter().filter(|a| *a != "--json").collect();
    let Some(file) = args.first() else {
        eprintln!("usage: inspect FILE [FORMAT|auto] [PROFILE] [--json]");
        std::process::exit(2);
    };
    let format = match args.get(1).map(|s| s.as_str()) {
        None | Some("auto") => None,
        Some(f) => Some(f.parse::<Format>().unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        })),
    };
    let profile = args.get(2).map(|p| {
        CsvProfile::load(Path::new(p.as_str())).unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        })
    });
    match inspect(Path::new(file.as_str()), format, profile.as_ref()) {
        Ok(report) if json => println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default()),
        Ok(report) => print!("{report}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
