//! Speed of `cargo pagecheck` on a large generated driver image, next to `llvm-objdump -d`.
//!
//! Builds the benchmark C driver of `pe_fixtures::generate_large_c_units` at several sizes (the
//! largest at least 40,000 functions and 10 MB of code), runs the whole analysis (read the
//! image, match and read the PDB, build the function table, decode every function, all
//! checks) and `llvm-objdump -d` on the same file, and prints the medians, their ratio and the
//! time per megabyte of code at each size (linear growth keeps it flat). At the largest size it
//! also measures the KMDF variant (`generate_large_kmdf_c_units`: every eighth function creates
//! a framework timer), where the dataflow pass and registration inference run on thousands of
//! functions; the `dataflow` column counts the functions walked by that pass.
//!
//! `cargo bench -p cargo-pagecheck --bench large`; `PAGECHECK_BENCH_SIZES=10000,20000,45000`
//! and `PAGECHECK_BENCH_RUNS=5` override the defaults; `PAGECHECK_BENCH_KMDF=0` skips the KMDF
//! variant.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pagecheck::{Options, analyze_path};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name).ok().map_or_else(
        || default.to_vec(),
        |v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
    )
}

fn time_analysis(image: &Path, runs: usize) -> (Duration, pagecheck::Report) {
    let options = Options {
        roots: vec!["power-up=f0".parse().expect("root")],
        ..Options::default()
    };
    let mut samples = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        let report = analyze_path(image, &options).expect("analysis");
        samples.push(start.elapsed());
        last = Some(report);
    }
    (median(samples), last.expect("at least one run"))
}

/// The decode pass alone (function table + one decode of every function), on an image and
/// PDB already in memory: the part of the work that `llvm-objdump -d` also does.
fn time_decode(image: &Path, runs: usize) -> Duration {
    let bytes = std::fs::read(image).expect("read image");
    let parsed = pagecheck::image::Image::parse(bytes).expect("parse");
    let symbols =
        pagecheck::pdb::Symbols::load(&image.with_extension("pdb"), &parsed).expect("pdb");
    let mut samples = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let functions = pagecheck::functions::Functions::build(&parsed, &symbols);
        let ctx = pagecheck::view::Context::new(&parsed, &functions, Vec::new());
        let graph = pagecheck::decode::build(&ctx);
        std::hint::black_box(graph.instructions);
        samples.push(start.elapsed());
    }
    median(samples)
}

fn time_objdump(image: &Path, runs: usize) -> Option<Duration> {
    let mut samples = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let status = Command::new("llvm-objdump")
            .arg("-d")
            .arg(image)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        if !status.success() {
            return None;
        }
        samples.push(start.elapsed());
    }
    Some(median(samples))
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would run this too, so only run
    // the (minutes-long) measurement when asked to benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        println!("large: skipped (run with `cargo bench`)");
        return;
    }
    let sizes = env_list("PAGECHECK_BENCH_SIZES", &[10_000, 20_000, 45_000]);
    let runs = env_list("PAGECHECK_BENCH_RUNS", &[9])
        .first()
        .copied()
        .unwrap_or(5)
        .max(1);
    let units = std::thread::available_parallelism().map_or(2, usize::from) * 4;
    println!(
        "{:>6} {:>9} {:>9} {:>12} {:>11} {:>11} {:>11} {:>12} {:>8} {:>12} {:>12}",
        "image",
        "functions",
        "dataflow",
        "code bytes",
        "instrs",
        "pagecheck",
        "decode",
        "objdump -d",
        "ratio",
        "total/MB",
        "decode/MB"
    );
    let mut per_mb = Vec::new();
    let mut decode_per_mb = Vec::new();
    let kmdf = std::env::var("PAGECHECK_BENCH_KMDF").map_or(true, |v| v != "0");
    let mut plan: Vec<(usize, bool)> = sizes.iter().map(|&n| (n, false)).collect();
    if kmdf && let Some(&largest) = sizes.iter().max() {
        plan.push((largest, true));
    }
    for (n, kmdf) in plan {
        let (sources, name) = if kmdf {
            (
                pe_fixtures::generate_large_kmdf_c_units(n, 0x5eed, units),
                format!("bench_kmdf_{n}"),
            )
        } else {
            (
                pe_fixtures::generate_large_c_units(n, 0x5eed, units),
                format!("bench_{n}"),
            )
        };
        let image = pe_fixtures::c_sources(&name, &sources, &[]).expect("build benchmark image");
        // One unmeasured run warms the page cache for both tools.
        let _ = time_analysis(&image.image, 1);
        let (analysis, report) = time_analysis(&image.image, runs);
        let decode = time_decode(&image.image, runs);
        let objdump = time_objdump(&image.image, runs.min(3));
        #[allow(clippy::cast_precision_loss)]
        let mb = report.summary.code_bytes as f64 / 1_000_000.0;
        let ms_per_mb = analysis.as_secs_f64() * 1000.0 / mb;
        let decode_ms_per_mb = decode.as_secs_f64() * 1000.0 / mb;
        if !kmdf {
            per_mb.push(ms_per_mb);
            decode_per_mb.push(decode_ms_per_mb);
        }
        println!(
            "{:>6} {:>9} {:>9} {:>12} {:>11} {:>9.1}ms {:>9.1}ms {:>12} {:>8} {:>10.2}ms {:>10.2}ms",
            if kmdf { "kmdf" } else { "plain" },
            report.summary.functions,
            report.summary.dataflow_functions,
            report.summary.code_bytes,
            report.summary.instructions,
            analysis.as_secs_f64() * 1000.0,
            decode.as_secs_f64() * 1000.0,
            objdump.map_or_else(
                || "n/a".to_owned(),
                |d| format!("{:.1}ms", d.as_secs_f64() * 1000.0)
            ),
            objdump.map_or_else(
                || "n/a".to_owned(),
                |d| format!("{:.1}x", d.as_secs_f64() / analysis.as_secs_f64())
            ),
            ms_per_mb,
            decode_ms_per_mb,
        );
    }
    for (what, series) in [("total", &per_mb), ("decode", &decode_per_mb)] {
        if let (Some(first), Some(last)) = (series.first(), series.last()) {
            println!(
                "linearity ({what}, plain): time per MB at the largest size / at the smallest = {:.2} (1.00 = linear)",
                last / first
            );
        }
    }
}
