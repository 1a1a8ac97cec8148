//! The academic year's dated exceptions end to end (DESIGN.md "The academic year"): an
//! `[[override]]` or an `[[override_source]]` row applies only inside its `from`/`until`
//! window, judged at the calendar's now (`ROLLCALL_NOW`, the test's own clock), so an
//! exception that ended is as if absent and one that starts in two days takes effect that day.

use crate::common::db::TestDatabase;
use crate::common::tenant::{Tenant, TenantOptions};
use crate::on_every_backend;

on_every_backend!(
    an_exception_that_ended_is_not_applied_and_one_that_starts_applies_from_its_first_day,
);

async fn an_exception_that_ended_is_not_applied_and_one_that_starts_applies_from_its_first_day(
    db: TestDatabase,
) {
    let mut tenant = Tenant::start(db, TenantOptions::new()).await;
    let key = tenant.university.modules[0].key.clone();
    let mut strangers = tenant
        .university
        .people
        .iter()
        .filter(|p| p.has_account && !tenant.desired.lists[&key].contains(&p.object_id))
        .cloned();
    let (ended, starting) = (strangers.next().unwrap(), strangers.next().unwrap());
    let csv = tenant.dir().join("exceptions.csv");
    std::fs::write(
        &csv,
        format!(
            "list,member,action,from,until,reason\n{key},{},include,2026-12-08,,second marker from Monday\n",
            starting.upn
        ),
    )
    .unwrap();
    tenant.add_config(&format!(
        "[[override]]\nlist = \"{key}\"\ninclude = [\"{}\"]\nuntil = \"2026-12-05\"\n\n\
         [[override_source]]\npath = {}\n",
        ended.upn,
        toml::Value::String(csv.to_string_lossy().into_owned())
    ));

    let today = "2026-12-06T12:00:00Z";
    let check = tenant.rollcall_at(today, &["config", "check"]).await;
    check.expect(0);
    assert!(
        check.stderr.contains("override[0]") && check.stderr.contains("ended"),
        "{}",
        check.stderr
    );
    tenant.rollcall_at(today, &["run"]).await.expect(0);
    tenant.assert_converged("today: neither exception applies");

    let monday = "2026-12-08T07:00:00Z";
    tenant.rollcall_at(monday, &["run"]).await.expect(0);
    tenant
        .desired
        .lists
        .get_mut(&key)
        .unwrap()
        .insert(starting.object_id.clone());
    tenant.assert_converged("on Monday the new exception applies");
    let bad = tenant.rollcall_at("next monday", &["run"]).await;
    bad.expect(2);
    assert!(bad.stderr.contains("ROLLCALL_NOW"), "{}", bad.stderr);
    tenant.finish();
}
