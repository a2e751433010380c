//! 1,000 sleep/resume cycles of a fixture driver: prints the wall time and the peak memory of
//! the scenario process. Run with `cargo bench -p cargo-pagerun`.

fn main() {
    let image = match pe_fixtures::c("run_driver_clean") {
        Ok(image) => image,
        Err(e) => {
            eprintln!("cannot build the fixture: {e}");
            std::process::exit(2);
        }
    };
    let program = env!("CARGO_BIN_EXE_cargo-pagerun");
    for (label, registry) in [
        ("power-pageable", "PowerNotPageable=0"),
        ("power-nonpageable", "PowerNotPageable=1"),
    ] {
        let started = std::time::Instant::now();
        let output = std::process::Command::new(program)
            .arg(&image.image)
            .args([
                "--scenario",
                "sleep",
                "--cycles",
                "1000",
                "--registry",
                registry,
            ])
            .args([
                "--format",
                "json",
                "--timeout",
                "600",
                "--cpu-budget",
                "600",
            ])
            .output()
            .expect("run cargo-pagerun");
        let elapsed = started.elapsed();
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
        let steps = report["scenarios"][0]["steps"].as_u64().unwrap_or(0);
        let callbacks = report["scenarios"][0]["callbacks"].as_u64().unwrap_or(0);
        let peak_kib = report["scenarios"][0]["info"]["peak_rss_kib"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        let violations = report["violations"].as_array().map_or(0, Vec::len);
        println!(
            "sleep/resume x1000 ({label}): {:.3} s wall for the whole run (parent + scenario process), {:.1} us per cycle, {steps} steps, {callbacks} callbacks, {violations} violations, exit {:?}, peak RSS of the scenario process {peak_kib} KiB",
            elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1e6 / 1000.0,
            output.status.code(),
        );
    }
}
