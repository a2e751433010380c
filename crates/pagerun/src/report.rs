//! The report: text for people, JSON (`scenarios` and `violations`), SARIF 2.1.0 for code
//! scanning.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::run::{Report, Violation};

fn place(v: &Violation) -> String {
    let mut s = format!("{} ({})", v.symbol, v.section);
    if let Some(source) = &v.source {
        let _ = write!(s, " at {}:{}", source.file, source.line);
    }
    s
}

/// The text report.
#[must_use]
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "cargo pagerun {}", report.image);
    for s in &report.scenarios {
        let _ = write!(
            out,
            "  {:<17} {:<10} {:>5} steps {:>5} callbacks {:>6} ms",
            s.name, s.status, s.steps, s.callbacks, s.millis
        );
        if let Some(power) = s.info.get("power_pageable") {
            let _ = write!(out, "  power-pageable: {power}");
        }
        out.push('\n');
        if let Some(stop) = &s.stop {
            let what = if s.status == "failed" {
                "failed"
            } else {
                "stopped"
            };
            let _ = writeln!(out, "      {what}: {stop}");
        }
        for answer in &s.ioctls {
            let _ = match answer.status {
                Some(status) => writeln!(
                    out,
                    "      ioctl {:#010x}: status {status:#010x}, {} byte(s) returned",
                    answer.code,
                    answer.output.len() / 2
                ),
                None => writeln!(
                    out,
                    "      ioctl {:#010x}: still pending with the driver",
                    answer.code
                ),
            };
        }
        if let Some(skipped) = s.info.get("skipped") {
            let _ = writeln!(out, "      skipped {skipped}");
        }
    }
    for v in &report.violations {
        let _ = writeln!(out, "\nviolation[{}]: {}", v.kind, v.message);
        let _ = writeln!(out, "  --> {}", place(v));
        let _ = writeln!(
            out,
            "   = in {} during scenario `{}` step {} ({}){}{}",
            if v.callback.is_empty() {
                "-"
            } else {
                &v.callback
            },
            v.scenario,
            v.step,
            v.step_label,
            v.irql.map_or_else(String::new, |i| format!(", IRQL {i}")),
            if v.count > 1 {
                format!(", {} times", v.count)
            } else {
                String::new()
            }
        );
    }
    if let Some(contracts) = report
        .scenarios
        .first()
        .and_then(|s| s.info.get("contracts"))
    {
        let _ = writeln!(
            out,
            "\nnote: kernel and framework calls are checked against their reference pages: {contracts}"
        );
    }
    let _ = write!(
        out,
        "\n{} scenario(s), {} violation(s)",
        report.scenarios.len(),
        report.violations.len()
    );
    let failed = report
        .scenarios
        .iter()
        .filter(|s| s.status == "failed")
        .count();
    if failed > 0 {
        let _ = write!(
            out,
            ", {failed} scenario(s) failed (the device did not start or did not return to D0)"
        );
    }
    let incomplete = report
        .scenarios
        .iter()
        .filter(|s| s.status != "completed" && s.status != "failed")
        .count();
    if incomplete > 0 {
        let _ = write!(out, ", {incomplete} scenario(s) did not complete");
    }
    out
}

/// The JSON report.
#[must_use]
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_default()
}

/// SARIF 2.1.0: one result per violation, at its source line when the PDB has one.
#[must_use]
pub fn sarif(report: &Report) -> String {
    let mut kinds: Vec<&str> = report.violations.iter().map(|v| v.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let rules: Vec<Value> = kinds
        .iter()
        .map(|k| {
            json!({
                "id": format!("pagerun/{k}"),
                "shortDescription": { "text": format!("run-time {k} violation") },
                "defaultConfiguration": { "level": "error" },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .violations
        .iter()
        .map(|v| {
            let mut location = json!({
                "physicalLocation": {
                    "artifactLocation": { "uri": report.image.replace('\\', "/") },
                },
                "logicalLocations": [{ "name": v.symbol, "kind": "function" }],
            });
            if let Some(source) = &v.source {
                location["physicalLocation"] = json!({
                    "artifactLocation": { "uri": source.file.replace('\\', "/") },
                    "region": { "startLine": source.line },
                });
            }
            json!({
                "ruleId": format!("pagerun/{}", v.kind),
                "level": "error",
                "message": {
                    "text": format!(
                        "{} (in {} during scenario {} step {}: {})",
                        v.message, v.callback, v.scenario, v.step, v.step_label
                    )
                },
                "locations": [location],
                "properties": {
                    "section": v.section,
                    "irql": v.irql,
                    "callback": v.callback,
                    "scenario": v.scenario,
                    "step": v.step,
                    "count": v.count,
                },
            })
        })
        .collect();
    let doc = json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": { "driver": {
                "name": "cargo-pagerun",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}
