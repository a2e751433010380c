//! Runs expanded code on the test host: the records, the `Placed` impls and the inserted
//! `paged_code!()`.

use pagewise_macros::{init, paged, resident};
use pagewise_roles::{Placed, Role, RoleRecord};

#[resident(power_up)]
unsafe extern "C" fn power_up(value: u32) -> u32 {
    value + 1
}

#[paged]
unsafe extern "C" fn paged_fn(value: u32) -> u32 {
    value * 2
}

#[paged(power_down)]
fn power_down_fn() {}

#[init]
fn init_fn(a: u8, (b, c): (u8, u8)) -> u8 {
    a + b + c
}

#[resident(dispatch)]
fn dispatch_fn(_: &mut u8) {}

#[test]
fn smoke() {
    let record: &RoleRecord = power_up::ROLE_RECORD;
    assert_eq!(record.role, Role::PowerUp as u16);
    assert_eq!(record.function, power_up as *const ());
    let before = wdk::paged_code_calls();
    // SAFETY: plain arithmetic.
    assert_eq!(unsafe { <paged_fn as Placed>::FUNCTION(3) }, 6);
    assert_eq!(wdk::paged_code_calls(), before + 1);
    power_down_fn();
    assert_eq!(init_fn(1, (2, 3)), 6);
    dispatch_fn(&mut 0);
    assert_eq!(<init_fn as Placed>::NAME, "init_fn");
}
