//! `cargo pagecheck`: proves on a linked x64 driver image and its PDB that nothing resident
//! calls into pageable (`PAGE*`) or discarded (`INIT`) code.
//!
//! The pipeline, one module each: [`image`] reads the PE, [`pdb`] the symbols,
//! [`functions`] builds the function table, [`decode`] disassembles every function once
//! into a call graph (recognising the KMDF call shape with [`wdf`]), [`roots`] resolves
//! the resident roots, [`checks`] runs the four checks and [`report`] prints them.

pub mod callgraph;
pub mod checks;
pub mod dataflow;
pub mod decode;
pub mod flow;
pub mod functions;
pub mod image;
pub mod kmdf;
pub mod locate;
pub mod locks;
pub mod pdb;
pub mod registration;
pub mod report;
pub mod roots;
pub mod rules;
pub mod view;
pub mod wdf;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::callgraph::External;
use crate::checks::{Footprint, Level, Slack, Violation};
use crate::image::Image;
use crate::pdb::Symbols;
use crate::roots::{Origin, RootSpec};

/// Bad input: the one-line message printed before exiting with status 2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    /// An error with `message` (one line).
    #[must_use]
    pub fn new(message: impl Into<String>) -> Error {
        Error {
            message: message.into().replace('\n', " "),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// What to check.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The PDB; found beside the image when `None`.
    pub pdb: Option<PathBuf>,
    /// `--root` roots, added to the image's role records.
    pub roots: Vec<RootSpec>,
    /// Whether unresolved indirect calls in resident code fail the check.
    pub fail_on_unresolved: bool,
    /// Whether warnings fail the check too (`--deny warnings`, for CI).
    pub deny_warnings: bool,
    /// Do not check the calls made while a spin lock is held ([`locks`]).
    pub no_lock_roots: bool,
    /// Source paths under this directory are reported relative to it (SARIF's `%SRCROOT%`).
    pub source_root: Option<PathBuf>,
}

/// A root as reported.
#[derive(Clone, Debug, Serialize)]
pub struct RootReport {
    /// Role name.
    pub role: &'static str,
    /// Function.
    pub symbol: String,
    /// RVA.
    pub rva: u32,
    /// Section.
    pub section: String,
    /// Record, command line or lock.
    pub origin: Origin,
    /// For a lock root: the call that raises the IRQL (`WdfSpinLockAcquire`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acquires: Option<&'static str>,
    /// For a registered function: the callback slot that gives it its role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<&'static str>,
    /// For a registered function: the framework method that registers it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'static str>,
    /// For a registered function: RVA of the framework call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<u32>,
    /// Where the function's code is kept: `resident`, `pageable`, `locked` (a pageable
    /// section the driver locks) or `discardable`.
    pub placement: &'static str,
}

/// An unresolved transfer as reported.
#[derive(Clone, Debug, Serialize)]
pub struct UnresolvedReport {
    /// Containing function.
    pub function: String,
    /// RVA of the instruction.
    pub site: u32,
    /// `section+offset`.
    pub place: String,
    /// `call`/`jmp` through register/memory.
    pub kind: &'static str,
    /// Whether a resident root reaches the function.
    pub resident: bool,
}

/// Calls out of the image, counted by target.
#[derive(Clone, Debug, Serialize)]
pub struct ExternalReport {
    /// `dll!name` for imports, `WdfXxx` (or `WdfFunctions[?]`) for framework calls.
    pub name: String,
    /// `import` or `wdf`.
    pub kind: &'static str,
    /// Call sites.
    pub calls: u32,
}

/// Counts.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Functions found.
    pub functions: usize,
    /// Bytes decoded.
    pub code_bytes: u64,
    /// Instructions decoded.
    pub instructions: u64,
    /// Functions walked again in dataflow mode (they call the framework, take addresses, copy
    /// constant data or make indirect calls).
    pub dataflow_functions: usize,
    /// Errors (fail the check).
    pub errors: usize,
    /// Warnings.
    pub warnings: usize,
}

