//! One enrollment-rule call in a fresh instance against the same logic as a native function, and one bulk
//! call over many events against the native function per item.
//!
//! Needs the example plugins built as components:
//! `cargo build --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml --target-dir target/wasm`
//! (`benches/plugins.sh` does that and then runs this).

use aula::config::plugins::PluginSettings;
use aula::db::Db;
use aula::plugins::bindings::enrollment::exports::aula::plugin::enrollment_hooks as hooks;
use aula::plugins::bindings::types;
use aula::plugins::host_api::View;
use aula::plugins::manifest::Manifest;
use aula::plugins::runtime::{HookCall, HookOutput, Runtime};
use aula_sdk::enrollment::Enrollment;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::hint::black_box;
use std::sync::Arc;

// The same allocator as the `aula` binary, so the figures are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The rule's settings: decided from the settings alone (no directory lookups), so both sides run the same
/// work: read nine settings, check the domain, hold or approve, tag.
fn settings() -> Value {
    json!({
        "domains": {},
        "tags": ["self-signup", "cohort-2026"],
        "hold_unknown_domains": true,
        "blocked_domains": ["mailinator.com", "example.invalid"],
        "due_in_days": 30
    })
}

/// About 160 bytes of sign-up.
fn signup(i: usize) -> hooks::Signup {
    hooks::Signup {
        email: format!("learner{i}@northwind.example"),
        name: "Ada Learner".into(),
        locale: Some("de-CH".into()),
        profile: vec![types::ProfileField {
            key: "department".into(),
            value: types::FieldValue::Text("Field sales".into()),
        }],
        invited_to: None,
    }
}

fn sdk_signup(s: &hooks::Signup) -> aula_sdk::enrollment::Signup {
    aula_sdk::enrollment::Signup {
        email: s.email.clone(),
        name: s.name.clone(),
        locale: s.locale.clone(),
        profile: vec![aula_sdk::ProfileField {
            key: "department".into(),
            value: aula_sdk::FieldValue::Text("Field sales".into()),
        }],
        invited_to: None,
    }
}

fn sdk_user(i: usize) -> aula_sdk::User {
    aula_sdk::User {
        id: format!("u{i}"),
        email: format!("learner{i}@northwind.example"),
        name: "Ada Learner".into(),
        locale: Some("de".into()),
        status: aula_sdk::UserStatus::Active,
        external_id: None,
        manager_id: None,
        org_ids: vec![],
        tags: vec![],
        profile: vec![],
    }
}

fn user(i: usize) -> types::User {
    types::User {
        id: format!("u{i}"),
        email: format!("learner{i}@northwind.example"),
        name: "Ada Learner".into(),
        locale: Some("de".into()),
        status: types::UserStatus::Active,
        external_id: None,
        manager_id: None,
        org_ids: vec![],
        tags: vec![],
        profile: vec![],
    }
}

struct Setup {
    runtime: Arc<Runtime>,
    tenant: aula::db::TenantDb,
    loaded: Arc<aula::plugins::runtime::Loaded>,
    _dir: std::path::PathBuf,
}

async fn setup() -> Setup {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let wasm = root.join("target/wasm/wasm32-wasip2/release/domain_placement.wasm");
    let bytes = std::fs::read(&wasm).unwrap_or_else(|_| {
        panic!(
            "{} is missing: run `cargo build --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml \
             --target-dir target/wasm` first (benches/plugins.sh does)",
            wasm.display()
        )
    });
    let manifest =
        Manifest::from_toml(&std::fs::read_to_string(root.join("plugins/domain-placement/aula-plugin.toml")).unwrap())
            .unwrap();
    let dir = std::env::temp_dir().join(format!("aula-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = Db::connect(&format!("sqlite:{}", dir.join("bench.db").display()), 4)
        .await
        .unwrap();
    let actor = aula::auth::Actor::system("bench");
    let tenant = aula::lifecycle::create_tenant(&db, "bench", "Bench", &[], Default::default(), &actor)
        .await
        .unwrap();
    let tenant = db.tenant(&tenant.id);
    let runtime = Arc::new(Runtime::new(PluginSettings::default()).unwrap());
    let Value::Object(settings) = settings() else {
        unreachable!()
    };
    let host = aula::plugins::host::PluginHost::new(runtime.clone(), db.clone());
    let uploaded = aula::plugins::store::deploy(&host, &tenant, &actor, manifest, bytes, settings)
        .await
        .unwrap();
    let loaded = host.load_active(&tenant, &uploaded.plugin.id).await.unwrap();
    Setup {
        runtime,
        tenant,
        loaded,
        _dir: dir,
    }
}

fn native_host() -> aula_sdk::testing::Installed {
    let fixture = json!({ "config": settings() });
    aula_sdk::testing::FakeHost::from_json(&fixture.to_string())
        .unwrap()
        .install()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(setup());

    // The plugin's decision must be the native one, or the comparison means nothing.
    let (out, _) = rt.block_on(
        s.runtime
            .invoke(&s.tenant, &s.loaded, View::Tenant, HookCall::OnSignup(signup(1))),
    );
    let HookOutput::OnSignup(wasm_outcome) = out.expect("the rule answers") else {
        panic!("wrong hook output")
    };
    let host = native_host();
    let native = domain_placement::DomainPlacement::on_signup(sdk_signup(&signup(1))).unwrap();
    assert_eq!(format!("{wasm_outcome:?}"), format!("{native:?}"));

    let mut group = c.benchmark_group("enrollment rule, one sign-up");
    group.bench_function("wasm: fresh instance per call", |b| {
        b.to_async(&rt).iter_batched(
            || signup(7),
            |input| async {
                let (out, _) = s
                    .runtime
                    .invoke(&s.tenant, &s.loaded, View::Tenant, HookCall::OnSignup(input))
                    .await;
                black_box(out.unwrap());
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("native: same logic", |b| {
        b.iter_batched(
            || sdk_signup(&signup(7)),
            |input| black_box(domain_placement::DomainPlacement::on_signup(input).unwrap()),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    const EVENTS: usize = 1000;
    let mut group = c.benchmark_group("enrollment rule, 1000 user-created events in one call");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(30);
    group.bench_function("wasm: one instance for the batch", |b| {
        b.to_async(&rt).iter_batched(
            || {
                (0..EVENTS)
                    .map(|i| hooks::Event::UserCreated(user(i)))
                    .collect::<Vec<_>>()
            },
            |events| async {
                let (out, _) = s
                    .runtime
                    .invoke(&s.tenant, &s.loaded, View::Tenant, HookCall::OnEvents(events))
                    .await;
                black_box(out.unwrap());
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("native: same logic", |b| {
        b.iter_batched(
            || {
                (0..EVENTS)
                    .map(|i| aula_sdk::enrollment::Event::UserCreated(sdk_user(i)))
                    .collect::<Vec<_>>()
            },
            |events| black_box(domain_placement::DomainPlacement::on_events(events).unwrap()),
            BatchSize::SmallInput,
        )
    });
    group.finish();
    drop(host);
}

criterion_group!(benches, bench);
criterion_main!(benches);
