//! `WdfDevStateIsNP` as machine code: what testing it looks like, so that the dataflow can
//! tell the paths where the device is in a nonpageable power state from those where it is not.
//!
//! `WdfDevStateIsNP(state)` is an inline of the KMDF headers, `(state & WdfDevStateNP) != 0`
//! with `WdfDevStateNP = 0x8000`, applied to what `WdfDeviceGetDevicePowerState` or
//! `WdfDeviceGetDevicePowerPolicyState` returned ([`Value::DevState`]). Compilers test the
//! bit directly before a branch (`test eax, 0x8000` / `bt eax, 15`), or keep the answer in a
//! register or a stack slot first (`setne al`, `and eax, 0x8000`, `shr eax, 15`, negated with
//! `xor al, 1` or `sete`), or return it from a helper ([`Value::NpBit`], carried by the
//! helper's summary). Whichever way, a conditional jump on it splits the paths: the engine
//! gives each way out the [`Guard`] it implies ([`branch`]).

use iced_x86::{Instruction, Mnemonic, OpKind};

use super::state::{Cond, Guard, Machine};
use super::value::Value;

/// `WdfDevStateNP`.
const NP_BIT: u64 = 0x8000;

/// Steps `instr` when it tests or transforms the answer of `WdfDevStateIsNP` (`cond`: the
/// flags the instruction before it left); returns false, touching nothing, otherwise.
pub fn step(m: &mut Machine, instr: &Instruction, cond: Cond) -> bool {
    if instr.op_count() == 2 && instr.op0_kind() == OpKind::Memory {
        return spilled(m, instr);
    }
    if instr.op_count() == 0 || instr.op0_kind() != OpKind::Register {
        return false;
    }
    let reg = instr.op0_register();
    let value = m.value(reg);
    let immediate =
        (instr.op_count() == 2 && is_immediate(instr.op1_kind())).then(|| instr.immediate(1));
    let source = (instr.op_count() == 2 && instr.op1_kind() == OpKind::Register)
        .then(|| m.value(instr.op1_register()));
    let mnemonic = instr.mnemonic();
    match (mnemonic, value, immediate) {
        (Mnemonic::Test, Value::DevState, Some(imm)) if imm & NP_BIT != 0 => {
            m.cond = Cond::Np {
                nonzero_is_np: true,
            };
        }
        (Mnemonic::Bt, Value::DevState, Some(15)) => m.cond = Cond::NpCarry,
        (Mnemonic::And, Value::DevState, Some(NP_BIT))
        | (Mnemonic::Shr, Value::DevState, Some(15)) => {
            set_bit(m, reg, false);
        }
        (Mnemonic::Test | Mnemonic::And, Value::NpBit { negated }, Some(imm)) if imm & 1 != 0 => {
            set_bit(m, reg, negated);
        }
        (Mnemonic::Cmp, Value::NpBit { negated }, Some(0))
        | (Mnemonic::And, Value::NpLowBit { negated }, Some(1)) => set_bit(m, reg, negated),
        // `not` flips bit 0 and sets the others: only bit 0 still says anything.
        (Mnemonic::Not, Value::NpBit { negated } | Value::NpLowBit { negated }, None) => {
            m.set(reg, Value::NpLowBit { negated: !negated });
            // `not` leaves the flags as they were.
            m.cond = cond;
        }
        // `xor al, -1` (unoptimised code's `not`) or any odd mask flips bit 0; the flags it
        // sets are those of the whole register, which say nothing.
        (Mnemonic::Xor, Value::NpBit { negated }, Some(imm)) if imm & 1 != 0 && imm != 1 => {
            m.set(reg, Value::NpLowBit { negated: !negated });
        }
        (Mnemonic::Xor, Value::NpLowBit { negated }, Some(imm)) if imm & 1 != 0 => {
            m.set(reg, Value::NpLowBit { negated: !negated });
        }
        (Mnemonic::Test, Value::NpLowBit { negated }, Some(1)) => {
            m.cond = Cond::Np {
                nonzero_is_np: !negated,
            };
        }
        (Mnemonic::Xor, Value::NpBit { negated }, Some(1)) => set_bit(m, reg, !negated),
        (Mnemonic::Test, Value::NpBit { negated }, None)
            if source == Some(Value::NpBit { negated }) =>
        {
            set_bit(m, reg, negated);
        }
        (Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Mov, _, None)
            if matches!(source, Some(Value::DevState | Value::NpBit { .. })) =>
        {
            if let Some(v) = source {
                m.set(reg, v);
            }
            m.cond = cond;
        }
        _ => return setcc(m, instr, cond),
    }
    true
}

