//! One scenario, in its own process: load the image, bind it, run `DriverEntry` and the
//! scenario, and write the record stream to standard output.

use std::collections::BTreeMap;
use std::path::Path;

use pagecheck::image::Image;

use crate::gate::Gates;
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
    /// Special-file paths (`WDF_SPECIAL_FILE_TYPE`) the device is put on after it starts.
    pub special_files: Vec<u32>,
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
    /// IOCTLs sent at the end of the scenario, their answers reported.
    pub ioctls: Vec<scenario::Ioctl>,
}

/// Binds kernel imports to their implementations through a gate each (the loader's own
/// `WdfVersionBind` is not a routine with a contract and is bound directly).
struct Binder<'a> {
    gates: &'a mut Gates,
}

impl loader::Binder for Binder<'_> {
    fn resolve(&mut self, dll: &str, name: &str) -> Option<usize> {
        match dll.to_ascii_lowercase().as_str() {
            "ntoskrnl.exe" | "hal.dll" => {
                let implementation = kernel::resolve(name)?;
                Some(
                    self.gates
                        .wrap(name, implementation)
                        .unwrap_or(implementation),
                )
            }
            "wdfldr.sys" => framework::resolve_loader(name),
            _ => None,
        }
    }
}

/// The `DRIVER_OBJECT` the I/O manager hands to `DriverEntry`, as far as a driver may read it.
///
/// The x64 layout of `wdm.h` (336 bytes, the structure's `Size`): `Type` at 0, `Size` at 2, `DeviceObject` at 8,
/// `Flags` at 16, `DriverStart` at 24, `DriverSize` at 32, `DriverSection` at 40,
/// `DriverExtension` at 48, `DriverName` (a 16-byte `UNICODE_STRING`) at 56,
/// `HardwareDatabase` at 72, `FastIoDispatch` at 80, `DriverInit` at 88, `DriverStartIo` at 96,
/// `DriverUnload` at 104, `MajorFunction[28]` from 112. `DRIVER_EXTENSION`: `DriverObject` at 0,
/// `AddDevice` at 8, `Count` at 16, `ServiceKeyName` at 24.
pub mod driver_object {
    use crate::host::{self, Host};

    /// `sizeof(DRIVER_OBJECT)` on x64.
    pub const SIZE: usize = 0x150;
    /// `IO_TYPE_DRIVER`, the object type the I/O manager writes in `Type`.
    const IO_TYPE_DRIVER: u16 = 4;
    /// Offset of `DriverStart`.
    pub const DRIVER_START: u64 = 24;
    /// Offset of `DriverSize`.
    pub const DRIVER_SIZE: u64 = 32;
    /// Offset of `DriverExtension`.
    pub const DRIVER_EXTENSION: u64 = 48;
    /// Offset of `DriverName`.
    pub const DRIVER_NAME: u64 = 56;
    /// Offset of `HardwareDatabase`.
    pub const HARDWARE_DATABASE: u64 = 72;
    /// Offset of `DriverInit`.
    pub const DRIVER_INIT: u64 = 88;
    /// Offset of `DRIVER_EXTENSION.ServiceKeyName`.
    const SERVICE_KEY_NAME: u64 = 24;
    /// The service the host loads the driver as: the last component of the registry path
    /// `DriverEntry` receives, and of `DriverName`.
    pub const SERVICE: &str = "pagerun";

