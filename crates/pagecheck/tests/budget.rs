//! Bounded resources: a function built to exhaust the dataflow pass must cost a bounded amount
//! of memory and time, and what its budget kept pagecheck from reading must be reported with
//! the budget's name, never dropped and never an abort.
//!
//! The generated function takes thousands of two-way branches, each arm storing a different
//! function address into the same stack slot, a distinct slot per branch. Every join then holds
//! one more slot with two possible addresses, so the states kept at the joins grow with the
//! square of the function's length. Before the branches it chooses its timer callback on two
//! paths too, and at the end it hands that `WDF_TIMER_CONFIG` to `WdfTimerCreate`: the function
//! is at stake, and its registration is readable only by a walk that keeps what the joins
//! agree on.

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Branches in the generated function. Without budgets its join states need far more than
/// [`ADDRESS_SPACE`]; with them it is cut off at a few tens of megabytes.
const BRANCHES: usize = 10_000;
/// Distinct functions whose addresses the branches store.
const HANDLERS: usize = 64;
/// The address space the analysis runs in (`ulimit -v`, KiB): 512 MiB.
const ADDRESS_SPACE: u64 = 512 * 1024;
/// How long the run may take before it counts as unbounded: far above what it needs (a few
/// seconds in a debug build), far below what an analysis without budgets takes.
const DEADLINE: Duration = Duration::from_mins(5);

/// The C source of the image: `HANDLERS` leaf functions, the `Blowup` function described above,
/// and the driver's `DeviceAdd` (in `PAGE`), which calls it and which `DriverEntry` (in `INIT`)
/// registers with `WdfDriverCreate`.
fn blowup_source() -> String {
    let mut c = String::from(
        "typedef long NTSTATUS;\n\
         typedef unsigned long ULONG;\n\
         typedef unsigned long long u64;\n\
         typedef void *PVOID;\n\
         typedef void (*WDFFUNC)(void);\n\
         const WDFFUNC *WdfFunctions_01033;\n\
         void *WdfDriverGlobals;\n\
         typedef void (*EVT_TIMER)(PVOID);\n\
         /* WDF_TIMER_CONFIG, x64 layout of the KMDF 1.33 header (40 bytes). */\n\
         typedef struct {\n\
         \x20   ULONG Size;\n\
         \x20   EVT_TIMER EvtTimerFunc;\n\
         \x20   ULONG Period;\n\
         \x20   unsigned char AutomaticSerialization;\n\
         \x20   ULONG TolerableDelay;\n\
         \x20   __declspec(align(8)) unsigned char UseHighResolutionTimer;\n\
         } WDF_TIMER_CONFIG;\n\
         _Static_assert(sizeof(WDF_TIMER_CONFIG) == 40, \"x64 layout\");\n\
         /* WDF_DRIVER_CONFIG (32 bytes). */\n\
         typedef struct {\n\
         \x20   ULONG Size;\n\
         \x20   NTSTATUS (*EvtDriverDeviceAdd)(PVOID, PVOID);\n\
         \x20   void (*EvtDriverUnload)(PVOID);\n\
         \x20   ULONG DriverInitFlags;\n\
         \x20   ULONG DriverPoolTag;\n\
         } WDF_DRIVER_CONFIG;\n\
         _Static_assert(sizeof(WDF_DRIVER_CONFIG) == 32, \"x64 layout\");\n\
         /* WdfTimerCreate and WdfDriverCreate, WDFFUNCENUM indices 318 and 116. */\n\
         typedef NTSTATUS (*PFN_WDFTIMERCREATE)(void *, WDF_TIMER_CONFIG *, void *, PVOID *);\n\
         typedef NTSTATUS (*PFN_WDFDRIVERCREATE)(void *, PVOID, PVOID, void *, WDF_DRIVER_CONFIG *, PVOID *);\n\
         static volatile u64 g_sink;\n",
    );
    for h in 0..HANDLERS {
        let _ = writeln!(
            c,
            "__declspec(noinline) void h{h}(PVOID p) {{ g_sink += (u64)p + {h}; }}"
        );
    }
    let _ = write!(
        c,
        "__declspec(noinline) NTSTATUS Blowup(u64 bits, PVOID device) {{\n\
         \x20   EVT_TIMER slots[{BRANCHES}];\n\
         \x20   WDF_TIMER_CONFIG config = {{0}};\n\
         \x20   PVOID timer;\n\
         \x20   config.Size = sizeof(config);\n\
         \x20   if (bits & 1) {{\n\
         \x20       config.EvtTimerFunc = h0;\n\
         \x20   }} else {{\n\
         \x20       config.EvtTimerFunc = h1;\n\
         \x20   }}\n"
    );
    for i in 0..BRANCHES {
        let (a, b) = ((i * 7) % HANDLERS, (i * 13 + 5) % HANDLERS);
        let _ = writeln!(
            c,
            "    if (bits & (1ull << {bit})) {{ slots[{i}] = h{a}; }} else {{ slots[{i}] = h{b}; }}",
            bit = i % 64
        );
    }
    let _ = write!(
        c,
        "    g_sink += (u64)slots[bits % {BRANCHES}] + (u64)device;\n\
         \x20   return ((PFN_WDFTIMERCREATE)WdfFunctions_01033[318])(WdfDriverGlobals, &config, 0, &timer);\n\
         }}\n\
         #pragma code_seg(\"PAGE\")\n\
         __declspec(noinline) NTSTATUS DeviceAdd(PVOID driver, PVOID init) {{ return Blowup((u64)init, driver); }}\n\
         #pragma code_seg(\"INIT\")\n\
         NTSTATUS DriverEntry(PVOID driver, PVOID registry) {{\n\
         \x20   WDF_DRIVER_CONFIG config = {{sizeof(WDF_DRIVER_CONFIG), DeviceAdd, 0, 0, 0}};\n\
         \x20   return ((PFN_WDFDRIVERCREATE)WdfFunctions_01033[116])(WdfDriverGlobals, driver, registry, 0, &config, 0);\n\
         }}\n\
         #pragma code_seg()\n"
    );
    c
}

