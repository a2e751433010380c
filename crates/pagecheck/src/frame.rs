//! What a function's own stack frame holds, as far as registration inference needs it.
//!
//! A driver hands KMDF its callbacks in configuration structures that it nearly always builds
//! in a local variable: C fills a stack structure field by field after a `*_INIT` helper zeroed
//! it, rustc copies a constant image of the structure out of `.rdata` with vector moves or
//! `memcpy`, and both pass the structure's address to the framework. [`Frame`] records the
//! stores into the frame that matter for reading such a structure back at the call: whole
//! register values (a function's address, a pointer), immediates, byte fills and copies of
//! image bytes. Offsets are relative to the stack pointer at the function's entry, so they
//! survive `push`, `sub rsp` and frame pointers.
//!
//! The cells are kept sorted and disjoint. A store over part of a byte-valued cell keeps what
//! it does not cover; a store over part of a register value forgets the value (the halves of
//! a pointer mean nothing).

use crate::decode::Value;

/// The content of one run of bytes in the frame.
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

/// A run of `len` bytes at frame offset `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    /// Offset from the stack pointer at function entry.
    pub off: i32,
    /// Length in bytes (a register value is 8).
    pub len: u32,
    /// What the bytes hold.
    pub content: Content,
}

impl Cell {
    fn end(&self) -> i64 {
        i64::from(self.off) + i64::from(self.len)
    }
}

/// Reads image bytes for the frame (the decoder's view of the image).
pub trait ImageBytes {
    /// `out.len()` bytes at `rva`, when the file backs them all.
    fn read_bytes(&self, rva: u32, out: &mut [u8]) -> bool;
    /// The target RVA of the relocated eight-byte pointer stored at `rva`, if there is one.
    fn pointer_at(&self, rva: u32) -> Option<u32>;
}

/// The largest structure a copy or fill is tracked for: the biggest KMDF configuration
/// (`WDF_PNPPOWER_EVENT_CALLBACKS`) is 144 bytes; anything much larger is a buffer.
pub const MAX_TRACKED: u32 = 4096;

/// The frame's tracked cells, sorted by offset and disjoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    cells: Vec<Cell>,
}

