//! The OpenAPI document is the contract, and a schema-driven fuzzer holds the host to it: schemathesis (from
//! PyPI, installed by `.ci/schemathesis`) generates requests for every operation of `/api/openapi.json` (valid
//! ones and broken ones) with an academy admin's token, and the run fails on any `5xx`, any status the
//! operation does not document, and any answer that breaks its documented schema. On both backends: a NUL
//! byte or an odd id that only PostgreSQL refuses shows here.
//!
//! `st` is found through `$AULA_SCHEMATHESIS`, else in `target/tools/schemathesis` where `.ci/schemathesis`
//! puts it; the test fails, saying how to install it, when it is in neither place. `$AULA_FUZZ_SEED` picks
//! other cases than the fixed seed's (2026); `$AULA_FUZZ_SECONDS` sets
//! the time budget per backend (90 s by default: five sixths for the academy's operations, the rest for the
//! platform's). With `$AULA_FUZZ_VERBOSE` set (and `--nocapture`) the fuzzer's whole report is printed, its
//! warnings included (operations that mostly refused the generated data, operations that answered only 404).

mod common;

use common::{TestApp, scenarios};
use std::path::PathBuf;

scenarios!(every_answer_keeps_the_documented_contract);

fn schemathesis() -> PathBuf {
    if let Some(path) = std::env::var_os("AULA_SCHEMATHESIS").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let installed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tools/schemathesis/bin/st");
    assert!(
        installed.exists(),
        "schemathesis is not installed: run .ci/schemathesis (or set AULA_SCHEMATHESIS to an `st`)"
    );
    installed
}

/// Run the fuzzer against the host's document with these credentials on this host, over the operations
/// `filter` selects, for `seconds`; panics with the fuzzer's report when it found a broken answer.
async fn fuzz(app: &TestApp, host: &str, token: &str, filter: &[&str], seconds: u64) {
    let report = std::env::temp_dir().join(format!("aula-contract-{}.xml", uuid::Uuid::new_v4().simple()));
    let output = tokio::process::Command::new(schemathesis())
        .arg("run")
        .arg(format!("http://{}/api/openapi.json", app.addr))
        .args(["--header", &format!("Host: {host}")])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,response_schema_conformance",
        ])
        .args(filter)
        // Signing out would end the fuzzer's own credential; an import takes a gzip archive, which the fuzzer
        // cannot generate (tests/tests/plugins.rs imports a real export; host/src/lifecycle/archive.rs refuses
        // broken ones).
        .args(["--exclude-path", "/api/v1/auth/logout"])
        .args(["--exclude-path", "/api/v1/platform/tenants/import"])
        .args([
            "--max-time",
            &seconds.to_string(),
            "--workers",
            "2",
            "--request-timeout",
            "30",
        ])
        // The same cases in every run unless asked for others, so a failure is the change's, not the dice's.
        .args([
            "--seed",
            &std::env::var("AULA_FUZZ_SEED").unwrap_or_else(|_| "2026".into()),
        ])
        .args(["--suppress-health-check", "all", "--no-color"])
        .arg("--report-junit-path")
        .arg(&report)
        .env("SCHEMATHESIS_TELEMETRY", "false")
        // Its cache of what it found goes to the temporary directory, not into the checkout.
        .current_dir(std::env::temp_dir())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run schemathesis");
    let _ = std::fs::remove_file(&report);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() || only_the_fuzzers_own_errors(&stdout),
        "the fuzzer found answers that break the contract ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // A run that reached nothing would pass without testing anything.
    assert!(
        stdout.contains(" passed") && stdout.contains("generated"),
        "the fuzzer tested nothing:\n{stdout}\n{stderr}"
    );
    eprintln!(
        "{}",
        stdout
            .lines()
            .filter(|l| l.contains("generated") || std::env::var_os("AULA_FUZZ_VERBOSE").is_some())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Whether a run that did not succeed failed only inside the fuzzer: no check failed (no `FAILURES`
/// section) and every entry of its `ERRORS` section is a `Runtime Error` of its own generator (seen in its
/// coverage phase), not a network error, a timeout or an answer it could not read.
fn only_the_fuzzers_own_errors(stdout: &str) -> bool {
    if stdout.contains(" FAILURES ") {
        return false;
    }
    let Some((_, errors)) = stdout.split_once(" ERRORS ") else {
        return false;
    };
    let section = errors.split("\n====").next().unwrap_or_default();
    let mut kinds = Vec::new();
    let mut lines = section.lines().map(str::trim).filter(|l| !l.is_empty());
    while let Some(line) = lines.next() {
        if line.starts_with("___") {
            kinds.push(lines.next().unwrap_or_default());
        }
    }
    let own = !kinds.is_empty() && kinds.iter().all(|k| *k == "Runtime Error");
    if own {
        eprintln!("the fuzzer's own errors, not the host's:\n{section}");
    }
    own
}

/// Every academy operation with an academy admin's token on acme's host, then the platform's operations with
/// an operator's token on the platform's host.
async fn every_answer_keeps_the_documented_contract(app: &TestApp) {
    let seconds: u64 = std::env::var("AULA_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90);
    let admin = app.login("acme", "admin@acme.test").await;
    let (_, token) = admin.create_token("contract fuzzer").await;
    fuzz(
        app,
        &app.tenant_host("acme"),
        &token,
        &[
            "--exclude-path-regex",
            "^/api/v1/platform/",
            // Revoking its own token or its own admin grant (which its stateful phase finds in the lists)
            // would leave the fuzzer nothing but 401s and 403s for the rest of the run.
            "--exclude-operation-id",
            "delete_v1_tokens__id_",
            "--exclude-operation-id",
            "delete_v1_grants__id_",
        ],
        seconds * 5 / 6,
    )
    .await;
    // The credential lasted the whole run, so every operation was reached with it.
    let reply = app
        .with_token("acme", &token)
        .send("GET", "/api/v1/me", common::Body::None)
        .await;
    assert_eq!(reply.status, 200, "the fuzzer's token stopped working: {}", reply.text);

    let reply = app.client_on(&app.platform_host()).sign_in_operator().await;
    assert_eq!(reply.status, 200, "operator sign-in: {}", reply.text);
    let operator = reply.body["token"].as_str().expect("operator token").to_owned();
    fuzz(
        app,
        &app.platform_host(),
        &operator,
        &["--include-path-regex", "^/api/v1/platform/"],
        (seconds / 6).max(10),
    )
    .await;
}