/// `cmp byte ptr [rsp+x], 0` or `test byte ptr [rsp+x], 1` of an answer spilled to the frame
/// (unoptimised code keeps every local there).
fn spilled(m: &mut Machine, instr: &Instruction) -> bool {
    if !is_immediate(instr.op1_kind()) {
        return false;
    }
    let Some(at) = super::memory::address_of(m.address(instr)) else {
        return false;
    };
    let len = instr.memory_size().size();
    let Some(Value::NpBit { negated }) = u32::try_from(len)
        .ok()
        .and_then(|len| m.mem.value_at(at, len))
    else {
        return false;
    };
    match (instr.mnemonic(), instr.immediate(1)) {
        (Mnemonic::Cmp, 0) => {}
        (Mnemonic::Test, imm) if imm & 1 != 0 => {}
        _ => return false,
    }
    m.cond = Cond::Np {
        nonzero_is_np: !negated,
    };
    true
}

/// `reg` holds the answer (negated when `negated`), and the flags say whether it is zero.
fn set_bit(m: &mut Machine, reg: iced_x86::Register, negated: bool) {
    m.set(reg, Value::NpBit { negated });
    m.cond = Cond::Np {
        nonzero_is_np: !negated,
    };
}

/// `cmovcc reg, reg` choosing between 0 and 1 on flags that hold the answer, as unoptimised
/// code materialises `(state & 0x8000) != 0`: `xor eax, eax; mov ecx, 1; cmp edx, 0;
/// cmovne eax, ecx`.
fn cmovcc(m: &mut Machine, instr: &Instruction, cond: Cond) -> bool {
    if instr.op_count() != 2 || instr.op1_kind() != OpKind::Register {
        return false;
    }
    // Whether the move happens exactly when the device is nonpageable.
    let moves_when_np = match (cond, instr.mnemonic()) {
        (Cond::Np { nonzero_is_np }, Mnemonic::Cmovne) => nonzero_is_np,
        (Cond::Np { nonzero_is_np }, Mnemonic::Cmove) => !nonzero_is_np,
        (Cond::NpCarry, Mnemonic::Cmovb) => true,
        (Cond::NpCarry, Mnemonic::Cmovae) => false,
        _ => return false,
    };
    let dest = instr.op0_register();
    // The result is nonzero exactly when the 1 is chosen.
    let one_when_np = match (m.value(dest), m.value(instr.op1_register())) {
        (Value::Const(0), Value::Const(1)) => moves_when_np,
        (Value::Const(1), Value::Const(0)) => !moves_when_np,
        _ => return false,
    };
    m.set(
        dest,
        Value::NpBit {
            negated: !one_when_np,
        },
    );
    // `cmovcc` leaves the flags as they were.
    m.cond = cond;
    true
}

/// `setcc reg8` on flags that hold the answer (or `cmovcc` between 0 and 1).
fn setcc(m: &mut Machine, instr: &Instruction, cond: Cond) -> bool {
    if cmovcc(m, instr, cond) {
        return true;
    }
    let negated = match (cond, instr.mnemonic()) {
        (Cond::Np { nonzero_is_np }, Mnemonic::Setne) => !nonzero_is_np,
        (Cond::Np { nonzero_is_np }, Mnemonic::Sete) => nonzero_is_np,
        (Cond::NpCarry, Mnemonic::Setb) => false,
        (Cond::NpCarry, Mnemonic::Setae) => true,
        _ => return false,
    };
    m.set(instr.op0_register(), Value::NpBit { negated });
    // `setcc` leaves the flags as they were.
    m.cond = cond;
    true
}

