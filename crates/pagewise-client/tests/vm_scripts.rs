//! Static checks of the test-VM PowerShell scripts (`tests/vm/*.ps1`).
//!
//! No PowerShell runs on the Linux CI machine, so this is the safety net for scripts
//! that would otherwise first meet a parser on the test VM: a small tokenizer that
//! separates code from strings and comments, then checks what Windows PowerShell 5.1
//! would reject or mis-parse, and that every helper a script calls exists and is
//! called with parameters it declares.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Cmdlets and functions the scripts may call without defining them: Windows PowerShell
/// 5.1 built-ins and the PnpDevice/PKI/SecureBoot/BitLocker modules of Windows.
const BUILTINS: &[&str] = &[
    "ConvertFrom-Json",
    "ConvertTo-Json",
    "Confirm-SecureBootUEFI",
    "ForEach-Object",
    "Format-Table",
    "Get-BitLockerVolume",
    "Get-ChildItem",
    "Get-CimInstance",
    "Get-Command",
    "Get-Date",
    "Get-Item",
    "Get-ItemProperty",
    "Get-PnpDevice",
    "Import-Certificate",
    "Join-Path",
    "New-Item",
    "New-ItemProperty",
    "New-Object",
    "Out-Null",
    "Out-String",
    "Pop-Location",
    "Push-Location",
    "Remove-Item",
    "Remove-ItemProperty",
    "Resolve-Path",
    "Restart-Computer",
    "Select-Object",
    "Select-String",
    "Set-Content",
    "Set-StrictMode",
    "Sort-Object",
    "Split-Path",
    "Start-Process",
    "Start-Sleep",
    "Stop-Process",
    "Suspend-BitLocker",
    "Test-Path",
    "Where-Object",
    "Write-Host",
    "Write-Warning",
];

/// Scope and drive prefixes PowerShell accepts in `$prefix:name`.
const SCOPES: &[&str] = &[
    "env", "script", "global", "local", "private", "using", "variable", "function",
];

fn vm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vm")
}

fn scripts() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = fs::read_dir(vm_dir())
        .expect("tests/vm exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "ps1"))
        .map(|p| {
            let name = p
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            (name, fs::read_to_string(&p).expect("UTF-8 text"))
        })
        .collect();
    out.sort();
    out
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Code,
    /// Code inside `$( )` of a double-quoted string; closes at its own `)`.
    SubCode(u32),
    Single,
    Double,
    LineComment,
    BlockComment,
}

