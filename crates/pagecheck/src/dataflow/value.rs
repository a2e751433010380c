//! The value domain: what the analysis knows about one general-purpose register, one half of
//! an SSE register or one eight-byte memory cell, and how two paths' knowledge meets at a join.

/// What the tracker knows about a value inside one function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// Anything.
    Unknown,
    /// An address inside the image, from `lea reg, [rip+x]` or a relocated constant.
    Address(u32),
    /// An [`Value::Address`] that reached a join on one path only: the others may bring
    /// anything. A call through it may reach that code (an edge) and may go anywhere else
    /// (unresolved).
    MaybeAddress(u32),
    /// Paths into a join brought different addresses: one of those in the set, or, unless
    /// `exact`, anything else.
    AnyOf {
        /// The addresses, interned in the analysis' [`Sets`].
        set: SetId,
        /// Every path brought one of them.
        exact: bool,
    },
    /// Paths into a join brought more addresses than a set holds ([`Sets::MAX_LEN`]), or the
    /// analysis ran out of sets: anything. The bottom of the lattice: nothing meets it into
    /// something more precise.
    Several,
    /// A number.
    Const(u64),
    /// One of two small numbers (the paths into a join disagree on a constant): enough for a
    /// framework call whose index is chosen by a branch.
    Pair(u32, u32),
    /// A register whose low `bytes` bytes were set to `low` (`mov r9b, 2`): a `UCHAR` or
    /// `USHORT` argument, the rest of the register unknown.
    Low {
        /// The low bytes.
        low: u16,
        /// How many of them (1 or 2).
        bytes: u8,
    },
    /// An address in the function's own frame: the stack pointer at entry plus this.
    Stack(i32),
    /// The function's incoming argument `index` (0 = `rcx`), plus `offset` when it is
    /// used as a pointer.
    Param {
        /// Argument position.
        index: u8,
        /// Added to the argument.
        offset: i32,
    },
    /// The address of an imported function, loaded from its import address table slot.
    Import(u32),
    /// Control Flow Guard's dispatch function, loaded from its pointer: a call through it
    /// goes to `rax`.
    GuardDispatch,
    /// Control Flow Guard's check function, loaded from its pointer: a call through it only
    /// validates `rcx`.
    GuardCheck,
    /// A `WDF_DEVICE_POWER_STATE` (or power-policy state) the framework returned
    /// (`WdfDeviceGetDevicePowerState`): the value `WdfDevStateIsNP` tests.
    DevState,
    /// `WdfDevStateIsNP` of such a state (nonzero when the device is in a nonpageable state),
    /// or, when `negated`, its negation.
    NpBit {
        /// Nonzero when the device is *not* in a nonpageable state.
        negated: bool,
    },
    /// The KMDF function table pointer, loaded from `WdfFunctions_01xxx`.
    WdfTable,
    /// A slot of that table (`None`: the index is in a register).
    WdfSlot(Option<u32>),
    /// A jump-table entry: 4 bytes read at `table + index*4`.
    TableEntry {
        /// The table.
        table: u32,
        /// `movsxd` (LLVM) rather than `mov` (MSVC).
        signed: bool,
    },
    /// A jump-table entry plus the base it is relative to.
    TableTarget {
        /// The table.
        table: u32,
        /// What the entries are added to.
        base: u32,
        /// As in [`Value::TableEntry`].
        signed: bool,
    },
}

/// A set of addresses in [`Sets`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SetId(u32);

/// The address sets of one analysis, interned: equal sets have one [`SetId`], so values
/// compare by identity, and a value stays a few bytes however many addresses paths bring to
/// a join (a C driver's merged call sites bring nine to one `WdfInterruptSynchronize`).
/// Bounded: a set of more than [`Sets::MAX_LEN`] addresses, or more than [`Sets::MAX_SETS`]
/// sets, is [`Value::Several`].
#[derive(Debug, Default)]
pub struct Sets {
    lists: Vec<Box<[u32]>>,
    index: std::collections::HashMap<Box<[u32]>, SetId>,
}

impl Sets {
    /// The most addresses in one set.
    pub const MAX_LEN: usize = 64;
    /// The most sets in one analysis.
    pub const MAX_SETS: usize = 1 << 16;

