//! Proactive rate budgets: requests wait for room before they leave.
//!
//! A [`Budget`] admits at most `limit` requests in any rolling `window` (a sliding log of
//! send times, so it never lets a burst through at a window edge). It learns from the server:
//!
//! - **Limit and window.** The limit (and window, when the server names one) from a response
//!   replace the starting guess. A quota the user configured is kept as a *ceiling* and is
//!   enforced beside the server's, so the server can lower the pace but never raise it above
//!   what the user asked for.
//! - **Remaining.** When the server says `remaining=r, reset=t`, at most `r` more requests
//!   leave before the reset, less the ones we sent after the answered request (they are in
//!   flight and will spend that allowance). So another process spending the same key slows
//!   us down too.
//! - **Pauses.** After a 429 the whole budget waits until the reset.
//!
//! Waiting is capped: [`Budget::acquire_within`] fails at once with
//! [`ErrorKind::RateLimited`] (carrying the wait) when the budget cannot admit the request
//! within the caller's maximum wait. A day-long pause therefore makes each caller of that
//! budget fail fast instead of freezing; budgets of other endpoint groups are untouched.
//! Waiters are admitted in arrival order (a fair queue) and wake with a little jitter.
//!
//! A [`BudgetKind::Daily`] budget counts requests per day and never waits: once used up,
//! requests fail with [`ErrorKind::QuotaExhausted`].
//!
//! [`RateBudgets`] keeps the budgets of one credential by name; [`RateBudgets::shared`] hands
//! every client built with the same credential the same budgets, so all tasks using one key
//! draw from one allowance.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, ErrorKind};

/// The longest wait any budget records (a year and a day): hints beyond it are treated as
/// this long, so a absurd reset cannot overflow a clock.
pub const LONGEST_WAIT: Duration = Duration::from_secs(366 * 86_400);

const DAY: Duration = Duration::from_secs(86_400);

/// Seconds as a server wrote them (`1.5`, `1e300`, `-3`, `NaN`) to a wait: `None` when negative
/// or not a number, capped at [`LONGEST_WAIT`]. Never panics, unlike `Duration::from_secs_f64`.
pub fn secs_to_duration(secs: f64) -> Option<Duration> {
    if secs.is_nan() || secs < 0.0 {
        return None;
    }
    Some(
        Duration::try_from_secs_f64(secs)
            .unwrap_or(LONGEST_WAIT)
            .min(LONGEST_WAIT),
    )
}

/// A rate limit: `limit` requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests allowed in one window.
    pub limit: u32,
    /// The window length.
    pub window: Duration,
}

impl Quota {
    /// `limit` requests per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window,
        }
    }
}

/// What a response said about the budget it drew from.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateInfo {
    /// The limit per window, as the server counts it.
    pub limit: Option<u32>,
    /// Requests left in the current window.
    pub remaining: Option<u32>,
    /// Time until the window resets.
    pub reset: Option<Duration>,
    /// The window the limit applies to, when the server names it (HubSpot's interval,
    /// Close's legacy `rate_window`).
    pub window: Option<Duration>,
}

/// How a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BudgetKind {
    /// At most `limit` requests in any rolling window; callers wait for room.
    #[default]
    Rolling,
    /// At most `limit` requests per day; once used up, requests fail with
    /// [`ErrorKind::QuotaExhausted`] instead of waiting.
    Daily,
}

/// One budget a request is charged to: its name (unique per credential), its starting quota
/// and how it counts. A CRM's [`crate::http::Dialect::budgets`] lists these per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetSpec {
    /// The budget's name, such as `GET /lead/` or `search`.
    pub name: String,
    /// Its quota; `None` uses the transport's configured quota.
    pub quota: Option<Quota>,
    /// How it counts.
    pub kind: BudgetKind,
}

impl BudgetSpec {
    /// A rolling budget with the transport's configured quota (an endpoint group).
    pub fn rolling(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            quota: None,
            kind: BudgetKind::Rolling,
        }
    }

    /// A rolling budget with its own documented quota (a per-second search limit).
    pub fn rolling_with(name: impl Into<String>, quota: Quota) -> Self {
        Self {
            name: name.into(),
            quota: Some(quota),
            kind: BudgetKind::Rolling,
        }
    }

    /// A daily quota of `limit` requests.
    pub fn daily(name: impl Into<String>, limit: u32) -> Self {
        Self {
            name: name.into(),
            quota: Some(Quota::new(limit, DAY)),
            kind: BudgetKind::Daily,
        }
    }
}

