//! The guestbook page as a person sees it: headless Chromium driven through chromedriver's
//! WebDriver API, with screenshots saved under target/screenshots/.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use statelab::demo::process::{Process, Spec};

use crate::guestbook::hold_write_lock;
use crate::support::{self, ServiceBuilder};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Browser {
    driver: Process,
    base: String,
    session: String,
    client: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        let chromedriver = support::require_program("chromedriver", "chromium-driver");
        let chromium = support::require_program("chromium", "chromium");
        let driver = Spec::new(chromedriver)
            .arg("--port=0")
            .port_from(chromedriver_port)
            .spawn()
            .expect("chromedriver starts");
        let port = driver
            .wait_port_blocking(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{e:#}"));
        let base = format!("http://127.0.0.1:{port}");
        driver
            .wait_http_ok(&format!("{base}/status"), Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| panic!("chromedriver did not start: {e:#}"));
        let client = reqwest::Client::new();
        let profile = tempfile::tempdir().unwrap();
        // The implicit wait: a click that submits the form returns before the next page has
        // loaded, so each element looked up after it is waited for (each one is new there).
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "timeouts": {"implicit": 10_000},
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-dev-shm-usage", "--no-first-run", "--disable-quic",
                    "--disable-component-update", "--disable-sync", "--window-size=1000,1200",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let response: Value = client
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = response["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {response}"))
            .to_owned();
        Browser {
            driver,
            base,
            session,
            client,
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let mut request = self.client.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response: Value = request.send().await.unwrap().json().await.unwrap();
        response["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let value = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        value[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {value}"))
            .to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        self.call(
            reqwest::Method::GET,
            &format!("/element/{element}/text"),
            None,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    async fn css(&self, css: &str, property: &str) -> String {
        let element = self.find(css).await;
        self.call(
            reqwest::Method::GET,
            &format!("/element/{element}/css/{property}"),
            None,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Saves a PNG screenshot and returns its size in bytes.
    async fn screenshot(&self, name: &str) -> usize {
        let encoded = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG image");
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
        png.len()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = std::thread::spawn(move || {
            let _ = std::process::Command::new("curl")
                .args(["-s", "-X", "DELETE", &url])
                .output();
        })
        .join();
        self.driver.kill();
    }
}

/// The port in chromedriver's "ChromeDriver was started successfully on port 43539."
fn chromedriver_port(line: &str) -> Option<u16> {
    line.split_once("started successfully on port ")?
        .1
        .trim_end_matches('.')
        .parse()
        .ok()
}

#[tokio::test]
async fn a_person_signs_the_guestbook_and_sees_the_red_box_when_locked() {
    let dir = tempfile::tempdir().unwrap();
    let replica = ServiceBuilder::new(&["guestbook"])
        .env("DATA_DIR", dir.path())
        .env("POD_NAME", "guestbook-0")
        .start();
    replica.wait_ready().await;
    let browser = Browser::start().await;

    browser.open(&replica.url("/")).await;
    assert!(browser.screenshot("guestbook-empty").await > 1000);
    assert_eq!(browser.text("#replica").await, "guestbook-0");

    browser.type_into("input[name=name]", "Grace <admin>").await;
    browser
        .type_into("textarea[name=message]", "Hello from a real browser")
        .await;
    browser.click("button[type=submit]").await;
    let first = browser.text("#messages li").await;
    assert!(first.contains("Grace <admin>"), "{first}");
    assert!(first.contains("Hello from a real browser"), "{first}");
    assert!(browser.text("#posted").await.contains("stored"));
    browser.screenshot("guestbook-signed").await;

    // Another process holds SQLite's write lock: the form post fails visibly.
    let lock = hold_write_lock(&dir.path().join("database.db")).await;
    browser.open(&replica.url("/")).await;
    browser.type_into("input[name=name]", "Linus").await;
    browser
        .type_into("textarea[name=message]", "This one collides")
        .await;
    browser.click("button[type=submit]").await;
    let error = browser.text("#error").await;
    assert!(error.contains("DATABASE IS LOCKED!"), "{error}");
    assert!(error.contains("not stored"), "{error}");
    // The stylesheet loaded under the strict CSP: the box really is red.
    assert_eq!(
        browser.css("#error", "background-color").await,
        "rgba(208, 0, 32, 1)"
    );
    browser.screenshot("guestbook-locked").await;
    drop(lock);
}
