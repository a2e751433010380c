//! The SARIF form as GitHub code scanning reads it: valid against the SARIF 2.1.0 schema, every
//! result at a source line relative to `%SRCROOT%`, the chain as a code flow, the image
//! position as an address, a help page per rule, fingerprints that survive a rebuild.

mod common;

use std::path::PathBuf;

use common::run;
use serde_json::Value;

/// The OASIS SARIF 2.1.0 schema, from the serde-sarif package cargo resolved for this test.
fn sarif_schema() -> Value {
    // Resolved for the host only: the other platforms' dependencies were never downloaded.
    let rustc = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc -vV");
    let rustc = String::from_utf8_lossy(&rustc.stdout);
    let host = rustc
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("host triple");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--locked"])
        .args(["--filter-platform", host])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata JSON");
    let manifest = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "serde-sarif")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("serde-sarif is a dev-dependency");
    let schema = PathBuf::from(manifest)
        .with_file_name("src")
        .join("schema.json");
    let text = std::fs::read_to_string(&schema).expect("schema.json");
    let mut schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    // The published schema's `language` patterns have a stray `]` that strict regex compilers
    // reject (the SARIF errata give `^[a-zA-Z]{2}(-[a-zA-Z]{2})?$`); pagecheck writes no
    // `language`, so the fix changes nothing it is checked against.
    let fixed = fix_language_patterns(&mut schema);
    assert!(fixed >= 1, "the schema's language pattern was not found");
    assert!(
        schema["title"]
            .as_str()
            .is_some_and(|t| t.contains("SARIF") && t.contains("2.1.0")),
        "{}",
        schema["title"]
    );
    schema
}

/// Replaces the broken `language` pattern wherever it occurs; returns how often it did.
fn fix_language_patterns(value: &mut Value) -> usize {
    const BROKEN: &str = "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$";
    match value {
        Value::Object(map) => {
            let mut count = 0;
            for (key, v) in map.iter_mut() {
                if key == "pattern" && v == BROKEN {
                    *v = Value::from("^[a-zA-Z]{2}(-[a-zA-Z]{2})?$");
                    count += 1;
                } else {
                    count += fix_language_patterns(v);
                }
            }
            count
        }
        Value::Array(items) => items.iter_mut().map(fix_language_patterns).sum(),
        _ => 0,
    }
}

/// The SARIF report of `image`, with the roots of the fixtures that register nothing.
fn sarif_of(image: &std::path::Path) -> Value {
    let mut args: Vec<&std::ffi::OsStr> =
        vec![image.as_os_str(), "--format".as_ref(), "sarif".as_ref()];
    if image.to_string_lossy().contains("deep_chain") {
        args.push("--root".as_ref());
        args.push("power-up=EvtDeviceD0Entry".as_ref());
    }
    let out = run(args);
    assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
    serde_json::from_str(&out.stdout).expect("SARIF is JSON")
}

/// Every key named `key` anywhere in `value`.
fn keys_named<'v>(value: &'v Value, key: &str, out: &mut Vec<&'v Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == key {
                    out.push(v);
                }
                keys_named(v, key, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| keys_named(v, key, out)),
        _ => {}
    }
}