/// Everything the analysis found; serialises as the `--format json` object.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Image path as given.
    pub image: String,
    /// PDB path used.
    pub pdb: String,
    /// Counts.
    pub summary: Summary,
    /// Resident and other roots.
    pub roots: Vec<RootReport>,
    /// All findings, errors first.
    pub violations: Vec<Violation>,
    /// Code bytes per residency and function.
    pub footprint: Footprint,
    /// Resident code no resident root reaches.
    pub slack: Slack,
    /// Every unresolved indirect transfer (also those outside resident code).
    pub unresolved: Vec<UnresolvedReport>,
    /// Calls leaving the image.
    pub externals: Vec<ExternalReport>,
    /// Every callback the image registers with the framework, and the registration calls
    /// that could not be read.
    pub registrations: registration::Registrations,
    /// Calls that can make a device power-nonpageable, and sections the driver locks.
    pub policy: PolicyReport,
    /// What the loader tolerates but the image should not have.
    pub warnings: Vec<String>,
    /// The image's sections.
    pub sections: Vec<SectionReport>,
    /// The guide's third step: whether the power paths touch pageable data, and where.
    pub third_step: rules::answer::ThirdStep,
    /// Whether warnings fail the check.
    #[serde(skip)]
    pub deny_warnings: bool,
    /// The image's preferred base address.
    pub image_base: u64,
    /// What source paths are relative to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_root: Option<String>,
}

/// [`registration::Policy`] as reported.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PolicyReport {
    /// Calls after which a device of the driver may be power-nonpageable.
    pub nonpageable: Vec<SiteReport>,
    /// Pageable sections the driver locks in memory, with the lock call.
    pub locked: Vec<LockReport>,
    /// `MmUnlockPagableImageSection` calls.
    pub unlocks: Vec<SiteReport>,
}

/// A call site.
#[derive(Clone, Debug, Serialize)]
pub struct SiteReport {
    /// What is called.
    pub call: &'static str,
    /// RVA of the call.
    pub site: u32,
    /// `function+0xoffset`.
    pub place: String,
}

/// A locked section.
#[derive(Clone, Debug, Serialize)]
pub struct LockReport {
    /// Section name.
    pub section: String,
    /// The lock call.
    pub site: u32,
    /// `function+0xoffset`.
    pub place: String,
}

/// A section as reported.
#[derive(Clone, Debug, Serialize)]
pub struct SectionReport {
    /// Name.
    pub name: String,
    /// RVA.
    pub rva: u32,
    /// Size in memory.
    pub size: u32,
    /// `IMAGE_SCN_*` flags.
    pub characteristics: u32,
    /// Residency: by name for code sections; for the others a discardable flag wins
    /// (`.reloc`, `.pwrole` are freed after load, not kept resident).
    pub residency: image::Residency,
}

impl Report {
    /// True when a finding fails the check (exit status 1): any error, or with
    /// `--deny warnings` any finding at all.
    #[must_use]
    pub fn failed(&self) -> bool {
        self.violations
            .iter()
            .any(|v| v.level == Level::Error || self.deny_warnings)
    }
}

/// An image and the PDB that matches it, read and ready for [`analyze`].
pub struct Loaded {
    /// The image.
    pub image: Image,
    /// The PDB's symbols.
    pub symbols: Symbols,
    /// Where the PDB was found.
    pub pdb_path: std::path::PathBuf,
}

/// Reads `image_path` and its PDB (`pdb`, or the one beside the image or at the path the
/// linker recorded), checking that the PDB belongs to this build.
///
/// # Errors
/// Unreadable, truncated, non-PE or non-x64 image; missing or mismatched PDB.
pub fn load(image_path: &Path, pdb: Option<&Path>) -> Result<Loaded, Error> {
    let bytes = std::fs::read(image_path)
        .map_err(|e| Error::new(format!("{}: {e}", image_path.display())))?;
    let image =
        Image::parse(bytes).map_err(|e| Error::new(format!("{}: {e}", image_path.display())))?;
    // Without the CodeView record no PDB can be proved to belong to this build, and symbols
    // of another build would name the wrong functions: refuse, and say why.
    let Some(codeview) = image.codeview.as_ref() else {
        return Err(Error::new(format!(
            "{}: the image has no CodeView debug record: it was linked without /DEBUG, so no PDB can be matched \
             to it; relink with /DEBUG (the wdk-build flow passes it)",
            image_path.display()
        )));
    };
    let pdb_path = match pdb {
        Some(p) => p.to_owned(),
        None => pdb::locate(image_path, Some(codeview)).ok_or_else(|| {
            Error::new(format!(
                "{}: no PDB beside the image or at `{}`, the path the linker recorded; pass it with --pdb",
                image_path.display(),
                codeview.path
            ))
        })?,
    };
    let symbols = Symbols::load(&pdb_path, &image)?;
    Ok(Loaded {
        image,
        symbols,
        pdb_path,
    })
}