/// The source with every string and comment character replaced by a space (newlines
/// kept, so line numbers still match), plus problems found on the way.
// One state machine over the characters reads best as one match.
#[allow(clippy::too_many_lines)]
fn code_only(src: &str) -> (String, Vec<String>) {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut problems = Vec::new();
    let mut stack = vec![Mode::Code];
    let mut line = 1;
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied().unwrap_or('\0');
        if c == '\n' {
            line += 1;
        }
        let mode = *stack.last().expect("never empty");
        match mode {
            Mode::Code | Mode::SubCode(_) => match c {
                '`' => {
                    out.push(c);
                    out.push(blank(next));
                    if next == '\n' {
                        line += 1;
                    }
                    i += 2;
                    continue;
                }
                '<' if next == '#' => {
                    stack.push(Mode::BlockComment);
                    out.push_str("  ");
                    i += 2;
                    continue;
                }
                '#' => {
                    stack.push(Mode::LineComment);
                    out.push(' ');
                }
                '@' if next == '\'' || next == '"' => {
                    problems.push(format!(
                        "line {line}: here-string (not supported by this checker)"
                    ));
                    out.push(c);
                }
                '\'' => {
                    stack.push(Mode::Single);
                    out.push(c);
                }
                '"' => {
                    stack.push(Mode::Double);
                    out.push(c);
                }
                '(' => {
                    if let Some(Mode::SubCode(depth)) = stack.last_mut() {
                        *depth += 1;
                    }
                    out.push(c);
                }
                ')' => {
                    match stack.last_mut() {
                        Some(Mode::SubCode(0)) => {
                            stack.pop();
                        }
                        Some(Mode::SubCode(depth)) => *depth -= 1,
                        _ => {}
                    }
                    out.push(c);
                }
                _ => out.push(c),
            },
            Mode::Single => {
                if c == '\'' && next == '\'' {
                    out.push_str("  ");
                    i += 2;
                    continue;
                }
                if c == '\'' {
                    stack.pop();
                    out.push(c);
                } else {
                    out.push(blank(c));
                }
            }
            Mode::Double => {
                if c == '`' {
                    out.push(' ');
                    out.push(blank(next));
                    i += 2;
                    continue;
                }
                if c == '"' && next == '"' {
                    out.push_str("  ");
                    i += 2;
                    continue;
                }
                if c == '"' {
                    stack.pop();
                    out.push(c);
                } else if c == '$' && next == '(' {
                    stack.push(Mode::SubCode(0));
                    out.push_str("$(");
                    i += 2;
                    continue;
                } else if c == '$' && (next.is_ascii_alphabetic() || next == '_') {
                    // `"$name:"` is a parse error (or a drive-qualified variable that does
                    // not exist) in PowerShell: `${name}:` or `$($name):` is meant.
                    let name: String = chars[i + 1..]
                        .iter()
                        .take_while(|ch| ch.is_ascii_alphanumeric() || **ch == '_')
                        .collect();
                    let after = chars.get(i + 1 + name.len()).copied().unwrap_or('\0');
                    if after == ':' && !SCOPES.contains(&name.to_ascii_lowercase().as_str()) {
                        problems.push(format!(
                            "line {line}: \"${name}:\" in a string; write \"${{{name}}}:\""
                        ));
                    }
                    out.push(' ');
                } else {
                    out.push(blank(c));
                }
            }
            Mode::LineComment => {
                if c == '\n' {
                    stack.pop();
                }
                out.push(blank(c));
            }
            Mode::BlockComment => {
                if c == '#' && next == '>' {
                    stack.pop();
                    out.push_str("  ");
                    i += 2;
                    continue;
                }
                out.push(blank(c));
            }
        }
        i += 1;
    }
    if stack != [Mode::Code] && stack != [Mode::Code, Mode::LineComment] {
        problems.push(format!("unterminated {:?} at end of file", stack.last()));
    }
    (out, problems)
}

fn balance(code: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut open: Vec<(char, usize)> = Vec::new();
    for (n, text) in code.lines().enumerate() {
        let chars: Vec<char> = text.chars().collect();
        for (k, &c) in chars.iter().enumerate() {
            // A backtick escapes the next character in code too.
            if k > 0 && chars[k - 1] == '`' {
                continue;
            }
            match c {
                '(' | '{' | '[' => open.push((c, n + 1)),
                ')' | '}' | ']' => {
                    let want = match c {
                        ')' => '(',
                        '}' => '{',
                        _ => '[',
                    };
                    match open.pop() {
                        Some((o, _)) if o == want => {}
                        Some((o, at)) => problems
                            .push(format!("line {}: '{c}' closes '{o}' from line {at}", n + 1)),
                        None => problems.push(format!("line {}: unmatched '{c}'", n + 1)),
                    }
                }
                _ => {}
            }
        }
    }
    for (o, at) in open {
        problems.push(format!("line {at}: '{o}' never closed"));
    }
    problems
}

/// PowerShell 7-only syntax, in code (strings and comments are blanked already).
fn ps7_only(code: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (n, text) in code.lines().enumerate() {
        for bad in [
            "??",
            "?.",
            "?[",
            "&&",
            "||",
            "-Parallel",
            "-AsHashtable",
            "-SkipCertificateCheck",
        ] {
            if text.contains(bad) {
                problems.push(format!("line {}: '{bad}' needs PowerShell 7", n + 1));
            }
        }
        let chars: Vec<char> = text.chars().collect();
        for (k, &c) in chars.iter().enumerate() {
            let before = if k == 0 { ' ' } else { chars[k - 1] };
            let after = chars.get(k + 1).copied().unwrap_or(' ');
            if c == '?' && before.is_whitespace() && after.is_whitespace() {
                problems.push(format!(
                    "line {}: standalone '?' (ternary needs PowerShell 7; spell out Where-Object)",
                    n + 1
                ));
            }
        }
    }
    problems
}

