//! A run stopped on purpose mid-apply: `pause`, SIGTERM, or its lease taken over. Each stops
//! at the next batch boundary with exit 4, keeps its pending operations, and the next run
//! finishes them (DESIGN.md "Transactions and interruption").

use std::time::Duration;

use rollcall::reconcile::OPS_PER_BATCH;
use tokio::time::Instant;

use crate::common::db::TestDatabase;
use crate::common::tenant::{Tenant, TenantOptions, calm};
use crate::on_every_backend;

on_every_backend!(
    a_pause_stops_a_running_build_at_the_next_batch_and_the_next_run_finishes_it,
    sigterm_stops_a_running_build_at_the_next_batch_and_the_next_run_finishes_it,
    a_run_whose_lease_is_taken_over_stops_before_its_next_batch,
);

/// How a running build is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interrupt {
    Pause,
    Sigterm,
    LeaseTakenOver,
}

async fn a_pause_stops_a_running_build_at_the_next_batch_and_the_next_run_finishes_it(
    db: TestDatabase,
) {
    stopped_mid_apply(db, Interrupt::Pause).await;
}

async fn sigterm_stops_a_running_build_at_the_next_batch_and_the_next_run_finishes_it(
    db: TestDatabase,
) {
    stopped_mid_apply(db, Interrupt::Sigterm).await;
}

async fn a_run_whose_lease_is_taken_over_stops_before_its_next_batch(db: TestDatabase) {
    stopped_mid_apply(db, Interrupt::LeaseTakenOver).await;
}

async fn stopped_mid_apply(db: TestDatabase, interrupt: Interrupt) {
    let options = TenantOptions::slow_build();
    let tenant = Tenant::start(db, options).await;
    let mut child = tenant
        .command(&["run"])
        .spawn()
        .expect("`rollcall run` starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    while tenant.stat("writes") == 0 {
        if let Some(status) = child.try_wait().expect("the child can be polled") {
            panic!("`rollcall run` ended ({status}) before it wrote anything");
        }
        assert!(Instant::now() < deadline, "`rollcall run` wrote nothing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let expected = match interrupt {
        Interrupt::Pause => {
            tenant
                .rollcall(&["pause", "--reason", "database maintenance"])
                .await
                .expect(0);
            "paused (database maintenance)"
        }
        Interrupt::Sigterm => {
            let pid = child.id().expect("the child is running").to_string();
            let sent = std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .expect("kill runs");
            assert!(sent.success(), "SIGTERM could not be sent");
            "a signal asked rollcall to stop"
        }
        Interrupt::LeaseTakenOver => {
            // What another run does once this one's lease has expired.
            tenant
                .raw_sql(
                    "UPDATE lease SET holder = 'elsewhere:1', token = token + 1",
                    true,
                )
                .await;
            "the run lease was lost"
        }
    };
    let asked = tenant.stat("writes");
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the run stops within two minutes")
        .expect("the run's output is read");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(4),
        "{interrupt:?}: the run did not exit 4 (interrupted):\n{stderr}"
    );
    assert!(
        stderr.contains(expected),
        "{interrupt:?}: the run did not say why it stopped (`{expected}`):\n{stderr}"
    );
    let after = tenant.stat("writes") - asked;
    println!("{interrupt:?}: {after} writes landed after the stop was asked for");
    assert!(
        after <= OPS_PER_BATCH as u64,
        "{interrupt:?}: {after} writes landed after the stop was asked for, more than the one batch in flight"
    );
    assert!(
        tenant.pending_operations().await > 0,
        "{interrupt:?}: the build finished before it was stopped, so this test proved nothing"
    );

    match interrupt {
        Interrupt::Pause => {
            let skipped = tenant.rollcall(&["run"]).await;
            skipped.expect(6);
            tenant.rollcall(&["unpause"]).await.expect(0);
        }
        Interrupt::LeaseTakenOver => {
            // The holder that took it over is gone too; let the lease lapse as it would.
            tenant
                .raw_sql("UPDATE lease SET expires_at = 0", true)
                .await;
        }
        Interrupt::Sigterm => {}
    }
    tenant.sandbox.set_faults(calm());
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged(&format!("after the run that followed the {interrupt:?}"));
    assert_eq!(
        tenant.pending_operations().await,
        0,
        "{interrupt:?}: the journal still holds pending operations"
    );
    tenant.finish();
}