/// What one run under the memory limit did.
struct Limited {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs `cargo-pagecheck <image> --format json` with its address space limited to
/// [`ADDRESS_SPACE`] (through the shell's `ulimit -v`, which applies to the process it then
/// becomes), killing it at [`DEADLINE`].
fn run_limited(image: &Path) -> Limited {
    let start = Instant::now();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {ADDRESS_SPACE} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_cargo-pagecheck"))
        .arg(image)
        .args(["--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    // The pipes are drained on threads so a large report cannot block the child.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let read_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let read_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let elapsed = start.elapsed();
    Limited {
        code: status.and_then(|s| s.code()),
        stdout: read_out.join().expect("stdout thread"),
        stderr: read_err.join().expect("stderr thread"),
        elapsed,
    }
}

#[test]
fn a_function_over_budget_is_reported_with_the_budget_within_bounded_memory() {
    let image = pe_fixtures::c_sources_with_cflags(
        "budget_blowup",
        &[blowup_source()],
        // -O0 keeps every branch and every slot (at -O2 clang turns them into selects).
        &["-O0"],
        &[],
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let run = run_limited(&image.image);
    assert!(
        run.elapsed < DEADLINE,
        "not finished after {:?}; stderr: {}",
        run.elapsed,
        run.stderr
    );
    // Exit 0 or 1: an answer. A signal (killed, aborted on a failed allocation) has no code; 2
    // would be a refusal of a well-formed image.
    assert!(
        matches!(run.code, Some(0 | 1)),
        "exit {:?} after {:?}; stderr: {}",
        run.code,
        run.elapsed,
        run.stderr
    );
    let doc: Value = serde_json::from_str(&run.stdout).expect("JSON report");
    // The timer registration is the one thing the budget keeps pagecheck from reading: it is
    // reported unreadable, with the budget that ran out, in the function that makes the call.
    let unreadable = doc["registrations"]["unreadable"]
        .as_array()
        .expect("unreadable");
    let timer: Vec<&Value> = unreadable
        .iter()
        .filter(|u| u["method"] == "WdfTimerCreate")
        .collect();
    assert_eq!(timer.len(), 1, "{unreadable:#?}");
    let budget = timer[0]["budget"].as_str().unwrap_or_else(|| {
        panic!("no budget named: {:#?}", timer[0]);
    });
    assert!(budget.contains("budget"), "{budget}");
    // What could not be read: the callback field, or (when the walk kept nothing of the
    // frame across the joins) the configuration as a whole.
    let what = timer[0]["what"].to_string();
    assert!(
        what.contains("EvtTimerFunc") || what.contains("WDF_TIMER_CONFIG"),
        "{what}"
    );
    // The PC007 finding says so, naming the method and the budget.
    let findings = doc["violations"].as_array().expect("violations");
    let pc007: Vec<&str> = findings
        .iter()
        .filter(|v| v["rule"] == "PC007")
        .filter_map(|v| v["message"].as_str())
        .collect();
    assert_eq!(pc007.len(), 1, "{findings:#?}");
    assert!(
        pc007[0].starts_with("WdfTimerCreate at Blowup+0x"),
        "{}",
        pc007[0]
    );
    assert!(pc007[0].contains(budget), "{}", pc007[0]);
    // Nothing is invented from it (neither timer callback is taken for registered), and the
    // rest of the driver is still read: DriverEntry's registration of DeviceAdd.
    let registered: Vec<&str> = doc["registrations"]["list"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["symbol"].as_str())
        .collect();
    assert_eq!(registered, ["DeviceAdd"]);
    assert!(
        doc["summary"]["dataflow_functions"].as_u64() >= Some(1),
        "{}",
        doc["summary"]
    );
}
