//! `pagewisectl --json` keeps its promise through the real binary: whatever goes wrong,
//! stdout is one JSON document, `{"error", "exit_code"}` for an error. A usage error is found
//! before the client looks for a device, so this runs on any OS.

use std::process::Command;

fn pagewisectl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pagewisectl"))
        .args(args)
        .output()
        .expect("pagewisectl runs");
    (
        out.status.code().expect("exited, not killed"),
        String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        String::from_utf8(out.stderr).expect("UTF-8 stderr"),
    )
}

#[test]
fn usage_errors_with_json_print_the_error_object() {
    for args in [
        &["hold", "600001", "--json"][..],
        &["--json", "cycles", "0"],
        &["--json", "frobnicate"],
        &["--json", "log", "--since"],
    ] {
        let (code, stdout, stderr) = pagewisectl(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        let json: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}): {stdout:?}"));
        assert_eq!(json["exit_code"], 2, "{args:?}: {json}");
        let message = json["error"].as_str().expect("error is a string");
        assert_eq!(stderr, format!("pagewisectl: {message}\n"), "{args:?}");
    }
}

#[test]
fn without_json_usage_errors_stay_clap_s_text() {
    let (code, stdout, stderr) = pagewisectl(&["hold", "600001"]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.starts_with("error: invalid value '600001'"),
        "{stderr}"
    );
}

#[test]
fn help_is_an_answer_even_with_json() {
    let (code, stdout, _) = pagewisectl(&["--help", "--json"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("Exit codes:"), "{stdout}");
}
