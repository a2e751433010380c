//! The generated C driver of the pagecheck benchmark: many functions, megabytes of code, a
//! mixture of resident and pageable placement and calls between them.
//!
//! Every function `f<i>` mixes its argument through a chain of multiply/xor/shift rounds with
//! constants from a seeded generator (so no two bodies are alike and the linker cannot fold
//! them), then calls one or two other functions chosen by the same generator. About a third of
//! the functions are in `PAGE`, a tenth in `PAGEPWR`, the rest in `.text`; `f0` is a resident
//! function meant as the power-up root (`--root power-up=f0`) and `DriverEntry` in `INIT` calls
//! it. Calls go from any section to any other, so resident-to-paged violations exist and the
//! checker has real chains to report.

use std::fmt::Write as _;

/// Multiply/xor/shift rounds per function. With 10 a function is about 300 bytes of x64 code
/// (measured: 40,000 functions give the image over 10 MB of code).
const ROUNDS: usize = 10;

/// A small deterministic generator (SplitMix64): the same seed gives the same program, so the
/// benchmark measures the same image on every run and the cache key stays stable.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (`bound` > 0). The modulo bias is irrelevant for picking callees.
    fn below(&mut self, bound: usize) -> usize {
        // `bound` fits in u64 and the result is below it, so both casts are lossless.
        #[allow(clippy::cast_possible_truncation)]
        let value = (self.next() % bound as u64) as usize;
        value
    }
}

/// Where function `index` goes.
fn section_of(index: usize, rng: &mut SplitMix) -> Option<&'static str> {
    if index == 0 {
        return None;
    }
    match rng.below(10) {
        0..=2 => Some("PAGE"),
        3 => Some("PAGEPWR"),
        _ => None,
    }
}

/// One generated C translation unit holding all `functions` (at least 1) and `DriverEntry`.
///
/// With 40,000 functions the image has over 10 MB of code; clang needs a few minutes for a
/// unit that size on one core: prefer [`generate_large_c_units`] with [`crate::c_sources`].
#[must_use]
pub fn generate_large_c(functions: usize, seed: u64) -> String {
    generate_large_c_units(functions, seed, 1)
        .pop()
        .unwrap_or_default()
}

/// The same program as [`generate_large_c`] (same `functions` and `seed` give the same
/// functions), split into `units` translation units (at least 1) to compile in parallel.
/// Function `f<i>` is in unit `i % units`; unit 0 also holds `DriverEntry`.
#[must_use]
pub fn generate_large_c_units(functions: usize, seed: u64, units: usize) -> Vec<String> {
    generate(functions, seed, units, Shape::Plain)
}

/// The program of [`generate_large_c_units`] as a KMDF driver would write it: every eighth
/// function also creates a framework timer through the KMDF function table
/// (`WdfFunctions_01033[WdfTimerCreateTableIndex]`), with a `WDF_TIMER_CONFIG` built on the
/// stack whose `EvtTimerFunc` is the function's first callee. Those functions are the ones
/// pagecheck walks a second time with its dataflow pass, and every callee so registered is a
/// dispatch-level root, so this image measures registration inference at scale. The function
/// bodies and the calls between them are those of the plain program with the same arguments.
#[must_use]
pub fn generate_large_kmdf_c_units(functions: usize, seed: u64, units: usize) -> Vec<String> {
    generate(functions, seed, units, Shape::Kmdf)
}

/// The program of [`generate_large_c_units`] shaped like ordinary C driver code instead of
/// straight-line arithmetic: every function also runs a loop over a global table, switches on
/// its argument (eight dense cases: a jump table at -O2), updates global counters, and one in
/// sixteen calls through a global table of function pointers. No framework calls: this is the
/// image where analysing only what is at stake pays, since every function reads and writes
/// globals and calls others, and few make an indirect call.
#[must_use]
pub fn generate_large_shaped_c_units(functions: usize, seed: u64, units: usize) -> Vec<String> {
    generate(functions, seed, units, Shape::Shaped)
}

/// Which program [`generate`] writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Straight-line arithmetic and calls.
    Plain,
    /// Plus a framework timer in every eighth function.
    Kmdf,
    /// Plus loops, switches, globals and a few indirect calls.
    Shaped,
}

/// Declarations every shaped unit needs: the globals the functions read and write, defined in
/// unit 0.
const SHAPED_PRELUDE: &str = "extern u64 g_counts[64];\n\
    extern u64 g_state;\n\
    extern u64 (*const g_handlers[4])(u64);\n";

