//! Where each function of a KMDF driver may live, and how that is recorded in the image.
//!
//! Three consumers share this crate:
//! - `pagewise-macros` expands `#[init]`, `#[paged]`, `#[paged(power_down)]`,
//!   `#[resident(power_up)]` and `#[resident(dispatch)]` into a section attribute, a
//!   [`RoleRecord`] in the discardable [`section::ROLE_RECORDS`] section and a [`Placed`]
//!   marker type;
//! - the driver registers callbacks only through `pagewise_macros::callbacks!`, where the
//!   configuration structure and the field name select the slot ([`config`]), so the
//!   compiler rejects a function whose role does not meet that slot's [`Slot::Needs`], and
//!   the same table lists every registration ([`Registration`]) for the driver's
//!   self-check;
//! - `cargo pagecheck` reads the records back from the linked image with [`parse_records`].
//!
//! A callback has no value a driver could store anywhere else: its name stands for a marker
//! type only, and [`Placed::store`] writes it into one [`Field`], which only the table
//! defines. `register`, which hands out the function for a slot named apart from the
//! field, exists only with the `tools` feature, for tools and tests that build images with
//! deliberate mistakes.
#![no_std]

#[cfg(test)]
extern crate std;

pub mod config;
pub mod slot;

/// Section names. The kernel loader pages a section whose name is `PAGE` plus at most four
/// characters, discards `INIT` when `DriverEntry` returns, and keeps everything else
/// resident.
pub mod section {
    /// Discarded after `DriverEntry` returns.
    pub const INIT: &str = "INIT";
    /// Pageable code that runs at `PASSIVE_LEVEL` off the power path.
    pub const PAGED: &str = "PAGE";
    /// The power-down path: pageable while the device is power-pageable, locked with
    /// `MmLockPagableCodeSection` while it is not.
    pub const POWER_DOWN: &str = "PAGEPWR";
    /// Resident code: the compiler's default section.
    pub const RESIDENT: &str = ".text";
    /// Role records. Discardable (`/SECTION:.pwrole,RD`): only tools read it, never the driver.
    pub const ROLE_RECORDS: &str = ".pwrole";

    /// True for a section name the kernel loader treats as pageable: upper-case `PAGE`
    /// followed by at most four more characters.
    #[must_use]
    pub fn is_pageable(name: &str) -> bool {
        name.starts_with(PAGED) && name.len() <= 8
    }

    /// True for the discardable initialisation section.
    #[must_use]
    pub fn is_init(name: &str) -> bool {
        name == INIT
    }
}

/// A function's placement role. The discriminants are the on-image encoding.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// `DriverEntry` and what only it calls: `INIT`, discarded after load.
    Init = 1,
    /// Pageable, `PASSIVE_LEVEL`, not on a power path: `PAGE`.
    Paged = 2,
    /// The power-down path: `PAGEPWR`, locked while the device is power-nonpageable.
    PowerDown = 3,
    /// The return-to-D0 path: resident so that wake does not wait for the paging disk.
    PowerUp = 4,
    /// May run at `DISPATCH_LEVEL` or under a spin lock: resident.
    Dispatch = 5,
}

impl Role {
    /// Every role, in encoding order.
    pub const ALL: [Role; 5] = [
        Role::Init,
        Role::Paged,
        Role::PowerDown,
        Role::PowerUp,
        Role::Dispatch,
    ];

    /// Decodes the on-image value.
    #[must_use]
    pub const fn from_u16(value: u16) -> Option<Role> {
        match value {
            1 => Some(Role::Init),
            2 => Some(Role::Paged),
            3 => Some(Role::PowerDown),
            4 => Some(Role::PowerUp),
            5 => Some(Role::Dispatch),
            _ => None,
        }
    }

    /// The kebab-case name used on command lines and in reports (`power-up`, ...).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Role::Init => "init",
            Role::Paged => "paged",
            Role::PowerDown => "power-down",
            Role::PowerUp => "power-up",
            Role::Dispatch => "dispatch",
        }
    }

    /// Parses [`Role::name`].
    #[must_use]
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.name() == name)
    }

    /// The section the placement attribute puts a function of this role in.
    #[must_use]
    pub const fn section(self) -> &'static str {
        match self {
            Role::Init => section::INIT,
            Role::Paged => section::PAGED,
            Role::PowerDown => section::POWER_DOWN,
            Role::PowerUp | Role::Dispatch => section::RESIDENT,
        }
    }

    /// True when the function, and everything it calls, must stay in memory.
    #[must_use]
    pub const fn is_resident(self) -> bool {
        matches!(self, Role::PowerUp | Role::Dispatch)
    }
}