/// A request admitted by a budget. Give it back with [`Budget::release`] if the request is not
/// sent after all.
#[derive(Debug)]
#[must_use = "a slot that is not sent should be released"]
pub struct Slot {
    at: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Allowance {
    left: u32,
    until: Instant,
}

#[derive(Debug)]
struct State {
    kind: BudgetKind,
    /// The starting assumption, replaced by what the server announces.
    guess: Quota,
    /// What the user configured; never exceeded whatever the server says.
    ceiling: Option<Quota>,
    /// What the server announced.
    server: Option<Quota>,
    sent: VecDeque<Instant>,
    allowance: Option<Allowance>,
    paused_until: Option<Instant>,
}

enum Check {
    Admit(Instant),
    Wait(Duration),
    Exhausted(Duration),
}

impl State {
    fn quotas(&self) -> impl Iterator<Item = Quota> + '_ {
        self.ceiling
            .into_iter()
            .chain(Some(self.server.unwrap_or(self.guess)))
    }

    fn longest_window(&self) -> Duration {
        self.quotas().map(|q| q.window).max().unwrap_or_default()
    }

    fn check(&mut self, now: Instant, admit: bool) -> Check {
        let keep = self.longest_window();
        while self
            .sent
            .front()
            .is_some_and(|t| t.checked_add(keep).is_none_or(|end| end <= now))
        {
            self.sent.pop_front();
        }
        if let Some(until) = self.paused_until {
            if until > now {
                return Check::Wait(until - now);
            }
            self.paused_until = None;
        }
        if let Some(a) = self.allowance {
            if a.until <= now {
                self.allowance = None;
            } else if a.left == 0 {
                return match self.kind {
                    BudgetKind::Daily => Check::Exhausted(a.until - now),
                    BudgetKind::Rolling => Check::Wait(a.until - now),
                };
            }
        }
        let mut wait = Duration::ZERO;
        for q in self.quotas() {
            let start = self
                .sent
                .partition_point(|t| t.checked_add(q.window).is_none_or(|end| end <= now));
            let in_window = self.sent.len() - start;
            let limit = q.limit as usize;
            if in_window >= limit {
                let oldest = self.sent[self.sent.len() - limit];
                let free_at = oldest.checked_add(q.window).unwrap_or(now + LONGEST_WAIT);
                wait = wait.max(free_at.saturating_duration_since(now));
            }
        }
        if !wait.is_zero() {
            return match self.kind {
                BudgetKind::Daily => Check::Exhausted(wait),
                BudgetKind::Rolling => Check::Wait(wait),
            };
        }
        if admit {
            self.sent.push_back(now);
            if let Some(a) = &mut self.allowance {
                a.left -= 1;
            }
        }
        Check::Admit(now)
    }

    fn pause(&mut self, now: Instant, wait: Duration) {
        let until = now + wait.min(LONGEST_WAIT);
        if self.paused_until.is_none_or(|p| p < until) {
            self.paused_until = Some(until);
        }
    }
}

/// The allowance of one endpoint group (or other budget) of one credential.
#[derive(Debug)]
pub struct Budget {
    name: String,
    state: Mutex<State>,
    /// Waiters queue here, so they are admitted in arrival order.
    queue: tokio::sync::Mutex<()>,
}

impl Budget {
    /// A rolling budget that starts at `quota` and adopts what the server announces.
    pub fn new(quota: Quota) -> Self {
        Self::build("budget", BudgetKind::Rolling, quota, None)
    }

    /// A rolling budget that never goes faster than `ceiling`, the user's configured quota.
    pub fn with_ceiling(ceiling: Quota) -> Self {
        Self::build("budget", BudgetKind::Rolling, ceiling, Some(ceiling))
    }

    /// A budget for `spec`; `default` fills in a missing quota, and is a ceiling when
    /// `default_is_ceiling` (the user configured it).
    pub fn from_spec(spec: &BudgetSpec, default: Quota, default_is_ceiling: bool) -> Self {
        let quota = spec.quota.unwrap_or(default);
        let ceiling = (spec.quota.is_none() && default_is_ceiling).then_some(default);
        Self::build(&spec.name, spec.kind, quota, ceiling)
    }

    fn build(name: &str, kind: BudgetKind, guess: Quota, ceiling: Option<Quota>) -> Self {
        Self {
            name: name.to_string(),
            state: Mutex::new(State {
                kind,
                guess,
                ceiling,
                server: None,
                sent: VecDeque::new(),
                allowance: None,
                paused_until: None,
            }),
            queue: tokio::sync::Mutex::new(()),
        }
    }

    /// The budget's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the log inconsistent, so keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until one more request fits, however long that takes, then counts it as sent.
    /// Returns at once, counting nothing, if a daily budget is used up.
    pub async fn acquire(&self) {
        if let Ok(slot) = self.acquire_within(LONGEST_WAIT).await {
            drop(slot);
        }
    }

