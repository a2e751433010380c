//! Which Debian Rust toolchain the driver's image and the Rust fixtures need, and what is
//! installed.

/// Debian's Rust toolchain packages, upgraded together.
pub const RUST_PACKAGES: &[&str] = &["rustc-web", "cargo-web", "rust-web-src"];

/// The oldest Debian rustc that builds the driver's image: the workspace's `rust-version`
/// (also wdk-build 0.6.0's), which edition 2024 and the driver's `let` chains need. Bookworm's
/// own `rustc-web` 1.85 is older; bookworm-security's is newer.
pub const MIN_DEBIAN_RUST: (u32, u32) = (1, 91);

/// What to do when `setup` could not bring the toolchain to [`MIN_DEBIAN_RUST`] itself.
pub const WHAT_TO_DO: &str = "Debian 12 (bookworm) ships a newer rustc-web, cargo-web and \
     rust-web-src through bookworm-security: make sure `deb http://deb.debian.org/debian-security \
     bookworm-security main` is in /etc/apt/sources.list (or sources.list.d), then run \
     `apt-get update && apt-get install --only-upgrade rustc-web cargo-web rust-web-src`, or \
     run `cargo xtask setup` again.";

/// The installed state: package versions and what rustc reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// `(package, Debian version)`, `None` when not installed.
    pub packages: Vec<(&'static str, Option<String>)>,
    /// `rustc -V` of Debian's rustc.
    pub rustc: Option<String>,
}

impl Installed {
    /// Reads the state with the given probes (dpkg and rustc on a real system).
    pub fn read(
        dpkg: impl Fn(&str) -> Option<String>,
        rustc: impl Fn() -> Option<String>,
    ) -> Installed {
        Installed {
            packages: RUST_PACKAGES.iter().map(|&p| (p, dpkg(p))).collect(),
            rustc: rustc(),
        }
    }

    /// `Ok` when every package is installed at one upstream version, that version is at
    /// least [`MIN_DEBIAN_RUST`], and rustc reports it (the library sources `-Zbuild-std`
    /// compiles must be the compiler's own); otherwise what is wrong, in one line.
    pub fn check(&self) -> Result<(), String> {
        let mut upstream = None;
        for (package, version) in &self.packages {
            let Some(version) = version else {
                return Err(format!("{package} is not installed"));
            };
            let Some(parsed) = debian_upstream(version) else {
                return Err(format!("{package} {version}: version not understood"));
            };
            if parsed < MIN_DEBIAN_RUST {
                let (major, minor) = MIN_DEBIAN_RUST;
                return Err(format!(
                    "{package} {version} is older than the {major}.{minor} the driver's image needs"
                ));
            }
            match upstream {
                None => upstream = Some((parsed, package, version)),
                Some((first, other, other_version)) if first != parsed => {
                    return Err(format!(
                        "{package} {version} and {other} {other_version} differ: -Zbuild-std \
                         needs the compiler's own library sources"
                    ));
                }
                Some(_) => {}
            }
        }
        let reported = self.rustc.as_deref().and_then(rustc_reported);
        match (upstream, reported) {
            (Some((expected, ..)), Some(found)) if found == expected => Ok(()),
            (_, None) => Err(format!(
                "{} does not run or reports no version",
                pe_fixtures::RUSTC
            )),
            (_, Some((major, minor))) => Err(format!(
                "{} reports {major}.{minor}, not its package's version",
                pe_fixtures::RUSTC
            )),
        }
    }
}

/// `1.96.0+dfsg1-1~deb12u2` -> `(1, 96)`.
pub fn debian_upstream(version: &str) -> Option<(u32, u32)> {
    let version = version.split_once(':').map_or(version, |(_, rest)| rest);
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// `rustc 1.96.0 (ac68faa20 2026-05-25) (built from a source tarball)` -> `(1, 96)`.
pub fn rustc_reported(line: &str) -> Option<(u32, u32)> {
    debian_upstream(line.strip_prefix("rustc ")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(versions: [&str; 3], reported: Option<&str>) -> Installed {
        Installed {
            packages: RUST_PACKAGES
                .iter()
                .zip(versions)
                .map(|(&p, v)| (p, (!v.is_empty()).then(|| v.to_owned())))
                .collect(),
            rustc: reported.map(str::to_owned),
        }
    }

    const NEW: &str = "1.96.0+dfsg1-1~deb12u2";
    const OLD: &str = "1.85.0+dfsg3-1~deb12u3";
    const NEW_RUSTC: &str = "rustc 1.96.0 (ac68faa20 2026-05-25) (built from a source tarball)";

    #[test]
    fn versions_parse() {
        assert_eq!(debian_upstream(NEW), Some((1, 96)));
        assert_eq!(debian_upstream("1:1.91.1-2"), Some((1, 91)));
        assert_eq!(debian_upstream("garbage"), None);
        assert_eq!(rustc_reported(NEW_RUSTC), Some((1, 96)));
        assert_eq!(rustc_reported("cargo 1.96.0"), None);
    }

    #[test]
    fn a_current_toolchain_passes() {
        assert_eq!(state([NEW, NEW, NEW], Some(NEW_RUSTC)).check(), Ok(()));
    }

    /// Issue 17, point 5: bookworm's own rustc-web 1.85 is refused with what is wrong, and
    /// so are a missing package, mismatched sources and a rustc that is not its package's.
    #[test]
    fn an_old_mixed_or_missing_toolchain_is_refused_with_the_reason() {
        let old = state([OLD, OLD, OLD], Some("rustc 1.85.0 (4d91de4e4 2025-02-17)"));
        let error = old.check().expect_err("1.85 is too old");
        assert!(
            error.contains("rustc-web 1.85.0") && error.contains("1.91"),
            "{error}"
        );

        let mixed = state([NEW, NEW, OLD], Some(NEW_RUSTC));
        let error = mixed.check().expect_err("sources of another version");
        assert!(error.contains("rust-web-src 1.85.0"), "{error}");

        let missing = state([NEW, "", NEW], Some(NEW_RUSTC));
        assert_eq!(
            missing.check(),
            Err("cargo-web is not installed".to_owned())
        );

        let other_rustc = state([NEW, NEW, NEW], Some("rustc 1.95.0 (x 2026-04-14)"));
        assert!(other_rustc.check().is_err());
        assert!(state([NEW, NEW, NEW], None).check().is_err());
    }
}