#[test]
fn sarif_is_valid_and_every_result_is_a_source_line() {
    let schema = sarif_schema();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    for fixture in [
        "deep_chain",
        "reg_mistakes",
        "lock_regions",
        "power_registry_nonpageable",
        "queue_registry_dispatch",
        "pageable_table_paged",
    ] {
        let image = common::c(fixture);
        let doc = sarif_of(&image.image);
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{fixture}: {errors:#?}");
        // And serde-sarif's typed model reads it.
        let typed: serde_sarif::sarif::Sarif =
            serde_json::from_value(doc.clone()).expect("typed SARIF");
        assert_eq!(typed.runs.len(), 1);

        let run = &doc["runs"][0];
        let results = run["results"].as_array().expect("results");
        assert!(!results.is_empty(), "{fixture}");
        for r in results {
            let physical = &r["locations"][0]["physicalLocation"];
            assert_eq!(
                physical["artifactLocation"]["uriBaseId"], "SRCROOT",
                "{r:#}"
            );
            let uri = physical["artifactLocation"]["uri"].as_str().expect("uri");
            assert!(
                uri.starts_with("crates/pagecheck/tests/fixtures/c/"),
                "{uri}"
            );
            assert!(
                physical["region"]["startLine"]
                    .as_u64()
                    .is_some_and(|l| l > 0),
                "{r:#}"
            );
            assert!(physical["address"]["absoluteAddress"].is_u64(), "{r:#}");
        }
        let root = run["originalUriBaseIds"]["SRCROOT"]["uri"]
            .as_str()
            .expect("SRCROOT");
        assert!(
            root.starts_with("file:///") && root.ends_with('/'),
            "{root}"
        );
        // No byte offset that is not a file offset, no placeholder line.
        let mut offsets = Vec::new();
        keys_named(&doc, "byteOffset", &mut offsets);
        assert!(offsets.is_empty(), "{fixture}");
        let rules = run["tool"]["driver"]["rules"].as_array().expect("rules");
        for rule in rules {
            let help = rule["helpUri"].as_str().expect("helpUri");
            assert!(help.starts_with("https://learn.microsoft.com/"), "{help}");
        }
        assert!(
            run["tool"]["driver"]
                .get("informationUri")
                .is_none_or(|u| u.as_str().is_some_and(
                    |u| u.starts_with("https://") && u.len() > "https://github.com/".len()
                )),
            "{}",
            run["tool"]["driver"]["informationUri"]
        );
    }
}

#[test]
fn the_primary_location_is_the_offending_call() {
    let image = common::c("deep_chain");
    let doc = sarif_of(&image.image);
    let result = &doc["runs"][0]["results"][0];
    let physical = &result["locations"][0]["physicalLocation"];
    let uri = physical["artifactLocation"]["uri"].as_str().expect("uri");
    let line =
        usize::try_from(physical["region"]["startLine"].as_u64().expect("line")).expect("small");
    let source = std::fs::read_to_string(pe_fixtures::workspace_root().join(uri)).expect("source");
    let text = source.lines().nth(line - 1).expect("the line exists");
    // ApplyDefaults calls the paged ReadDefaultsFromRegistry: that call is the finding's line.
    assert!(
        text.contains("ReadDefaultsFromRegistry("),
        "line {line}: {text}"
    );
    // The code flow has one step per link of the chain, each at a source line.
    let steps = result["codeFlows"][0]["threadFlows"][0]["locations"]
        .as_array()
        .expect("steps");
    assert_eq!(steps.len(), 5);
    for step in steps {
        let p = &step["location"]["physicalLocation"];
        assert!(
            p["region"]["startLine"].as_u64().is_some_and(|l| l > 0),
            "{step:#}"
        );
    }
}

#[test]
fn fingerprints_survive_a_rebuild_that_moves_the_code() {
    let original = common::c("deep_chain");
    let source = std::fs::read_to_string(pe_fixtures::fixtures_dir().join("c/deep_chain.c"))
        .expect("source");
    // The same driver with an unrelated function first: every address and line moves.
    let moved = source.replacen(
        "#include \"driver.h\"",
        "#include \"driver.h\"\n\nDECLSPEC_NOINLINE ULONG Unrelated(ULONG x) { return x * 7 + 3; }\n",
        1,
    );
    let dir = pe_fixtures::fixtures_dir().join("c");
    let header = std::fs::read_to_string(dir.join("driver.h")).expect("driver.h");
    let inlined = moved.replacen("#include \"driver.h\"", &header, 1);
    let rebuilt = pe_fixtures::c_source("pagecheck_moved_chain", &inlined, &[]).expect("build");
    let fingerprints = |image: &std::path::Path| {
        let out = run([
            image.as_os_str(),
            "--root".as_ref(),
            "power-up=EvtDeviceD0Entry".as_ref(),
            "--format".as_ref(),
            "sarif".as_ref(),
        ]);
        let doc: Value = serde_json::from_str(&out.stdout).expect("SARIF");
        let results = doc["runs"][0]["results"]
            .as_array()
            .expect("results")
            .clone();
        let addresses: Vec<u64> = results
            .iter()
            .filter_map(|r| {
                r["locations"][0]["physicalLocation"]["address"]["absoluteAddress"].as_u64()
            })
            .collect();
        let prints: Vec<String> = results
            .iter()
            .map(|r| r["partialFingerprints"].to_string())
            .collect();
        (prints, addresses)
    };
    let (a, a_addresses) = fingerprints(&original.image);
    let (b, b_addresses) = fingerprints(&rebuilt.image);
    assert!(!a.is_empty());
    assert_ne!(a_addresses, b_addresses, "premise: the code moved");
    assert_eq!(a, b);
}
