//! `serve`'s status page (`GET /`) loaded in a real headless Chromium: after a run that held
//! a list, the page the browser renders shows that run, the held list with its reason, and
//! the SVG chart of the last runs; with `show_members` off it names no member. Without
//! Chromium (`apt-get install chromium`) the test says `SKIPPED` (with `CI=true` it fails).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::db::{Backend, TestDatabase, in_ci};
use crate::common::serving::Serving;
use crate::common::tenant::{Tenant, TenantOptions};
use crate::isolation::add_extra_source;

/// A list key Exchange refuses: its list is held (`invalid_name`) and every other list runs.
const HELD_KEY: &str = "mod bad key";

/// How long the browser may take to load and render the page.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// The distribution's Chromium, if installed.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Runs headless Chromium on `url` with `args` (e.g. `--dump-dom`), in a profile of its own.
async fn browse(chromium: &Path, profile: &Path, args: &[String], url: &str) -> Vec<u8> {
    let run = tokio::process::Command::new(chromium)
        .args([
            "--headless",
            // Root in a container has no user namespace for Chromium's sandbox.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--window-size=1200,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(BROWSER_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("chromium did not finish within {BROWSER_TIMEOUT:?}"))
        .expect("chromium starts");
    assert!(
        output.status.success(),
        "chromium {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A PNG's width and height, from its IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(
        png.len() > 24 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG"
    );
    let word = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_the_last_run_a_held_list_and_the_chart_in_a_browser() {
    let Some(chromium) = chromium() else {
        assert!(
            !in_ci(),
            "chromium is not installed (apt-get install chromium); CI must run the browser test"
        );
        println!("SKIPPED: no chromium (apt-get install --no-install-recommends chromium)");
        return;
    };
    let db = TestDatabase::create(Backend::Sqlite)
        .await
        .expect("SQLite needs no server");
    let mut tenant = Tenant::start(db, TenantOptions::new()).await;
    tenant.rollcall(&["run"]).await.expect(0);
    let someone = tenant.university.people[0].upn.clone();
    add_extra_source(&mut tenant, "modules", &[(HELD_KEY, &someone)]);
    tenant.rollcall(&["run"]).await.expect(7);
    let last = tenant.last_run().await;
    // No scheduled run while the page is read: the runs shown are the two above.
    tenant.add_config(
        "\n[schedule]\nrun = \"0 0 0 1 1 *\"\nrebuild = \"0 0 0 1 1 *\"\n\n[serve]\nlisten = \"127.0.0.1:0\"\n",
    );
    let mut serve = Serving::start(&tenant).await;
    let url = format!("http://{}/", serve.address);

    // Served as HTML that may run no script and load nothing from elsewhere.
    let reply = reqwest::get(&url).await.expect("GET /");
    assert_eq!(reply.status(), 200);
    let header = |name: &str| {
        reply
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    assert!(
        header("content-security-policy").starts_with("default-src 'none'"),
        "{}",
        header("content-security-policy")
    );

    let profile = tempfile::tempdir().expect("a browser profile folder");
    let dom = String::from_utf8(
        browse(&chromium, profile.path(), &["--dump-dom".to_owned()], &url).await,
    )
    .expect("the DOM is UTF-8");
    assert!(dom.contains("<h1>rollcall status</h1>"), "{dom}");
    // The last run, held (exit 7), in the table and on the chart.
    assert!(
        dom.contains(&format!("<tr data-run=\"{last}\">")),
        "run {last} is not in the table: {dom}"
    );
    assert!(dom.contains("<td class=\"held\">held</td>"), "{dom}");
    assert!(dom.contains(&format!("run {last}: run held")), "{dom}");
    // The held list, its reason and the release.
    let held = dom
        .split("<table id=\"held\">")
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .unwrap_or_else(|| panic!("no held-lists table: {dom}"));
    assert!(held.contains(HELD_KEY), "{held}");
    assert!(held.contains("invalid_name"), "{held}");
    // The chart: an SVG with a bar per run in each panel.
    let svg = dom
        .split("<svg id=\"runs-chart\"")
        .nth(1)
        .and_then(|rest| rest.split("</svg>").next())
        .unwrap_or_else(|| panic!("no chart: {dom}"));
    assert_eq!(svg.matches("<rect ").count(), 4, "{svg}");
    // Lock free, not paused, no pending operation.
    assert!(dom.contains("<dd id=\"lock\">free</dd>"), "{dom}");
    assert!(dom.contains("<dd id=\"paused\">no</dd>"), "{dom}");
    assert!(dom.contains("<dd id=\"pending\">0</dd>"), "{dom}");
    // show_members is off: no member of the university appears.
    assert!(!dom.contains(&someone), "a member is named: {dom}");
    assert!(!dom.contains("<script"), "{dom}");

    // And it renders: a screenshot of the window's size.
    let shot = profile.path().join("page.png");
    browse(
        &chromium,
        profile.path(),
        &[format!("--screenshot={}", shot.display())],
        &url,
    )
    .await;
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert_eq!(png_size(&png), (1200, 1600));

    serve.signal("TERM");
    assert!(serve.exit().await.success(), "{}", serve.log_text());
    tenant.finish();
}