/// Reads `image_path` (and its PDB) and runs every check.
///
/// # Errors
/// Unreadable, truncated, non-PE or non-x64 image; missing or mismatched PDB; unknown root.
pub fn analyze_path(image_path: &Path, options: &Options) -> Result<Report, Error> {
    let loaded = load(image_path, options.pdb.as_deref())?;
    analyze(
        &loaded.image,
        &loaded.symbols,
        options,
        &image_path.display().to_string(),
        &loaded.pdb_path.display().to_string(),
    )
}

/// Problems in reading the image that did not stop the analysis, for the report.
fn report_warnings(image: &Image, flow: &flow::Flow) -> Vec<String> {
    let mut warnings = image.warnings.clone();
    if flow.unsettled {
        warnings.push(
            "helper summaries were still changing after the last round: registrations made through \
             deeper chains of helpers may be missing"
                .to_owned(),
        );
    }
    warnings
}

/// Every section with the residency the report shows (discardable data counts as discarded).
fn section_reports(image: &Image) -> Vec<SectionReport> {
    image
        .sections
        .iter()
        .map(|s| SectionReport {
            name: s.name.clone(),
            rva: s.rva,
            size: s.virtual_size,
            characteristics: s.characteristics,
            residency: if !s.is_code() && s.characteristics & image::SCN_DISCARDABLE != 0 {
                image::Residency::Discardable
            } else {
                s.residency
            },
        })
        .collect()
}

/// Runs every check on an image and its (already matched) symbols.
///
/// # Errors
/// An unknown `--root` symbol, a role record outside every function.
pub fn analyze(
    image: &Image,
    symbols: &Symbols,
    options: &Options,
    image_name: &str,
    pdb_name: &str,
) -> Result<Report, Error> {
    check_role_records(image)?;
    let functions = functions::Functions::build(image, symbols);
    let ctx = context(image, &functions, symbols);
    let calls = decode::build(&ctx);
    let (calls, flow) = flow::refine(&ctx, calls);
    let registrations = registration::resolve(
        image,
        &functions,
        &flow.calls,
        &flow.unmodelled,
        &calls,
        &flow.sets,
    );
    let policy = registration::Policy::read(image, &functions, &calls, &flow.locks, &flow.sets);
    // Regions under a device's or queue's lock of a driver whose objects are all passive
    // hold a mutex: they run at PASSIVE_LEVEL.
    let spin_held: Vec<(usize, dataflow::Held)> = flow
        .held
        .iter()
        .copied()
        .filter(|(_, h)| {
            !(h.acquire == "WdfObjectAcquireLock" && registrations.object_locks_passive)
        })
        .collect();
    let lock_roots = if options.no_lock_roots {
        Vec::new()
    } else {
        roots::lock_roots(&spin_held)
    };
    let mut held: std::collections::HashMap<usize, Vec<dataflow::Held>> =
        std::collections::HashMap::new();
    for &(function, h) in &spin_held {
        held.entry(function).or_default().push(h);
    }
    let roots = roots::collect(
        image,
        &functions,
        symbols,
        &options.roots,
        &registrations,
        &lock_roots,
    )?;
    if roots.is_empty() {
        return Err(Error::new(
            "no roots: the image registers no callback pagecheck can read, has no role records and takes no spin \
             lock, and no --root was given, so there is nothing to prove; name the callbacks with --root ROLE=SYMBOL",
        ));
    }
    let indirect = checks::IndirectTargets::collect(image, &functions, &calls, &registrations);
    let graph = checks::Graph {
        image,
        functions: &functions,
        calls: &calls,
        registrations: &registrations,
        policy: &policy,
        held: &held,
        indirect: &indirect,
    };

    let findings = graph.reachability(&roots, options.fail_on_unresolved);
    let (violations, third_step) =
        all_findings(&graph, &roots, &flow, symbols, options, findings.violations);
    let (footprint, slack) = graph.footprint(&findings.referenced);

    let (unresolved, externals) = indirect_and_external(image, &graph, &findings.reached);
    let roots_report = root_reports(image, &functions, &roots, &registrations, &policy);
    let policy_report = policy_report(image, &graph, &policy);
    let errors = violations
        .iter()
        .filter(|v| v.level == Level::Error)
        .count();
    Ok(Report {
        image: image_name.to_owned(),
        pdb: pdb_name.to_owned(),
        summary: Summary {
            functions: functions.len(),
            code_bytes: calls.code_bytes,
            instructions: calls.instructions,
            dataflow_functions: flow.walked,
            errors,
            warnings: violations.len() - errors,
        },
        roots: roots_report,
        violations,
        footprint,
        slack,
        unresolved,
        externals,
        registrations,
        policy: policy_report,
        warnings: report_warnings(image, &flow),
        deny_warnings: options.deny_warnings,
        image_base: image.image_base,
        source_root: options
            .source_root
            .as_ref()
            .map(|p| p.display().to_string()),
        sections: section_reports(image),
        third_step,
    })
}

