//! The record stream from a scenario's child process to the parent: one line per record,
//! space-separated, written with `write(2)` as it happens, so a child that is stopped (or
//! killed) has already reported everything up to that point.
//!
//! | record | fields |
//! |---|---|
//! | `step N LABEL` | scenario step `N` begins |
//! | `cb ID STEP IRQL ADDRESS NAME` | callback `ID` (its slot `NAME`, function at `ADDRESS`) entered at `IRQL` |
//! | `fault KIND RIP ADDRESS IRQL STEP CB REGION LOCKS DISKOFF` | a trimmed region was touched |
//! | `v KIND RIP STEP CB IRQL TEXT` | a violation found by the host (IRQL, lock, request, bugcheck, ...) |
//! | `event KIND RIP STEP CB IRQL TEXT` | something worth reporting that is not a violation by itself |
//! | `stop KIND RIP STEP CB IRQL TEXT` | the scenario cannot go on (unmodelled routine, crash, budget) |
//! | `fail KIND RIP STEP CB IRQL TEXT` | the device's start or its return to D0 failed (`start`, `power-up`) |
//! | `ioctl I STATUS INFORMATION HEX` | the answer to the `I`th `--ioctl` (`STATUS` decimal, or `pending`) |
//! | `info KEY VALUE` | a fact of the run (power pageability, counters) |
//! | `region I NAME` | the name of region `I` |
//! | `done` | the scenario ran to its end |
//!
//! Numbers are decimal except addresses (`0x` hex). The parent turns addresses into symbols,
//! sections and source lines; the child never reads the PDB.

use std::fmt::Write as _;

/// A record built on the stack, for signal handlers: no allocation.
pub struct RawLine {
    buf: [u8; 512],
    len: usize,
}

impl Default for RawLine {
    fn default() -> Self {
        RawLine::new()
    }
}

impl RawLine {
    /// An empty line.
    #[must_use]
    pub const fn new() -> RawLine {
        RawLine {
            buf: [0; 512],
            len: 0,
        }
    }

    /// Appends text (truncated at the buffer's end, keeping room for the newline).
    pub fn text(&mut self, s: &str) -> &mut RawLine {
        for &b in s.as_bytes() {
            if self.len < self.buf.len() - 1 {
                // A record is one line: a newline inside a name would split it.
                self.buf[self.len] = if b == b'\n' && s.len() > 1 { b' ' } else { b };
                self.len += 1;
            }
        }
        self
    }

    /// Appends `0x` and lower-case hex digits.
    pub fn hex(&mut self, mut value: u64) -> &mut RawLine {
        let mut digits = [0u8; 16];
        let mut n = 0;
        loop {
            #[allow(clippy::cast_possible_truncation)]
            let d = (value & 0xf) as u8;
            digits[n] = if d < 10 { b'0' + d } else { b'a' + d - 10 };
            n += 1;
            value >>= 4;
            if value == 0 {
                break;
            }
        }
        self.text("0x");
        for k in (0..n).rev() {
            if self.len < self.buf.len() - 1 {
                self.buf[self.len] = digits[k];
                self.len += 1;
            }
        }
        self
    }

    /// Appends decimal digits.
    pub fn dec(&mut self, mut value: u64) -> &mut RawLine {
        let mut digits = [0u8; 20];
        let mut n = 0;
        loop {
            #[allow(clippy::cast_possible_truncation)]
            let d = (value % 10) as u8;
            digits[n] = b'0' + d;
            n += 1;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        for k in (0..n).rev() {
            if self.len < self.buf.len() - 1 {
                self.buf[self.len] = digits[k];
                self.len += 1;
            }
        }
        self
    }

    /// Writes the line to the record stream (standard output of the child).
    pub fn write(&self) {
        write_all(&self.buf[..self.len]);
    }
}

/// Formatting into the line (for `Debug` names of decoded instructions), without allocating.
impl std::fmt::Write for RawLine {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.text(s);
        Ok(())
    }
}

fn write_all(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writes initialised bytes to fd 1; write(2) is async-signal-safe.
        let n = unsafe { libc::write(1, bytes.as_ptr().cast(), bytes.len()) };
        match usize::try_from(n) {
            Ok(n) if n > 0 => bytes = &bytes[n..],
            _ => {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
        }
    }
}

