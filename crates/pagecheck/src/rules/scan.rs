//! What the third-step rules need beyond the call graph's edges, gathered from the dataflow
//! pass ([`crate::flow::Flow`]): the sites the `WdfDevStateIsNP` guard protects
//! (`not_np`), the value of the argument a routine's contract names at each call of it
//! (`arguments`, [`routine_contracts::argument_of_interest`]), and the call graph's references
//! to data in pageable and discardable sections.
//!
//! The call graph keeps references into non-code `PAGE*` and `INIT` sections. Data can also
//! sit in such a section next to code (a linker `/MERGE` of `INITDATA` into `INIT`, a table in
//! `PAGE`): a code section where the PDB names a variable. For those few sections this module
//! reads the rip-relative operands of the functions itself.

use std::collections::{HashMap, HashSet};

use iced_x86::{Decoder, DecoderOptions, Instruction, InstructionInfoFactory, Mnemonic, OpAccess};

use super::model::{DataAccess, DataPlace, DataRef};
use crate::callgraph::{self, CallGraph, External};
use crate::flow::Flow;
use crate::functions::Functions;
use crate::image::{Image, Residency};
use crate::pdb::{SymbolKind, Symbols};
use crate::registration::Policy;

/// The facts the rules read, per call or data site.
#[derive(Debug, Default)]
pub struct Facts {
    /// Value of the deciding argument at an external call site.
    pub arguments: HashMap<u32, u64>,
    /// Data references, per function.
    pub data: HashMap<usize, Vec<DataRef>>,
    /// Sites the `WdfDevStateIsNP` guard protects.
    pub guarded: HashSet<u32>,
}

/// Where data at `rva` lives, for a section that is not resident.
fn place_of(image: &Image, policy: &Policy, rva: u32) -> Option<DataPlace> {
    let section = image.section_of(rva)?;
    match image.sections[section].residency {
        Residency::Resident => None,
        Residency::Pageable => Some(DataPlace::Pageable {
            locked: policy.lock_of(section).is_some(),
        }),
        Residency::Discardable => Some(DataPlace::Init),
    }
}

/// The code sections named `PAGE*` or `INIT` where the PDB names a variable: data the call
/// graph does not keep references to.
fn code_sections_with_data(image: &Image, symbols: &Symbols) -> Vec<usize> {
    image
        .sections
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_code() && s.residency != Residency::Resident)
        .filter(|(_, s)| {
            symbols
                .symbols
                .iter()
                .any(|sym| sym.kind == SymbolKind::Data && s.contains(sym.rva))
        })
        .map(|(i, _)| i)
        .collect()
}

/// The routine an external call reaches, as the contract table names it.
#[must_use]
pub fn routine_name(image: &Image, external: External) -> Option<String> {
    match external {
        External::Import(slot) => image
            .import_at(slot)
            .map(|n| n.rsplit_once('!').map_or(n, |(_, name)| name).to_owned()),
        External::Wdf(index) => {
            index.and_then(|i| crate::wdf::function_name(u64::from(i)).map(str::to_owned))
        }
    }
}

/// The facts for the rules, from the dataflow pass, the call graph and (for data next to code)
/// the functions' own operands.
#[must_use]
pub fn facts(
    image: &Image,
    functions: &Functions,
    calls: &CallGraph,
    flow: &Flow,
    policy: &Policy,
    symbols: &Symbols,
) -> Facts {
    let mut facts = Facts {
        arguments: flow
            .arguments
            .iter()
            .filter_map(|&(site, _, value)| value.map(|v| (site, v)))
            .collect(),
        data: HashMap::new(),
        guarded: flow.not_np.iter().copied().collect(),
    };
    let mixed = code_sections_with_data(image, symbols);
    let mut info = InstructionInfoFactory::new();
    let mut buffer: Vec<Instruction> = Vec::new();
    for (f, function) in functions.list.iter().enumerate() {
        // INIT code may use INIT data, and runs before anything pageable matters.
        if function.residency == Residency::Discardable {
            continue;
        }
        let mut refs: Vec<DataRef> = calls
            .data_refs_of(f)
            .iter()
            .filter_map(|r| {
                Some(DataRef {
                    site: r.site,
                    target: r.target,
                    place: place_of(image, policy, r.target)?,
                    access: match r.access {
                        callgraph::DataAccess::Read => DataAccess::Read,
                        callgraph::DataAccess::Write => DataAccess::Write,
                        callgraph::DataAccess::Address => DataAccess::Address,
                    },
                })
            })
            .collect();
        if !mixed.is_empty() {
            decode_function(
                image,
                function.start,
                function.end,
                function.section,
                &mut buffer,
            );
            refs.extend(data_refs(
                image, functions, policy, &mixed, &buffer, &mut info,
            ));
        }
        if !refs.is_empty() {
            facts.data.insert(f, refs);
        }
    }
    facts
}

/// Decodes `[start, end)` into `out`.
fn decode_function(
    image: &Image,
    start: u32,
    end: u32,
    section: usize,
    out: &mut Vec<Instruction>,
) {
    out.clear();
    let s = &image.sections[section];
    let data = image.section_data(section);
    let from = (start - s.rva) as usize;
    let to = ((end - s.rva) as usize).min(data.len());
    if from >= to {
        return;
    }
    let mut decoder = Decoder::with_ip(
        64,
        &data[from..to],
        image.image_base.wrapping_add(u64::from(start)),
        DecoderOptions::NONE,
    );
    let mut instr = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut instr);
        out.push(instr);
    }
}

/// RVA of an instruction of an image loaded at `image_base`.
fn rva(image_base: u64, instr: &Instruction) -> u32 {
    // Functions lie inside the image, so the difference fits.
    #[allow(clippy::cast_possible_truncation)]
    let rva = instr.ip().wrapping_sub(image_base) as u32;
    rva
}

/// The references of one function's instructions to data in `sections` (code sections that
/// hold variables).
fn data_refs(
    image: &Image,
    functions: &Functions,
    policy: &Policy,
    sections: &[usize],
    code: &[Instruction],
    info: &mut InstructionInfoFactory,
) -> Vec<DataRef> {
    let mut out = Vec::new();
    for instr in code {
        if instr.is_invalid() || !instr.is_ip_rel_memory_operand() {
            continue;
        }
        let Some(target) = image.rva_of_va(instr.ip_rel_memory_address()) else {
            continue;
        };
        if !sections.iter().any(|&i| image.sections[i].contains(target)) {
            continue;
        }
        let Some(place) = place_of(image, policy, target) else {
            continue;
        };
        let access = if instr.mnemonic() == Mnemonic::Lea {
            // The address of a function in a PAGE or INIT code section is not data: the code
            // rules judge it.
            if functions.containing(target).is_some() {
                continue;
            }
            DataAccess::Address
        } else {
            let written = info.info(instr).used_memory().iter().any(|m| {
                matches!(
                    m.access(),
                    OpAccess::Write
                        | OpAccess::ReadWrite
                        | OpAccess::CondWrite
                        | OpAccess::ReadCondWrite
                )
            });
            if written {
                DataAccess::Write
            } else {
                DataAccess::Read
            }
        };
        out.push(DataRef {
            site: rva(image.image_base, instr),
            target,
            place,
            access,
        });
    }
    out
}
