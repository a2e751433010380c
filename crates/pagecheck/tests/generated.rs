//! Shapes the named fixtures do not cover, from C written here and built by
//! `pe_fixtures::c_source`: a real clang jump table in resident code, and a pointer to INIT
//! code kept in initialised data.

mod common;

use pagecheck::checks::Rule;
use pagecheck::{Options, analyze_path};

const SWITCH: &str = r#"
typedef unsigned long ULONG;
#define NOINLINE __declspec(noinline)
volatile ULONG sink;

#pragma code_seg("PAGE")
NOINLINE ULONG PagedA(ULONG x) { sink = x; return x * 3; }
NOINLINE ULONG PagedB(ULONG x) { sink = x + 1; return x ^ 7; }
#pragma code_seg()

NOINLINE ULONG ResidentC(ULONG x) { sink = x + 2; return x + 9; }
NOINLINE ULONG ResidentD(ULONG x) { sink = x + 3; return x - 1; }
NOINLINE ULONG ResidentE(ULONG x) { sink = x + 4; return x << 2; }

/* Dense switch: clang -O2 emits a jump table; two of its cases reach PAGE. */
NOINLINE ULONG Dispatch(ULONG op, ULONG x) {
    ULONG r;
    switch (op) {
    case 0: r = ResidentC(x) + 1; break;
    case 1: r = ResidentD(x) + 2; break;
    case 2: r = ResidentE(x) + 3; break;
    case 3: r = PagedA(x) + 4; break;
    case 4: r = ResidentC(x + 1) + 5; break;
    case 5: r = PagedB(x) + 6; break;
    case 6: r = ResidentD(x + 2) + 7; break;
    default: r = 0; break;
    }
    return r * 5;
}

#pragma code_seg("INIT")
long DriverEntry(void *driver, void *registry) {
    return (long)Dispatch((ULONG)(unsigned long long)driver, (ULONG)(unsigned long long)registry);
}
#pragma code_seg()
"#;

#[test]
fn jump_table_in_resident_code_is_resolved_and_followed() {
    let image = pe_fixtures::c_source("pagecheck_switch", SWITCH, &[]).expect("build");
    let options = Options {
        roots: vec!["dispatch=Dispatch".parse().expect("root")],
        ..Options::default()
    };
    let report = analyze_path(&image.image, &options).expect("analysis");
    // The indirect `jmp reg` of the table is resolved: no unresolved site in Dispatch.
    assert!(
        !report.unresolved.iter().any(|u| u.function == "Dispatch"),
        "{:#?}",
        report.unresolved
    );
    let mut reached: Vec<&str> = report
        .violations
        .iter()
        .filter(|v| v.rule == Rule::ResidentReachesPageable)
        .map(|v| v.chain.last().expect("chain").symbol.as_str())
        .collect();
    reached.sort_unstable();
    assert_eq!(reached, ["PagedA", "PagedB"]);
    // The disassembly really has an indirect jump (else this test would prove nothing).
    let listing = std::process::Command::new("llvm-objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(&image.image)
        .output()
        .expect("llvm-objdump");
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(
        text.lines()
            .any(|l| l.trim_end().ends_with("jmp\trax") || l.contains("jmpq\t*%r")),
        "no indirect jmp:\n{text}"
    );
}

const INIT_POINTER: &str = r#"
typedef unsigned long ULONG;
#define NOINLINE __declspec(noinline)
volatile ULONG sink;

#pragma code_seg("INIT")
NOINLINE void InitHelper(void) { sink = 1; }
#pragma code_seg()

/* A resident global still holding an INIT address after DriverEntry returns. */
void (*g_later)(void) = InitHelper;

NOINLINE void Later(void) { if (g_later) g_later(); }

#pragma code_seg("INIT")
long DriverEntry(void *driver, void *registry) {
    InitHelper();
    Later();
    return driver == registry;
}
#pragma code_seg()
"#;

#[test]
fn init_address_kept_in_data_is_a_use_after_discard() {
    let image = pe_fixtures::c_source("pagecheck_init_pointer", INIT_POINTER, &[]).expect("build");
    let options = Options {
        roots: vec!["init=DriverEntry".parse().expect("root")],
        ..Options::default()
    };
    let report = analyze_path(&image.image, &options).expect("analysis");
    let init: Vec<_> = report
        .violations
        .iter()
        .filter(|v| v.rule == Rule::InitUseAfterDiscard)
        .collect();
    assert_eq!(init.len(), 1, "{init:#?}");
    assert!(
        init[0].message.contains("data at .data+0x"),
        "{}",
        init[0].message
    );
    assert!(
        init[0].message.contains("InitHelper"),
        "{}",
        init[0].message
    );
    assert_eq!(init[0].chain[1].section, "INIT");
}
