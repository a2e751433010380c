//! The three output formats: compiler-style text, one JSON object, SARIF 2.1.0.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::checks::{Level, Link, Rule, Violation};
use crate::{Report, SectionReport};

/// How many resident-slack functions the text form lists.
pub const TEXT_SLACK_ROWS: usize = 20;


/// `section+0xoff` of a link's function, relative to the section start when known.
fn where_of(sections: &[SectionReport], section: &str, rva: u32) -> String {
    match sections.iter().find(|s| s.name == section) {
        Some(s) if rva >= s.rva => format!("{section}+{:#x}", rva - s.rva),
        _ => format!("{section} @ {rva:#x}"),
    }
}

/// Where the roots came from, and what makes the power paths strict.
fn roots_lines(report: &Report, out: &mut String) {
    use crate::roots::Origin;
    let count = |origin: Origin| report.roots.iter().filter(|r| r.origin == origin).count();
    let registered = report.roots.iter().filter(|r| r.slot.is_some()).count();
    let _ = writeln!(
        out,
        "  = roots: {registered} registered with the framework, {} from role records, {} from --root, {} lock \
         holders",
        count(Origin::Record),
        count(Origin::CommandLine),
        count(Origin::Lock)
    );
    let locks = count(Origin::Lock);
    if locks > 0 {
        let _ = writeln!(
            out,
            "  = {locks} of the roots are lock holders: functions that call something while they hold a spin lock, \
             which runs at DISPATCH_LEVEL (--no-lock-roots turns this off)"
        );
    }
    match report.policy.nonpageable.first() {
        Some(first) => {
            let locked: Vec<String> = report
                .policy
                .locked
                .iter()
                .map(|l| format!("{} (locked at {})", l.section, l.place))
                .collect();
            let _ = writeln!(
                out,
                "  = the driver can be power-nonpageable ({} at {}): its power-down callbacks must be resident{}",
                first.call,
                first.place,
                if locked.is_empty() {
                    String::new()
                } else {
                    format!(" or in {}", locked.join(", "))
                }
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  = the driver is power-pageable (it never calls WdfDeviceInitSetPowerNotPageable, \
                 WdfDeviceInitSetPowerInrush or WdfDeviceSetSpecialFileSupport)"
            );
        }
    }
}

/// How the text form is written.
#[derive(Clone, Copy, Debug, Default)]
pub struct TextOptions {
    /// ANSI colours for the severity labels and arrows.
    pub color: bool,
    /// Only the findings and the summary line.
    pub quiet: bool,
}

/// `text` in the ANSI colour `code` when `on`.
fn paint(on: bool, code: &str, text: &str) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// One link of a chain, rustc style: `  --> file:line:column in symbol (section+0xoffset)`, or
/// without a source line, `  --> symbol (section+0xoffset)`. The offset is the call site when
/// the link has one, else the function's start.
fn link_line(sections: &[SectionReport], link: &Link, color: bool) -> String {
    let at = where_of(sections, &link.section, link.site.unwrap_or(link.rva));
    let arrow = paint(color, "1;34", "-->");
    match &link.source {
        Some(source) => {
            let column = source.column.map_or_else(String::new, |c| format!(":{c}"));
            format!(
                "  {arrow} {}:{}{column} in {} ({at})",
                source.file, source.line, link.symbol
            )
        }
        None => format!("  {arrow} {} ({at})", link.symbol),
    }
}

/// The text form: one compiler-style diagnostic per violation, each link of its chain on a
/// line of its own with its source line, then the footprint, the largest resident-slack
/// functions, where the roots came from, and a summary line.
#[must_use]
pub fn text(report: &Report, options: &TextOptions) -> String {
    let sections = &report.sections;
    let color = options.color;
    let mut out = String::new();
    for v in &report.violations {
        let level = match v.level {
            Level::Error => paint(color, "1;31", "error"),
            Level::Warning => paint(color, "1;33", "warning"),
        };
        let _ = writeln!(out, "{level}[{}]: {}", v.rule.id(), v.message);
        for link in &v.chain {
            let _ = writeln!(out, "{}", link_line(sections, link, color));
        }
        let _ = writeln!(out, "  = rule: {} ({})", v.rule.name(), v.rule.id());
        out.push('\n');
    }
    if options.quiet {
        summary_line(report, &mut out);
        return out;
    }
    let f = &report.footprint;
    let _ = writeln!(
        out,
        "footprint: resident {} B, pageable {} B, discardable {} B; resident slack {} B in {} functions",
        f.resident,
        f.pageable,
        f.discardable,
        report.slack.total,
        report.slack.functions.len()
    );
    // Code bytes per code section, in section order.
    let per_section: Vec<String> = sections
        .iter()
        .filter_map(|s| {
            let bytes: u64 = f
                .functions
                .iter()
                .filter(|func| func.section == s.name)
                .map(|func| u64::from(func.size))
                .sum();
            (bytes > 0).then(|| format!("{} {bytes} B ({})", s.name, s.residency.name()))
        })
        .collect();
    if !per_section.is_empty() {
        let _ = writeln!(out, "  = code by section: {}", per_section.join(", "));
    }
    if !report.slack.functions.is_empty() {
        let _ = writeln!(
            out,
            "resident slack (resident code no resident root reaches), largest first:"
        );
        let _ = writeln!(out, " {:>8} {:>6}  {:<8} function", "size", "%", "section");
        for s in report.slack.functions.iter().take(TEXT_SLACK_ROWS) {
            #[allow(clippy::cast_precision_loss)]
            let pct = if f.resident == 0 {
                0.0
            } else {
                f64::from(s.size) * 100.0 / f.resident as f64
            };
            let _ = writeln!(
                out,
                " {:>8} {:>5.1}%  {:<8} {}",
                s.size, pct, s.section, s.symbol
            );
        }
        if report.slack.functions.len() > TEXT_SLACK_ROWS {
            let _ = writeln!(
                out,
                " ... and {} more",
                report.slack.functions.len() - TEXT_SLACK_ROWS
            );
        }
    }
    roots_lines(report, &mut out);
    for warning in &report.warnings {
        let _ = writeln!(out, "{}: {warning}", paint(color, "1;33", "warning"));
    }
    summary_line(report, &mut out);
    out
}

