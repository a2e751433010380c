//! What a function's memory holds, as far as registration inference needs it: its own stack
//! frame, and the memory its incoming pointer arguments point to.
//!
//! A driver hands KMDF its callbacks in configuration structures that it nearly always builds
//! in a local variable: C fills a stack structure field by field after a `*_INIT` helper zeroed
//! it, rustc copies a constant image of the structure out of `.rdata` with vector moves or
//! `memcpy`, and both pass the structure's address to the framework. A helper that fills its
//! caller's structure writes through an incoming pointer instead. [`Memory`] records the stores
//! that matter for reading such a structure back at the call: whole register values (a
//! function's address, a pointer), immediates, byte fills and copies of image bytes.
//!
//! Addresses are one 64-bit space holding every region a function can name: its frame around
//! 0 (offsets from the stack pointer at entry, so they survive `push`, `sub rsp` and frame
//! pointers), and the memory argument `i` points to around `(i + 1) << 40` ([`param`]). A
//! structure is at most [`MAX_TRACKED`] bytes, so no run of bytes crosses from one region into
//! another.
//!
//! The cells are kept sorted and disjoint. A store over part of a byte-valued cell keeps what
//! it does not cover; a store over part of a register value forgets the value (the halves of
//! a pointer mean nothing). For the argument regions the memory also keeps which bytes the
//! function wrote on some path ([`Memory::written`]): what a helper may have changed in its
//! caller's structure, even where the paths disagree on the value.
//!
//! The number of cells is bounded ([`MAX_CELLS`]): a store beyond it is forgotten and the
//! memory says so ([`Memory::over_budget`]), so that a function that builds huge frames costs
//! bounded memory and the registrations it could not read say why.

use super::value::{Sets, Value};

/// The content of one run of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Content {
    /// An eight-byte register value stored whole.
    Value(Value),
    /// Every byte equal to this one (`memset`, a zero store).
    Fill(u8),
    /// The bytes of this little-endian constant, from its least significant byte.
    Bytes(u64),
    /// A copy of the image's bytes from this RVA on.
    Image(u32),
}

impl Content {
    /// The same content seen `skip` bytes further in, for the byte-valued kinds.
    fn advanced(self, skip: u32) -> Option<Content> {
        match self {
            Content::Value(_) => (skip == 0).then_some(self),
            Content::Fill(_) => Some(self),
            Content::Bytes(v) => Some(Content::Bytes(if skip >= 8 { 0 } else { v >> (8 * skip) })),
            Content::Image(rva) => Some(Content::Image(rva.wrapping_add(skip))),
        }
    }
}

/// A run of `len` bytes at `at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    /// Address ([`param`] for the argument regions; frame offsets are themselves).
    pub at: i64,
    /// Length in bytes (a register value is 8).
    pub len: u32,
    /// What the bytes hold.
    pub content: Content,
}

impl Cell {
    fn end(&self) -> i64 {
        self.at + i64::from(self.len)
    }
}

/// Reads image bytes for the memory model (the decoder's view of the image).
pub trait ImageBytes {
    /// `out.len()` bytes at `rva`, when the file backs them all.
    fn read_bytes(&self, rva: u32, out: &mut [u8]) -> bool;
    /// The target RVA of the relocated eight-byte pointer stored at `rva`, if there is one.
    fn pointer_at(&self, rva: u32) -> Option<u32>;
}

/// The largest structure a copy or fill is tracked for: the biggest KMDF configuration
/// (`WDF_PNPPOWER_EVENT_CALLBACKS`) is 144 bytes; anything much larger is a buffer.
pub const MAX_TRACKED: u32 = 4096;

/// The most cells one function's memory holds (a budget: see the module documentation).
pub const MAX_CELLS: usize = 1024;

const REGION_SHIFT: u32 = 40;

/// The address of byte `offset` of what incoming argument `index` points to.
#[must_use]
pub fn param(index: u8, offset: i32) -> i64 {
    ((i64::from(index) + 1) << REGION_SHIFT) + i64::from(offset)
}

