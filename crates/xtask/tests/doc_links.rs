//! The documentation holds together: every relative link in `README.md`, `docs/*.md` and
//! `crates/*/README.md` names a file of this repository (and, with `#anchor`, a heading of that
//! file), the front page stays short, and the test command it gives is the one CI runs.
//!
//! Part of `cargo test --workspace`, so a renamed heading or a moved file fails the test
//! command, not a reader.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// The front page's budget: what it is, prerequisites, the two commands, the paging map,
/// installation, a pagecheck quick start and links. The rest belongs in docs/.
const README_MAX_BYTES: usize = 12 * 1024;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// The documents whose links are checked, relative to the repository root.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut docs = vec![PathBuf::from("README.md")];
    let markdown_in = |dir: &Path| -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = fs::read_dir(root.join(dir))
            .into_iter()
            .flatten()
            .map(|entry| entry.expect("readable directory entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
            .map(|path| dir.join(path.file_name().expect("file name")))
            .collect();
        found.sort();
        found
    };
    docs.extend(markdown_in(Path::new("docs")));
    let mut crates: Vec<PathBuf> = fs::read_dir(root.join("crates"))
        .expect("crates/")
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|dir| dir.join("README.md").is_file())
        .map(|dir| {
            Path::new("crates")
                .join(dir.file_name().expect("crate directory"))
                .join("README.md")
        })
        .collect();
    crates.sort();
    docs.extend(crates);
    docs
}

/// The text outside fenced code blocks, line by line (a fenced line becomes empty, so line
/// numbers still match), with inline code spans blanked: a path in backticks is not a link.
fn prose_lines(markdown: &str) -> Vec<String> {
    let mut fence: Option<&str> = None;
    markdown
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            for marker in ["```", "~~~"] {
                if trimmed.starts_with(marker) {
                    match fence {
                        None => fence = Some(marker),
                        Some(open) if open == marker => fence = None,
                        Some(_) => {}
                    }
                    return String::new();
                }
            }
            if fence.is_some() {
                return String::new();
            }
            let mut out = String::with_capacity(line.len());
            let mut in_code = false;
            for c in line.chars() {
                if c == '`' {
                    in_code = !in_code;
                    out.push(' ');
                } else {
                    out.push(if in_code { ' ' } else { c });
                }
            }
            out
        })
        .collect()
}

/// Link targets with their line numbers: inline `[text](target)` and `![alt](target)`, and
/// reference definitions `[label]: target`.
fn link_targets(markdown: &str) -> Vec<(usize, String)> {
    let mut targets = Vec::new();
    for (n, line) in prose_lines(markdown).iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[')
            && let Some(close) = trimmed.find("]:")
        {
            let target = trimmed[close + 2..].split_whitespace().next();
            if let Some(target) = target {
                targets.push((n + 1, target.to_owned()));
            }
            continue;
        }
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = after
                .find(|c: char| c == ')' || c.is_whitespace())
                .unwrap_or(after.len());
            let target = after[..end].trim_start_matches('<').trim_end_matches('>');
            if !target.is_empty() {
                targets.push((n + 1, target.to_owned()));
            }
            rest = &after[end..];
        }
    }
    targets
}

/// The anchors GitHub gives a document's headings: lower case, punctuation dropped, spaces
/// to hyphens, and `-1`, `-2`, ... for repeated headings.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut fence = false;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fence = !fence;
            continue;
        }
        if fence || !line.starts_with('#') {
            continue;
        }
        let text = line.trim_start_matches('#');
        if !text.starts_with(' ') {
            continue;
        }
        let slug: String = text
            .trim()
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        let mut unique = slug.clone();
        let mut k = 1;
        while seen.contains(&unique) {
            unique = format!("{slug}-{k}");
            k += 1;
        }
        seen.insert(unique);
    }
    seen
}

