//! Speed of `cargo pagecheck` on a large generated driver image, next to `llvm-objdump -d`.
//!
//! Builds the benchmark C driver of `pe_fixtures::generate_large_c_units` at several sizes (the
//! largest at least 40,000 functions and 10 MB of code), runs `cargo pagecheck` on it end to end
//! as a user does (a child process: read the image, match and read the PDB, build the function
//! table, decode every function, the dataflow pass, every check, the JSON report) and
//! `llvm-objdump -d` on the same file, and prints the medians, their ratio, the analysis' peak
//! memory and the time per megabyte of code at each size (linear growth keeps it flat).
//!
//! At the largest size it also measures two variants of the same program: the C-shaped one
//! (`generate_large_shaped_c_units`: loops, switches with jump tables, globals read and
//! written, one function in sixteen calling through a function-pointer table), whose functions
//! are mostly not at stake, and the KMDF one (`generate_large_kmdf_c_units`: every eighth
//! function creates a framework timer), where the dataflow pass and registration inference run
//! on thousands of functions. The `dataflow` column counts the functions that pass walked.
//!
//! `cargo bench -p cargo-pagecheck --bench large`; `PAGECHECK_BENCH_SIZES=10000,20000,45000`,
//! `PAGECHECK_BENCH_RUNS=5` and `PAGECHECK_BENCH_VARIANTS=shaped,kmdf` (or empty) override the
//! defaults.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// Runs `command` as a child and returns its wall time, its peak resident memory in KiB and its
/// exit status. Called in a fresh process (`--measure-child`, see [`main`]): Linux folds the
/// peak of the address space a process replaces at exec into its peak, and a child forked from
/// the benchmark would carry the benchmark's own (the images and call graphs it holds),
/// hundreds of MiB that are not the analysis'.
fn measure(command: &[String]) -> (Duration, i64, i32) {
    let start = Instant::now();
    // Reaped by the wait4 below, which std does not offer (it returns no rusage).
    #[allow(clippy::zombie_processes)]
    let child = Command::new(&command[0])
        .args(&command[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the measured command");
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value of the plain C struct, which wait4 fills.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, writing into the two locals above.
    let waited = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
    let elapsed = start.elapsed();
    assert_eq!(waited, pid, "wait4");
    assert!(libc::WIFEXITED(status), "killed: {status:#x}");
    #[allow(clippy::useless_conversion)]
    (
        elapsed,
        i64::from(usage.ru_maxrss),
        libc::WEXITSTATUS(status),
    )
}

/// One end-to-end run of the `cargo-pagecheck` binary on `image` (as a user runs it, JSON to a
/// file), measured by a fresh copy of this benchmark ([`measure`]): its wall time, its peak
/// resident memory in MiB, and the report.
fn run_cli(image: &Path, report: &Path) -> (Duration, f64, serde_json::Value) {
    let out = Command::new(std::env::current_exe().expect("the benchmark's own path"))
        .arg("--measure-child")
        .arg(env!("CARGO_BIN_EXE_cargo-pagecheck"))
        .arg("pagecheck")
        .arg(image)
        .args(["--root", "power-up=f0", "--format", "json", "--output"])
        .arg(report)
        .output()
        .expect("run the measuring process");
    let line = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<i64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let [nanos, kib, code] = fields[..] else {
        panic!(
            "measuring process: {line:?} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    assert!(code <= 1, "cargo-pagecheck exited {code}");
    let text = std::fs::read_to_string(report).expect("report");
    #[allow(clippy::cast_precision_loss)]
    let peak = kib as f64 / 1024.0;
    (
        Duration::from_nanos(u64::try_from(nanos).expect("elapsed")),
        peak,
        serde_json::from_str(&text).expect("JSON report"),
    )
}

/// The median of `runs` end-to-end runs, the largest peak memory among them, and the report.
fn time_cli(image: &Path, runs: usize) -> (Duration, f64, serde_json::Value) {
    let report = image.with_extension("bench.json");
    let mut samples = Vec::new();
    let mut peak = 0.0_f64;
    let mut last = serde_json::Value::Null;
    for _ in 0..runs {
        let (elapsed, mib, json) = run_cli(image, &report);
        samples.push(elapsed);
        peak = peak.max(mib);
        last = json;
    }
    (median(samples), peak, last)
}

/// The images measured: the plain program at every size, and at the largest size its
/// C-shaped and KMDF variants.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Plain,
    Shaped,
    Kmdf,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::Shaped => "shaped",
            Variant::Kmdf => "kmdf",
        }
    }

    fn sources(self, n: usize, units: usize) -> Vec<String> {
        match self {
            Variant::Plain => pe_fixtures::generate_large_c_units(n, 0x5eed, units),
            Variant::Shaped => pe_fixtures::generate_large_shaped_c_units(n, 0x5eed, units),
            Variant::Kmdf => pe_fixtures::generate_large_kmdf_c_units(n, 0x5eed, units),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--measure-child") {
        let (elapsed, kib, code) = measure(&args[at + 1..]);
        println!("{} {kib} {code}", elapsed.as_nanos());
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` would run this too, so only run
    // the (minutes-long) measurement when asked to benchmark.
    if !args.iter().any(|a| a == "--bench") {
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
        "{:>6} {:>9} {:>9} {:>12} {:>11} {:>11} {:>9} {:>11} {:>12} {:>8} {:>12} {:>12}",
        "image",
        "functions",
        "dataflow",
        "code bytes",
        "instrs",
        "pagecheck",
        "peak MiB",
        "decode",
        "objdump -d",
        "ratio",
        "total/MB",
        "decode/MB"
    );
    let mut per_mb = Vec::new();
    let mut decode_per_mb = Vec::new();
    let variants =
        std::env::var("PAGECHECK_BENCH_VARIANTS").unwrap_or_else(|_| "shaped,kmdf".into());
    let mut plan: Vec<(usize, Variant)> = sizes.iter().map(|&n| (n, Variant::Plain)).collect();
    if let Some(&largest) = sizes.iter().max() {
        for variant in [Variant::Shaped, Variant::Kmdf] {
            if variants.split(',').any(|v| v.trim() == variant.name()) {
                plan.push((largest, variant));
            }
        }
    }
    for (n, variant) in plan {
        let name = match variant {
            Variant::Plain => format!("bench_{n}"),
            v => format!("bench_{}_{n}", v.name()),
        };
        let sources = variant.sources(n, units);
        let image = pe_fixtures::c_sources(&name, &sources, &[]).expect("build benchmark image");
        // One unmeasured run warms the page cache for both tools.
        let _ = time_cli(&image.image, 1);
        let (analysis, peak, report) = time_cli(&image.image, runs);
        let decode = time_decode(&image.image, runs);
        let objdump = time_objdump(&image.image, runs.min(3));
        let count = |key: &str| report["summary"][key].as_u64().unwrap_or(0);
        #[allow(clippy::cast_precision_loss)]
        let mb = count("code_bytes") as f64 / 1_000_000.0;
        let ms_per_mb = analysis.as_secs_f64() * 1000.0 / mb;
        let decode_ms_per_mb = decode.as_secs_f64() * 1000.0 / mb;
        if variant == Variant::Plain {
            per_mb.push(ms_per_mb);
            decode_per_mb.push(decode_ms_per_mb);
        }
        println!(
            "{:>6} {:>9} {:>9} {:>12} {:>11} {:>9.1}ms {:>9.1} {:>9.1}ms {:>12} {:>8} {:>10.2}ms {:>10.2}ms",
            variant.name(),
            count("functions"),
            count("dataflow_functions"),
            count("code_bytes"),
            count("instructions"),
            analysis.as_secs_f64() * 1000.0,
            peak,
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
