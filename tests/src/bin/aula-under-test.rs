//! The `aula` command line, built in this package so its integration tests can start it as a process of its
//! own (and kill it): `env!("CARGO_BIN_EXE_aula-under-test")`.

fn main() -> std::process::ExitCode {
    aula::cli::main()
}