    /// The addresses of `set`, ascending.
    #[must_use]
    pub fn get(&self, set: SetId) -> &[u32] {
        self.lists.get(set.0 as usize).map_or(&[], |l| &**l)
    }

    /// The value for the union of `a` and `b` (both sorted), exact when both are.
    fn union(&mut self, a: &[u32], b: &[u32], exact: bool) -> Value {
        let mut list: Vec<u32> = a.iter().chain(b).copied().collect();
        list.sort_unstable();
        list.dedup();
        match (list.as_slice(), exact) {
            (&[one], true) => return Value::Address(one),
            (&[one], false) => return Value::MaybeAddress(one),
            _ => {}
        }
        if list.len() > Self::MAX_LEN {
            return Value::Several;
        }
        let list = list.into_boxed_slice();
        if let Some(&set) = self.index.get(&list) {
            return Value::AnyOf { set, exact };
        }
        if self.lists.len() >= Self::MAX_SETS {
            return Value::Several;
        }
        let set = SetId(u32::try_from(self.lists.len()).unwrap_or(u32::MAX));
        self.lists.push(list.clone());
        self.index.insert(list, set);
        Value::AnyOf { set, exact }
    }
}

impl Value {
    /// The addresses the value may be, and whether it is one of them for certain.
    fn addresses<'s>(&'s self, sets: &'s Sets) -> Option<(&'s [u32], bool)> {
        match self {
            Value::Address(a) => Some((std::slice::from_ref(a), true)),
            Value::MaybeAddress(a) => Some((std::slice::from_ref(a), false)),
            Value::AnyOf { set, exact } => Some((sets.get(*set), *exact)),
            _ => None,
        }
    }

    /// The code or data addresses the value may hold (empty for anything else).
    #[must_use]
    pub fn possible_addresses<'s>(&'s self, sets: &'s Sets) -> &'s [u32] {
        self.addresses(sets).map_or(&[], |(list, _)| list)
    }

    /// The value with its addresses no longer certain (what a join with an unknown path
    /// leaves); anything else is unknown.
    #[must_use]
    pub fn only_possible(self) -> Value {
        match self {
            Value::Address(a) | Value::MaybeAddress(a) => Value::MaybeAddress(a),
            Value::AnyOf { set, .. } => Value::AnyOf { set, exact: false },
            Value::Several => Value::Several,
            _ => Value::Unknown,
        }
    }

    /// What two paths into a join agree on. Addresses the paths bring survive as a set
    /// ([`Value::AnyOf`]), exact when every path brought one of them and a possibility
    /// otherwise; past [`Addresses::MAX`] of them, [`Value::Several`].
    ///
    /// The meet is commutative, associative and idempotent, and every chain of meets is
    /// short (a concrete value, then a pair or [`Value::Unknown`], then growing address sets,
    /// then [`Value::Several`]), so the fixed point over a function's joins is reached in a
    /// few passes.
    #[must_use]
    pub fn meet(self, other: Value, sets: &mut Sets) -> Value {
        match (self, other) {
            (a, b) if a == b => a,
            (Value::Several, _) | (_, Value::Several) => Value::Several,
            (a, b) => {
                if let Some((x, xe)) = a.addresses(sets) {
                    let (x, xe) = (x.to_vec(), xe);
                    return match b.addresses(sets) {
                        Some((y, ye)) => {
                            let y = y.to_vec();
                            sets.union(&x, &y, xe && ye)
                        }
                        None => a.only_possible(),
                    };
                }
                if b.addresses(sets).is_some() {
                    return b.only_possible();
                }
                match (a, b) {
                    (Value::Const(a), Value::Const(b)) => {
                        match (u32::try_from(a), u32::try_from(b)) {
                            (Ok(a), Ok(b)) => Value::Pair(a.min(b), a.max(b)),
                            _ => Value::Unknown,
                        }
                    }
                    (Value::Pair(a, b), Value::Const(c)) | (Value::Const(c), Value::Pair(a, b))
                        if c == u64::from(a) || c == u64::from(b) =>
                    {
                        Value::Pair(a, b)
                    }
                    _ => Value::Unknown,
                }
            }
        }
    }

    /// The value plus `by`, for the kinds where that is still an address or a number.
    #[must_use]
    pub fn offset(self, by: i64) -> Value {
        match self {
            Value::Const(c) => Value::Const(c.wrapping_add_signed(by)),
            Value::Stack(o) => {
                i32::try_from(i64::from(o) + by).map_or(Value::Unknown, Value::Stack)
            }
            Value::Param { index, offset } => i32::try_from(i64::from(offset) + by)
                .map_or(Value::Unknown, |offset| Value::Param { index, offset }),
            Value::Address(a) if by == 0 => Value::Address(a),
            Value::Address(a) => {
                u32::try_from(i64::from(a) + by).map_or(Value::Unknown, Value::Address)
            }
            _ => Value::Unknown,
        }
    }

    /// True for values that mean the same in a caller (summaries may carry them).
    #[must_use]
    pub fn is_portable(self) -> bool {
        matches!(
            self,
            Value::Address(_)
                | Value::MaybeAddress(_)
                | Value::AnyOf { .. }
                | Value::Const(_)
                | Value::Param { .. }
                | Value::DevState
                | Value::NpBit { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meet_is_commutative_and_keeps_what_paths_agree_on() {
        let sets = &mut Sets::default();
        let values = [
            Value::Unknown,
            Value::Address(0x1000),
            Value::MaybeAddress(0x1000),
            Value::Address(0x2000),
            Value::Const(1),
            Value::Const(2),
            Value::Pair(1, 2),
            Value::Stack(-8),
            Value::Param {
                index: 1,
                offset: 8,
            },
            Value::WdfTable,
            Value::Address(0x3000),
            Value::MaybeAddress(0x3000),
            Value::Address(0x4000),
            Value::Several,
        ];
        for &a in &values {
            assert_eq!(a.meet(a, sets), a);
            for &b in &values {
                let m = a.meet(b, sets);
                assert_eq!(m, b.meet(a, sets), "{a:?} {b:?}");
                // Meeting again with either side changes nothing (the lattice is finite and
                // the meet a lower bound), which is what makes the fixed point terminate.
                assert_eq!(m.meet(a, sets), m, "{a:?} {b:?}");
                assert_eq!(m.meet(b, sets), m, "{a:?} {b:?}");
                for &c in &values {
                    let left = m.meet(c, sets);
                    let bc = b.meet(c, sets);
                    assert_eq!(left, a.meet(bc, sets), "{a:?} {b:?} {c:?}");
                }
            }
        }
        assert_eq!(
            Value::Address(0x1000).meet(Value::Const(0), sets),
            Value::MaybeAddress(0x1000)
        );
        let two = Value::Address(0x1000).meet(Value::Address(0x2000), sets);
        assert!(matches!(two, Value::AnyOf { exact: true, .. }));
        assert_eq!(two.possible_addresses(sets), [0x1000, 0x2000]);
        let maybe = two.meet(Value::Const(0), sets);
        assert!(matches!(maybe, Value::AnyOf { exact: false, .. }));
        assert_eq!(maybe.possible_addresses(sets), [0x1000, 0x2000]);
        assert_eq!(
            Value::Const(1).meet(Value::Const(2), sets),
            Value::Pair(1, 2)
        );
        assert_eq!(
            Value::Pair(1, 2).meet(Value::Const(3), sets),
            Value::Unknown
        );
    }

    #[test]
    fn address_sets_are_bounded() {
        let sets = &mut Sets::default();
        let mut many = Value::Address(1);
        for a in 2..=u32::try_from(Sets::MAX_LEN).expect("small") {
            many = many.meet(Value::Address(a), sets);
        }
        assert_eq!(many.possible_addresses(sets).len(), Sets::MAX_LEN);
        assert_eq!(many.meet(Value::Address(0xffff), sets), Value::Several);
        // Equal sets are one set.
        let a = Value::Address(5).meet(Value::Address(6), sets);
        let b = Value::Address(6).meet(Value::Address(5), sets);
        assert_eq!(a, b);
    }
}