    /// Builds the driver object of an image mapped at `base`, `size_of_image` bytes long
    /// (the optional header's `SizeOfImage`, which is what the loader records), entered at
    /// `entry`. `DriverSection` stays null: it points at the loader's own
    /// `LDR_DATA_TABLE_ENTRY`, which no header documents; a driver that walks it is not
    /// modelled (it reads null and faults, reported as a crash).
    pub fn build(h: &mut Host, base: u64, size_of_image: u32, entry: u64) -> u64 {
        let object = h.keep_zeroed(SIZE);
        // `DRIVER_EXTENSION` is longer than its documented part in the kernel: room to spare.
        let extension = h.keep_zeroed(64);
        let name = h.unicode_string(&format!("\\Driver\\{SERVICE}"));
        let service = h.unicode_string(SERVICE);
        let hardware = h.unicode_string("\\REGISTRY\\MACHINE\\HARDWARE\\DESCRIPTION\\SYSTEM");
        // SAFETY: `object` is a zeroed block of SIZE bytes and `extension` of 64, both kept for
        // the run; every offset written lies inside its block; `name` and `service` are
        // 16-byte UNICODE_STRINGs, copied by value as the structures embed them.
        unsafe {
            host::write::<u16>(object, IO_TYPE_DRIVER);
            host::write::<u16>(object + 2, SIZE as u16);
            host::write::<u64>(object + DRIVER_START, base);
            host::write::<u32>(object + DRIVER_SIZE, size_of_image);
            host::write::<u64>(object + DRIVER_EXTENSION, extension);
            copy_unicode_string(name, object + DRIVER_NAME);
            host::write::<u64>(object + HARDWARE_DATABASE, hardware);
            host::write::<u64>(object + DRIVER_INIT, entry);
            host::write::<u64>(extension, object);
            copy_unicode_string(service, extension + SERVICE_KEY_NAME);
        }
        object
    }

    /// Copies the 16-byte `UNICODE_STRING` at `from` to `to`.
    ///
    /// # Safety
    /// Both point at 16 valid bytes.
    unsafe fn copy_unicode_string(from: u64, to: u64) {
        // SAFETY: the caller's contract.
        unsafe {
            host::write::<u64>(to, host::read::<u64>(from));
            host::write::<u64>(to + 8, host::read::<u64>(from + 8));
        }
    }
}

/// Runs the plan on `image_path`; returns the process exit status.
#[must_use]
pub fn run(image_path: &Path, plan: &Plan) -> i32 {
    match setup_and_run(image_path, plan) {
        Ok(()) => 0,
        Err(e) => {
            record!("stop load 0x0 0 0 0 {e}");
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
        keep: Vec::new(),
        init_pointer: 0,
        driver_object: 0,
        globals: 0,
        answers: BTreeMap::new(),
        device_failed: false,
    });
    let slots = framework::TABLE_ENTRIES + image.imports.len();
    let trap_base = host::map_traps(slots)?;
    let mut gates = Gates::new(slots)?;
    let (table, implemented) = framework::build_table(trap_base, &mut gates);
    record!(
        "info framework_methods {implemented} of {}",
        framework::TABLE_ENTRIES
    );
    let (loaded, import_traps) = loader::load(
        &image,
        &mut Binder { gates: &mut gates },
        trap_base,
        framework::TABLE_ENTRIES,
    )?;
    let (gated, with_contract) = gates.counts();
    record!(
        "info contracts {with_contract} of the {gated} routines the host binds for this image have a contract"
    );
    gates.finish();
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
    let entry = loaded.at(image.entry_point) as u64;
    let (driver_object, registry_path) = host::with(|h| {
        let object = driver_object::build(h, loaded.base as u64, image.size_of_image, entry);
        let path = h.unicode_string(&format!(
            "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\{}",
            driver_object::SERVICE
        ));
        (object, path)
    });
    host::with(|h| h.driver_object = driver_object);
    crate::clock::publish();
    machine::start_cpu_budget(plan.cpu_seconds);

    machine::set_step(0);
    record!("step 0 DriverEntry");
    #[allow(clippy::cast_possible_truncation)]
    let id = host::next_callback_id();
    let result = host::invoke(
        "DriverEntry",
        entry,
        PASSIVE_LEVEL,
        &[driver_object, registry_path],
    ) as i32;
    // The loader frees INIT once DriverEntry returns.
    machine::discard_init();
    if result < 0 {
        host::failure(
            "start",
            entry,
            id,
            PASSIVE_LEVEL,
            &format!(
                "DriverEntry failed with {:#010x}: the driver did not load, so the scenario did not run",
                result.cast_unsigned()
            ),
        );
        record!("done");
        return Ok(());
    }
    scenario::run(
        &plan.scenario,
        plan.cycles,
        &plan.special_files,
        &plan.ioctls,
    );
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