/// `base/relative` with `.` and `..` resolved, or `None` if it climbs out of the repository.
fn resolve(base: &Path, relative: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in base.join(relative).components() {
        match component {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Every broken relative link of `doc` (a path relative to `root`), as readable lines.
fn broken_links(root: &Path, doc: &Path) -> Vec<String> {
    let text = fs::read_to_string(root.join(doc)).expect("readable document");
    let dir = doc.parent().unwrap_or(Path::new(""));
    let mut problems = Vec::new();
    for (line, target) in link_targets(&text) {
        let where_ = format!("{}:{line}: {target}", doc.display());
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((path, anchor)) => (path, Some(anchor)),
            None => (target.as_str(), None),
        };
        let file = if path.is_empty() {
            doc.to_path_buf()
        } else if let Some(file) = resolve(dir, path) {
            file
        } else {
            problems.push(format!("{where_}: points outside the repository"));
            continue;
        };
        if !root.join(&file).exists() {
            problems.push(format!("{where_}: no such file {}", file.display()));
            continue;
        }
        if let Some(anchor) = anchor {
            if file.extension().is_none_or(|ext| ext != "md") {
                problems.push(format!(
                    "{where_}: an anchor into a file that is not Markdown"
                ));
                continue;
            }
            let target_text = fs::read_to_string(root.join(&file)).expect("readable target");
            if !anchors(&target_text).contains(anchor) {
                problems.push(format!(
                    "{where_}: no heading with anchor #{anchor} in {}",
                    file.display()
                ));
            }
        }
    }
    problems
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let root = repo_root();
    let docs = documents(&root);
    for wanted in [
        "README.md",
        "docs/paging.md",
        "docs/driver.md",
        "crates/pagecheck/README.md",
    ] {
        assert!(
            docs.iter().any(|d| d == Path::new(wanted)),
            "{wanted} is among the checked documents: {docs:?}"
        );
    }
    let problems: Vec<String> = docs
        .iter()
        .flat_map(|doc| broken_links(&root, doc))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_front_page_stays_short() {
    let readme = fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    assert!(
        readme.len() <= README_MAX_BYTES,
        "README.md is {} bytes, over {README_MAX_BYTES}: move detail into docs/",
        readme.len()
    );
}

/// The README gives one test command, and `.ci/run` (what CI runs) must run that command,
/// or the two drift apart.
#[test]
fn the_readme_test_command_is_what_ci_runs() {
    let root = repo_root();
    let readme = fs::read_to_string(root.join("README.md")).expect("README.md");
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("The two commands"))
        .expect("a section \"The two commands\"");
    // The last code block of the section is the test command (the ones before build the
    // driver: with cargo-make, then with cargo-wdk).
    let blocks: Vec<&str> = section.split("```").skip(1).step_by(2).collect();
    assert!(blocks.len() >= 2, "a build command and the test command");
    let command = blocks
        .last()
        .expect("a code block")
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .expect("a command");
    assert_eq!(command, "cargo xtask test");
    let ci = fs::read_to_string(root.join(".ci/run")).expect(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == command),
        ".ci/run does not run the README's test command `{command}`:\n{ci}"
    );
}

/// The team's notes live outside the repository; the documents cite docs/paging.md instead.
#[test]
fn no_document_points_outside_the_repository_for_its_facts() {
    let root = repo_root();
    let mut files = documents(&root);
    for extra in [
        "build.rs",
        "Makefile.toml",
        "pagewise.inx",
        "deny.toml",
        ".ci/run",
    ] {
        files.push(PathBuf::from(extra));
    }
    for dir in [
        ".github/workflows",
        "tests/vm",
        "crates/pagewise-client/src",
    ] {
        let mut found: Vec<PathBuf> = fs::read_dir(root.join(dir))
            .expect("directory")
            .map(|e| Path::new(dir).join(e.expect("entry").file_name()))
            .collect();
        found.sort();
        files.extend(found);
    }
    let notes = ["PAGING", ".md"].concat();
    let shared = ["..", "/shared"].concat();
    let problems: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let text = fs::read_to_string(root.join(file)).expect("readable text");
            (text.contains(&notes) || text.contains(&shared)).then(|| file.display().to_string())
        })
        .collect();
    assert!(
        problems.is_empty(),
        "cite docs/paging.md, not notes outside the repository: {problems:?}"
    );
}

/// The checker itself: it finds what it claims to, and nothing else.
#[test]
fn the_checker_finds_broken_links_and_anchors() {
    let root = std::env::temp_dir().join(format!("pagewise-doc-links-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(root.join("docs")).expect("temp docs/");
    fs::write(
        root.join("docs/a.md"),
        "# Title\n\n## `ci.yml`, Windows job\n\n## Step\n\n## Step\n\n```\n## not a heading\n```\n",
    )
    .expect("write a.md");
    fs::write(
        root.join("README.md"),
        "See [a](docs/a.md), [b](docs/missing.md), [c](docs/a.md#ciyml-windows-job),\n\
         [d](docs/a.md#step-1), [e](docs/a.md#not-a-heading), [f](https://example.com/x),\n\
         [g](../outside.md) and `[h](docs/in-code.md)`.\n\n\
         ```\n[i](docs/in-fence.md)\n```\n\n[ref]: docs/gone.md\n",
    )
    .expect("write README.md");
    let problems = broken_links(&root, Path::new("README.md"));
    let _ = fs::remove_dir_all(&root);
    let found: Vec<&str> = problems
        .iter()
        .map(|p| p.split(": ").nth(1).expect("target"))
        .collect();
    assert_eq!(
        found,
        [
            "docs/missing.md",
            "docs/a.md#not-a-heading",
            "../outside.md",
            "docs/gone.md"
        ],
        "{problems:#?}"
    );
}