fn is_immediate(kind: OpKind) -> bool {
    matches!(
        kind,
        OpKind::Immediate8
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate32to64
    )
}

/// The guards a conditional jump on `cond` gives its two ways out: `(taken, fall-through)`.
#[must_use]
pub fn branch(cond: Cond, mnemonic: Mnemonic) -> Option<(Guard, Guard)> {
    let taken_is_np = match (cond, mnemonic) {
        (Cond::Np { nonzero_is_np }, Mnemonic::Jne) => nonzero_is_np,
        (Cond::Np { nonzero_is_np }, Mnemonic::Je) => !nonzero_is_np,
        (Cond::NpCarry, Mnemonic::Jb) => true,
        (Cond::NpCarry, Mnemonic::Jae) => false,
        _ => return None,
    };
    Some(if taken_is_np {
        (Guard::Np, Guard::NotNp)
    } else {
        (Guard::NotNp, Guard::Np)
    })
}

#[cfg(test)]
mod tests {
    use iced_x86::{Decoder, DecoderOptions, Register};

    use super::*;

    fn with(reg: Register, value: Value) -> Machine {
        let mut m = Machine::unknown();
        m.set(reg, value);
        m
    }

    /// Steps the instruction encoded in `bytes`, as the transfer function does.
    fn run(m: &mut Machine, bytes: &[u8]) -> bool {
        let instr = Decoder::new(64, bytes, DecoderOptions::NONE).decode();
        assert!(!instr.is_invalid(), "{bytes:x?}");
        let cond = std::mem::take(&mut m.cond);
        step(m, &instr, cond)
    }

    const TEST_EAX_NP: &[u8] = &[0xa9, 0x00, 0x80, 0x00, 0x00];

    #[test]
    fn a_direct_test_of_the_state_splits_the_paths() {
        let mut m = with(Register::EAX, Value::DevState);
        assert!(run(&mut m, TEST_EAX_NP));
        // jne: taken when nonpageable.
        assert_eq!(
            branch(m.cond, Mnemonic::Jne),
            Some((Guard::Np, Guard::NotNp))
        );
        assert_eq!(
            branch(m.cond, Mnemonic::Je),
            Some((Guard::NotNp, Guard::Np))
        );
        // bt eax, 15; jae: taken when not.
        let mut m = with(Register::EAX, Value::DevState);
        assert!(run(&mut m, &[0x0f, 0xba, 0xe0, 0x0f]));
        assert_eq!(
            branch(m.cond, Mnemonic::Jae),
            Some((Guard::NotNp, Guard::Np))
        );
    }

    #[test]
    fn a_kept_and_negated_answer_still_splits_the_paths() {
        // test eax, 0x8000; setne cl; xor cl, 1; test cl, cl; jne: taken when NOT nonpageable.
        let mut m = with(Register::EAX, Value::DevState);
        let steps: [&[u8]; 4] = [
            TEST_EAX_NP,
            &[0x0f, 0x95, 0xc1],
            &[0x80, 0xf1, 0x01],
            &[0x84, 0xc9],
        ];
        for bytes in steps {
            assert!(run(&mut m, bytes), "{bytes:x?}");
        }
        assert_eq!(m.value(Register::RCX), Value::NpBit { negated: true });
        assert_eq!(
            branch(m.cond, Mnemonic::Jne),
            Some((Guard::NotNp, Guard::Np))
        );
        // movzx eax, cl keeps it.
        assert!(run(&mut m, &[0x0f, 0xb6, 0xc1]));
        assert_eq!(m.value(Register::RAX), Value::NpBit { negated: true });
    }

