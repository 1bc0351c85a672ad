//! The `aula` binary: everything is in [`aula::cli`].

// The server allocates many small, short-lived values per request on every worker thread; glibc's malloc
// spent a quarter of the users-list benchmark in its own locks.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    aula::cli::main()
}
