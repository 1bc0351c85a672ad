//! Integration tests live in `tests/tests/`: each starts the real host on port 0 with a database of its own
//! and drives it over HTTP (helpers in `tests/tests/common/`).
//!
//! ```text
//! cargo test -p aula-tests                                    # SQLite
//! AULA_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo test -p aula-tests                                # SQLite and PostgreSQL (a database per test)
//! AULA_TEST_TRACE=1 cargo test -p aula-tests --test isolation -- --nocapture   # print every request
//! ```
//!
//! The library itself holds the test doubles the host talks to over the network: [`smtp`], a real SMTP
//! listener every test host sends its mail to (`TestApp::mail`).

pub mod smtp;