/// The argument region an address lies in (`None`: the frame).
#[must_use]
pub fn region(at: i64) -> Option<u8> {
    let r = (at + (1 << (REGION_SHIFT - 1))) >> REGION_SHIFT;
    u8::try_from(r - 1).ok().filter(|_| r > 0)
}

/// `at` as `(argument, offset)` when it lies in an argument region.
#[must_use]
pub fn as_param(at: i64) -> Option<(u8, i32)> {
    let index = region(at)?;
    i32::try_from(at - param(index, 0))
        .ok()
        .map(|offset| (index, offset))
}

/// The memory address a [`Value`] names, if it names one this model tracks.
#[must_use]
pub fn address_of(value: Value) -> Option<i64> {
    match value {
        Value::Stack(off) => Some(i64::from(off)),
        Value::Param { index, offset } => Some(param(index, offset)),
        _ => None,
    }
}

/// The tracked cells, sorted by address and disjoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    cells: Vec<Cell>,
    /// Sorted disjoint `[start, end)` ranges of the argument regions written on some path.
    written: Vec<(i64, i64)>,
    /// A store was dropped because the memory held [`MAX_CELLS`] cells.
    over: bool,
}

impl Memory {
    /// The cells, in address order.
    #[must_use]
    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }

    /// The argument-region ranges written on some path, sorted.
    #[must_use]
    pub fn written(&self) -> &[(i64, i64)] {
        &self.written
    }

    /// True when a store was dropped for want of room ([`MAX_CELLS`]).
    #[must_use]
    pub fn over_budget(&self) -> bool {
        self.over
    }

    /// Forgets the contents (what was written where stays known).
    pub fn clear(&mut self) {
        self.cells.clear();
    }

    /// Forgets every frame cell (after an indexed store into the frame, which may have hit any
    /// of them).
    pub fn clear_frame(&mut self) {
        self.cells.retain(|c| region(c.at).is_some());
    }

    /// Forgets what `at..at+len` held, keeping the uncovered parts of byte-valued cells.
    pub fn forget(&mut self, at: i64, len: u32) {
        let (start, end) = (at, at + i64::from(len));
        self.mark_written(start, end);
        let first = self.cells.partition_point(|c| c.end() <= start);
        if self.cells.get(first).is_none_or(|c| c.at >= end) {
            return;
        }
        let last = first + self.cells[first..].partition_point(|c| c.at < end);
        let mut kept: Vec<Cell> = Vec::with_capacity(2);
        for cell in &self.cells[first..last] {
            if matches!(cell.content, Content::Value(_)) {
                continue;
            }
            // Lengths stay in u32 range: both parts lie inside the old cell.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            if cell.at < start {
                kept.push(Cell {
                    at: cell.at,
                    len: (start - cell.at) as u32,
                    content: cell.content,
                });
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            if cell.end() > end {
                let skip = (end - cell.at) as u32;
                if let Some(content) = cell.content.advanced(skip) {
                    kept.push(Cell {
                        at: end,
                        len: (cell.end() - end) as u32,
                        content,
                    });
                }
            }
        }
        self.cells.splice(first..last, kept);
    }

    /// Records that `at..at+len` now holds `content`.
    pub fn write(&mut self, at: i64, len: u32, content: Content) {
        if len == 0 || len > MAX_TRACKED {
            self.forget(at, len.min(MAX_TRACKED));
            return;
        }
        self.forget(at, len);
        if self.cells.len() >= MAX_CELLS {
            self.over = true;
            return;
        }
        let i = self.cells.partition_point(|c| c.at < at);
        self.cells.insert(
            i,
            Cell {
                at,
                len,
                content: normal(content, len),
            },
        );
    }

    /// Notes that `start..end` of an argument region may have changed.
    fn mark_written(&mut self, start: i64, end: i64) {
        if region(start).is_none() || end <= start {
            return;
        }
        // The ranges `first..past` touch or overlap the new one: they merge into it.
        let first = self.written.partition_point(|&(_, e)| e < start);
        let past = first + self.written[first..].partition_point(|&(s, _)| s <= end);
        if first < past {
            let merged = (
                self.written[first].0.min(start),
                self.written[past - 1].1.max(end),
            );
            self.written.splice(first..past, [merged]);
        } else if self.written.len() < MAX_CELLS {
            self.written.insert(first, (start, end));
        } else {
            self.over = true;
            // Widen the nearest range rather than lose the fact that something changed.
            let nearest = first.min(self.written.len() - 1);
            let (lo, hi) = self.written[nearest];
            self.written[nearest] = (lo.min(start), hi.max(end));
        }
    }

    /// Copies what `src..src+len` holds to `dst` (a `memcpy` inside the tracked memory).
    pub fn copy_within(&mut self, dst: i64, src: i64, len: u32) {
        let (start, end) = (src, src + i64::from(len));
        let moved: Vec<Cell> = self
            .cells
            .iter()
            .filter(|c| c.at >= start && c.end() <= end)
            .map(|c| Cell {
                at: c.at - src + dst,
                ..*c
            })
            .collect();
        self.forget(dst, len);
        for cell in moved {
            if self.cells.len() >= MAX_CELLS {
                self.over = true;
                break;
            }
            let i = self.cells.partition_point(|c| c.at < cell.at);
            self.cells.insert(i, cell);
        }
    }

    /// The cell that starts at `at`, or failing that the one that covers it.
    fn cell_at(&self, at: i64) -> Option<&Cell> {
        let i = self.cells.partition_point(|c| c.end() <= at);
        self.cells.get(i).filter(|c| c.at <= at)
    }

    /// The eight bytes at `at` as a register value: a stored value, or a constant assembled
    /// from byte-valued cells, or an image word (a relocated pointer when the image has one
    /// there). [`Value::Unknown`] when any byte is not known.
    #[must_use]
    pub fn read_value(&self, at: i64, image: &impl ImageBytes) -> Value {
        if let Some(cell) = self.cell_at(at) {
            match cell.content {
                Content::Value(v) if cell.at == at && cell.len == 8 => return v,
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Content::Image(rva) if cell.end() >= at + 8 => {
                    let word = rva.wrapping_add((at - cell.at) as u32);
                    if let Some(target) = image.pointer_at(word) {
                        return Value::Address(target);
                    }
                }
                _ => {}
            }
        }
        self.read_bytes(at, 8, image)
            .map_or(Value::Unknown, Value::Const)
    }

    /// The register value stored whole at `at` with `len` bytes (a narrow store of a value
    /// the analysis follows, such as a spilled boolean), if there is one.
    #[must_use]
    pub fn value_at(&self, at: i64, len: u32) -> Option<Value> {
        match self.cell_at(at) {
            Some(&Cell {
                at: start,
                len: l,
                content: Content::Value(v),
            }) if start == at && l == len => Some(v),
            _ => None,
        }
    }

    /// `len` (at most 8) bytes at `at` as a little-endian number, when every byte is known
    /// and none is part of a register value.
    #[must_use]
    pub fn read_bytes(&self, at: i64, len: u32, image: &impl ImageBytes) -> Option<u64> {
        if len == 0 || len > 8 {
            return None;
        }
        let mut bytes = [0u8; 8];
        let mut at = at;
        let end = at + i64::from(len);
        let mut filled = 0usize;
        while at < end {
            let cell = self.cell_at(at)?;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let skip = (at - cell.at) as u32;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let take = (cell.end().min(end) - at) as usize;
            let out = &mut bytes[filled..filled + take];
            match cell.content {
                Content::Value(Value::Const(v)) if cell.len == 8 => {
                    let all = v.to_le_bytes();
                    out.copy_from_slice(&all[skip as usize..skip as usize + take]);
                }
                Content::Value(_) => return None,
                Content::Fill(b) => out.fill(b),
                Content::Bytes(v) => {
                    let shifted = if skip >= 8 { 0 } else { v >> (8 * skip) };
                    out.copy_from_slice(&shifted.to_le_bytes()[..take]);
                }
                Content::Image(rva) => {
                    if !image.read_bytes(rva.wrapping_add(skip), out) {
                        return None;
                    }
                }
            }
            filled += take;
            // At most 8.
            #[allow(clippy::cast_possible_wrap)]
            {
                at += take as i64;
            }
        }
        Some(u64::from_le_bytes(bytes))
    }

    /// What two paths into a join agree on: bytes both paths hold alike survive (compared
    /// piecewise, so a field stored on one path does not cost the rest of the structure); a
    /// function address stored on one path only survives as a possibility
    /// ([`Value::MaybeAddress`]). The argument bytes written on either path count as written.
    #[must_use]
    pub fn meet(&self, other: &Memory, sets: &mut Sets) -> Memory {
        if self == other {
            return self.clone();
        }
        let mut out = Memory {
            cells: Vec::new(),
            written: self.written.clone(),
            over: self.over || other.over,
        };
        for &(s, e) in &other.written {
            out.mark_written(s, e);
        }
        if self.cells == other.cells {
            out.cells.clone_from(&self.cells);
            return out;
        }
        let mut cuts: Vec<i64> = self
            .cells
            .iter()
            .chain(&other.cells)
            .flat_map(|c| [c.at, c.end()])
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let (mine, theirs) = (self.pieces(&cuts), other.pieces(&cuts));
        let mut cells = Vec::with_capacity(mine.len().min(theirs.len()));
        for cell in &mine {
            let twin = theirs
                .binary_search_by_key(&cell.at, |c| c.at)
                .ok()
                .map(|i| theirs[i])
                .filter(|c| c.len == cell.len);
            let content = match (cell.content, twin.map(|t| t.content)) {
                (a, Some(b)) if a == b => Some(a),
                // A register value on either side: what the values agree on, a function
                // address on one side surviving as a possibility.
                (Content::Value(a), Some(Content::Value(b))) => match a.meet(b, sets) {
                    Value::Unknown => None,
                    v => Some(Content::Value(v)),
                },
                (Content::Value(a), _) | (_, Some(Content::Value(a))) => match a.only_possible() {
                    Value::Unknown => None,
                    v => Some(Content::Value(v)),
                },
                _ => None,
            };
            if let Some(content) = content {
                cells.push(Cell { content, ..*cell });
            }
        }
        // A function address only the other path stored (an absent cell is unknown, and an
        // address met with the unknown survives as a possibility).
        for cell in &theirs {
            if let Content::Value(v) = cell.content
                && v.only_possible() != Value::Unknown
            {
                let i = cells.partition_point(|c: &Cell| c.at < cell.at);
                let overlaps = cells.get(i).is_some_and(|c| c.at < cell.end())
                    || i > 0 && cells[i - 1].end() > cell.at;
                let mine_too = mine
                    .binary_search_by_key(&cell.at, |c| c.at)
                    .is_ok_and(|j| mine[j].len == cell.len);
                if !overlaps && !mine_too {
                    cells.insert(
                        i,
                        Cell {
                            content: Content::Value(v.only_possible()),
                            ..*cell
                        },
                    );
                }
            }
        }
        out.cells = cells;
        out
    }

    /// The cells cut at every offset of `cuts` that falls inside a byte-valued cell, each
    /// piece in its normal form (so that equal bytes compare equal).
    fn pieces(&self, cuts: &[i64]) -> Vec<Cell> {
        let mut out = Vec::with_capacity(self.cells.len());
        for cell in &self.cells {
            if matches!(cell.content, Content::Value(_)) {
                out.push(*cell);
                continue;
            }
            let start = cell.at;
            let mut at = start;
            let first = cuts.partition_point(|&c| c <= start);
            let inner = cuts[first..]
                .iter()
                .copied()
                .take_while(|&c| c < cell.end())
                .chain(std::iter::once(cell.end()));
            for cut in inner {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let skip = (at - cell.at) as u32;
                if let Some(content) = cell.content.advanced(skip) {
                    // Inside the cell, whose length fits.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let len = (cut - at) as u32;
                    out.push(Cell {
                        at,
                        len,
                        content: normal(content, len),
                    });
                }
                at = cut;
            }
        }
        out
    }
}

