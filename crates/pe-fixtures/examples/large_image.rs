//! Builds the benchmark's generated image and prints how long that took and how big it is:
//! `cargo run --release -p pe-fixtures --example large_image -- [FUNCTIONS] [UNITS] [CFLAGS...]`
//! (e.g. `40000 2 -O0`).

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let functions: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(40_000);
    let units: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    let cflags: Vec<String> = args.collect();
    let cflag_refs: Vec<&str> = cflags.iter().map(String::as_str).collect();
    let started = Instant::now();
    let sources = pe_fixtures::generate_large_c_units(functions, 1, units);
    let generated = started.elapsed();
    let name = format!("large_{functions}{}", cflags.concat());
    let built = Instant::now();
    match pe_fixtures::c_sources_with_cflags(&name, &sources, &cflag_refs, &[]) {
        Ok(image) => {
            let size = std::fs::metadata(&image.image).map_or(0, |m| m.len());
            println!(
                "{functions} functions in {units} units: generated in {generated:.2?}, compiled and linked in {:.2?}; {} ({size} bytes)",
                built.elapsed(),
                image.image.display()
            );
        }
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    }
}
