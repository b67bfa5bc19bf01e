//! report.html in a real browser: headless Chromium opens the page
//! `okring bench` and `okring report` write, and the test checks that it
//! logs nothing to the console, requests nothing from anywhere (Chromium's
//! net log holds no request made for the page), and renders something: a
//! screenshot that is not blank. Needs Chromium (ci/deps.sh installs the
//! Debian package `chromium`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_okring");

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| common::have_tool(c))
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("okring-html-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Open `page` in headless Chromium; assert no console line, no request
/// for the page in the net log, and a screenshot with ink on it.
fn check_in_browser(browser: &str, page: &Path, work: &Path) {
    let shot = work.join("shot.png");
    let netlog = work.join("net.json");
    let out = Command::new("timeout")
        .arg("120")
        .arg(browser)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--window-size=1000,2400",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!(
            "--user-data-dir={}",
            work.join("profile").display()
        ))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("--log-net-log={}", netlog.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{browser} failed:\n{stderr}");
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(
        console.is_empty(),
        "console output from {}:\n{}",
        page.display(),
        console.join("\n")
    );

    // Chromium's own background requests (updates, accounts) carry no
    // file:// isolation key; any request the page made does.
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&netlog).expect("net log"))
            .expect("net log JSON");
    let from_page: Vec<String> = log["events"]
        .as_array()
        .expect("net log events")
        .iter()
        .filter_map(|e| {
            let p = &e["params"];
            let key = p["network_isolation_key"].as_str()?;
            (key.starts_with("file://")).then(|| p["url"].as_str().unwrap_or("?").to_string())
        })
        .collect();
    assert!(
        from_page.is_empty(),
        "{} requested {from_page:?}",
        page.display()
    );

    let decoder = png::Decoder::new(std::fs::File::open(&shot).expect("screenshot"));
    let mut reader = decoder.read_info().expect("PNG header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("PNG frame");
    let px = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let inked = pixels
        .chunks(px)
        .filter(|p| p.iter().take(3).any(|&c| c < 200))
        .count();
    let share = inked as f64 / (pixels.len() / px) as f64;
    assert!(
        share > 0.01,
        "{}: the screenshot is blank ({:.3}% of pixels inked)",
        page.display(),
        share * 100.0
    );
}

#[test]
fn bench_and_report_pages_load_clean_in_chromium() {
    let Some(browser) = chromium() else {
        common::skip("Chromium not installed (apt-get install chromium)");
        return;
    };
    let work = scratch("bench");
    let out = work.join("bench-out");
    let res = Command::new(BIN)
        .args(["bench", "--modes", "uring,epoll", "--connections", "16"])
        .args([
            "--duration",
            "300ms",
            "--warmup",
            "100ms",
            "--repeat",
            "1",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let page = out.join("report.html");
    let html = std::fs::read_to_string(&page).expect("bench writes report.html");
    for want in [
        "What the kernel did per request",
        "pinning:",
        "<svg",
        "syscalls",
    ] {
        assert!(html.contains(want), "report.html lacks {want:?}");
    }
    assert!(html.matches("<figure>").count() >= 5, "every plot inline");
    check_in_browser(browser, &page, &work);

    let rwork = scratch("report");
    let inputs: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "hlog"))
        .collect();
    assert!(!inputs.is_empty(), "bench wrote .hlog files");
    let rout = rwork.join("report-out");
    let res = Command::new(BIN)
        .arg("report")
        .args(&inputs)
        .arg("--out")
        .arg(&rout)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let rpage = rout.join("report.html");
    let html = std::fs::read_to_string(&rpage).expect("report writes report.html");
    assert!(html.contains("merged") && html.contains("<svg"), "{html}");
    check_in_browser(browser, &rpage, &rwork);
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&rwork);
}
