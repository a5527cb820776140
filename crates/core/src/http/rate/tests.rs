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
    assert_eq!(b.quota().limit(), 50);
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
        acquire_all(&list, secs(60)).await.expect("room");
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
    let a = RateBudgets::shared_configured("fp-test-1", q, false);
    let b = RateBudgets::shared_configured("fp-test-1", q, false);
    let c = RateBudgets::shared_configured("fp-test-2", q, false);
    assert!(Arc::ptr_eq(&a.group("g"), &b.group("g")));
    assert!(!Arc::ptr_eq(&a.group("g"), &c.group("g")));
}

#[tokio::test(start_paused = true)]
async fn a_request_waiting_on_one_budget_is_counted_in_all_when_it_leaves() {
    let budgets = RateBudgets::new(Quota::new(100, secs(10)));
    let a = budgets.budget(&BudgetSpec::rolling_with("a", Quota::new(1, secs(1))));
    let b = budgets.budget(&BudgetSpec::rolling_with("b", Quota::new(1, secs(10))));
    b.acquire_within(secs(60)).await.expect("room in b");
    let start = Instant::now();
    let both = {
        let (a, b) = (a.clone(), b.clone());
        tokio::spawn(async move { acquire_all(&[a, b], secs(60)).await })
    };
    // Meanwhile, a request on `a` alone goes at 9.5 s: `a` had room all along.
    tokio::time::sleep(Duration::from_millis(9_500)).await;
    let alone = a.acquire_within(secs(60)).await.expect("room in a");
    let slot = both.await.expect("task").expect("admitted");
    // Both were counted in `a` when they left: they left a full window apart, and the
    // two-budget request is in both logs at the instant it left.
    let apart = if alone.at() > slot.at() {
        alone.at() - slot.at()
    } else {
        slot.at() - alone.at()
    };
    assert!(
        apart >= secs(1),
        "two requests of a 1/s budget {apart:?} apart"
    );
    let latest = alone.at().max(slot.at());
    assert_eq!(a.sent_log().last(), Some(&latest));
    assert_eq!(b.sent_log().last(), Some(&slot.at()), "one instant in both");
    assert!(slot.at() - start >= secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_wait_counts_nothing_not_even_daily_quota() {
    let budgets = RateBudgets::new(Quota::new(100, secs(10)));
    let daily = budgets.budget(&BudgetSpec::daily("daily", 5));
    let search = budgets.budget(&BudgetSpec::rolling_with("search", Quota::new(1, secs(1))));
    search.acquire_within(secs(60)).await.expect("room");
    let list = [daily.clone(), search.clone()];
    for _ in 0..5 {
        let cut = tokio::time::timeout(Duration::from_millis(100), acquire_all(&list, secs(60)));
        assert!(cut.await.is_err(), "cancelled while waiting");
    }
    tokio::time::sleep(secs(2)).await;
    assert!(daily.sent_log().is_empty());
    for _ in 0..5 {
        acquire_all(&list, secs(60)).await.expect("quota intact");
    }
    let e = acquire_all(&list, secs(60)).await.expect_err("now used up");
    assert_eq!(e.kind(), ErrorKind::QuotaExhausted);
}

#[tokio::test(start_paused = true)]
async fn max_wait_is_one_deadline_for_all_budgets() {
    let budgets = RateBudgets::new(Quota::new(100, secs(10)));
    let a = budgets.budget(&BudgetSpec::rolling_with("a", Quota::new(1, secs(40))));
    let b = budgets.budget(&BudgetSpec::rolling_with("b", Quota::new(1, secs(40))));
    a.acquire_within(secs(60)).await.expect("room");
    tokio::time::sleep(secs(20)).await;
    b.acquire_within(secs(60)).await.expect("room");
    // `a` frees at 40 s and `b` at 60 s: 40 s from now, within 45 s; but not within 30 s.
    let start = Instant::now();
    let e = acquire_all(&[a.clone(), b.clone()], secs(30))
        .await
        .expect_err("past the deadline");
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(Instant::now(), start, "refused without waiting");
    acquire_all(&[a, b], secs(45)).await.expect("within 45 s");
    waited(start, secs(40));
}

#[tokio::test(start_paused = true)]
async fn a_queue_that_does_not_move_within_the_maximum_wait_fails() {
    let b = Arc::new(Budget::new(Quota::new(1, secs(10))));
    b.acquire().await;
    // Two waiters ahead: admitted at 10 s and 20 s.
    let mut ahead = Vec::new();
    for _ in 0..2 {
        let b = b.clone();
        ahead.push(tokio::spawn(
            async move { b.acquire_within(secs(60)).await },
        ));
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
    }
    // The budget alone says 10 s, within 15 s; but the turn comes only at 20 s.
    let start = Instant::now();
    let e = b
        .acquire_within(secs(15))
        .await
        .expect_err("queue too slow");
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert!(since(start) <= secs(15), "{:?}", since(start));
    for t in ahead {
        t.await.expect("task").expect("admitted");
    }
}

#[tokio::test(start_paused = true)]
async fn a_waiter_on_one_budget_does_not_hold_up_requests_that_do_not_need_it() {
    let budgets = RateBudgets::new(Quota::new(100, secs(10)));
    let all = budgets.group("all");
    let search = budgets.budget(&BudgetSpec::rolling_with("search", Quota::new(1, secs(10))));
    search.acquire_within(secs(60)).await.expect("room");
    let waiting = {
        let (all, search) = (all.clone(), search.clone());
        tokio::spawn(async move { acquire_all(&[all, search], secs(60)).await })
    };
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
    let start = Instant::now();
    for _ in 0..5 {
        all.acquire_within(secs(60)).await.expect("room in all");
    }
    assert_eq!(since(start), Duration::ZERO);
    waiting.await.expect("task").expect("admitted");
}

#[tokio::test(start_paused = true)]
async fn a_daily_quota_renewed_by_the_server_is_usable_at_once() {
    let budgets = RateBudgets::new(Quota::new(100, secs(10)));
    let daily = budgets.budget(&BudgetSpec::daily("daily", 2));
    for _ in 0..2 {
        daily.acquire_within(secs(1)).await.expect("room");
    }
    let e = daily.acquire_within(secs(1)).await.expect_err("used up");
    assert_eq!(e.kind(), ErrorKind::QuotaExhausted);
    daily.observe(RateInfo {
        remaining: Some(2),
        reset: Some(secs(86_400)),
        ..RateInfo::default()
    });
    daily.acquire_within(secs(1)).await.expect("renewed");
    // And the server can say it is used up earlier than we counted.
    daily.observe(RateInfo {
        remaining: Some(0),
        reset: Some(secs(3_600)),
        ..RateInfo::default()
    });
    let e = daily
        .acquire_within(secs(1))
        .await
        .expect_err("server says none left");
    let reset = e.retry_after().expect("reset");
    assert!(reset <= secs(3_600) && reset > secs(3_500), "{reset:?}");
    // The count starts over at the reset.
    tokio::time::sleep(secs(3_600)).await;
    daily.acquire_within(secs(1)).await.expect("a new day");
}

#[tokio::test(start_paused = true)]
async fn a_whole_second_reset_of_zero_with_nothing_left_waits_a_second() {
    let b = Budget::new(Quota::new(100, secs(10)));
    b.observe(RateInfo {
        remaining: Some(0),
        reset: Some(Duration::ZERO),
        ..RateInfo::default()
    });
    let start = Instant::now();
    b.acquire().await;
    waited(start, secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_zero_window_or_limit_neither_panics_nor_switches_limiting_off() {
    let zero = Budget::with_ceiling(Quota::new(1, Duration::ZERO));
    let start = Instant::now();
    for _ in 0..3 {
        zero.acquire().await;
    }
    assert!(
        since(start) >= Duration::from_millis(2),
        "{:?}",
        since(start)
    );
    let none = Budget::new(Quota::new(0, secs(1)));
    assert_eq!(none.quota().limit(), 1);
    let start = Instant::now();
    none.acquire().await;
    none.acquire().await;
    waited(start, secs(1));
}

#[test]
fn a_second_client_with_a_lower_limit_tightens_the_shared_ceiling() {
    let a = RateBudgets::shared_configured("fp-tighten", Quota::new(100, secs(10)), false);
    let before = a.group("existing");
    let b = RateBudgets::shared_configured("fp-tighten", Quota::new(2, secs(10)), true);
    assert!(Arc::ptr_eq(&a, &b), "one allowance for the key");
    assert_eq!(b.group("g").quota(), Quota::new(2, secs(10)));
    assert_eq!(before.quota(), Quota::new(2, secs(10)));
    // A third client asking for more does not raise it.
    let c = RateBudgets::shared_configured("fp-tighten", Quota::new(50, secs(10)), true);
    assert_eq!(c.group("h").quota(), Quota::new(2, secs(10)));
    // A budget with its own documented quota is not the default's to tighten.
    let own = c.budget(&BudgetSpec::rolling_with("search", Quota::new(5, secs(1))));
    assert_eq!(own.quota(), Quota::new(5, secs(1)));
}

#[tokio::test(start_paused = true)]
async fn a_window_of_centuries_neither_panics_nor_lets_a_second_request_through() {
    let huge = Quota::new(u32::MAX, Duration::from_millis(u64::MAX));
    assert_eq!(huge.window(), LONGEST_WAIT);
    let tiny = Quota::new(1, Duration::ZERO);
    assert_eq!(huge.slower(tiny), huge);
    assert_eq!(Quota::new(1, Duration::MAX).slower(huge).limit(), 1);
    let b = Budget::with_ceiling(Quota::new(1, Duration::MAX));
    b.acquire_within(secs(1)).await.expect("the first fits");
    let e = b.acquire_within(secs(300)).await.expect_err("fails fast");
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    b.exhaust(Some(Duration::MAX));
    b.pause(Duration::MAX);
    b.observe(RateInfo {
        limit: Some(1),
        remaining: Some(0),
        reset: Some(Duration::MAX),
        window: Some(Duration::MAX),
    });
    let e = b
        .acquire_within(secs(300))
        .await
        .expect_err("still fails fast");
    assert_eq!(e.kind(), ErrorKind::RateLimited);
}

/// A rolling window's answer as HubSpot writes it: limit, remaining and interval, no reset.
fn rolling(limit: u32, remaining: u32, window: Duration) -> RateInfo {
    RateInfo {
        limit: Some(limit),
        remaining: Some(remaining),
        reset: None,
        window: Some(window),
    }
}

#[tokio::test(start_paused = true)]
async fn a_rolling_count_that_took_in_requests_in_flight_does_not_count_them_twice() {
    let b = Budget::new(Quota::new(10, secs(10)));
    let t0 = Instant::now();
    let first = b.acquire_within(secs(60)).await.expect("room");
    // Four more leave 1, 2, 3 and 4 ms later, while the first is in flight.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        b.acquire().await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The server had counted all five when it answered the first: five are left.
    b.observe_after(rolling(10, 5, secs(10)), &first);
    let start = Instant::now();
    for _ in 0..5 {
        b.acquire().await;
    }
    assert_eq!(since(start), Duration::ZERO, "all five left are usable");
    // Ten in the window: the next leaves when the one sent at 1 ms leaves it (the first is
    // dated at its answer).
    b.acquire().await;
    waited(t0, secs(10) + Duration::from_millis(1));
}

#[tokio::test(start_paused = true)]
async fn a_rolling_count_that_missed_requests_in_flight_still_has_them_counted() {
    let b = Budget::new(Quota::new(10, secs(10)));
    let t0 = Instant::now();
    let first = b.acquire_within(secs(60)).await.expect("room");
    // Four more leave 1, 2, 3 and 4 ms later, while the first is in flight.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        b.acquire().await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The server counted only the first: the four in flight reach it later.
    b.observe_after(rolling(10, 9, secs(10)), &first);
    let start = Instant::now();
    for _ in 0..5 {
        b.acquire().await;
    }
    assert_eq!(since(start), Duration::ZERO);
    assert_eq!(b.sent_log().len(), 10);
    // Never an eleventh in the window.
    b.acquire().await;
    waited(t0, secs(10) + Duration::from_millis(1));
}

#[tokio::test(start_paused = true)]
async fn a_rolling_window_frees_each_slot_one_window_after_its_own_answer_without_drift() {
    let b = Budget::new(Quota::new(3, secs(10)));
    // Sent at 0, 1 and 2 s, each answered 100 ms later, the last saying the window is full.
    for left in (0..3).rev() {
        let slot = b.acquire_within(secs(60)).await.expect("room");
        tokio::time::sleep(Duration::from_millis(100)).await;
        b.observe_after(rolling(3, left, secs(10)), &slot);
        tokio::time::sleep(Duration::from_millis(900)).await;
    }
    let start = Instant::now();
    // The first place frees at 10.1 s and the second at 11.1 s, whatever came later: not
    // one window after the last answer (12.1 s).
    b.acquire().await;
    waited(start, Duration::from_millis(7_100));
    b.acquire().await;
    waited(start, Duration::from_millis(8_100));
}

#[tokio::test(start_paused = true)]
async fn a_slow_request_holds_its_rolling_place_until_one_window_after_its_answer() {
    let b = Budget::new(Quota::new(1, secs(10)));
    let slot = b.acquire_within(secs(60)).await.expect("room");
    // It may have reached the server only just before the answer came, 2 s after sending.
    tokio::time::sleep(secs(2)).await;
    b.observe_after(rolling(1, 0, secs(10)), &slot);
    let start = Instant::now();
    b.acquire().await;
    waited(start, secs(10));
}

#[tokio::test(start_paused = true)]
async fn another_process_in_a_rolling_window_holds_room_until_its_requests_can_have_left() {
    let b = Budget::new(Quota::new(10, secs(10)));
    // Sent at 0 s, answered without limit headers.
    b.acquire().await;
    tokio::time::sleep(secs(1)).await;
    let second = b.acquire_within(secs(60)).await.expect("room");
    // The server counted six: our two and four of another process spending the key.
    b.observe_after(rolling(10, 4, secs(10)), &second);
    let start = Instant::now();
    for _ in 0..4 {
        b.acquire().await;
    }
    assert_eq!(since(start), Duration::ZERO);
    // Six of ours and four of theirs: our first leaves at 10 s, before the others' can
    // all have left (11 s, one window after the answer).
    b.acquire().await;
    waited(start, secs(9));
    // Then the five of ours sent at 1 s and the others' leave together at 11 s.
    b.acquire().await;
    waited(start, secs(10));
}

#[tokio::test(start_paused = true)]
async fn an_answer_to_an_earlier_request_does_not_replace_a_newer_rolling_count() {
    let b = Budget::new(Quota::new(10, secs(10)));
    let early = b.acquire_within(secs(60)).await.expect("room");
    tokio::time::sleep(secs(1)).await;
    let late = b.acquire_within(secs(60)).await.expect("room");
    // The newer count shows only our two; the older one, arriving last, showed more.
    b.observe_after(rolling(10, 8, secs(10)), &late);
    b.observe_after(rolling(10, 1, secs(10)), &early);
    let start = Instant::now();
    for _ in 0..8 {
        b.acquire().await;
    }
    assert_eq!(since(start), Duration::ZERO);
}
