//! An enrollment plugin that misbehaves on demand, chosen by the sign-up's name: each case checks that the
//! host contains one kind of fault to the call that caused it.
//!
//! | `name` | what `on_signup` does |
//! |---|---|
//! | `loop` | loops for ever (epoch deadline) |
//! | `recurse` | recurses without end, 1 KiB of stack per call (stack limit) |
//! | `grow` | allocates and touches 1 MiB chunks for ever (memory limit) |
//! | `huge` | approves with 2,000 `add-tag` actions of 10,000-byte names, about 20 MB (output cap) |
//! | `trap` | panics with "deliberate panic" |
//! | `abort` | executes `unreachable` |
//! | `sleep` | sleeps for 60 seconds (deadline while blocked in WASI) |
//! | `log-flood` | logs 100,000 lines of 1 KiB, then approves (log budget) |
//! | `stdout` | prints 1 MiB to stdout and 1 MiB to stderr, then approves (output capture) |
//! | anything else | approves with the action `add-tag("ok:<name>")` |
//!
//! `on_events` answers every event with one action, `add-tag("seen")`.

use std::hint::black_box;
use std::time::Duration;

use aula_sdk::enrollment::{Action, Enrollment, Event, Signup, SignupOutcome};
use aula_sdk::log;

const MIB: usize = 1024 * 1024;

/// The plugin as registered with the host.
pub struct Misbehave;

impl Enrollment for Misbehave {
    fn on_signup(signup: Signup) -> Result<SignupOutcome, String> {
        match signup.name.as_str() {
            "loop" => spin(),
            "recurse" => {
                black_box(recurse(0));
                unreachable!("recursion without end returned")
            }
            "grow" => grow(),
            // Few, long items copied from one (cheap in fuel): over the output cap at once, however busy the host.
            "huge" => {
                let long = "x".repeat(10_000);
                Ok(SignupOutcome::approve().with_all((0..2_000).map(|i| Action::AddTag(format!("{i}{long}")))))
            }
            "trap" => panic!("deliberate panic"),
            "abort" => abort(),
            "sleep" => {
                std::thread::sleep(Duration::from_secs(60));
                Ok(SignupOutcome::approve())
            }
            "log-flood" => {
                let line = "x".repeat(1024);
                for _ in 0..100_000 {
                    log::info(&line);
                }
                Ok(SignupOutcome::approve())
            }
            "stdout" => {
                let line = "y".repeat(1023); // with the newline, 1 KiB a line
                for _ in 0..1024 {
                    println!("{line}");
                }
                for _ in 0..1024 {
                    eprintln!("{line}");
                }
                Ok(SignupOutcome::approve())
            }
            name => Ok(SignupOutcome::approve().with(Action::AddTag(format!("ok:{name}")))),
        }
    }

    fn on_event(_event: Event) -> Result<Vec<Action>, String> {
        Ok(vec![Action::AddTag("seen".into())])
    }
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        // Opaque to the optimizer, so the loop stays a loop that does work.
        n = black_box(n.wrapping_add(1));
    }
}

/// Recursion the optimizer cannot turn into a loop: the frame holds an array used after the call returns.
#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth as u8; 1024]);
    let below = recurse(black_box(depth + 1));
    below.wrapping_add(u64::from(frame[(below % 1024) as usize]))
}

fn grow() -> ! {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; MIB];
        // Touch every page so the memory is really used, whatever the allocator does.
        for byte in chunk.iter_mut().step_by(4096) {
            *byte = 1;
        }
        chunks.push(black_box(chunk));
    }
}

#[cfg(target_arch = "wasm32")]
fn abort() -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
fn abort() -> ! {
    std::process::abort()
}

aula_sdk::register!(enrollment: Misbehave);
