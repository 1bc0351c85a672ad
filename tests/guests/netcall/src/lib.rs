//! A branding plugin that tries to open a TCP connection to `127.0.0.1:5432`, so its component imports
//! `wasi:sockets`. The host must refuse it at upload (the import is not a capability) or, when linked,
//! give it no network. `brand` logs what happened and returns no overrides either way.

use std::net::TcpStream;

use aula_sdk::branding::{Branding, PageContext, ThemeOverrides};
use aula_sdk::log;

/// The plugin as registered with the host.
pub struct NetCall;

impl Branding for NetCall {
    fn brand(_context: PageContext) -> Result<ThemeOverrides, String> {
        match TcpStream::connect("127.0.0.1:5432") {
            Ok(_) => log::warn("connected to 127.0.0.1:5432"),
            Err(e) => log::info(format_args!("no connection: {e}")),
        }
        Ok(ThemeOverrides::default())
    }
}

aula_sdk::register!(branding: NetCall);
