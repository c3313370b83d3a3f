//! A byte-count progress bar on stderr for long offline scans, shown only when stderr is a
//! terminal and the directory is large; never in pipes or tests.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// Directories smaller than this get no progress bar. Default: 64 MiB.
const PROGRESS_BYTES_MIN: u64 = 64 << 20;

/// A bar for `total_bytes`, hidden unless it is worth showing.
pub fn bar(total_bytes: u64, what: &'static str) -> ProgressBar {
    if total_bytes < PROGRESS_BYTES_MIN || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total_bytes);
    let template = format!("{what} {{bar:40}} {{bytes}}/{{total_bytes}} ({{eta}})");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}