/// `pagecheck: N error(s), N warning(s); ...`.
fn summary_line(report: &Report, out: &mut String) {
    let _ = writeln!(
        out,
        "pagecheck: {} error(s), {} warning(s); {} roots, {} functions, {} code bytes, {} unresolved indirect transfers",
        report.summary.errors,
        report.summary.warnings,
        report.roots.len(),
        report.summary.functions,
        report.summary.code_bytes,
        report.unresolved.len()
    );
}

/// The JSON form: the [`Report`] itself.
///
/// # Panics
/// Never: the report holds only strings, numbers and arrays.
#[must_use]
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn logical(link: &Link) -> Value {
    let mut location = json!({
        "name": link.symbol,
        "fullyQualifiedName": link.symbol,
        "kind": if link.symbol.starts_with("<data") { "variable" } else { "function" },
    });
    if let Some(mangled) = &link.mangled {
        location["decoratedName"] = json!(mangled);
    }
    location
}

fn physical(uri: &str, link: &Link) -> Value {
    // A binary artifact: the region is the function (or site) address as a byte offset
    // into the image's memory layout; startLine 1 keeps viewers that want a line happy.
    json!({
        "artifactLocation": { "uri": uri },
        "region": { "startLine": 1, "byteOffset": link.site.unwrap_or(link.rva) },
    })
}

fn result(uri: &str, v: &Violation) -> Value {
    let anchor = v.chain.last().cloned().unwrap_or(Link {
        symbol: uri.to_owned(),
        rva: 0,
        section: String::new(),
        site: None,
        mangled: None,
        source: None,
    });
    let mut location = json!({ "physicalLocation": physical(uri, &anchor) });
    if !v.chain.is_empty() {
        location["logicalLocations"] = json!([logical(&anchor)]);
    }
    let mut result = json!({
        "ruleId": v.rule.id(),
        "ruleIndex": Rule::ALL.iter().position(|r| *r == v.rule).unwrap_or(0),
        "level": match v.level { Level::Error => "error", Level::Warning => "warning" },
        "message": { "text": v.message },
        "locations": [location],
        "partialFingerprints": {
            "pagecheckChain/v1": v.chain.iter().map(|l| l.symbol.as_str()).collect::<Vec<_>>().join(">")
                + "|" + v.rule.id(),
        },
    });
    if v.chain.len() > 1 {
        let steps: Vec<Value> = v
            .chain
            .iter()
            .map(|l| {
                json!({
                    "location": {
                        "physicalLocation": physical(uri, l),
                        "logicalLocations": [logical(l)],
                        "message": { "text": format!("{} in {}", l.symbol, l.section) },
                    }
                })
            })
            .collect();
        result["codeFlows"] = json!([{ "threadFlows": [{ "locations": steps }] }]);
    }
    result
}

/// The SARIF 2.1.0 form for GitHub code scanning.
#[must_use]
pub fn sarif(report: &Report) -> String {
    let uri = report.image.replace('\\', "/");
    let rules: Vec<Value> = Rule::ALL
        .iter()
        .map(|r| {
            json!({
                "id": r.id(),
                "name": r.name(),
                "shortDescription": { "text": r.name() },
                "fullDescription": { "text": r.description() },
                "help": { "text": r.description() },
                "defaultConfiguration": {
                    "level": if r.is_warning() { "warning" } else { "error" }
                },
            })
        })
        .collect();
    let results: Vec<Value> = report.violations.iter().map(|v| result(&uri, v)).collect();
    let doc = json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": { "driver": {
                "name": "cargo-pagecheck",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/",
                "rules": rules,
            }},
            "artifacts": [{ "location": { "uri": uri } }],
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}
