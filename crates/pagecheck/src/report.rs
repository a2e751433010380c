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

/// How many accesses the text form lists under the third step's answer.
pub const TEXT_ACCESS_ROWS: usize = 10;

/// The guide's third step, answered: one line, then the accesses it rests on.
fn third_step_lines(report: &Report, out: &mut String) {
    let third = &report.third_step;
    let _ = writeln!(
        out,
        "  = third step (pageable data during power transitions): {}",
        third.answer
    );
    for a in third.accesses.iter().take(TEXT_ACCESS_ROWS) {
        let what = match (&a.routine, &a.data) {
            (Some(routine), _) => format!("`{routine}`"),
            (None, Some(data)) => data.clone(),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            out,
            "      {} {what} at {}, reached from `{}`{}",
            a.kind,
            a.place,
            a.callback,
            if a.guarded {
                " (behind WdfDevStateIsNP)"
            } else {
                ""
            }
        );
    }
    if third.accesses.len() > TEXT_ACCESS_ROWS {
        let _ = writeln!(
            out,
            "      ... and {} more",
            third.accesses.len() - TEXT_ACCESS_ROWS
        );
    }
    let unseen = &third.unseen;
    if unseen.indirect_calls > 0 || !unseen.routines_without_contract.is_empty() {
        let mut routines: Vec<&str> = unseen
            .routines_without_contract
            .iter()
            .take(TEXT_ACCESS_ROWS)
            .map(String::as_str)
            .collect();
        if unseen.routines_without_contract.len() > routines.len() {
            routines.push("...");
        }
        let _ = writeln!(
            out,
            "      not seen into: {} indirect call(s){}",
            unseen.indirect_calls,
            if routines.is_empty() {
                String::new()
            } else {
                format!(", routines without a contract: {}", routines.join(", "))
            }
        );
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
                .filter(|func| *func.section == *s.name)
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
    third_step_lines(report, &mut out);
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
    serde_json::to_string(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// The JSON form, written to `out` as it is serialised: compact, as cargo's own messages are
/// (pipe it through `jq` to read it). Indented, a large image's report (every function's size)
/// was twice the bytes and took longer to write than the checks took to run.
///
/// # Errors
/// When `out` fails.
pub fn write_json<W: std::io::Write>(report: &Report, out: W) -> std::io::Result<()> {
    serde_json::to_writer(out, report).map_err(std::io::Error::from)
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

/// What a SARIF location is written relative to.
struct Artifacts<'r> {
    /// The image, as a URI (relative to `%SRCROOT%` when under it).
    image: (String, bool),
    /// The image's preferred base, to give addresses as the debugger shows them.
    image_base: u64,
    sections: &'r [SectionReport],
}

/// An artifact location: relative paths are against `%SRCROOT%`.
fn artifact(uri: &str, relative: bool) -> Value {
    if relative {
        json!({ "uri": percent_encode(uri), "uriBaseId": "SRCROOT" })
    } else {
        json!({ "uri": file_uri(uri) })
    }
}

/// The physical location of a link: its source line when the PDB has one, else the image;
/// always with the binary position as an address (never as a byte offset, which would claim
/// a file offset).
fn physical(artifacts: &Artifacts<'_>, link: &Link) -> Value {
    let at = link.site.unwrap_or(link.rva);
    let mut location = match &link.source {
        Some(source) => {
            let mut region = json!({ "startLine": source.line });
            if let Some(column) = source.column {
                region["startColumn"] = json!(column);
            }
            json!({ "artifactLocation": artifact(&source.file, source.relative), "region": region })
        }
        None => json!({ "artifactLocation": artifact(&artifacts.image.0, artifacts.image.1) }),
    };
    location["address"] = json!({
        "absoluteAddress": artifacts.image_base.wrapping_add(u64::from(at)),
        "kind": if link.site.is_some() { "instruction" } else { "function" },
        "name": where_of(artifacts.sections, &link.section, at),
        "fullyQualifiedName": format!("{}+{:#x}", link.symbol, at.wrapping_sub(link.rva)),
    });
    location
}

/// The link a result is about: the last one with a call site (the offending call), else the
/// last one.
fn primary(chain: &[Link]) -> Option<&Link> {
    chain
        .iter()
        .rev()
        .find(|l| l.site.is_some())
        .or_else(|| chain.last())
}

fn result(artifacts: &Artifacts<'_>, v: &Violation) -> Value {
    let location = match primary(&v.chain) {
        Some(anchor) => json!({
            "physicalLocation": physical(artifacts, anchor),
            "logicalLocations": [logical(anchor)],
        }),
        None => json!({
            "physicalLocation": { "artifactLocation": artifact(&artifacts.image.0, artifacts.image.1) },
        }),
    };
    let mut result = json!({
        "ruleId": v.rule.id(),
        "ruleIndex": Rule::ALL.iter().position(|r| *r == v.rule).unwrap_or(0),
        "level": match v.level { Level::Error => "error", Level::Warning => "warning" },
        "message": { "text": v.message },
        "locations": [location],
        // Names, not addresses or lines: stable across rebuilds that do not change the finding.
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
                        "physicalLocation": physical(artifacts, l),
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

/// Microsoft's page for what each rule enforces.
fn help_uri(rule: Rule) -> &'static str {
    match rule {
        Rule::SectionFlags | Rule::InitUseAfterDiscard => {
            "https://learn.microsoft.com/en-us/windows-hardware/drivers/kernel/making-drivers-pageable"
        }
        Rule::SlowResume => {
            "https://learn.microsoft.com/en-us/windows-hardware/drivers/wdf/a-device-returns-to-its-working-state"
        }
        Rule::LockedSection => {
            "https://learn.microsoft.com/en-us/windows-hardware/drivers/kernel/locking-pageable-code-or-data"
        }
        Rule::ResidentReachesPageable
        | Rule::ResidentRootNotResident
        | Rule::UnresolvedIndirect
        | Rule::DeclaredRoleMismatch
        | Rule::UnreadableRegistration => {
            "https://learn.microsoft.com/en-us/windows-hardware/drivers/wdf/creating-pageable-code-in-a-kmdf-driver"
        }
        Rule::RoutineAboveIrql | Rule::PowerPathPageableAccess | Rule::PageableDataFromResident => {
            match crate::rules::about(rule) {
                Some((_, _, help)) => help,
                None => "",
            }
        }
    }
}

/// A path as a `file://` URI.
fn file_uri(path: &str) -> String {
    let encoded = percent_encode(path);
    if encoded.starts_with('/') {
        format!("file://{encoded}")
    } else {
        // A Windows path (`C:/...`) or one relative to where pagecheck ran.
        format!("file:///{encoded}")
    }
}

/// Escapes what may not appear in a URI path (RFC 3986 unreserved characters, `/` and `:`
/// stay).
fn percent_encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The SARIF 2.1.0 form for GitHub code scanning: each result at the source line of the
/// offending call (relative to `%SRCROOT%`), the chain as a code flow, the image position as an
/// address.
#[must_use]
pub fn sarif(report: &Report) -> String {
    let image = crate::pdb::relative_to(
        &report.image,
        report.source_root.as_deref().map(std::path::Path::new),
    );
    let artifacts = Artifacts {
        image,
        image_base: report.image_base,
        sections: &report.sections,
    };
    let rules: Vec<Value> = Rule::ALL
        .iter()
        .map(|r| {
            json!({
                "id": r.id(),
                "name": r.name(),
                "shortDescription": { "text": r.name() },
                "fullDescription": { "text": r.description() },
                "help": { "text": r.description() },
                "helpUri": help_uri(*r),
                "defaultConfiguration": {
                    "level": if r.is_warning() { "warning" } else { "error" }
                },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .violations
        .iter()
        .map(|v| result(&artifacts, v))
        .collect();
    let mut driver = json!({
        "name": "cargo-pagecheck",
        "version": env!("CARGO_PKG_VERSION"),
        "rules": rules,
    });
    // The project's address, when the package declares one.
    let repository = env!("CARGO_PKG_REPOSITORY");
    if !repository.is_empty() {
        driver["informationUri"] = json!(repository);
    }
    let mut run = json!({
        "tool": { "driver": driver },
        "artifacts": [{ "location": artifact(&artifacts.image.0, artifacts.image.1) }],
        "results": results,
        // The guide's third step, answered for the image (a property bag: SARIF has no place
        // for a verdict that is not a result).
        "properties": { "thirdStep": &report.third_step },
    });
    if let Some(root) = &report.source_root {
        let root = root.replace('\\', "/");
        let root = if root.ends_with('/') {
            root
        } else {
            format!("{root}/")
        };
        run["originalUriBaseIds"] = json!({ "SRCROOT": { "uri": file_uri(&root) } });
    }
    let doc = json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [run],
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}