impl Frame {
    /// The cells, in offset order.
    #[must_use]
    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.cells.clear();
    }

    /// Forgets what `off..off+len` held, keeping the uncovered parts of byte-valued cells.
    pub fn forget(&mut self, off: i32, len: u32) {
        let (start, end) = (i64::from(off), i64::from(off) + i64::from(len));
        if !self
            .cells
            .iter()
            .any(|c| i64::from(c.off) < end && c.end() > start)
        {
            return;
        }
        let mut kept = Vec::with_capacity(self.cells.len() + 1);
        for cell in self.cells.drain(..) {
            if i64::from(cell.off) >= end || cell.end() <= start {
                kept.push(cell);
                continue;
            }
            if matches!(cell.content, Content::Value(_)) {
                continue;
            }
            // Offsets stay in i32 range: both parts lie inside the old cell.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            if i64::from(cell.off) < start {
                kept.push(Cell {
                    off: cell.off,
                    len: (start - i64::from(cell.off)) as u32,
                    content: cell.content,
                });
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            if cell.end() > end {
                let skip = (end - i64::from(cell.off)) as u32;
                if let Some(content) = cell.content.advanced(skip) {
                    kept.push(Cell {
                        off: end as i32,
                        len: (cell.end() - end) as u32,
                        content,
                    });
                }
            }
        }
        self.cells = kept;
    }

    /// Records that `off..off+len` now holds `content`.
    pub fn write(&mut self, off: i32, len: u32, content: Content) {
        if len == 0 || len > MAX_TRACKED {
            self.forget(off, len.min(MAX_TRACKED));
            return;
        }
        self.forget(off, len);
        let at = self.cells.partition_point(|c| c.off < off);
        self.cells.insert(
            at,
            Cell {
                off,
                len,
                content: normal(content, len),
            },
        );
    }

    /// Copies what `src..src+len` holds to `dst` (a `memcpy` inside the frame).
    pub fn copy_within(&mut self, dst: i32, src: i32, len: u32) {
        let (start, end) = (i64::from(src), i64::from(src) + i64::from(len));
        let moved: Vec<Cell> = self
            .cells
            .iter()
            .filter(|c| i64::from(c.off) >= start && c.end() <= end)
            .map(|c| Cell {
                off: c.off.wrapping_sub(src).wrapping_add(dst),
                ..*c
            })
            .collect();
        self.forget(dst, len);
        for cell in moved {
            let at = self.cells.partition_point(|c| c.off < cell.off);
            self.cells.insert(at, cell);
        }
    }

    /// The eight bytes at `off` as a register value: a stored value, or a constant assembled
    /// from byte-valued cells, or an image word (a relocated pointer when the image has one
    /// there). [`Value::Unknown`] when any byte is not known.
    #[must_use]
    pub fn read_value(&self, off: i32, image: &impl ImageBytes) -> Value {
        if let Some(cell) = self.cells.iter().find(|c| c.off == off && c.len == 8)
            && let Content::Value(v) = cell.content
        {
            return v;
        }
        if let Some(cell) = self.covering(off, 8)
            && let Content::Image(rva) = cell.content
        {
            #[allow(clippy::cast_sign_loss)]
            let at = rva.wrapping_add((off - cell.off) as u32);
            if let Some(target) = image.pointer_at(at) {
                return Value::Address(target);
            }
        }
        self.read_bytes(off, 8, image)
            .map_or(Value::Unknown, Value::Const)
    }

    /// `len` (at most 8) bytes at `off` as a little-endian number, when every byte is known
    /// and none is part of a register value.
    #[must_use]
    pub fn read_bytes(&self, off: i32, len: u32, image: &impl ImageBytes) -> Option<u64> {
        if len == 0 || len > 8 {
            return None;
        }
        let mut bytes = [0u8; 8];
        let mut at = i64::from(off);
        let end = at + i64::from(len);
        let mut filled = 0usize;
        while at < end {
            let cell = self
                .cells
                .iter()
                .find(|c| i64::from(c.off) <= at && c.end() > at)?;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let skip = (at - i64::from(cell.off)) as u32;
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

    /// The one cell that covers all of `off..off+len`.
    fn covering(&self, off: i32, len: u32) -> Option<&Cell> {
        let (start, end) = (i64::from(off), i64::from(off) + i64::from(len));
        self.cells
            .iter()
            .find(|c| i64::from(c.off) <= start && c.end() >= end)
    }

    /// What two paths into a join agree on: bytes both paths hold alike survive (compared
    /// piecewise, so a field stored on one path does not cost the rest of the structure); a
    /// function address stored on one path only survives as a possibility
    /// ([`Value::MaybeAddress`]).
    #[must_use]
    pub fn meet(&self, other: &Frame) -> Frame {
        if self == other {
            return self.clone();
        }
        let mut cuts: Vec<i64> = self
            .cells
            .iter()
            .chain(&other.cells)
            .flat_map(|c| [i64::from(c.off), c.end()])
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let (mine, theirs) = (self.pieces(&cuts), other.pieces(&cuts));
        let mut cells = Vec::with_capacity(mine.len().min(theirs.len()));
        for cell in &mine {
            let twin = theirs
                .iter()
                .find(|c| c.off == cell.off && c.len == cell.len);
            let content = match (cell.content, twin.map(|t| t.content)) {
                (a, Some(b)) if a == b => Some(a),
                // A register value on either side: what the values agree on, a function
                // address on one side surviving as a possibility.
                (Content::Value(a), Some(Content::Value(b))) => match a.meet(b) {
                    Value::Unknown => None,
                    v => Some(Content::Value(v)),
                },
                (Content::Value(a), _) | (_, Some(Content::Value(a))) => {
                    match a.meet(Value::Unknown) {
                        Value::Unknown => None,
                        v => Some(Content::Value(v)),
                    }
                }
                _ => None,
            };
            if let Some(content) = content {
                cells.push(Cell { content, ..*cell });
            }
        }
        // A function address only the other path stored.
        for cell in &theirs {
            if let Content::Value(v @ (Value::Address(_) | Value::MaybeAddress(_))) = cell.content
                && !cells
                    .iter()
                    .any(|c| i64::from(c.off) < cell.end() && c.end() > i64::from(cell.off))
                && !mine.iter().any(|c| c.off == cell.off && c.len == cell.len)
            {
                let at = cells.partition_point(|c: &Cell| c.off < cell.off);
                cells.insert(
                    at,
                    Cell {
                        content: Content::Value(v.meet(Value::Unknown)),
                        ..*cell
                    },
                );
            }
        }
        Frame { cells }
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
            let start = i64::from(cell.off);
            let mut at = start;
            let inner = cuts
                .iter()
                .copied()
                .filter(|&c| c > start && c < cell.end())
                .chain(std::iter::once(cell.end()));
            for cut in inner {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let skip = (at - i64::from(cell.off)) as u32;
                if let Some(content) = cell.content.advanced(skip) {
                    // Both lie inside the cell, whose offset and length fit.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let (off, len) = (at as i32, (cut - at) as u32);
                    out.push(Cell {
                        off,
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
        let mut f = Frame::default();
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
        let mut f = Frame::default();
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
        let mut f = Frame::default();
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
        let mut a = Frame::default();
        a.write(0, 8, Content::Value(Value::Address(0x1000)));
        a.write(8, 8, Content::Value(Value::Address(0x2000)));
        a.write(16, 4, Content::Bytes(7));
        let mut b = Frame::default();
        b.write(0, 8, Content::Value(Value::Address(0x1000)));
        b.write(16, 4, Content::Bytes(8));
        b.write(24, 8, Content::Value(Value::Address(0x3000)));
        let m = a.meet(&b);
        assert_eq!(m.read_value(0, &Img), Value::Address(0x1000));
        assert_eq!(m.read_value(8, &Img), Value::MaybeAddress(0x2000));
        assert_eq!(m.read_bytes(16, 4, &Img), None);
        assert_eq!(m.read_value(24, &Img), Value::MaybeAddress(0x3000));
        assert_eq!(a.meet(&a), a);
    }

    #[test]
    fn meet_compares_bytes_not_cell_shapes() {
        // A zeroed 96-byte structure; one path also stores a dword at +80, both store a
        // pointer at +24.
        let mut a = Frame::default();
        a.write(0, 96, Content::Fill(0));
        a.write(24, 8, Content::Value(Value::Address(0x1000)));
        let mut b = a.clone();
        b.write(80, 4, Content::Bytes(0xffff_ffff));
        let m = a.meet(&b);
        assert_eq!(m.read_value(24, &Img), Value::Address(0x1000));
        assert_eq!(m.read_value(16, &Img), Value::Const(0));
        assert_eq!(m.read_value(88, &Img), Value::Const(0));
        assert_eq!(m.read_bytes(80, 4, &Img), None);
        // An eight-byte zero stored as a register value equals the zero fill.
        let mut c = a.clone();
        c.write(40, 8, Content::Value(Value::Const(0)));
        assert_eq!(a.meet(&c).read_value(40, &Img), Value::Const(0));
    }
}
