//! Standard output for reports: like `println!`, except that a reader that went away (`layerstore
//! gc | head`) ends the program quietly, as other Unix tools do, where `println!` panics.

use std::fmt::Arguments;
use std::io::{ErrorKind, Write};

/// Writes `text` to standard output. A closed pipe exits with 141 (128 + SIGPIPE, what a shell
/// reports for a tool that SIGPIPE ended); another write error is printed once, and exits 1.
pub fn write(text: Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(text).and_then(|()| out.flush()) {
        if e.kind() != ErrorKind::BrokenPipe {
            eprintln!("layerstore: writing to standard output: {e}");
            std::process::exit(1);
        }
        std::process::exit(141);
    }
}

/// `println!` through [`write`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` through [`write`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::write(format_args!($($arg)*))
    };
}

pub(crate) use {out, outln};