    /// Waits until one more request fits and counts it as sent; fails at once with
    /// [`ErrorKind::RateLimited`] when that would take longer than `max_wait`, and with
    /// [`ErrorKind::QuotaExhausted`] when a daily budget is used up.
    pub async fn acquire_within(&self, max_wait: Duration) -> Result<Slot, Error> {
        self.acquire_observed(max_wait, &|_, _| {}).await
    }

    /// As [`Self::acquire_within`], telling `on_wait` (budget name, wait) before each sleep.
    pub async fn acquire_observed(
        &self,
        max_wait: Duration,
        on_wait: &(dyn Fn(&str, Duration) + Send + Sync),
    ) -> Result<Slot, Error> {
        // Fail before queuing when the answer is already known.
        let known = self.lock().check(Instant::now(), false);
        self.refuse(known, max_wait)?;
        let _turn = self.queue.lock().await;
        loop {
            let check = self.lock().check(Instant::now(), true);
            if let Check::Admit(at) = check {
                return Ok(Slot { at });
            }
            let wait = self.refuse(check, max_wait)?;
            on_wait(&self.name, wait);
            tokio::time::sleep(wait + jitter(wait)).await;
        }
    }

    /// Turns a check into an error, or into the wait still allowed.
    fn refuse(&self, check: Check, max_wait: Duration) -> Result<Duration, Error> {
        match check {
            Check::Admit(_) => Ok(Duration::ZERO),
            Check::Wait(w) if w > max_wait => Err(Error::rate_limited_for(w, max_wait)),
            Check::Wait(w) => Ok(w),
            Check::Exhausted(reset) => Err(Error::new(
                ErrorKind::QuotaExhausted,
                format!(
                    "the daily quota `{}` is used up; it resets in {:.0} min",
                    self.name,
                    reset.as_secs_f64() / 60.0
                ),
            )
            .with_retry_after(reset)),
        }
    }

    /// Gives back a slot whose request was not sent.
    pub fn release(&self, slot: Slot) {
        let mut s = self.lock();
        if let Some(i) = s.sent.iter().rposition(|t| *t == slot.at) {
            s.sent.remove(i);
            if let Some(a) = &mut s.allowance {
                a.left = a.left.saturating_add(1);
            }
        }
    }

    /// Moves a slot to now, for a request that waited on other budgets after this one
    /// admitted it, so the log shows when it really left.
    pub fn restamp(&self, slot: &mut Slot) {
        let mut s = self.lock();
        let now = Instant::now();
        if let Some(i) = s.sent.iter().rposition(|t| *t == slot.at) {
            s.sent.remove(i);
            s.sent.push_back(now);
            slot.at = now;
        }
    }

    /// Learns from the limit headers of a response, as if nothing else were in flight.
    pub fn observe(&self, info: RateInfo) {
        self.learn(info, None);
    }

    /// Learns from the limit headers of the response to the request admitted as `slot`;
    /// requests admitted after it are taken as in flight and spending the server's
    /// `remaining`.
    pub fn observe_after(&self, info: RateInfo, slot: &Slot) {
        self.learn(info, Some(slot.at));
    }

    fn learn(&self, info: RateInfo, sent_at: Option<Instant>) {
        let mut s = self.lock();
        let now = Instant::now();
        let current = s.server.unwrap_or(s.guess);
        let limit = info.limit.filter(|l| *l > 0);
        let window = info
            .window
            .filter(|w| !w.is_zero())
            .map(|w| w.min(LONGEST_WAIT));
        if limit.is_some() || window.is_some() {
            s.server = Some(Quota::new(
                limit.unwrap_or(current.limit),
                window.unwrap_or(current.window),
            ));
        }
        if let Some(remaining) = info.remaining {
            let reset = info
                .reset
                .unwrap_or(s.server.unwrap_or(s.guess).window)
                .min(LONGEST_WAIT);
            let later = match sent_at {
                Some(at) => s.sent.len() - s.sent.partition_point(|t| *t <= at),
                None => 0,
            };
            let left = remaining.saturating_sub(u32::try_from(later).unwrap_or(u32::MAX));
            s.allowance = Some(Allowance {
                left,
                until: now + reset,
            });
        }
    }

    /// Stops every request of this budget for `wait` (after a 429); waits beyond
    /// [`LONGEST_WAIT`] are cut to it.
    pub fn pause(&self, wait: Duration) {
        self.lock().pause(Instant::now(), wait);
    }