/// `Verb-Noun` tokens in code, with their line and the `-Parameter` names passed at
/// nesting depth 0 on the same line.
fn commands(code: &str) -> Vec<(String, usize, Vec<String>)> {
    let mut found = Vec::new();
    for (n, text) in code.lines().enumerate() {
        let chars: Vec<char> = text.chars().collect();
        let mut k = 0;
        while k < chars.len() {
            let starts = chars[k].is_ascii_uppercase()
                && (k == 0
                    || !(chars[k - 1].is_ascii_alphanumeric() || "-$.:_\\".contains(chars[k - 1])));
            if !starts {
                k += 1;
                continue;
            }
            let end = k + chars[k..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '-')
                .count();
            let word: String = chars[k..end].iter().collect();
            let mut parts = word.split('-');
            let is_command = word.matches('-').count() == 1
                && parts.next().is_some_and(|v| v.len() > 1)
                && parts.next().is_some_and(|noun| {
                    noun.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                });
            if is_command {
                let mut params = Vec::new();
                let mut depth = 0i32;
                let mut j = end;
                while j < chars.len() {
                    match chars[j] {
                        '(' | '{' | '[' => depth += 1,
                        ')' | '}' | ']' => {
                            depth -= 1;
                            if depth < 0 {
                                break;
                            }
                        }
                        '|' | ';' if depth == 0 => break,
                        '-' if depth == 0 && chars[j - 1].is_whitespace() => {
                            let name: String = chars[j + 1..]
                                .iter()
                                .take_while(|c| c.is_ascii_alphanumeric())
                                .collect();
                            if name.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
                                params.push(name);
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                found.push((word, n + 1, params));
            }
            k = end.max(k + 1);
        }
    }
    found
}

/// `function Name { param(...) }` definitions and their parameter names.
fn functions(code: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    let mut rest = code;
    while let Some(at) = rest.find("function ") {
        let after = &rest[at + 9..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let body_start = after.find('{').unwrap_or(after.len());
        let body = &after[body_start..];
        // The param block, if the function's body starts with one.
        let mut params = BTreeSet::new();
        let trimmed = body.trim_start_matches('{').trim_start();
        if trimmed.to_ascii_lowercase().starts_with("param(") {
            params = param_names(trimmed);
        }
        out.insert(name, params);
        rest = &after[body_start..];
    }
    out
}

/// Names of the `$variables` declared in the `param(...)` block at the start of `text`.
fn param_names(text: &str) -> BTreeSet<String> {
    let open = text.find('(').expect("param(");
    let mut depth = 0;
    let mut end = text.len();
    for (k, c) in text[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    end = open + k;
                    break;
                }
            }
            _ => {}
        }
    }
    let block = &text[open..end];
    // Declarations sit at depth 1; attribute arguments like [ValidateRange(1, 9)] are deeper.
    let mut names = BTreeSet::new();
    let mut depth = 0;
    let chars: Vec<char> = block.chars().collect();
    for (k, &c) in chars.iter().enumerate() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            '$' if depth == 1 => {
                let name: String = chars[k + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                names.insert(name.to_ascii_lowercase());
            }
            _ => {}
        }
    }
    names
}

/// The script-level `param(...)` of a script (after its help comment).
fn script_params(code: &str) -> BTreeSet<String> {
    let lower = code.to_ascii_lowercase();
    let Some(at) = lower.find("param(") else {
        return BTreeSet::new();
    };
    let first_function = lower.find("function ").unwrap_or(usize::MAX);
    if at > first_function {
        return BTreeSet::new();
    }
    param_names(&code[at..])
}

/// Parameters every advanced function or script accepts.
const COMMON_PARAMETERS: &[&str] = &[
    "verbose",
    "debug",
    "erroraction",
    "warningaction",
    "confirm",
    "whatif",
];

#[test]
fn scripts_exist() {
    let names: Vec<String> = scripts().into_iter().map(|(n, _)| n).collect();
    for wanted in [
        "Common.ps1",
        "Prerequisites.ps1",
        "Install.ps1",
        "Verifier.ps1",
        "Exercise.ps1",
        "Uninstall.ps1",
        "Run-All.ps1",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "tests/vm/{wanted} missing: {names:?}"
        );
    }
}

