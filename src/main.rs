//! The `layerstore` command line: a thin front end over the library (see `src/cli/`).

use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    cli::run()
}