    /// The quota in force now: the tightest of the user's ceiling and what the server
    /// announced (or the starting guess).
    pub fn quota(&self) -> Quota {
        let s = self.lock();
        let mut it = s.quotas();
        let first = it.next().unwrap_or(s.guess);
        it.fold(first, |a, b| {
            // Compare rates without division: a.limit / a.window vs b.limit / b.window.
            let ra = u128::from(a.limit) * b.window.as_nanos();
            let rb = u128::from(b.limit) * a.window.as_nanos();
            if rb < ra { b } else { a }
        })
    }
}

/// A little random delay added to a wake-up, so waiters of many processes do not all hit the
/// server at the reset instant: up to 5% of the wait, at most 50 ms.
fn jitter(wait: Duration) -> Duration {
    let cap = (wait / 20).min(Duration::from_millis(50));
    let micros = u64::try_from(cap.as_micros()).unwrap_or(0);
    Duration::from_micros(fastrand::u64(0..=micros))
}

/// The budgets of one credential, by name.
#[derive(Debug)]
pub struct RateBudgets {
    default: Quota,
    default_is_ceiling: bool,
    groups: Mutex<HashMap<String, Arc<Budget>>>,
}

impl RateBudgets {
    /// Budgets that start every group at `default`, a guess the server may correct.
    pub fn new(default: Quota) -> Self {
        Self::configured(default, false)
    }

    /// Budgets that start every group at `default`; when `is_ceiling`, the user configured it
    /// and no server answer raises the pace above it.
    pub fn configured(default: Quota, is_ceiling: bool) -> Self {
        Self {
            default,
            default_is_ceiling: is_ceiling,
            groups: Mutex::new(HashMap::new()),
        }
    }

    /// The budgets of the credential whose fingerprint is `key`, shared with every other
    /// client built with the same credential while any of them lives.
    pub fn shared(key: &str, default: Quota) -> Arc<Self> {
        Self::shared_configured(key, default, false)
    }

    /// As [`Self::shared`], with `default` a ceiling when `is_ceiling`. The first client of a
    /// credential decides the defaults.
    pub fn shared_configured(key: &str, default: Quota, is_ceiling: bool) -> Arc<Self> {
        static REGISTRY: OnceLock<Mutex<HashMap<String, Weak<RateBudgets>>>> = OnceLock::new();
        let mut reg = REGISTRY
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        reg.retain(|_, w| w.strong_count() > 0);
        if let Some(existing) = reg.get(key).and_then(Weak::upgrade) {
            return existing;
        }
        let fresh = Arc::new(Self::configured(default, is_ceiling));
        reg.insert(key.to_string(), Arc::downgrade(&fresh));
        fresh
    }

    /// The budget of one endpoint group, with the default quota.
    pub fn group(&self, name: &str) -> Arc<Budget> {
        self.budget(&BudgetSpec::rolling(name))
    }

    /// The budget `spec` names, created from it on first use.
    pub fn budget(&self, spec: &BudgetSpec) -> Arc<Budget> {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups
            .entry(spec.name.clone())
            .or_insert_with(|| {
                Arc::new(Budget::from_spec(
                    spec,
                    self.default,
                    self.default_is_ceiling,
                ))
            })
            .clone()
    }
}

/// Takes one slot in each of `budgets` (in the given order, which callers keep the same
/// everywhere, such as sorted by name, so two requests never wait on each other crosswise).
/// If one budget refuses, the slots already taken are given back. Once all are taken, they
/// are restamped to the same instant. A caller cancelled while waiting leaves the slots it
/// already took counted, which errs on the slow side until they leave the window.
pub async fn acquire_all(budgets: &[Arc<Budget>], max_wait: Duration) -> Result<Vec<Slot>, Error> {
    acquire_all_observed(budgets, max_wait, &|_, _| {}).await
}

/// As [`acquire_all`], telling `on_wait` (budget name, wait) before each sleep.
pub async fn acquire_all_observed(
    budgets: &[Arc<Budget>],
    max_wait: Duration,
    on_wait: &(dyn Fn(&str, Duration) + Send + Sync),
) -> Result<Vec<Slot>, Error> {
    let mut slots: Vec<Slot> = Vec::with_capacity(budgets.len());
    for b in budgets {
        match b.acquire_observed(max_wait, on_wait).await {
            Ok(slot) => slots.push(slot),
            Err(e) => {
                for (b, slot) in budgets.iter().zip(slots) {
                    b.release(slot);
                }
                return Err(e);
            }
        }
    }
    if budgets.len() > 1 {
        for (b, slot) in budgets.iter().zip(slots.iter_mut()) {
            b.restamp(slot);
        }
    }
    Ok(slots)
}

#[cfg(test)]
mod tests;
