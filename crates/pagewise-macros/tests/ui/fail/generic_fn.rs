use pagewise_macros::{paged, resident};

#[paged]
fn generic<T: Copy>(value: T) -> T {
    value
}

#[resident(dispatch)]
fn with_lifetime<'a>(value: &'a u8) -> &'a u8 {
    value
}

#[resident(dispatch)]
fn where_clause() where u8: Copy {}

#[paged]
fn impl_trait_argument(_callback: impl Fn()) {}

fn main() {}