/// Writes one record from ordinary code (newlines inside fields become spaces).
pub fn record(fields: std::fmt::Arguments<'_>) {
    let mut line = String::new();
    let _ = line.write_fmt(fields);
    let mut line = line.replace('\n', " ");
    line.push('\n');
    write_all(line.as_bytes());
}

/// `record(format_args!(...))`.
#[macro_export]
macro_rules! record {
    ($($arg:tt)*) => {
        $crate::protocol::record(format_args!($($arg)*))
    };
}

/// One parsed record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A step begins.
    Step {
        /// Index.
        index: u32,
        /// What happens in it.
        label: String,
    },
    /// A callback is entered.
    Callback {
        /// Id (unique in the run).
        id: u32,
        /// Step.
        step: u32,
        /// IRQL it runs at.
        irql: u8,
        /// The function's address.
        address: u64,
        /// Slot name.
        name: String,
    },
    /// A trimmed region was touched.
    Fault {
        /// `fetch`, `read`, `write`.
        kind: String,
        /// Instruction.
        rip: u64,
        /// Data address.
        address: u64,
        /// IRQL then.
        irql: u8,
        /// Step.
        step: u32,
        /// Callback id.
        callback: u32,
        /// Region index.
        region: usize,
        /// Spin locks held.
        locks: u32,
        /// Paging disk off.
        disk_off: bool,
    },
    /// A violation, event, stop or failure found by the host.
    Finding {
        /// `v`, `event`, `stop` or `fail`.
        class: String,
        /// Kind.
        kind: String,
        /// Instruction or function it concerns (0 when none).
        rip: u64,
        /// Step.
        step: u32,
        /// Callback id.
        callback: u32,
        /// IRQL then.
        irql: u8,
        /// Text.
        text: String,
    },
    /// A fact.
    Info {
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
    /// The answer to an `--ioctl` read-back.
    Ioctl {
        /// Which `--ioctl`, from 0.
        index: usize,
        /// Completion status; `None` while the driver still holds the request.
        status: Option<i32>,
        /// `Information` of the completion.
        information: u64,
        /// The output bytes, in hex.
        output: String,
    },
    /// A region's name.
    Region {
        /// Index.
        index: usize,
        /// Name.
        name: String,
    },
    /// The scenario finished.
    Done,
}

fn num<T: std::str::FromStr>(s: Option<&str>) -> Option<T> {
    s?.parse().ok()
}

fn addr(s: Option<&str>) -> Option<u64> {
    u64::from_str_radix(s?.strip_prefix("0x")?, 16).ok()
}

