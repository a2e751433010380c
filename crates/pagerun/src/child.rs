//! One scenario, in its own process: load the image, bind it, run `DriverEntry` and the
//! scenario, and write the record stream to standard output.

use std::collections::BTreeMap;
use std::path::Path;

use pagecheck::image::Image;

use crate::host::{self, Arena, Host};
use crate::machine::{self, PASSIVE_LEVEL, TRAP_SLOT};
use crate::{framework, kernel, loader, record, scenario};

/// `WdfFunctionCount` as the stub library's variable holds it.
#[allow(clippy::cast_possible_truncation)]
const TABLE_ENTRIES_U32: u32 = framework::TABLE_ENTRIES as u32;

/// What the parent tells a child.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Scenario name.
    pub scenario: String,
    /// Repetitions of the scenario's cycle.
    pub cycles: u32,
    /// The device's hardware key.
    pub registry: BTreeMap<String, u32>,
    /// RVA of `WdfFunctions_01xxx` when the image has no `WdfVersionBind` import (the table
    /// pointer is then set before `DriverEntry`, as a stub library would have).
    pub table_rva: Option<u32>,
    /// RVA of `WdfDriverGlobals`, same case.
    pub globals_rva: Option<u32>,
    /// RVA of `WdfFunctionCount`, if the image has one.
    pub count_rva: Option<u32>,
    /// Single-steps allowed.
    pub step_budget: u64,
    /// CPU seconds allowed.
    pub cpu_seconds: u64,
}

struct Binder;

impl loader::Binder for Binder {
    fn resolve(&mut self, dll: &str, name: &str) -> Option<usize> {
        match dll.to_ascii_lowercase().as_str() {
            "ntoskrnl.exe" | "hal.dll" => kernel::resolve(name),
            "wdfldr.sys" => framework::resolve_loader(name),
            _ => None,
        }
    }
}

fn utf16_string(host: &mut Host, text: &str) -> u64 {
    let units: Vec<u16> = text.encode_utf16().chain(std::iter::once(0)).collect();
    let buffer = host.keep_zeroed(units.len() * 2);
    for (i, u) in units.iter().enumerate() {
        // SAFETY: the block just allocated holds units.len() u16 values.
        unsafe { host::write::<u16>(buffer + 2 * i as u64, *u) };
    }
    let string = host.keep_zeroed(16);
    let bytes = u16::try_from((units.len() - 1) * 2).unwrap_or(u16::MAX - 1);
    // SAFETY: a UNICODE_STRING of 16 bytes just allocated.
    unsafe {
        host::write::<u16>(string, bytes);
        host::write::<u16>(string + 2, bytes + 2);
        host::write::<u64>(string + 8, buffer);
    }
    string
}

/// Runs the plan on `image_path`; returns the process exit status.
#[must_use]
pub fn run(image_path: &Path, plan: &Plan) -> i32 {
    match setup_and_run(image_path, plan) {
        Ok(()) => 0,
        Err(e) => {
            record!("stop load 0x0 0 0 {e}");
            machine::EXIT_STOPPED
        }
    }
}

fn setup_and_run(image_path: &Path, plan: &Plan) -> Result<(), String> {
    let bytes = std::fs::read(image_path).map_err(|e| format!("{}: {e}", image_path.display()))?;
    let image = Image::parse(bytes).map_err(|e| e.to_string())?;
    machine::install_handlers()?;
    machine::set_step_budget(plan.step_budget);

    host::install(Host {
        objects: Vec::new(),
        driver: 0,
        device_add: 0,
        unload: 0,
        device: None,
        init: host::DeviceInit::default(),
        registry: plan.registry.clone(),
        clock: 0,
        pending: std::collections::VecDeque::new(),
        next_callback: 0,
        nonpaged: Arena::new(256 << 20)?,
        paged: Arena::new(256 << 20)?,
        contracts: crate::contracts::table(),
        keep: Vec::new(),
        init_pointer: 0,
        driver_object: 0,
        globals: 0,
    });
    record!(
        "info contracts {}",
        if host::with(|h| h.contracts.available()) {
            "available"
        } else {
            "unavailable"
        }
    );

    let slots = framework::TABLE_ENTRIES + image.imports.len();
    let trap_base = host::map_traps(slots)?;
    let (table, implemented) = framework::build_table(trap_base);
    record!(
        "info framework_methods {implemented} of {}",
        framework::TABLE_ENTRIES
    );
    let (loaded, import_traps) =
        loader::load(&image, &mut Binder, trap_base, framework::TABLE_ENTRIES)?;
    let mut names = framework::table_names();
    names.resize(slots, String::new());
    for (index, name) in &import_traps {
        names[*index].clone_from(name);
    }
    machine::set_traps(trap_base, slots * TRAP_SLOT, names);
    record!(
        "info base {:#x} {}",
        loaded.base,
        if loaded.relocated {
            "relocated"
        } else {
            "preferred"
        }
    );
    if !loaded.unbound.is_empty() {
        record!("info unbound_imports {}", loaded.unbound.join(","));
    }
    host::with(|h| host::register_paged_pool(&h.paged));

    // The globals and, for images without the stub library's bind, the table variables.
    let globals = host::with(|h| {
        let globals = h.keep_zeroed(256);
        h.globals = globals;
        globals
    });
    // SAFETY: the RVAs come from the image's own PDB symbols and lie inside the mapping.
    unsafe {
        if let Some(rva) = plan.table_rva {
            host::write::<u64>(loaded.at(rva) as u64, table);
        }
        if let Some(rva) = plan.globals_rva {
            host::write::<u64>(loaded.at(rva) as u64, globals);
        }
        if let Some(rva) = plan.count_rva {
            host::write::<u32>(loaded.at(rva) as u64, TABLE_ENTRIES_U32);
        }
    }
    let (driver_object, registry_path) = host::with(|h| {
        let object = h.keep_zeroed(0x150);
        // SAFETY: a DRIVER_OBJECT-sized block: Type 4 at 0, Size at 2.
        unsafe {
            host::write::<u16>(object, 4);
            host::write::<u16>(object + 2, 0x150);
        }
        let path = utf16_string(
            h,
            "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\pagerun",
        );
        (object, path)
    });
    host::with(|h| h.driver_object = driver_object);
    crate::clock::publish();
    machine::start_cpu_budget(plan.cpu_seconds);

    machine::set_step(0);
    record!("step 0 DriverEntry");
    let entry = loaded.at(image.entry_point) as u64;
    #[allow(clippy::cast_possible_truncation)]
    let result = host::invoke(
        "DriverEntry",
        entry,
        PASSIVE_LEVEL,
        &[driver_object, registry_path],
    ) as i32;
    // The loader frees INIT once DriverEntry returns.
    machine::discard_init();
    if result < 0 {
        host::event(
            "status",
            entry,
            &format!("DriverEntry failed with {:#010x}", result.cast_unsigned()),
        );
        record!("done");
        return Ok(());
    }
    scenario::run(&plan.scenario, plan.cycles);
    record!("info single_steps {}", machine::steps_taken());
    // SAFETY: getrusage fills the zeroed structure it is given.
    let peak = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &raw mut usage);
        usage.ru_maxrss
    };
    record!("info peak_rss_kib {peak}");
    record!("done");
    Ok(())
}