    #[test]
    fn a_not_then_and_negates_the_answer() {
        // A helper returning !WdfDevStateIsNP(state): shr eax, 15; not al; and al, 1.
        let mut m = with(Register::EAX, Value::DevState);
        assert!(run(&mut m, &[0xc1, 0xe8, 0x0f]));
        assert!(run(&mut m, &[0xf6, 0xd0]));
        assert_eq!(m.value(Register::RAX), Value::NpLowBit { negated: true });
        // A zero test of the whole register now says nothing: bits 1-7 are set.
        assert!(!run(&mut m, &[0x84, 0xc0]));
        let mut m = with(Register::EAX, Value::DevState);
        assert!(run(&mut m, &[0xc1, 0xe8, 0x0f]));
        assert!(run(&mut m, &[0xf6, 0xd0]));
        assert!(run(&mut m, &[0x24, 0x01]));
        assert_eq!(m.value(Register::RAX), Value::NpBit { negated: true });
        // jne: taken when NOT nonpageable.
        assert_eq!(
            branch(m.cond, Mnemonic::Jne),
            Some((Guard::NotNp, Guard::Np))
        );
        // -O0 writes the not as xor al, -1.
        let mut m = with(Register::EAX, Value::NpBit { negated: false });
        assert!(run(&mut m, &[0x34, 0xff]));
        assert_eq!(m.value(Register::RAX), Value::NpLowBit { negated: true });
        assert_eq!(m.cond, Cond::None);
        assert!(run(&mut m, &[0x24, 0x01]));
        assert_eq!(m.value(Register::RAX), Value::NpBit { negated: true });
        // test al, 1 on the bit alone decides too.
        let mut m = with(Register::EAX, Value::NpLowBit { negated: true });
        assert!(run(&mut m, &[0xa8, 0x01]));
        assert_eq!(
            branch(m.cond, Mnemonic::Je),
            Some((Guard::Np, Guard::NotNp))
        );
    }

    #[test]
    fn an_unoptimised_materialised_answer_splits_the_paths() {
        // -O0: and edx, 0x8000; xor eax, eax; mov ecx, 1; cmp edx, 0; cmovne eax, ecx;
        // cmp al, 0; jne: taken when nonpageable.
        let mut m = with(Register::EDX, Value::DevState);
        assert!(run(&mut m, &[0x81, 0xe2, 0x00, 0x80, 0x00, 0x00]));
        m.set(Register::EAX, Value::Const(0));
        m.set(Register::ECX, Value::Const(1));
        assert!(run(&mut m, &[0x83, 0xfa, 0x00]));
        assert!(run(&mut m, &[0x0f, 0x45, 0xc1]));
        assert_eq!(m.value(Register::RAX), Value::NpBit { negated: false });
        assert!(run(&mut m, &[0x3c, 0x00]));
        assert_eq!(
            branch(m.cond, Mnemonic::Jne),
            Some((Guard::Np, Guard::NotNp))
        );
        // cmove picks the 1 where the bit is clear: the negation.
        let mut m = with(Register::EDX, Value::DevState);
        assert!(run(&mut m, &[0x81, 0xe2, 0x00, 0x80, 0x00, 0x00]));
        m.set(Register::EAX, Value::Const(0));
        m.set(Register::ECX, Value::Const(1));
        assert!(run(&mut m, &[0x83, 0xfa, 0x00]));
        assert!(run(&mut m, &[0x0f, 0x44, 0xc1]));
        assert_eq!(m.value(Register::RAX), Value::NpBit { negated: true });
        // Between values other than 0 and 1 it says nothing.
        let mut m = with(Register::EDX, Value::DevState);
        assert!(run(&mut m, &[0x81, 0xe2, 0x00, 0x80, 0x00, 0x00]));
        m.set(Register::EAX, Value::Const(0));
        m.set(Register::ECX, Value::Const(7));
        assert!(run(&mut m, &[0x83, 0xfa, 0x00]));
        assert!(!run(&mut m, &[0x0f, 0x45, 0xc1]));
    }

    #[test]
    fn other_tests_say_nothing() {
        // A test of another bit, or of a value that is not a device state.
        let mut m = with(Register::EAX, Value::DevState);
        assert!(!run(&mut m, &[0xa9, 0x00, 0x40, 0x00, 0x00]));
        let mut m = with(Register::EAX, Value::Const(0x8000));
        assert!(!run(&mut m, TEST_EAX_NP));
        assert_eq!(branch(Cond::None, Mnemonic::Jne), None);
        assert_eq!(branch(Cond::NonNull, Mnemonic::Je), None);
    }
}
