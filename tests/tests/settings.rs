//! Typed settings overridden per test scope, and `setting_changed` on entering and leaving an
//! override (`signals_core::settings`). Rules: `docs/dispatch.md`, "Settings and
//! `setting_changed`".

use std::sync::Mutex;
use std::time::Duration;

use signals_core::receiver;
use signals_core::settings::{Setting, SettingChanged};

static GREETING: Setting<String> = Setting::new("GREETING", || "hello".to_owned());
static PAGE_SIZE: Setting<u32> = Setting::new("PAGE_SIZE", || 20);
static GUARDED: Setting<u32> = Setting::new("GUARDED", || 1);

/// Every `setting_changed` of `GREETING` and `PAGE_SIZE`, as `name=value enter`.
static CHANGES: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[receiver(SettingChanged)]
fn remember(ev: &SettingChanged) -> Result<(), String> {
    if ev.setting == "GUARDED" && ev.value == "13" {
        return Err("13 is not allowed".to_owned());
    }
    if ev.setting != "GUARDED" {
        CHANGES
            .lock()
            .unwrap()
            .push(format!("{}={} {}", ev.setting, ev.value, ev.enter));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_are_per_task_and_nest_and_say_so() {
    let a = tokio::spawn(GREETING.override_in("bonjour".to_owned(), async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let outer = GREETING.get();
        let inner = GREETING
            .override_in("salut".to_owned(), async { GREETING.get() })
            .await
            .unwrap();
        (outer, inner, GREETING.get())
    }));
    let b = tokio::spawn(GREETING.override_in("hallo".to_owned(), async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        GREETING.get()
    }));
    // Meanwhile, outside any override, the default.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(GREETING.get(), "hello");
    let (outer, inner, after) = a.await.unwrap().unwrap();
    assert_eq!(
        (outer.as_str(), inner.as_str(), after.as_str()),
        ("bonjour", "salut", "bonjour")
    );
    assert_eq!(b.await.unwrap().unwrap(), "hallo");
    assert_eq!(GREETING.get(), "hello");

    let changes = CHANGES.lock().unwrap().clone();
    let greeting: Vec<&String> = changes
        .iter()
        .filter(|c| c.starts_with("GREETING"))
        .collect();
    // Each override says when it begins and, with the value then in force, when it ends.
    for expected in [
        "GREETING=\"bonjour\" true",
        "GREETING=\"salut\" true",
        "GREETING=\"bonjour\" false",
        "GREETING=\"hallo\" true",
        "GREETING=\"hello\" false",
    ] {
        assert!(
            greeting.iter().any(|c| *c == expected),
            "{expected} in {greeting:?}"
        );
    }
    let pos = |s: &str| greeting.iter().position(|c| *c == s).unwrap();
    assert!(pos("GREETING=\"salut\" true") < pos("GREETING=\"bonjour\" false"));
}

#[test]
fn a_sync_override_holds_on_its_thread_only() {
    let other = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(20));
        PAGE_SIZE.get()
    });
    let seen = PAGE_SIZE
        .override_sync(50, || {
            std::thread::sleep(Duration::from_millis(40));
            PAGE_SIZE.get()
        })
        .unwrap();
    assert_eq!(seen, 50);
    assert_eq!(other.join().unwrap(), 20, "another thread saw the override");
    assert_eq!(PAGE_SIZE.get(), 20);
    let changes = CHANGES.lock().unwrap().clone();
    assert!(
        changes.contains(&"PAGE_SIZE=50 true".to_owned()),
        "{changes:?}"
    );
    assert!(
        changes.contains(&"PAGE_SIZE=20 false".to_owned()),
        "{changes:?}"
    );
}

#[test]
fn a_failing_receiver_refuses_the_override_before_it_runs() {
    let mut ran = false;
    let error = GUARDED.override_sync(13, || ran = true).unwrap_err();
    assert!(!ran, "the code ran although setting_changed failed");
    let text = error.to_string();
    assert!(
        text.contains("remember") && text.contains("setting_changed"),
        "{text}"
    );
    assert_eq!(GUARDED.override_sync(2, || GUARDED.get()).unwrap(), 2);
}