/// The loop, switch and global updates of one shaped function, with constants from `rng`.
fn shaped_body(unit: &mut String, index: usize, rng: &mut SplitMix) {
    let _ = writeln!(
        unit,
        "  for (unsigned k = 0; k < (unsigned)(x & 7) + 3; k++)\n\
         \x20   x = (x ^ (x >> {})) * 0x{:016x}ull + g_counts[(x + k) & 63];",
        7 + rng.below(50),
        rng.next() | 1
    );
    let _ = writeln!(unit, "  switch (x % 8) {{");
    for case in 0..8 {
        let body = match rng.below(4) {
            0 => format!("x += 0x{:x}ull;", rng.next()),
            1 => "x ^= g_state;".to_owned(),
            2 => format!("x = (x << {}) | (x >> 3);", 1 + rng.below(60)),
            _ => format!("g_counts[{}] += x;", rng.below(64)),
        };
        let _ = writeln!(unit, "    case {case}: {body} break;");
    }
    let _ = writeln!(unit, "  }}\n  g_counts[x & 63] += x;\n  g_state ^= x;");
    if index % 16 == 5 {
        let _ = writeln!(unit, "  x += g_handlers[x & 3](x);");
    }
}

/// Declarations every KMDF unit needs: the function table, the driver globals and the timer
/// configuration (KMDF 1.33 x64 layout, 40 bytes).
const KMDF_PRELUDE: &str = "typedef void (*WDFFUNC)(void);\n\
    extern const WDFFUNC *WdfFunctions_01033;\n\
    extern void *WdfDriverGlobals;\n\
    typedef struct { unsigned long Size; void (*EvtTimerFunc)(void *); unsigned long Period;\n\
    \x20 unsigned char AutomaticSerialization; unsigned long TolerableDelay;\n\
    \x20 __declspec(align(8)) unsigned char UseHighResolutionTimer; } WDF_TIMER_CONFIG;\n\
    typedef long (*PFN_WDFTIMERCREATE)(void *, WDF_TIMER_CONFIG *, void *, void **);\n";

/// `WdfTimerCreateTableIndex` in KMDF 1.33's `WDFFUNCENUM`.
const WDF_TIMER_CREATE: usize = 318;

