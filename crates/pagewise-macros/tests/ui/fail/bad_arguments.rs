use pagewise_macros::{init, paged, resident};

#[paged(foo)]
fn unknown_paged_argument() {}

#[paged(power_up)]
fn paged_is_not_resident() {}

#[resident]
fn resident_without_role() {}

#[resident(power_down)]
fn resident_power_down() {}

#[resident(power_up, dispatch)]
fn two_roles() {}

#[resident("dispatch")]
fn string_role() {}

#[init(power_up)]
fn init_with_argument() {}

#[paged]
struct NotAFunction;

fn main() {}