/// Every finding, errors first, each link with its source line (`reach`: the reachability
/// check's), and the answer to the guide's third step.
fn all_findings(
    graph: &checks::Graph<'_>,
    roots: &[roots::Root],
    flow: &flow::Flow,
    symbols: &Symbols,
    options: &Options,
    reach: Vec<Violation>,
) -> (Vec<Violation>, rules::answer::ThirdStep) {
    let mut violations = checks::section_rules(graph.image);
    violations.extend(reach);
    violations.extend(graph.registration_checks(roots));
    violations.extend(graph.init_discipline());
    let (third, third_step) = rules::wire::run(graph, roots, flow, symbols);
    violations.extend(third);
    violations.sort_by_key(|v| (v.level != Level::Error, v.rule));
    add_source_lines(&mut violations, symbols, options.source_root.as_deref());
    (violations, third_step)
}

/// Gives every link of every finding the source line of its site (or of its function's
/// start), reading the line tables of only the modules those lines are in.
fn add_source_lines(violations: &mut [Violation], symbols: &Symbols, root: Option<&Path>) {
    let rvas: Vec<u32> = violations
        .iter()
        .flat_map(|v| v.chain.iter().map(|l| l.site.unwrap_or(l.rva)))
        .collect();
    let lines = symbols.lines_at(&rvas);
    if lines.is_empty() {
        return;
    }
    for link in violations.iter_mut().flat_map(|v| v.chain.iter_mut()) {
        // A data link (`<data at ...>`) has no function and no line.
        if !link.symbol.starts_with("<data") {
            link.source = lines.at(link.site.unwrap_or(link.rva), link.rva, root);
        }
    }
}

/// Refuses an image whose role records cannot all be read: dropping one would drop the check
/// of the function it places.
fn check_role_records(image: &Image) -> Result<(), Error> {
    if let Some(first) = image.role_errors.first() {
        return Err(Error::new(format!(
            "unreadable role record{}: {first} (the image was altered, or built by another version of \
             pagewise-roles): its placements cannot be checked",
            if image.role_errors.len() > 1 {
                format!(" ({} of them)", image.role_errors.len())
            } else {
                String::new()
            }
        )));
    }
    Ok(())
}