fn generate(functions: usize, seed: u64, units: usize, shape: Shape) -> Vec<String> {
    let functions = functions.max(1);
    let units = units.max(1);
    let kmdf = shape == Shape::Kmdf;
    let mut out: Vec<String> = (0..units)
        .map(|_| {
            String::from(
                "/* Generated by pe_fixtures::generate_large_c: the pagecheck benchmark image. */\n\
                 typedef unsigned long long u64;\n",
            ) + match shape {
                Shape::Plain => "",
                Shape::Kmdf => KMDF_PRELUDE,
                Shape::Shaped => SHAPED_PRELUDE,
            }
        })
        .collect();
    if kmdf {
        out[0].push_str("const WDFFUNC *WdfFunctions_01033;\nvoid *WdfDriverGlobals;\n");
    }
    if shape == Shape::Shaped {
        // Four handlers for the function-pointer table, among the first functions.
        let handlers: Vec<String> = (0..4).map(|k| format!("f{}", k % functions)).collect();
        for h in &handlers {
            let _ = writeln!(out[0], "u64 {h}(u64);");
        }
        let _ = writeln!(
            out[0],
            "u64 g_counts[64];\nu64 g_state;\nu64 (*const g_handlers[4])(u64) = {{ {} }};",
            handlers.join(", ")
        );
    }
    let mut rng = SplitMix(seed);
    for index in 0..functions {
        let unit = &mut out[index % units];
        let section = section_of(index, &mut rng);
        // Callees other than the function itself (clang rejects a function whose every path
        // calls itself); with a single function, it calls f0 = itself only conditionally.
        let mut other = || {
            if functions == 1 {
                return 0;
            }
            let pick = rng.below(functions - 1);
            if pick >= index { pick + 1 } else { pick }
        };
        let callees = [other(), other()];
        for callee in callees {
            // Prototypes may repeat; C allows compatible redeclarations.
            let _ = writeln!(unit, "u64 f{callee}(u64);");
        }
        let placement = section.map_or(String::new(), |name| {
            format!("__attribute__((section(\"{name}\"))) ")
        });
        let _ = writeln!(
            unit,
            "{placement}__declspec(noinline) u64 f{index}(u64 x) {{"
        );
        for _ in 0..ROUNDS {
            let multiplier = rng.next() | 1;
            let shift = 7 + rng.below(50);
            let _ = writeln!(unit, "  x = (x ^ (x >> {shift})) * 0x{multiplier:016x}ull;");
        }
        if shape == Shape::Shaped {
            // Its own generator, so the shaped program's other choices stay the plain one's.
            shaped_body(
                unit,
                index,
                &mut SplitMix(seed ^ (index as u64).wrapping_mul(31)),
            );
        }
        if kmdf && index % 8 == 1 {
            let _ = writeln!(
                unit,
                "  {{ WDF_TIMER_CONFIG c; void *t; __builtin_memset(&c, 0, sizeof c);\n\
                 \x20   c.Size = sizeof c; c.EvtTimerFunc = (void (*)(void *))f{};\n\
                 \x20   x += (u64)((PFN_WDFTIMERCREATE)WdfFunctions_01033[{WDF_TIMER_CREATE}])(\n\
                 \x20       WdfDriverGlobals, &c, (void *)0, &t); }}",
                callees[0]
            );
        }
        // The first call is conditional so the recursion through the call graph terminates at
        // run time in principle; the second is a tail call (a `jmp` at -O2) half the time.
        let _ = writeln!(
            unit,
            "  if ((x & 0xff) == 0x{:02x}) x += f{}(x);",
            rng.below(256),
            callees[0]
        );
        if rng.below(2) == 0 && callees[1] != index {
            let _ = writeln!(
                unit,
                "  return f{}(x ^ 0x{:x}ull);\n}}",
                callees[1],
                rng.next()
            );
        } else {
            let _ = writeln!(unit, "  return x + 0x{:x}ull;\n}}", rng.next());
        }
    }
    let _ = writeln!(
        out[0],
        "u64 f0(u64);\n\
         __attribute__((section(\"INIT\"))) long DriverEntry(void *driver, void *registry) {{\n\
         \x20 return (long)f0((u64)driver ^ (u64)registry);\n}}"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::{
        generate_large_c_units, generate_large_kmdf_c_units, generate_large_shaped_c_units,
    };

    #[test]
    fn same_seed_same_program_and_every_function_once() {
        let a = generate_large_c_units(50, 7, 3);
        assert_eq!(a, generate_large_c_units(50, 7, 3));
        assert_ne!(a, generate_large_c_units(50, 8, 3));
        let all = a.concat();
        for index in 0..50 {
            let definition = format!(" u64 f{index}(u64 x) {{");
            assert_eq!(all.matches(&definition).count(), 1, "f{index}");
        }
        assert_eq!(all.matches("DriverEntry").count(), 1);
        assert!(all.contains("section(\"PAGE\")"));
        assert!(!all.contains("WdfFunctions"));
    }

    #[test]
    fn kmdf_variant_adds_timer_registrations_to_the_same_bodies() {
        let plain = generate_large_c_units(64, 7, 2).concat();
        let kmdf = generate_large_kmdf_c_units(64, 7, 2).concat();
        // Functions 1, 9, ..., 57 create a timer: 8 of 64.
        assert_eq!(kmdf.matches("c.EvtTimerFunc = ").count(), 8);
        assert_eq!(
            kmdf.matches("\nconst WDFFUNC *WdfFunctions_01033;").count(),
            1
        );
        // Removing the timer blocks and declarations leaves the plain program's functions.
        let bodies = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.trim_start().starts_with("x = (x ^") || l.contains(" return "))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(bodies(&plain), bodies(&kmdf));
    }

    #[test]
    fn shaped_variant_has_loops_switches_globals_and_a_few_indirect_calls() {
        let plain = generate_large_c_units(64, 7, 2).concat();
        let shaped = generate_large_shaped_c_units(64, 7, 2).concat();
        assert_eq!(shaped.matches("  switch (x % 8) {").count(), 64);
        assert_eq!(shaped.matches("  for (unsigned k = 0;").count(), 64);
        // Functions 5, 21, 37, 53 call through the table.
        assert_eq!(shaped.matches("g_handlers[x & 3](x)").count(), 4);
        assert_eq!(shaped.matches("\nu64 g_state;").count(), 1);
        assert!(!shaped.contains("WdfFunctions"));
        // The same arithmetic and calls as the plain program.
        let rounds = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.starts_with("  x = (x ^ (x >>") || l.contains(" return "))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(rounds(&plain), rounds(&shaped));
    }
}
