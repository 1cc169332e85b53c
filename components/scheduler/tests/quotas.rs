//! Storage quotas: the bytes one origin's registrations take are capped, and so are the bytes of
//! all origins together, each with a QuotaExceededError that says which cap; freeing
//! registrations frees their bytes.

mod common;

use bgsync_scheduler::{Parameters, RegisterContext};
use bgsync_types::{DomExceptionName, SwRegistrationId, Tag};
use common::{origin, Harness};

fn big(i: usize) -> Tag {
    // 10,240 bytes of UTF-8: the largest tag there is.
    Tag::from(format!("{i:05}{}", "x".repeat(10_235)).as_str())
}

#[test]
fn one_origin_cannot_take_more_than_its_byte_quota() {
    let mut h = Harness::with_params(Parameters {
        max_registrations_per_origin: None,
        ..Parameters::default()
    });
    h.set_online(false);
    let a = origin("https://a.example");
    let quota = Parameters::default()
        .max_bytes_per_origin
        .expect("a default byte quota");
    let mut accepted = 0;
    let mut refused = None;
    for i in 0..2_000 {
        let r = h.register_with(&a, 1, big(i), RegisterContext::ready(a.clone()));
        match h.result(r) {
            Some(Ok(_)) => accepted += 1,
            Some(Err(e)) => {
                refused = Some(e);
                break;
            }
            None => panic!("unanswered"),
        }
    }
    let e = refused.expect("the byte quota stops one origin");
    assert_eq!(e.name, DomExceptionName::QuotaExceededError);
    assert!(e.message.contains("bytes"), "{}", e.message);
    assert!(
        (accepted as u64) * 10_240 <= quota,
        "{accepted} tags of 10,240 bytes exceed the {quota}-byte quota"
    );
    // Another origin is not affected.
    let b = origin("https://b.example");
    let r = h.register_with(&b, 2, big(0), RegisterContext::ready(b.clone()));
    assert!(matches!(h.result(r), Some(Ok(_))));
}

#[test]
fn all_origins_together_cannot_take_more_than_the_global_byte_quota() {
    let per_origin = 3 * 10_240 * 2 + 1_000;
    let mut h = Harness::with_params(Parameters {
        max_registrations_per_origin: None,
        max_bytes_per_origin: Some(per_origin),
        max_bytes_total: Some(per_origin * 4),
        ..Parameters::default()
    });
    h.set_online(false);
    let mut refused = None;
    'outer: for o in 0..100 {
        let origin = origin(&format!("https://o{o}.example"));
        for i in 0..3 {
            let r = h.register_with(
                &origin,
                o + 1,
                big(i),
                RegisterContext::ready(origin.clone()),
            );
            if let Some(Err(e)) = h.result(r) {
                refused = Some((o, e));
                break 'outer;
            }
        }
    }
    let (o, e) = refused.expect("the global quota stops many origins");
    assert_eq!(e.name, DomExceptionName::QuotaExceededError);
    assert!(e.message.contains("all origins"), "{}", e.message);
    assert!(o <= 5, "origin {o} still got in");
    // Clearing an origin frees its bytes.
    let first = origin("https://o0.example");
    let req = bgsync_types::RequestId(999_999);
    h.core.clear_origin(h.now, req, &first);
    h.run();
    let late = origin("https://late.example");
    let r = h.register_with(&late, 500, big(0), RegisterContext::ready(late.clone()));
    assert!(matches!(h.result(r), Some(Ok(_))), "{:?}", h.result(r));
    let _ = SwRegistrationId(0);
}

#[test]
fn a_storage_key_whose_registrations_all_went_frees_its_count_for_others() {
    let mut h = Harness::with_params(Parameters {
        max_registrations_per_origin: Some(3),
        ..Parameters::default()
    });
    h.set_online(false);
    let (a, b) = (origin("https://a.example"), origin("https://b.example"));
    for i in 0..3 {
        h.register_ok(&a, 1, &format!("a{i}"));
    }
    let r = h.register(&a, 1, "a3");
    assert_eq!(h.rejection(r), DomExceptionName::QuotaExceededError);
    // Every registration of a fires and goes: a no longer counts.
    h.set_online(true);
    for d in h.dispatched() {
        h.complete(&d, bgsync_scheduler::DispatchOutcome::Fulfilled);
    }
    assert!(h.core.origins().is_empty());
    // b's count takes the place a's had, and each origin has its own cap again.
    for i in 0..3 {
        h.register_ok(&b, 2, &format!("b{i}"));
    }
    let r = h.register(&b, 2, "b3");
    assert_eq!(h.rejection(r), DomExceptionName::QuotaExceededError);
    for i in 0..3 {
        h.register_ok(&a, 1, &format!("a{i}"));
    }
    let r = h.register(&a, 1, "a3");
    assert_eq!(h.rejection(r), DomExceptionName::QuotaExceededError);
    let mut origins: Vec<String> = h.core.origins().iter().map(|o| o.to_string()).collect();
    origins.sort();
    assert_eq!(origins, ["https://a.example", "https://b.example"]);
}
