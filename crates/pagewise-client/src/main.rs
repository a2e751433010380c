//! `pagewisectl`: see `pagewisectl --help` and crates/pagewise-client/README.md.

use clap::Parser;
use pagewise_client::{Cli, usage_error, wants_json};
use std::io::Write as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // A script that passed --json parses stdout whatever happens, usage errors included.
            if let Some(done) = usage_error(&e, wants_json(std::env::args_os())) {
                let _ = std::io::stdout().write_all(done.stdout.as_bytes());
                let _ = std::io::stderr().write_all(done.stderr.as_bytes());
                return ExitCode::from(done.status.code());
            }
            // --help and --version print to stdout and succeed; usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    run(&cli)
}

#[cfg(windows)]
fn run(cli: &Cli) -> ExitCode {
    use pagewise_client::{cycles::SystemClock, device::Client, execute, finish, os};

    let result = os::DeviceHandle::open(cli.command.needs_write()).and_then(|handle| {
        execute(
            &cli.command,
            &mut Client::new(handle),
            &mut SystemClock::new(),
        )
    });
    let done = finish(result, cli.json);
    let _ = std::io::stdout().write_all(done.stdout.as_bytes());
    let _ = std::io::stderr().write_all(done.stderr.as_bytes());
    ExitCode::from(done.status.code())
}

#[cfg(not(windows))]
fn run(_cli: &Cli) -> ExitCode {
    eprintln!("pagewisectl: talks to the pagewise driver with DeviceIoControl and needs Windows");
    ExitCode::from(pagewise_client::ExitStatus::Failed.code())
}