/// The decoder's view of the image: the KMDF table variables and the Control Flow Guard
/// pointers the PDB names.
fn context<'a>(
    image: &'a Image,
    functions: &'a functions::Functions,
    symbols: &Symbols,
) -> view::Context<'a> {
    let wdf_tables: Vec<u32> = symbols
        .symbols
        .iter()
        .filter(|s| wdf::is_function_table(&s.raw))
        .map(|s| s.rva)
        .collect();
    let mut ctx = view::Context::new(image, functions, wdf_tables);
    for s in &symbols.symbols {
        if let Some(special) = view::guard_pointer(&s.raw) {
            ctx.add_special(s.rva, special);
        }
    }
    ctx
}

/// The roots as reported: each with its registration and where its code is kept.
fn root_reports(
    image: &Image,
    functions: &functions::Functions,
    roots: &[roots::Root],
    registrations: &registration::Registrations,
    policy: &registration::Policy,
) -> Vec<RootReport> {
    roots
        .iter()
        .map(|r| {
            let f = &functions.list[r.function];
            let registration = r.registration.and_then(|i| registrations.list.get(i));
            RootReport {
                role: r.role.name(),
                symbol: f.name.to_string(),
                rva: f.start,
                section: image.sections[f.section].name.clone(),
                origin: r.origin,
                acquires: r.acquires,
                slot: registration.map(|g| g.slot),
                method: registration.map(|g| g.method),
                site: registration.map(|g| g.site),
                placement: match f.residency {
                    image::Residency::Resident => "resident",
                    image::Residency::Pageable if policy.lock_of(f.section).is_some() => "locked",
                    image::Residency::Pageable => "pageable",
                    image::Residency::Discardable => "discardable",
                },
            }
        })
        .collect()
}

/// The policy as reported, with places in function terms.
fn policy_report(
    image: &Image,
    graph: &checks::Graph<'_>,
    policy: &registration::Policy,
) -> PolicyReport {
    PolicyReport {
        nonpageable: policy
            .nonpageable
            .iter()
            .map(|&(site, call)| SiteReport {
                call,
                site,
                place: graph.code_place(site),
            })
            .collect(),
        locked: policy
            .locked
            .iter()
            .map(|&(section, site)| LockReport {
                section: image.sections[section].name.clone(),
                site,
                place: graph.code_place(site),
            })
            .collect(),
        unlocks: policy
            .unlocks
            .iter()
            .map(|&site| SiteReport {
                call: "MmUnlockPagableImageSection",
                site,
                place: graph.code_place(site),
            })
            .collect(),
    }
}

/// Lists every unresolved transfer and counts the calls leaving the image by target.
fn indirect_and_external(
    image: &Image,
    graph: &checks::Graph<'_>,
    reached: &[bool],
) -> (Vec<UnresolvedReport>, Vec<ExternalReport>) {
    let (functions, calls) = (graph.functions, graph.calls);
    let mut unresolved = Vec::new();
    let mut externals: std::collections::BTreeMap<(String, &'static str), u32> =
        std::collections::BTreeMap::new();
    for (f, func) in functions.list.iter().enumerate() {
        for u in calls.unresolved_of(f) {
            unresolved.push(UnresolvedReport {
                function: func.name.to_string(),
                site: u.site,
                place: graph.place(u.site),
                kind: match (u.is_call, u.through_memory) {
                    (true, false) => "call-register",
                    (true, true) => "call-memory",
                    (false, false) => "jump-register",
                    (false, true) => "jump-memory",
                },
                resident: reached[f],
            });
        }
        for &(_, external) in calls.externals_of(f) {
            let key = match external {
                External::Import(slot) => {
                    (image.import_at(slot).unwrap_or("?").to_owned(), "import")
                }
                External::Wdf(index) => (
                    index
                        .and_then(|i| wdf::function_name(u64::from(i)).map(str::to_owned))
                        .unwrap_or_else(|| {
                            index.map_or_else(
                                || "WdfFunctions[?]".to_owned(),
                                |i| format!("WdfFunctions[{i}]"),
                            )
                        }),
                    "wdf",
                ),
            };
            *externals.entry(key).or_default() += 1;
        }
    }
    let externals = externals
        .into_iter()
        .map(|((name, kind), calls)| ExternalReport { name, kind, calls })
        .collect();
    (unresolved, externals)
}
