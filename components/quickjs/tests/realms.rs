//! Realms of several origins: dedicated workers started by a page, windows and frames opened by
//! the control surface, script run in them, and what a closed one answers.

use std::time::Duration;

use bgsync_quickjs::{GlobalKind, UserAgent, UserAgentConfig};
use url::Url;

const T: Duration = Duration::from_secs(10);

fn ua_with(files: &[(&str, &str)]) -> (tempfile::TempDir, UserAgent, usize) {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let mut config = UserAgentConfig::new(dir.path());
    config.origins = vec![Url::parse("https://other.example:8443/").unwrap()];
    let mut ua = UserAgent::new(config).unwrap();
    let url = ua.url_for("index.html").unwrap();
    let page = ua.open(GlobalKind::Window, &url).unwrap();
    (dir, ua, page)
}

#[test]
fn a_dedicated_worker_talks_both_ways_and_is_of_its_pages_origin() {
    let (_d, mut ua, page) = ua_with(&[(
        "echo.js",
        "onmessage = (e) => postMessage({ echo: e.data, origin: location.origin, isWorker: self instanceof DedicatedWorkerGlobalScope });",
    )]);
    let r = ua.eval_async(
        page,
        "new Promise((resolve) => { const w = new Worker('echo.js'); w.onmessage = (e) => { w.terminate(); resolve(e.data); }; w.postMessage([1, 'two']); })",
        T,
    );
    assert_eq!(
        r.unwrap(),
        r#"{"echo":[1,"two"],"origin":"https://web-platform.test:8443","isWorker":true}"#
    );
}

#[test]
fn a_worker_of_another_origin_or_a_missing_script_is_refused() {
    let (_d, mut ua, page) = ua_with(&[]);
    let r = ua.eval_async(
        page,
        "Promise.resolve().then(() => { try { new Worker('https://other.example:8443/w.js'); return 'started'; } catch (e) { return e.name + ' ' + (e instanceof DOMException); } })",
        T,
    );
    assert_eq!(r.unwrap(), r#""SecurityError true""#);
    let r = ua.eval_async(
        page,
        "new Promise((resolve) => { const w = new Worker('missing.js'); w.onerror = () => resolve('error event'); })",
        T,
    );
    assert_eq!(r.unwrap(), r#""error event""#);
}

#[test]
fn execute_script_returns_results_and_exceptions_and_a_closed_window_says_so() {
    let (_d, mut ua, page) = ua_with(&[("blank.html", "")]);
    let r = ua.eval_async(
        page,
        "(async () => {
            const w = await bgsyncTest.openWindow('https://other.example:8443/blank.html');
            const got = [w.origin, await w.executeScript((a, b) => [a + b, location.origin, window.top === window], [2, 3])];
            try { await w.executeScript(() => { throw new DOMException('nope', 'InvalidAccessError'); }); }
            catch (e) { got.push(e.name + ': ' + e.message); }
            const f = await w.addIframe('/blank.html');
            got.push(await f.executeScript(() => [location.origin, window.top === window]));
            await w.close();
            try { await w.executeScript(() => 1); } catch (e) { got.push(e.name); }
            try { await bgsyncTest.openWindow('https://unknown.example/blank.html'); } catch (e) { got.push(e.name); }
            return got;
        })()",
        T,
    );
    assert_eq!(
        r.unwrap(),
        r#"["https://other.example:8443",[5,"https://other.example:8443",true],"InvalidAccessError: nope",["https://other.example:8443",false],"InvalidStateError","NetworkError"]"#
    );
}
