use super::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn since(start: Instant) -> Duration {
    Instant::now() - start
}

/// Asserts a wait of `expected` plus at most the wake-up jitter.
fn waited(start: Instant, expected: Duration) {
    let took = since(start);
    assert!(
        took >= expected && took <= expected + expected / 20 + Duration::from_millis(1),
        "waited {took:?}, expected about {expected:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn admits_limit_per_rolling_window() {
    let b = Budget::new(Quota::new(3, secs(10)));
    let start = Instant::now();
    for _ in 0..3 {
        b.acquire().await;
    }
    assert_eq!(Instant::now(), start);
    b.acquire().await;
    waited(start, secs(10));
}

#[tokio::test(start_paused = true)]
async fn pause_holds_everyone_until_reset() {
    let b = Budget::new(Quota::new(100, secs(10)));
    let start = Instant::now();
    b.observe(RateInfo {
        limit: Some(50),
        remaining: Some(0),
        reset: Some(Duration::from_millis(1500)),
        window: None,
    });
    assert_eq!(b.quota().limit, 50);
    b.acquire().await;
    waited(start, Duration::from_millis(1500));
    let start = Instant::now();
    b.pause(secs(2));
    b.acquire().await;
    waited(start, secs(2));
}

#[tokio::test(start_paused = true)]
async fn the_servers_window_is_adopted() {
    let b = Budget::new(Quota::new(5, secs(1)));
    b.observe(RateInfo {
        limit: Some(5),
        window: Some(secs(4)),
        ..RateInfo::default()
    });
    assert_eq!(b.quota(), Quota::new(5, secs(4)));
    let start = Instant::now();
    for _ in 0..5 {
        b.acquire().await;
    }
    assert_eq!(since(start), Duration::ZERO);
    b.acquire().await;
    waited(start, secs(4));
}

#[tokio::test(start_paused = true)]
async fn a_user_ceiling_is_never_raised_but_may_be_lowered() {
    let b = Budget::with_ceiling(Quota::new(2, secs(10)));
    b.observe(RateInfo {
        limit: Some(100),
        window: Some(secs(10)),
        ..RateInfo::default()
    });
    assert_eq!(b.quota(), Quota::new(2, secs(10)));
    let start = Instant::now();
    for _ in 0..2 {
        b.acquire().await;
    }
    b.acquire().await;
    waited(start, secs(10));

    let lower = Budget::with_ceiling(Quota::new(10, secs(10)));
    lower.observe(RateInfo {
        limit: Some(1),
        ..RateInfo::default()
    });
    assert_eq!(lower.quota(), Quota::new(1, secs(10)));
    let start = Instant::now();
    lower.acquire().await;
    lower.acquire().await;
    waited(start, secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_lower_remaining_from_the_server_is_followed() {
    let b = Budget::new(Quota::new(100, secs(10)));
    let first = b.acquire_within(secs(60)).await.expect("room");
    // Another process spent the key: only 2 left for 3 s.
    b.observe_after(
        RateInfo {
            limit: Some(100),
            remaining: Some(2),
            reset: Some(secs(3)),
            window: None,
        },
        &first,
    );
    let start = Instant::now();
    b.acquire().await;
    b.acquire().await;
    assert_eq!(since(start), Duration::ZERO);
    b.acquire().await;
    waited(start, secs(3));
}

#[tokio::test(start_paused = true)]
async fn requests_in_flight_spend_the_servers_remaining() {
    let b = Budget::new(Quota::new(100, secs(10)));
    let first = b.acquire_within(secs(60)).await.expect("room");
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let _later = b.acquire_within(secs(60)).await.expect("room");
    }
    b.observe_after(
        RateInfo {
            remaining: Some(3),
            reset: Some(secs(5)),
            ..RateInfo::default()
        },
        &first,
    );
    let start = Instant::now();
    b.acquire().await;
    assert_eq!(since(start), Duration::ZERO);
    b.acquire().await;
    waited(start, secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_long_hint_fails_fast_while_another_group_proceeds() {
    let budgets = RateBudgets::new(Quota::new(10, secs(10)));
    let slow = budgets.group("GET /lead/");
    let other = budgets.group("GET /contact/");
    slow.pause(secs(86_400));
    let start = Instant::now();
    for _ in 0..3 {
        let e = slow
            .acquire_within(secs(300))
            .await
            .expect_err("fails fast");
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        let wait = e.retry_after().expect("carries the reset");
        assert!(wait > secs(86_000), "{wait:?}");
    }
    let _slot = other
        .acquire_within(secs(300))
        .await
        .expect("other group proceeds");
    assert_eq!(since(start), Duration::ZERO);
    // A short pause is waited out.
    let start = Instant::now();
    other.pause(secs(2));
    let _slot = other
        .acquire_within(secs(300))
        .await
        .expect("short pause waited");
    waited(start, secs(2));
}

#[tokio::test(start_paused = true)]
async fn waiters_are_admitted_in_arrival_order() {
    let b = Arc::new(Budget::new(Quota::new(1, secs(1))));
    b.acquire().await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..6 {
        let (b, order) = (b.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            b.acquire().await;
            order.lock().expect("not poisoned").push(i);
        }));
        // Let the task reach the queue before the next one arrives.
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
    }
    for t in tasks {
        t.await.expect("task ends");
    }
    assert_eq!(*order.lock().expect("not poisoned"), vec![0, 1, 2, 3, 4, 5]);
}

#[tokio::test(start_paused = true)]
async fn a_request_is_charged_to_every_budget_and_a_daily_quota_fails_without_waiting() {
    let budgets = RateBudgets::new(Quota::new(100, secs(10)));
    let specs = [
        BudgetSpec::daily("daily", 5),
        BudgetSpec::rolling_with("search", Quota::new(2, secs(1))),
        BudgetSpec::rolling("POST /search/"),
    ];
    let list: Vec<Arc<Budget>> = specs.iter().map(|s| budgets.budget(s)).collect();
    let start = Instant::now();
    for _ in 0..5 {
        let slots = acquire_all(&list, secs(60)).await.expect("room");
        assert_eq!(slots.len(), 3);
    }
    // Two per second: the 3rd and 4th waited one second, the 5th two.
    assert!(
        since(start) >= secs(2) && since(start) < secs(3),
        "{:?}",
        since(start)
    );
    assert_eq!(list[0].lock().sent.len(), 5);
    assert_eq!(list[2].lock().sent.len(), 5);
    let before = Instant::now();
    let e = acquire_all(&list, secs(60))
        .await
        .expect_err("daily quota used up");
    assert_eq!(e.kind(), ErrorKind::QuotaExhausted);
    assert!(e.to_string().contains("daily"), "{e}");
    assert_eq!(Instant::now(), before, "no waiting for a daily quota");
    assert_eq!(
        list[2].lock().sent.len(),
        5,
        "the refused request was not counted"
    );
}

#[tokio::test(start_paused = true)]
async fn slots_taken_before_a_refusal_are_given_back() {
    let budgets = RateBudgets::new(Quota::new(100, secs(10)));
    let first = budgets.group("a");
    let second = budgets.group("b");
    second.pause(secs(3_600));
    let e = acquire_all(&[first.clone(), second], secs(60))
        .await
        .expect_err("second refuses");
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(first.lock().sent.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn absurd_numbers_do_not_panic() {
    assert_eq!(secs_to_duration(1e300), Some(LONGEST_WAIT));
    assert_eq!(secs_to_duration(99_999_999_999_999.0), Some(LONGEST_WAIT));
    assert_eq!(secs_to_duration(f64::INFINITY), Some(LONGEST_WAIT));
    assert_eq!(secs_to_duration(f64::NAN), None);
    assert_eq!(secs_to_duration(-1.0), None);
    assert_eq!(secs_to_duration(1.5), Some(Duration::from_millis(1500)));
    let b = Budget::new(Quota::new(10, secs(10)));
    b.observe(RateInfo {
        limit: Some(u32::MAX),
        remaining: Some(0),
        reset: Some(Duration::MAX),
        window: Some(Duration::MAX),
    });
    b.pause(Duration::MAX);
    let e = b.acquire_within(secs(300)).await.expect_err("fails fast");
    assert_eq!(e.kind(), ErrorKind::RateLimited);
}

#[test]
fn same_credential_shares_budgets() {
    let q = Quota::new(10, secs(1));
    let a = RateBudgets::shared("fp-test-1", q);
    let b = RateBudgets::shared("fp-test-1", q);
    let c = RateBudgets::shared("fp-test-2", q);
    assert!(Arc::ptr_eq(&a.group("g"), &b.group("g")));
    assert!(!Arc::ptr_eq(&a.group("g"), &c.group("g")));
}