/// One spelling for equal bytes: a constant whose bytes are all the same is a fill, and an
/// eight-byte constant register value is its bytes.
fn normal(content: Content, len: u32) -> Content {
    let bytes = match content {
        Content::Value(Value::Const(c)) if len == 8 => c,
        Content::Bytes(v) if len <= 8 => v,
        other => return other,
    };
    let all = bytes.to_le_bytes();
    let used = &all[..len as usize];
    if used.iter().all(|&b| b == used[0]) {
        Content::Fill(used[0])
    } else {
        Content::Bytes(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Image bytes `0..64` hold their own index; a relocated pointer to 0x1800 sits at 0x28.
    struct Img;

    impl ImageBytes for Img {
        fn read_bytes(&self, rva: u32, out: &mut [u8]) -> bool {
            for (i, b) in out.iter_mut().enumerate() {
                let at = rva as usize + i;
                if at >= 64 {
                    return false;
                }
                *b = u8::try_from(at).expect("small");
            }
            true
        }
        fn pointer_at(&self, rva: u32) -> Option<u32> {
            (rva == 0x28).then_some(0x1800)
        }
    }

    #[test]
    fn values_bytes_and_fills_read_back() {
        let mut f = Memory::default();
        f.write(-0x40, 0x20, Content::Fill(0));
        f.write(-0x38, 8, Content::Value(Value::Address(0x1234)));
        f.write(-0x28, 4, Content::Bytes(2));
        assert_eq!(f.read_value(-0x38, &Img), Value::Address(0x1234));
        assert_eq!(f.read_bytes(-0x28, 4, &Img), Some(2));
        assert_eq!(f.read_bytes(-0x40, 8, &Img), Some(0));
        // The fill's tail after the dword store is still zero.
        assert_eq!(f.read_bytes(-0x24, 4, &Img), Some(0));
        // Half of a pointer is not a number.
        assert_eq!(f.read_bytes(-0x34, 4, &Img), None);
        // Outside every cell.
        assert_eq!(f.read_value(-0x100, &Img), Value::Unknown);
    }

    #[test]
    fn partial_overwrite_splits_byte_cells_and_drops_values() {
        let mut f = Memory::default();
        f.write(0, 16, Content::Image(0x20));
        f.write(4, 4, Content::Bytes(0xaabb_ccdd));
        assert_eq!(f.read_bytes(0, 4, &Img), Some(0x2322_2120));
        assert_eq!(f.read_bytes(4, 4, &Img), Some(0xaabb_ccdd));
        assert_eq!(f.read_bytes(8, 8, &Img), Some(0x2f2e_2d2c_2b2a_2928));
        f.write(16, 8, Content::Value(Value::Address(1)));
        f.write(20, 1, Content::Fill(0));
        assert_eq!(f.read_value(16, &Img), Value::Unknown);
    }

    #[test]
    fn image_copies_resolve_relocated_pointers() {
        let mut f = Memory::default();
        f.write(-0x30, 0x30, Content::Image(0x10));
        // Frame -0x30 + 0x18 is image 0x28, where the relocation is.
        assert_eq!(f.read_value(-0x18, &Img), Value::Address(0x1800));
        assert_eq!(
            f.read_value(-0x20, &Img),
            Value::Const(0x2726_2524_2322_2120)
        );
        f.copy_within(0x100, -0x30, 0x30);
        assert_eq!(f.read_value(0x118, &Img), Value::Address(0x1800));
    }

    #[test]
    fn meet_keeps_agreement_and_one_sided_function_addresses() {
        let sets = &mut Sets::default();
        let mut a = Memory::default();
        a.write(0, 8, Content::Value(Value::Address(0x1000)));
        a.write(8, 8, Content::Value(Value::Address(0x2000)));
        a.write(16, 4, Content::Bytes(7));
        let mut b = Memory::default();
        b.write(0, 8, Content::Value(Value::Address(0x1000)));
        b.write(16, 4, Content::Bytes(8));
        b.write(24, 8, Content::Value(Value::Address(0x3000)));
        let m = a.meet(&b, sets);
        assert_eq!(m.read_value(0, &Img), Value::Address(0x1000));
        assert_eq!(m.read_value(8, &Img), Value::MaybeAddress(0x2000));
        assert_eq!(m.read_bytes(16, 4, &Img), None);
        assert_eq!(m.read_value(24, &Img), Value::MaybeAddress(0x3000));
        assert_eq!(a.meet(&a, sets), a);
    }

    #[test]
    fn meet_compares_bytes_not_cell_shapes() {
        let sets = &mut Sets::default();
        // A zeroed 96-byte structure; one path also stores a dword at +80, both store a
        // pointer at +24.
        let mut a = Memory::default();
        a.write(0, 96, Content::Fill(0));
        a.write(24, 8, Content::Value(Value::Address(0x1000)));
        let mut b = a.clone();
        b.write(80, 4, Content::Bytes(0xffff_ffff));
        let m = a.meet(&b, sets);
        assert_eq!(m.read_value(24, &Img), Value::Address(0x1000));
        assert_eq!(m.read_value(16, &Img), Value::Const(0));
        assert_eq!(m.read_value(88, &Img), Value::Const(0));
        assert_eq!(m.read_bytes(80, 4, &Img), None);
        // An eight-byte zero stored as a register value equals the zero fill.
        let mut c = a.clone();
        c.write(40, 8, Content::Value(Value::Const(0)));
        assert_eq!(a.meet(&c, sets).read_value(40, &Img), Value::Const(0));
    }

    #[test]
    fn meet_is_stable_once_the_shapes_agree() {
        let sets = &mut Sets::default();
        // A zero fill on one path, the same fill with a pointer stored inside it on the other:
        // the first meet cuts the fill; meeting again with either side changes nothing.
        let mut a = Memory::default();
        a.write(0, 96, Content::Fill(0));
        let mut b = a.clone();
        b.write(24, 8, Content::Value(Value::Address(0x1000)));
        let m = a.meet(&b, sets);
        assert_eq!(m.meet(&a, sets), m);
        assert_eq!(m.meet(&b, sets), m);
    }

    #[test]
    fn argument_regions_are_apart_from_the_frame_and_remember_writes() {
        let sets = &mut Sets::default();
        let mut f = Memory::default();
        f.write(param(0, 16), 8, Content::Value(Value::Address(0x1000)));
        f.write(-16, 8, Content::Value(Value::Address(0x2000)));
        assert_eq!(region(param(0, 16)), Some(0));
        assert_eq!(region(param(3, -8)), Some(3));
        assert_eq!(region(-16), None);
        assert_eq!(region(i64::from(i32::MAX)), None);
        assert_eq!(as_param(param(2, 40)), Some((2, 40)));
        assert_eq!(f.read_value(param(0, 16), &Img), Value::Address(0x1000));
        assert_eq!(f.written(), &[(param(0, 16), param(0, 24))]);
        // Written on one path only: the bytes count as written after the join, the value
        // survives as a possibility.
        let m = f.meet(&Memory::default(), sets);
        assert_eq!(m.written(), &[(param(0, 16), param(0, 24))]);
        assert_eq!(
            m.read_value(param(0, 16), &Img),
            Value::MaybeAddress(0x1000)
        );
        // A constant stored on one path only is not known afterwards, but was written.
        let mut g = Memory::default();
        g.write(param(1, 0), 4, Content::Bytes(7));
        let m = g.meet(&Memory::default(), sets);
        assert_eq!(m.read_bytes(param(1, 0), 4, &Img), None);
        assert_eq!(m.written(), &[(param(1, 0), param(1, 4))]);
    }

    #[test]
    fn cells_beyond_the_budget_are_dropped_and_said() {
        let mut f = Memory::default();
        for i in 0..=MAX_CELLS {
            let at = i64::try_from(i).expect("small") * 16;
            f.write(at, 8, Content::Value(Value::Address(0x1000)));
        }
        assert_eq!(f.cells().len(), MAX_CELLS);
        assert!(f.over_budget());
        assert!(
            f.meet(&Memory::default(), &mut Sets::default())
                .over_budget()
        );
    }
}