/// `b"PWRL"` read as a little-endian `u32`.
pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"PWRL");
/// Version of the [`RoleRecord`] layout.
pub const RECORD_VERSION: u16 = 1;
/// Size of one record in the image.
pub const RECORD_SIZE: usize = 16;

/// One function's role, as the placement attribute embeds it in [`section::ROLE_RECORDS`].
///
/// The function pointer is an absolute address: the image file holds it relative to the
/// preferred image base (a base relocation covers it), so a tool gets the RVA as
/// `function - ImageBase`.
#[repr(C)]
#[derive(Debug)]
pub struct RoleRecord {
    /// [`RECORD_MAGIC`].
    pub magic: u32,
    /// [`RECORD_VERSION`].
    pub version: u16,
    /// A [`Role`] discriminant.
    pub role: u16,
    /// The function.
    pub function: *const (),
}

const _: () = assert!(core::mem::size_of::<RoleRecord>() == RECORD_SIZE);
const _: () = assert!(core::mem::align_of::<RoleRecord>() == 8);

// SAFETY: a record is immutable data written by the compiler; the pointer is never
// dereferenced through it, only read by tools as a number.
unsafe impl Sync for RoleRecord {}

impl RoleRecord {
    /// A record for `function` with `role`.
    #[must_use]
    pub const fn new(role: Role, function: *const ()) -> RoleRecord {
        RoleRecord {
            magic: RECORD_MAGIC,
            version: RECORD_VERSION,
            role: role as u16,
            function,
        }
    }
}

/// A record read back from an image's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedRecord {
    /// The function's role.
    pub role: Role,
    /// The function's address as stored in the file (preferred image base + RVA).
    pub address: u64,
}

/// Why a record section could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// A non-zero 16-byte slot at `offset` does not start with [`RECORD_MAGIC`].
    BadMagic {
        /// Byte offset in the section.
        offset: usize,
    },
    /// A record at `offset` has a layout version this crate does not know.
    UnknownVersion {
        /// Byte offset in the section.
        offset: usize,
        /// The version found.
        version: u16,
    },
    /// A record at `offset` names a role this crate does not know.
    UnknownRole {
        /// Byte offset in the section.
        offset: usize,
        /// The role value found.
        role: u16,
    },
}

impl core::fmt::Display for RecordError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            RecordError::BadMagic { offset } => {
                write!(f, "role record at offset {offset:#x} has no PWRL magic")
            }
            RecordError::UnknownVersion { offset, version } => {
                write!(
                    f,
                    "role record at offset {offset:#x} has unknown version {version}"
                )
            }
            RecordError::UnknownRole { offset, role } => {
                write!(
                    f,
                    "role record at offset {offset:#x} has unknown role {role}"
                )
            }
        }
    }
}

/// Reads the records of a [`section::ROLE_RECORDS`] section.
///
/// Records are 16 bytes and 8-aligned, so the linker may only pad between them with
/// zeros: all-zero slots are skipped, a trailing partial slot (section padding) too.
pub fn parse_records(bytes: &[u8]) -> impl Iterator<Item = Result<ParsedRecord, RecordError>> + '_ {
    bytes
        .chunks_exact(RECORD_SIZE)
        .enumerate()
        .filter(|(_, slot)| slot.iter().any(|&b| b != 0))
        .map(|(index, slot)| {
            let offset = index * RECORD_SIZE;
            let word = |range: core::ops::Range<usize>| {
                let mut buf = [0u8; 8];
                buf[..range.len()].copy_from_slice(&slot[range]);
                u64::from_le_bytes(buf)
            };
            // The casts cannot truncate: each word was read from a field of that width.
            #[allow(clippy::cast_possible_truncation)]
            let (magic, version, role) = (word(0..4) as u32, word(4..6) as u16, word(6..8) as u16);
            if magic != RECORD_MAGIC {
                return Err(RecordError::BadMagic { offset });
            }
            if version != RECORD_VERSION {
                return Err(RecordError::UnknownVersion { offset, version });
            }
            let role = Role::from_u16(role).ok_or(RecordError::UnknownRole { offset, role })?;
            Ok(ParsedRecord {
                role,
                address: word(8..16),
            })
        })
}