#[test]
fn scripts_parse_in_windows_powershell_5_1() {
    let mut problems = Vec::new();
    for (name, src) in scripts() {
        if let Some((k, c)) = src.char_indices().find(|(_, c)| !c.is_ascii()) {
            // 5.1 reads a file without a BOM in the ANSI code page: non-ASCII text breaks.
            problems.push(format!("{name}: non-ASCII {c:?} at byte {k}"));
        }
        let (code, mut found) = code_only(&src);
        found.extend(balance(&code));
        found.extend(ps7_only(&code));
        problems.extend(found.into_iter().map(|p| format!("{name}: {p}")));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn scripts_follow_the_house_rules() {
    let mut problems = Vec::new();
    for (name, src) in scripts() {
        let (code, _) = code_only(&src);
        if !src.trim_start().starts_with("<#") || !src.contains(".SYNOPSIS") {
            problems.push(format!(
                "{name}: no comment-based help (.SYNOPSIS) at the top"
            ));
        }
        if !code.contains("Set-StrictMode -Version Latest") {
            problems.push(format!("{name}: no Set-StrictMode -Version Latest"));
        }
        if !src.contains("$ErrorActionPreference = 'Stop'") {
            problems.push(format!("{name}: no $ErrorActionPreference = 'Stop'"));
        }
        if name != "Common.ps1" {
            for section in [".DESCRIPTION", ".EXAMPLE"] {
                if !src.contains(section) {
                    problems.push(format!("{name}: help has no {section}"));
                }
            }
            if !code.contains("[CmdletBinding(") {
                problems.push(format!(
                    "{name}: not an advanced script ([CmdletBinding()])"
                ));
            }
            for param in script_params(&code) {
                if !src.contains(&format!(".PARAMETER {param}"))
                    && !src
                        .to_ascii_lowercase()
                        .contains(&format!(".parameter {param}"))
                {
                    problems.push(format!("{name}: parameter {param} undocumented"));
                }
            }
        }
        if code.contains("Restart-Computer -Force") {
            problems.push(format!("{name}: forces a reboot"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_command_and_parameter_is_known() {
    let all = scripts();
    let common_code = code_only(
        &all.iter()
            .find(|(n, _)| n == "Common.ps1")
            .expect("Common.ps1")
            .1,
    )
    .0;
    let shared = functions(&common_code);
    let mut problems = Vec::new();
    for (name, src) in &all {
        let (code, _) = code_only(src);
        let mut known = shared.clone();
        known.extend(functions(&code));
        for (command, line, params) in commands(&code) {
            if BUILTINS.contains(&command.as_str()) {
                continue;
            }
            let Some(declared) = known.get(&command) else {
                problems.push(format!("{name}:{line}: unknown command {command}"));
                continue;
            };
            for p in params {
                let p = p.to_ascii_lowercase();
                if !declared.contains(&p) && !COMMON_PARAMETERS.contains(&p.as_str()) {
                    problems.push(format!("{name}:{line}: {command} has no parameter -{p}"));
                }
            }
        }
        // Scripts calling scripts: & (Join-Path $PSScriptRoot 'X.ps1') -Param ...
        for (n, text) in src.lines().enumerate() {
            let Some(at) = text.find("Join-Path $PSScriptRoot '") else {
                continue;
            };
            let rest = &text[at + 25..];
            let Some(end) = rest.find('\'') else { continue };
            let target = &rest[..end];
            if !Path::new(target)
                .extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("ps1"))
            {
                continue;
            }
            let path = vm_dir().join(target);
            if !path.exists() {
                problems.push(format!("{name}:{}: {target} does not exist", n + 1));
                continue;
            }
            if target == "Common.ps1" {
                continue;
            }
            let target_code = code_only(&fs::read_to_string(&path).expect("readable")).0;
            let declared = script_params(&target_code);
            let after_call = &rest[end..];
            for word in after_call
                .split_whitespace()
                .filter_map(|w| w.strip_prefix('-'))
            {
                let p: String = word
                    .chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect::<String>()
                    .to_ascii_lowercase();
                if p.is_empty() || p.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                    continue;
                }
                if !declared.contains(&p) && !COMMON_PARAMETERS.contains(&p.as_str()) {
                    problems.push(format!("{name}:{}: {target} has no parameter -{p}", n + 1));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The checker itself must catch what it claims to.
#[test]
fn checker_catches_known_mistakes() {
    let (code, problems) =
        code_only("$a = \"$package: x\"\n$b = \"${package}: ok $env:windir $($x.Name): ok\"\n");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("line 1"));
    assert!(balance(&code).is_empty());

    let (code, _) = code_only("if ($x) { Write-Host '}' # }\n");
    assert_eq!(balance(&code), ["line 1: '{' never closed"]);
    let (code, _) = code_only("$x = $a ?? 'b'\n$y = $c ? 1 : 2\n$z = '??' # ??\n");
    assert_eq!(ps7_only(&code).len(), 2, "{:?}", ps7_only(&code));
    let (code, _) = code_only(
        "<# help\n { #>\nfunction Get-Thing {\n    param([ValidateRange(1, 2)][int]$Count, [string]$Name)\n}\nGet-Thing -Count 1 -Nmae 'x' | Out-Null\n",
    );
    assert!(balance(&code).is_empty());
    let defs = functions(&code);
    assert_eq!(
        defs["Get-Thing"],
        BTreeSet::from(["count".to_owned(), "name".to_owned()])
    );
    let calls = commands(&code);
    let call = calls
        .iter()
        .find(|(c, line, _)| c == "Get-Thing" && *line == 6)
        .expect("call found");
    assert_eq!(call.2, ["Count", "Nmae"]);
    assert!(calls.iter().any(|(c, _, _)| c == "Out-Null"));
}

/// One parameter of a script's own `param(...)` block, read from the raw source: the
/// attributes and the default value are strings, which `code_only` blanks.
#[derive(Debug)]
struct ParamDecl {
    name: String,
    /// Everything before `$name`: `[ValidateSet('A', 'B')][string]`.
    attributes: String,
    /// The text after `=`, if any, trimmed: `'Auto'`, `10`.
    default: Option<String>,
}

impl ParamDecl {
    fn validate_set(&self) -> Option<Vec<String>> {
        let at = self.attributes.find("[ValidateSet(")?;
        let rest = &self.attributes[at + "[ValidateSet(".len()..];
        let inner = &rest[..rest.find(")]").expect("closed ValidateSet")];
        Some(
            inner
                .split(',')
                .map(|v| v.trim().trim_matches('\'').to_owned())
                .collect(),
        )
    }

    fn validate_range(&self) -> Option<(i64, i64)> {
        let at = self.attributes.find("[ValidateRange(")?;
        let rest = &self.attributes[at + "[ValidateRange(".len()..];
        let inner = &rest[..rest.find(")]").expect("closed ValidateRange")];
        let (low, high) = inner.split_once(',').expect("two bounds");
        Some((
            low.trim().parse().expect("numeric bound"),
            high.trim().parse().expect("numeric bound"),
        ))
    }
}

/// The byte range of the script-level `param(...)` block (from `p` to the closing `)`),
/// found in the code so that a `param(` in help or a string does not count.
fn param_block_range(src: &str) -> Option<(usize, usize)> {
    // Byte offsets of the code-only text are those of the source because the scripts are
    // ASCII (checked by scripts_parse_in_windows_powershell_5_1) and code_only keeps one
    // character for each.
    assert!(src.is_ascii(), "the scripts are ASCII");
    let code = code_only(src).0;
    let lower = code.to_ascii_lowercase();
    let at = lower.find("param(")?;
    if lower.find("function ").is_some_and(|f| f < at) {
        return None;
    }
    let mut depth = 0;
    for (k, c) in code[at..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some((at, at + k + 1));
                }
            }
            _ => {}
        }
    }
    panic!("param( never closed");
}

/// The declarations of a script's own parameters, in order.
fn param_decls(src: &str) -> Vec<ParamDecl> {
    let Some((start, end)) = param_block_range(src) else {
        return Vec::new();
    };
    let code = code_only(src).0;
    // Split the block's inside at commas outside brackets and strings.
    let inner = start + "param(".len()..end - 1;
    let mut pieces = Vec::new();
    let mut depth = 0i32;
    let mut from = inner.start;
    for k in inner.clone() {
        match code.as_bytes()[k] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b',' if depth == 0 => {
                pieces.push(from..k);
                from = k + 1;
            }
            _ => {}
        }
    }
    pieces.push(from..inner.end);
    pieces
        .into_iter()
        .filter_map(|range| {
            let raw = &src[range.clone()];
            let piece_code = &code[range];
            // The `$` of the name is the first one in code at bracket depth 0.
            let mut depth = 0i32;
            let dollar = piece_code.char_indices().find_map(|(k, c)| {
                match c {
                    '[' | '(' => depth += 1,
                    ']' | ')' => depth -= 1,
                    '$' if depth == 0 => return Some(k),
                    _ => {}
                }
                None
            })?;
            let name: String = raw[dollar + 1..]
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            let after = &raw[dollar + 1 + name.len()..];
            let default = after
                .trim_start()
                .strip_prefix('=')
                .map(|d| d.trim().to_owned());
            Some(ParamDecl {
                name,
                attributes: raw[..dollar].trim().to_owned(),
                default,
            })
        })
        .collect()
}

fn script(name: &str) -> String {
    scripts()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("tests/vm/{name}"))
        .1
}

fn decl<'a>(decls: &'a [ParamDecl], name: &str) -> &'a ParamDecl {
    decls
        .iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("no parameter -{name} in {decls:?}"))
}

/// The help text of `.PARAMETER name`, up to the next help keyword.
fn parameter_help(src: &str, name: &str) -> Option<String> {
    let mut lines = src.lines();
    lines.find(|l| l.trim().eq_ignore_ascii_case(&format!(".PARAMETER {name}")))?;
    let help: Vec<&str> = lines
        .take_while(|l| {
            let t = l.trim_start();
            !(t.starts_with("#>") || t.starts_with('.') && t[1..].starts_with(char::is_uppercase))
        })
        .collect();
    Some(help.join("\n"))
}

/// True when `$name` occurs in `text` as a whole variable name, in any case.
fn uses_variable(text: &str, name: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let wanted = format!("${}", name.to_ascii_lowercase());
    lower.match_indices(&wanted).any(|(k, _)| {
        !lower[k + wanted.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
    })
}

#[test]
fn param_decls_read_attributes_and_defaults() {
    let src = "<# x #>\n[CmdletBinding()]\nparam(\n    [ValidateSet('Auto', 'On')][string]$Mode = 'Auto',\n    [ValidateRange(5, 270)][int]$Seconds = 30,\n    [switch]$Now\n)\nfunction F { param($Inner) }\n";
    let decls = param_decls(src);
    let names: Vec<&str> = decls.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["Mode", "Seconds", "Now"]);
    assert_eq!(
        decls[0].validate_set(),
        Some(vec!["Auto".to_owned(), "On".to_owned()])
    );
    assert_eq!(decls[0].default.as_deref(), Some("'Auto'"));
    assert_eq!(decls[1].validate_range(), Some((5, 270)));
    assert_eq!(decls[2].attributes, "[switch]");
    assert!(decls[2].default.is_none());
    assert!(uses_variable("x $Now y", "now"));
    assert!(!uses_variable("x $NowHere y", "Now"));
}

/// A value that a `ValidateSet` allows but the help does not name is a choice nobody finds.
#[test]
fn validate_sets_are_documented_value_by_value() {
    let mut problems = Vec::new();
    let mut sets = 0;
    for (name, src) in scripts() {
        for d in param_decls(&src) {
            let Some(values) = d.validate_set() else {
                continue;
            };
            sets += 1;
            let Some(help) = parameter_help(&src, &d.name) else {
                problems.push(format!("{name}: -{} has no help", d.name));
                continue;
            };
            for value in values {
                let named = help
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .any(|w| w == value);
                if !named {
                    problems.push(format!("{name}: help of -{} does not name {value}", d.name));
                }
            }
        }
    }
    // Exercise's SleepState, DeviceTool in Install, Prerequisites and Run-All, BreakOnError
    // in Verifier and Run-All: if the parser finds fewer, it is the parser that broke.
    assert!(sets >= 6, "only {sets} ValidateSet parameters found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A declared parameter that the script never reads is a switch that silently does nothing.
#[test]
fn every_parameter_is_used() {
    let mut problems = Vec::new();
    for (name, src) in scripts() {
        let Some((_, end)) = param_block_range(&src) else {
            continue;
        };
        for d in param_decls(&src) {
            if !uses_variable(&src[end..], &d.name) {
                problems.push(format!("{name}: -{} is never used", d.name));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// PowerShell names ignore case, so `$deviceTool = ...` overwrites `-DeviceTool`; and a
/// parameter with a Validate attribute is validated again on every assignment, so storing
/// anything else in it throws.
#[test]
fn no_script_assigns_to_a_validated_or_differently_cased_parameter() {
    let mut problems = Vec::new();
    for (name, src) in scripts() {
        let Some((_, end)) = param_block_range(&src) else {
            continue;
        };
        let decls = param_decls(&src);
        let code = code_only(&src).0;
        let body = &code[end..];
        let chars: Vec<char> = body.chars().collect();
        for (k, &c) in chars.iter().enumerate() {
            if c != '$' {
                continue;
            }
            let var: String = chars[k + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            let rest: String = chars[k + 1 + var.len()..].iter().take(4).collect();
            let rest = rest.trim_start();
            let assigns = (rest.starts_with('=') && !rest.starts_with("=="))
                || ["+=", "-=", "*=", "/="]
                    .iter()
                    .any(|op| rest.starts_with(op));
            if !assigns {
                continue;
            }
            let Some(d) = decls.iter().find(|d| d.name.eq_ignore_ascii_case(&var)) else {
                continue;
            };
            let line = body[..k].matches('\n').count() + code[..end].matches('\n').count() + 1;
            if d.attributes.contains("[Validate") {
                problems.push(format!(
                    "{name}:{line}: assigns ${var}, the validated parameter -{}",
                    d.name
                ));
            } else if d.name != var {
                problems.push(format!(
                    "{name}:{line}: ${var} is the parameter -{} (names ignore case)",
                    d.name
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Run-All.ps1 passes every parameter it shares with a step on to that step, by name or
/// through a splatted hashtable, so that `Run-All.ps1 -X` means what `Step.ps1 -X` means.
#[test]
fn run_all_forwards_the_parameters_it_shares() {
    let run_all = script("Run-All.ps1");
    let own: BTreeSet<String> = param_decls(&run_all)
        .into_iter()
        .map(|d| d.name.to_ascii_lowercase())
        .collect();
    let mut problems = Vec::new();
    let mut calls = 0;
    for line in run_all.lines() {
        let Some(at) = line.find("Join-Path $PSScriptRoot '") else {
            continue;
        };
        let rest = &line[at + 25..];
        let target = &rest[..rest.find('\'').expect("closing quote")];
        if target == "Common.ps1" {
            continue;
        }
        calls += 1;
        let mut passed: BTreeSet<String> = rest
            .split_whitespace()
            .filter_map(|w| w.strip_prefix('-'))
            .map(|w| {
                w.chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect::<String>()
                    .to_ascii_lowercase()
            })
            .collect();
        for splat in rest.split_whitespace().filter_map(|w| w.strip_prefix('@')) {
            for l in run_all.lines() {
                let t = l.trim();
                if let Some(table) = t.strip_prefix(&format!("${splat} = @{{")) {
                    passed.extend(
                        table.split(';').filter_map(|kv| {
                            Some(kv.split_once('=')?.0.trim().to_ascii_lowercase())
                        }),
                    );
                }
                if let Some(at) = t.find(&format!("${splat}['")) {
                    let key = &t[at + splat.len() + 3..];
                    passed.insert(key[..key.find('\'').expect("key")].to_ascii_lowercase());
                }
            }
        }
        for d in param_decls(&script(target)) {
            let p = d.name.to_ascii_lowercase();
            if own.contains(&p) && !passed.contains(&p) {
                problems.push(format!("Run-All.ps1 does not pass -{} to {target}", d.name));
            }
        }
    }
    assert_eq!(calls, 5, "Run-All.ps1 calls the five steps");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The device node is created with devgen (Microsoft's recommendation) or devcon, chosen the
/// same way in every script that needs a device tool.
#[test]
fn device_tool_choice_is_offered_and_both_tools_are_used() {
    for name in ["Install.ps1", "Prerequisites.ps1", "Run-All.ps1"] {
        let decls = param_decls(&script(name));
        let tool = decl(&decls, "DeviceTool");
        assert_eq!(
            tool.validate_set(),
            Some(vec!["Auto".into(), "Devgen".into(), "Devcon".into()]),
            "{name}"
        );
        assert_eq!(tool.default.as_deref(), Some("'Auto'"), "{name}");
        decl(&decls, "DevgenPath");
        decl(&decls, "DevconPath");
    }
    let install = script("Install.ps1");
    // ROOT: a software device (devgen's default) would not survive Driver Verifier's reboot.
    assert!(
        install.contains("@('/add', '/bus', 'ROOT', '/hardwareid', $PagewiseHardwareId)"),
        "devgen creates a root-enumerated node"
    );
    assert!(
        install.contains("@('install', $inf, $PagewiseHardwareId)"),
        "devcon stays"
    );
    let common = code_only(&script("Common.ps1")).0;
    assert!(functions(&common).contains_key("Find-DeviceTool"));
}

/// KMDF's `DbgBreakOnError` breaks into the kernel debugger on a framework error; with none
/// attached that is a bug check and the run never reports. It follows the boot entry.
#[test]
fn verifier_breaks_into_the_debugger_only_when_debugging_is_on() {
    let src = script("Verifier.ps1");
    let decls = param_decls(&src);
    let choice = decl(&decls, "BreakOnError");
    assert_eq!(
        choice.validate_set(),
        Some(vec!["Auto".into(), "On".into(), "Off".into()])
    );
    assert_eq!(choice.default.as_deref(), Some("'Auto'"));
    let code = code_only(&src).0;
    assert!(
        src.contains("Get-BcdCurrentValue -Element 'debug'"),
        "reads the debug element of the current boot entry"
    );
    let assignments: Vec<&str> = code
        .match_indices("DbgBreakOnError =")
        .map(|(k, m)| code[k + m.len()..].trim_start())
        .collect();
    assert!(!assignments.is_empty(), "Verifier.ps1 sets DbgBreakOnError");
    for value in assignments {
        assert!(
            value.starts_with('$'),
            "DbgBreakOnError is set from the debugging state, not a constant: {}",
            &value[..value.find('\n').unwrap_or(value.len())]
        );
    }
}

/// Exercise.ps1 renews the D0 hold before every sleep cycle, and the longest cycle its
/// parameters allow still fits in one hold.
#[test]
fn sleep_cycles_renew_a_hold_that_fits_the_client_limit() {
    let src = script("Exercise.ps1");
    let decls = param_decls(&src);
    let (_, max_sleep) = decl(&decls, "SleepSeconds")
        .validate_range()
        .expect("ranged");
    let (_, max_delay) = decl(&decls, "DelaySeconds")
        .validate_range()
        .expect("ranged");
    let margin: i64 = src
        .lines()
        .find_map(|l| l.trim().strip_prefix("$holdMarginSeconds = "))
        .expect("$holdMarginSeconds")
        .trim()
        .parse()
        .expect("a number");
    let longest_ms = (max_sleep + max_delay + margin) * 1000;
    assert!(
        longest_ms <= i64::from(pagewise_ioctl::MAX_HOLD_D0_MS),
        "a {max_delay} s + {max_sleep} s cycle with a {margin} s margin needs a {longest_ms} ms hold"
    );

    // The per-cycle loop: `for (...$SleepCycles...) { body }`, located in the code.
    let code = code_only(&src).0;
    let header = code
        .match_indices("for (")
        .map(|(k, _)| k)
        .find(|&k| {
            code[k..]
                .lines()
                .next()
                .is_some_and(|l| l.contains("$SleepCycles"))
        })
        .expect("a for loop over the sleep cycles");
    let open = header + code[header..].find('{').expect("loop body");
    let mut depth = 0;
    let close = code[open..]
        .char_indices()
        .find_map(|(k, c)| {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(open + k);
                    }
                }
                _ => {}
            }
            None
        })
        .expect("loop body closed");
    let body = &src[open..close];
    assert_eq!(
        src.matches("'hold'").count(),
        body.matches("'hold'").count(),
        "every hold request is made inside the per-cycle loop"
    );
    assert!(body.contains("'hold'"), "the loop renews the hold");
    assert_eq!(
        body.matches("'/c:1'").count(),
        2,
        "one pwrtest cycle per run, for S3 and for modern standby"
    );
}

/// Turning test signing on changes the boot configuration that `BitLocker` checks.
#[test]
fn test_signing_is_turned_on_only_with_bitlocker_handled() {
    let src = script("Prerequisites.ps1");
    let decls = param_decls(&src);
    assert_eq!(decl(&decls, "SuspendBitLocker").attributes, "[switch]");
    let code = code_only(&src).0;
    let suspend = code.find("Suspend-BitLocker").expect("suspends BitLocker");
    let turn_on = src
        .find("@('/set', 'testsigning', 'on')")
        .expect("turns test signing on");
    assert!(
        suspend < turn_on,
        "BitLocker is suspended before bcdedit runs"
    );
    assert!(
        src.contains("Suspend-BitLocker -MountPoint $env:SystemDrive -RebootCount 1"),
        "suspended for the one restart that applies the change"
    );
}