/// Parses one record line; `None` for anything else.
#[must_use]
pub fn parse(line: &str) -> Option<Record> {
    let mut it = line.splitn(2, ' ');
    let tag = it.next()?;
    let rest = it.next().unwrap_or("");
    let fields = |n: usize| -> Vec<&str> { rest.splitn(n, ' ').collect() };
    Some(match tag {
        "step" => {
            let f = fields(2);
            Record::Step {
                index: num(f.first().copied())?,
                label: f.get(1).copied().unwrap_or("").to_owned(),
            }
        }
        "cb" => {
            let f = fields(5);
            Record::Callback {
                id: num(f.first().copied())?,
                step: num(f.get(1).copied())?,
                irql: num(f.get(2).copied())?,
                address: addr(f.get(3).copied())?,
                name: f.get(4).copied().unwrap_or("").to_owned(),
            }
        }
        "fault" => {
            let f = fields(9);
            Record::Fault {
                kind: (*f.first()?).to_owned(),
                rip: addr(f.get(1).copied())?,
                address: addr(f.get(2).copied())?,
                irql: num(f.get(3).copied())?,
                step: num(f.get(4).copied())?,
                callback: num(f.get(5).copied())?,
                region: num(f.get(6).copied())?,
                locks: num(f.get(7).copied())?,
                disk_off: f.get(8).copied()? == "1",
            }
        }
        "v" | "event" | "stop" | "fail" => {
            let f = fields(6);
            Record::Finding {
                class: tag.to_owned(),
                kind: (*f.first()?).to_owned(),
                rip: addr(f.get(1).copied())?,
                step: num(f.get(2).copied())?,
                callback: num(f.get(3).copied())?,
                irql: num(f.get(4).copied())?,
                text: f.get(5).copied().unwrap_or("").to_owned(),
            }
        }
        "info" => {
            let f = fields(2);
            Record::Info {
                key: (*f.first()?).to_owned(),
                value: f.get(1).copied().unwrap_or("").to_owned(),
            }
        }
        "ioctl" => {
            let f = fields(4);
            let status = match *f.get(1)? {
                "pending" => None,
                n => Some(n.parse().ok()?),
            };
            let output = f.get(3).copied().unwrap_or("").to_owned();
            if !output.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            Record::Ioctl {
                index: num(f.first().copied())?,
                status,
                information: num(f.get(2).copied())?,
                output,
            }
        }
        "region" => {
            let f = fields(2);
            Record::Region {
                index: num(f.first().copied())?,
                name: f.get(1).copied().unwrap_or("").to_owned(),
            }
        }
        "done" => Record::Done,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_lines_format_numbers() {
        let mut line = RawLine::new();
        line.text("fault fetch ")
            .hex(0x1_4000_7010)
            .text(" ")
            .hex(0)
            .text(" ")
            .dec(2)
            .text(" ")
            .dec(1234)
            .text(" 7 1 0 1");
        let text = std::str::from_utf8(&line.buf[..line.len]).expect("ascii");
        assert_eq!(text, "fault fetch 0x140007010 0x0 2 1234 7 1 0 1");
        assert_eq!(
            parse(text),
            Some(Record::Fault {
                kind: "fetch".to_owned(),
                rip: 0x1_4000_7010,
                address: 0,
                irql: 2,
                step: 1234,
                callback: 7,
                region: 1,
                locks: 0,
                disk_off: true,
            })
        );
    }

    #[test]
    fn raw_lines_truncate_instead_of_overflowing() {
        let mut line = RawLine::new();
        for _ in 0..100 {
            line.text("0123456789");
        }
        assert_eq!(line.len, 511);
    }

    #[test]
    fn ioctl_answers_parse() {
        assert_eq!(
            parse("ioctl 1 -1073741789 0 "),
            Some(Record::Ioctl {
                index: 1,
                status: Some(-1_073_741_789),
                information: 0,
                output: String::new(),
            })
        );
        assert_eq!(
            parse("ioctl 0 0 4 0a0b0c0d"),
            Some(Record::Ioctl {
                index: 0,
                status: Some(0),
                information: 4,
                output: "0a0b0c0d".to_owned(),
            })
        );
        assert_eq!(
            parse("ioctl 2 pending 0 "),
            Some(Record::Ioctl {
                index: 2,
                status: None,
                information: 0,
                output: String::new(),
            })
        );
        assert_eq!(parse("ioctl 0 0 4 0a0z"), None);
        assert_eq!(parse("ioctl x 0 4 00"), None);
    }

    #[test]
    fn findings_keep_their_text() {
        assert_eq!(
            parse("stop unmodelled 0x1400010a0 3 2 0 ntoskrnl.exe!ZwCreateFile"),
            Some(Record::Finding {
                class: "stop".to_owned(),
                kind: "unmodelled".to_owned(),
                rip: 0x1_4000_10a0,
                step: 3,
                callback: 2,
                irql: 0,
                text: "ntoskrnl.exe!ZwCreateFile".to_owned(),
            })
        );
        assert_eq!(
            parse("fail start 0x140001000 1 1 0 EvtDriverDeviceAdd failed with 0xc000007b"),
            Some(Record::Finding {
                class: "fail".to_owned(),
                kind: "start".to_owned(),
                rip: 0x1_4000_1000,
                step: 1,
                callback: 1,
                irql: 0,
                text: "EvtDriverDeviceAdd failed with 0xc000007b".to_owned(),
            })
        );
        assert_eq!(parse("garbage"), None);
        assert_eq!(parse("cb x"), None);
    }
}