/// Marker types, one per role, for the type-level check in [`Placed::store`].
pub mod role {
    /// [`super::Role::Init`].
    pub enum Init {}
    /// [`super::Role::Paged`].
    pub enum Paged {}
    /// [`super::Role::PowerDown`].
    pub enum PowerDown {}
    /// [`super::Role::PowerUp`].
    pub enum PowerUp {}
    /// [`super::Role::Dispatch`].
    pub enum Dispatch {}
}

/// A role marker type and its runtime value.
pub trait PlacementRole {
    /// The runtime value of this marker.
    const ROLE: Role;
}

impl PlacementRole for role::Init {
    const ROLE: Role = Role::Init;
}
impl PlacementRole for role::Paged {
    const ROLE: Role = Role::Paged;
}
impl PlacementRole for role::PowerDown {
    const ROLE: Role = Role::PowerDown;
}
impl PlacementRole for role::PowerUp {
    const ROLE: Role = Role::PowerUp;
}
impl PlacementRole for role::Dispatch {
    const ROLE: Role = Role::Dispatch;
}

/// A function that a placement attribute has put in its section.
///
/// The attribute implements this for a marker type that has the function's own name (in
/// the type namespace). For a callback (a function with an `extern` ABI) that marker is
/// the only thing the name stands for: the function itself is defined inside the
/// attribute's expansion, out of reach, and this trait never hands it out. It can only be
/// stored with [`Placed::store`], into the one [`Field`] a `pagewise_macros::callbacks!`
/// entry names, after the compiler has checked that the field's slot accepts the role.
///
/// # Safety
///
/// Implement only through the placement attributes: the function must really be placed as
/// `Role` says, `ADDRESS` must be its address, and `store` must pass the function to
/// `F::store` exactly once and do nothing else.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no placement attribute",
    label = "not placed",
    note = "mark the function with #[init], #[paged], #[paged(power_down)], #[resident(power_up)] or #[resident(dispatch)] from pagewise-macros"
)]
pub unsafe trait Placed {
    /// The function's role marker.
    type Role: PlacementRole;
    /// The function's pointer type.
    type Fn: Copy;
    /// The function's address, for the role record and the self-check: a number, not a
    /// callable value.
    const ADDRESS: *const ();
    /// The function's name, for diagnostics.
    const NAME: &'static str;

    /// Stores the function into the field `F` of `target`. A compile error unless the
    /// slot of `F` accepts this function's role.
    fn store<F>(target: &mut F::Structure)
    where
        F: Field<Fn = Self::Fn>,
        <F::Slot as Slot>::Needs: Accepts<Self::Role>;
}

/// A WDF callback slot: what placement a function registered in it must have.
pub trait Slot {
    /// One of the [`needs`] markers.
    type Needs;
    /// The row of the paging map this slot belongs to.
    const INFO: slot::SlotInfo;
}

/// What a slot needs from the function registered in it.
pub mod needs {
    /// On the return-to-D0 path: only [`crate::role::PowerUp`].
    pub enum PowerUp {}
    /// May run at `DISPATCH_LEVEL`: [`crate::role::PowerUp`] or [`crate::role::Dispatch`].
    pub enum Resident {}
    /// On the power-down path: resident, or [`crate::role::PowerDown`] (locked on demand).
    pub enum PowerDown {}
    /// `PASSIVE_LEVEL`, off the power path: any role but [`crate::role::Init`], whose code
    /// is gone once `DriverEntry` returns.
    pub enum Passive {}
}

/// `Self` (a [`needs`] marker) accepts a function placed as `R`.
#[diagnostic::on_unimplemented(
    message = "a function placed as `{R}` cannot be registered in a slot that needs `{Self}`",
    label = "placement does not meet this callback slot's needs",
    note = "mark the function with the placement attribute the slot needs: power-up slots take #[resident(power_up)], dispatch-level slots #[resident(..)], power-down slots #[paged(power_down)] or #[resident(..)], passive slots anything but #[init]"
)]
pub trait Accepts<R> {}

