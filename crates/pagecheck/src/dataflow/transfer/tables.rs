//! Jump tables: an indirect `jmp` through a table the image holds, read entry by entry.

use crate::callgraph::EdgeKind;
use crate::view::View;

use super::super::state::Machine;
use super::{Control, Effects, Transfer};

/// Longest jump table read when no `cmp index, N` bounds it.
const MAX_TABLE_ENTRIES: u32 = 4096;

impl<V: View> Transfer<'_, V> {
    /// Reads a jump table: entries of 4 bytes at `table`, each added to `base` (signed for
    /// LLVM's table-relative entries, unsigned RVAs for MSVC's `__ImageBase`-relative ones).
    pub(super) fn resolve_table(
        &mut self,
        m: &Machine,
        site: u32,
        table: u32,
        base: u32,
        signed: bool,
        fx: &mut Effects<'_>,
    ) -> Control {
        let count = m.bound.unwrap_or(MAX_TABLE_ENTRIES).min(MAX_TABLE_ENTRIES);
        let mut resolved = 0;
        for i in 0..count {
            let Some(raw) = self.view.read_u32(table.wrapping_add(i * 4)) else {
                break;
            };
            let target = if signed {
                base.wrapping_add_signed(raw.cast_signed())
            } else {
                base.wrapping_add(raw)
            };
            // Without a bound the table ends where entries stop pointing into this function.
            if !self.view.is_code(target) || (m.bound.is_none() && !self.inside(target)) {
                break;
            }
            if self.inside(target) {
                self.table_targets.push(target);
            } else {
                fx.edge(site, target, EdgeKind::JumpTable);
            }
            resolved += 1;
        }
        if resolved == 0 {
            fx.unresolved(site, false, false);
            return Control::Stop;
        }
        if self.inside(table) {
            let range = (table, table.saturating_add(resolved * 4).min(self.end));
            if !self.tables.contains(&range) {
                self.tables.push(range);
            }
        }
        Control::Table
    }
}
