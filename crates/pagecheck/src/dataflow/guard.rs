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
        (Mnemonic::Cmp, Value::NpBit { negated }, Some(0)) => set_bit(m, reg, negated),
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

/// `reg` holds the answer (negated when `negated`), and the flags say whether it is zero.
fn set_bit(m: &mut Machine, reg: iced_x86::Register, negated: bool) {
    m.set(reg, Value::NpBit { negated });
    m.cond = Cond::Np {
        nonzero_is_np: !negated,
    };
}

/// `setcc reg8` on flags that hold the answer.
fn setcc(m: &mut Machine, instr: &Instruction, cond: Cond) -> bool {
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