impl Accepts<role::PowerUp> for needs::PowerUp {}
impl Accepts<role::PowerUp> for needs::Resident {}
impl Accepts<role::Dispatch> for needs::Resident {}
impl Accepts<role::PowerDown> for needs::PowerDown {}
impl Accepts<role::PowerUp> for needs::PowerDown {}
impl Accepts<role::Dispatch> for needs::PowerDown {}
impl Accepts<role::Paged> for needs::Passive {}
impl Accepts<role::PowerDown> for needs::Passive {}
impl Accepts<role::PowerUp> for needs::Passive {}
impl Accepts<role::Dispatch> for needs::Passive {}

/// One callback field of one configuration structure, and the slot it stands for.
///
/// `pagewise_macros::callbacks!` implements it, inside the function each table block
/// becomes, for one local type per entry: the type is named after the field and its slot is
/// `pagewise_roles::config::<STRUCTURE>::<field>`, so nothing outside the table can name it.
///
/// # Safety
///
/// `store` writes `value` into exactly the field whose slot is `Slot`, and nowhere else.
/// An implementation that stores into another field defeats the slot check; only the table
/// (and tools that build deliberately wrong images) implement this.
pub unsafe trait Field {
    /// The slot the field takes ([`config`] names it).
    type Slot: Slot;
    /// The configuration structure that has the field.
    type Structure;
    /// The function-pointer type the field holds (inside its `Option`).
    type Fn: Copy;
    /// Writes the function into the field.
    fn store(target: &mut Self::Structure, value: Self::Fn);
}

/// The function `C` as a value for callback slot `S`; a compile error unless `C`'s placement
/// meets what `S` needs.
///
/// Only with the `tools` feature, for tools and tests that build images with deliberate
/// mistakes (a shipped driver is built without it, so this function does not exist there):
/// the slot is named apart from the field the value then goes into, which is exactly the
/// hole the registration table closes. A driver registers through
/// `pagewise_macros::callbacks!`, which derives `S` from the field.
#[cfg(feature = "tools")]
#[must_use]
// Always inlined: the store and the read then fold into the constant function pointer.
#[inline(always)]
pub fn register<S, C>() -> C::Fn
where
    S: Slot,
    C: Placed,
    S::Needs: Accepts<C::Role>,
{
    /// A field that is a bare value, slot `S`.
    struct Value<S, T>(core::marker::PhantomData<(S, T)>);
    // SAFETY: the only field is the value itself, and `register` is its only user.
    unsafe impl<S: Slot, T: Copy> Field for Value<S, T> {
        type Slot = S;
        type Structure = core::mem::MaybeUninit<T>;
        type Fn = T;
        #[expect(clippy::inline_always, reason = "part of `register`'s constant")]
        #[inline(always)]
        fn store(target: &mut Self::Structure, value: T) {
            target.write(value);
        }
    }
    let mut value = core::mem::MaybeUninit::uninit();
    C::store::<Value<S, C::Fn>>(&mut value);
    // SAFETY: `Placed::store` passes the function to `Field::store` exactly once (the
    // trait's contract), which wrote it.
    unsafe { value.assume_init() }
}

/// The function `C` as a value, checked against no slot at all: for tools and fixtures
/// that store callbacks where this crate has no slot for them (a child list's
/// configuration, an exported interface's routines), or plant a mistake on purpose. Only
/// with the `tools` feature, like [`register`]; a driver has neither.
#[cfg(feature = "tools")]
#[must_use]
// Always inlined, as `register`: the store and the read fold into the constant.
#[inline(always)]
pub fn function<C: Placed>() -> C::Fn {
    /// A slot that accepts every role.
    enum AnySlot {}
    /// What [`AnySlot`] needs: nothing.
    enum Anything {}
    impl<R> Accepts<R> for Anything {}
    impl Slot for AnySlot {
        type Needs = Anything;
        const INFO: slot::SlotInfo = slot::SlotInfo {
            name: "(any, tools only)",
            irql: "any",
            need: slot::Need::Passive,
            rule: "no rule: tools and fixtures only",
        };
    }
    #[expect(
        clippy::disallowed_methods,
        reason = "register is disallowed for drivers; this is its tools-only sibling"
    )]
    register::<AnySlot, C>()
}

