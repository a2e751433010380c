use pagewise_macros::{init, paged, resident};

#[paged]
const fn const_fn() {}

#[paged]
async fn async_fn() {}

struct Device;

impl Device {
    #[resident(power_up)]
    fn method(&self) {}
}

#[paged]
#[unsafe(link_section = ".text")]
fn already_placed() {}

#[resident(dispatch)]
#[cfg_attr(all(), unsafe(link_section = "PAGE"))]
fn placed_through_cfg_attr() {}

#[init]
#[inline]
fn inlined_init() {}

#[paged(power_down)]
#[inline(always)]
fn always_inlined_power_down() {}

fn main() {}
