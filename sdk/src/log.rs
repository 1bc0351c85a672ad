//! The plugin's log, which the academy's admins read (needs the `log` capability).
//!
//! Lines are cut at the host's limit and a call that writes too much loses its later lines, so log what an
//! admin needs to understand a decision, not every step.
//!
//! ```no_run
//! use aula_sdk::log;
//!
//! log::info("placing new user");
//! log::warn(format_args!("no organization named `{}`", "Sales"));
//! ```

use std::fmt;

use crate::sys;

pub use crate::__bindings::host::aula::plugin::log::Level;

impl Level {
    /// The level's name as the host shows it: `debug`, `info`, `warn` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Appends one line at `level`.
pub fn write(level: Level, message: impl fmt::Display) {
    sys::log_write(level, &message.to_string());
}

/// Appends a line for plugin developers.
pub fn debug(message: impl fmt::Display) {
    write(Level::Debug, message);
}

/// Appends a line about something that happened as expected.
pub fn info(message: impl fmt::Display) {
    write(Level::Info, message);
}

/// Appends a line about something an admin may want to fix (a setting naming nothing, say).
pub fn warn(message: impl fmt::Display) {
    write(Level::Warn, message);
}

/// Appends a line about something that went wrong.
pub fn error(message: impl fmt::Display) {
    write(Level::Error, message);
}