/// One callback a `pagewise_macros::callbacks!` table registers: the driver's own id for
/// it, the role its placement attribute declared, and its address.
#[derive(Clone, Copy, Debug)]
pub struct Registration<I> {
    /// The id the table gave it (the driver's wire id of the callback, say).
    pub id: I,
    /// The role of the function's placement attribute.
    pub role: Role,
    /// The function.
    pub function: *const (),
}

impl<I> Registration<I> {
    /// The entry for function `C`. `pagewise_macros::callbacks!` checks the slot where it
    /// stores the function. Not for direct use.
    #[doc(hidden)]
    #[must_use]
    pub const fn __new<C: Placed>(id: I) -> Registration<I> {
        Registration {
            id,
            role: <C::Role as PlacementRole>::ROLE,
            function: C::ADDRESS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn image_bytes(records: &[(Role, u64)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(role, address) in records {
            out.extend_from_slice(&RECORD_MAGIC.to_le_bytes());
            out.extend_from_slice(&RECORD_VERSION.to_le_bytes());
            out.extend_from_slice(&(role as u16).to_le_bytes());
            out.extend_from_slice(&address.to_le_bytes());
        }
        out
    }

    #[test]
    fn records_round_trip_and_padding_is_skipped() {
        let mut bytes =
            image_bytes(&[(Role::PowerUp, 0x1_4000_1000), (Role::Paged, 0x1_4000_2010)]);
        bytes.extend_from_slice(&[0; 16]);
        bytes.extend_from_slice(&image_bytes(&[(Role::Dispatch, 0x1_4000_3000)]));
        bytes.extend_from_slice(&[0; 7]);
        let parsed: Vec<_> = parse_records(&bytes)
            .collect::<Result<_, _>>()
            .expect("valid");
        assert_eq!(
            parsed,
            [
                ParsedRecord {
                    role: Role::PowerUp,
                    address: 0x1_4000_1000
                },
                ParsedRecord {
                    role: Role::Paged,
                    address: 0x1_4000_2010
                },
                ParsedRecord {
                    role: Role::Dispatch,
                    address: 0x1_4000_3000
                },
            ]
        );
    }

    #[test]
    fn corrupt_records_are_reported_with_their_offset() {
        let mut bytes = image_bytes(&[(Role::Init, 1), (Role::Init, 2), (Role::Init, 3)]);
        bytes[16] = b'X';
        bytes[32 + 6] = 9;
        let results: Vec<_> = parse_records(&bytes).collect();
        assert!(results[0].is_ok());
        assert_eq!(results[1], Err(RecordError::BadMagic { offset: 16 }));
        assert_eq!(
            results[2],
            Err(RecordError::UnknownRole {
                offset: 32,
                role: 9
            })
        );
        bytes[32 + 4] = 2;
        assert_eq!(
            parse_records(&bytes).nth(2),
            Some(Err(RecordError::UnknownVersion {
                offset: 32,
                version: 2
            }))
        );
    }

    #[test]
    fn role_names_and_sections() {
        for role in Role::ALL {
            assert_eq!(Role::from_name(role.name()), Some(role));
            assert_eq!(Role::from_u16(role as u16), Some(role));
        }
        assert_eq!(Role::from_u16(0), None);
        assert!(section::is_pageable(Role::PowerDown.section()));
        assert!(section::is_pageable(Role::Paged.section()));
        assert!(!section::is_pageable(Role::PowerUp.section()));
        assert!(!section::is_pageable("PAGEABCDE"));
        assert!(!section::is_pageable("page"));
        assert!(section::is_init(Role::Init.section()));
        assert!(Role::Dispatch.is_resident() && !Role::PowerDown.is_resident());
    }

    #[test]
    fn record_layout_is_what_tools_read() {
        fn demo() {}
        let record = RoleRecord::new(Role::PowerDown, demo as *const ());
        // SAFETY: RoleRecord is repr(C), 16 bytes, no padding (checked above).
        let bytes: [u8; RECORD_SIZE] = unsafe { core::mem::transmute_copy(&record) };
        let parsed = parse_records(&bytes)
            .next()
            .expect("one record")
            .expect("valid");
        assert_eq!(parsed.role, Role::PowerDown);
        assert_eq!(parsed.address, demo as *const () as usize as u64);
    }
}
