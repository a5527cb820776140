//! Proactive rate budgets: requests wait for room before they leave.
//!
//! A [`Budget`] admits at most `limit` requests in any rolling `window` (a sliding log of
//! send times, so it never lets a burst through at a window edge). It learns from the server:
//!
//! - **Limit and window.** The limit (and window, when the server names one) from a response
//!   replace the starting guess. A quota the user configured is kept as a *ceiling* and is
//!   enforced beside the server's, so the server can lower the pace but never raise it above
//!   what the user asked for.
//! - **Remaining, fixed window.** When the server says `remaining=r, reset=t` (Close), its
//!   window ends at the reset, so at most `r` more requests leave before then, less the ones
//!   we sent after the answered request: a server that counts a request when it arrives
//!   (Close does) has not counted those yet. If it had, the allowance is short only until
//!   their own answers come back, each replacing it with a newer count. A whole-second
//!   `reset` with nothing remaining is taken as at least one second: a server that rounds
//!   down says `reset=0` during the last second of a window.
//! - **Remaining, rolling window.** A server that names no reset (HubSpot's
//!   `X-HubSpot-RateLimit-Max/-Remaining/-Interval-Milliseconds`, policy
//!   `TEN_SECONDLY_ROLLING`) counts a rolling window: each request leaves it one window after
//!   it arrived, not at a common end. Dating such a window's end from the answer's arrival
//!   would hold back every slot by the round trip and by the burst's spread, later with each
//!   answer. So the send log, which knows exactly when each of our requests went and thus when
//!   it leaves, stays the model, and the answer only tells about requests that are *not*
//!   ours: the server counted `limit - r` at some instant between our send and its answer.
//!   Which of our requests then in flight it had counted is unknown (the ones that reached it
//!   before it counted, yes; the later ones, not yet), so all of ours it *can* have counted
//!   (sent from one window before the answered request up to the answer) are taken off that
//!   count. What is left is at least what others spent (another process on the same key);
//!   those hold room until one window after the answer. Nothing of ours is counted twice, and
//!   a request of ours the server had not counted yet is still in the log. An answer to an
//!   earlier request than the one that gave the current view does not replace it. The
//!   answered request's own place in the log is dated at its answer, the latest it can have
//!   reached the server: the server frees it one window after it arrived, and a request sent
//!   exactly one window after ours may get there faster than ours did. That dates each
//!   request once, so nothing drifts: at most one round trip per window is left unused.
//! - **Pauses.** After a 429 the whole budget waits until the reset.
//!
//! A request charged to several budgets is admitted by all of them **in one step**
//! ([`acquire_all`]): it waits until every budget has room at the same instant, and nothing
//! is counted anywhere until then. So a cancelled wait costs nothing, and a request never
//! leaves uncounted in a budget it waited on. Waiting is capped by one deadline for the whole
//! request: the call fails at once with [`ErrorKind::RateLimited`] (carrying the wait) when
//! the budgets cannot admit the request within the caller's maximum wait, and also when its
//! turn in a budget's queue does not come within that time. A day-long pause therefore makes
//! each caller of that budget fail fast instead of freezing; budgets of other endpoint groups
//! are untouched. Waiters of a budget are admitted in arrival order (a fair queue per
//! budget; a request waits in the queue of the one budget it waits for, so requests that do
//! not need that budget pass by) and wake with a little jitter.
//!
//! A [`BudgetKind::Daily`] budget is a counter with a fixed reset (one day after its first
//! request, or whenever the server says): it never waits; once used up, requests fail with
//! [`ErrorKind::QuotaExhausted`]. When the server reports the quota's `remaining`/`reset`,
//! both are adopted, in either direction, so a quota the server renewed is usable at once.
//!
//! [`RateBudgets`] keeps the budgets of one credential by name;
//! [`RateBudgets::shared_configured`] hands every client built with the same credential the
//! same budgets, so all tasks using one key draw from one allowance. When a later client of
//! the key configures a lower quota, the shared ceiling is lowered to it (never raised).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, ErrorKind};

/// The longest wait any budget records (a year and a day): hints beyond it are treated as
/// this long, so a absurd reset cannot overflow a clock.
pub const LONGEST_WAIT: Duration = Duration::from_secs(366 * 86_400);

const DAY: Duration = Duration::from_secs(86_400);

/// The shortest window a budget counts in, so a zero window cannot switch limiting off.
const SHORTEST_WINDOW: Duration = Duration::from_millis(1);

/// Most send times a budget remembers. A limit above it is not enforced by the local count
/// (the server's `remaining` still is); this keeps memory bounded whatever a server or the
/// user says the limit is.
const MAX_TRACKED: usize = 100_000;

/// How long a daily budget remembers send times, only to tell which requests were in flight
/// when an answer came.
const IN_FLIGHT_SPAN: Duration = Duration::from_secs(600);

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

/// A rate limit: `limit` requests per `window`. The limit is at least 1; a budget counts a
/// zero window as one millisecond (a transport refuses it as a configuration error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    limit: u32,
    window: Duration,
}

impl Quota {
    /// `limit` requests per `window`; a limit of 0 is taken as 1 and a window is capped at
    /// [`LONGEST_WAIT`].
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window: window.min(LONGEST_WAIT),
        }
    }

    /// Requests allowed in one window.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The window a budget counts in: never zero.
    fn counted_window(&self) -> Duration {
        self.window.max(SHORTEST_WINDOW)
    }

    /// The slower of two quotas (fewer requests per unit of time).
    pub fn slower(self, other: Quota) -> Quota {
        // Compare rates without division: a.limit / a.window vs b.limit / b.window.
        let ra = u128::from(self.limit) * other.counted_window().as_nanos();
        let rb = u128::from(other.limit) * self.counted_window().as_nanos();
        if rb < ra { other } else { self }
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
    /// At most `limit` requests per day, counted until a fixed reset; once used up, requests
    /// fail with [`ErrorKind::QuotaExhausted`] instead of waiting.
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

/// A request admitted by its budgets: when they counted it. Pass it to
/// [`Budget::observe_after`] with the answer's limit headers.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    at: Instant,
}

impl Slot {
    /// The instant every budget counted the request.
    pub fn at(&self) -> Instant {
        self.at
    }
}

/// What a server that names a reset said is left until then (a fixed window).
#[derive(Debug, Clone, Copy)]
struct Allowance {
    left: u32,
    until: Instant,
}

/// Requests in a rolling window that are not ours (another process spending the same key),
/// as the newest answer showed them.
#[derive(Debug, Clone, Copy)]
struct Others {
    /// At least this many of the server's count were not ours.
    count: u32,
    /// They hold room until then at the latest: one window after the answer arrived.
    until: Instant,
    /// When the answered request was sent; an answer to an earlier request is an older view
    /// and does not replace this one.
    basis: Instant,
}

/// A daily budget's count since its last reset.
#[derive(Debug, Default, Clone, Copy)]
struct Day {
    used: u32,
    /// When the count starts over; set by the first request or by the server.
    ends: Option<Instant>,
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
    /// Send times: the rolling log (rolling budgets) or recent sends (daily budgets, for
    /// in-flight counting only).
    sent: VecDeque<Instant>,
    allowance: Option<Allowance>,
    /// Room other clients of the key hold in a rolling window.
    others: Option<Others>,
    day: Day,
    paused_until: Option<Instant>,
}

enum Check {
    Admit,
    Wait(Duration),
    Exhausted(Duration),
}

impl State {
    fn quotas(&self) -> impl Iterator<Item = Quota> + '_ {
        self.ceiling
            .into_iter()
            .chain(Some(self.server.unwrap_or(self.guess)))
    }

    /// The quota in force: the slowest of the ceiling and the server's (or the guess).
    fn quota(&self) -> Quota {
        self.quotas()
            .reduce(Quota::slower)
            .unwrap_or(self.server.unwrap_or(self.guess))
    }

    /// A daily budget's limit: the smallest any quota allows.
    fn daily_limit(&self) -> u32 {
        self.quotas().map(|q| q.limit).min().unwrap_or(1)
    }

    /// How long a daily count runs before it starts over.
    fn period(&self) -> Duration {
        self.server.unwrap_or(self.guess).counted_window()
    }

    fn keep(&self) -> Duration {
        match self.kind {
            // Two windows: an answer's count may take in requests sent up to one window
            // before the answered one, which itself may have left a while ago.
            BudgetKind::Rolling => self
                .quotas()
                .map(|q| q.counted_window())
                .max()
                .unwrap_or_default()
                .saturating_mul(2),
            BudgetKind::Daily => IN_FLIGHT_SPAN,
        }
    }

    fn tracked(&self) -> usize {
        match self.kind {
            BudgetKind::Rolling => self
                .quotas()
                .map(|q| usize::try_from(q.limit).unwrap_or(usize::MAX))
                .max()
                .unwrap_or(1)
                // Two windows' worth (see `keep`).
                .saturating_mul(2)
                .clamp(1_024, MAX_TRACKED),
            BudgetKind::Daily => MAX_TRACKED,
        }
    }

    /// Whether a request fits now; counts nothing.
    fn check(&mut self, now: Instant) -> Check {
        let keep = self.keep();
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
        if self.kind == BudgetKind::Daily {
            if self.day.ends.is_some_and(|end| end <= now) {
                self.day = Day::default();
            }
            if self.day.used >= self.daily_limit() {
                let reset = self
                    .day
                    .ends
                    .map_or(self.period(), |end| end.saturating_duration_since(now));
                return Check::Exhausted(reset);
            }
            return Check::Admit;
        }
        if let Some(a) = self.allowance {
            if a.until <= now {
                self.allowance = None;
            } else if a.left == 0 {
                return Check::Wait(a.until - now);
            }
        }
        if self.others.is_some_and(|o| o.until <= now) {
            self.others = None;
        }
        // Other clients of the key spend the server's quota, not the user's ceiling.
        let server = self.server.unwrap_or(self.guess);
        let others = self.others.map_or((0, now), |o| (o.count, o.until));
        let mut wait = Duration::ZERO;
        for (q, (reserved, until)) in self
            .ceiling
            .map(|c| (c, (0, now)))
            .into_iter()
            .chain(Some((server, others)))
        {
            let free_at = room_at(&self.sent, q, reserved, until, now);
            wait = wait.max(free_at.saturating_duration_since(now));
        }
        if wait.is_zero() {
            Check::Admit
        } else {
            Check::Wait(wait)
        }
    }

    /// Counts a request as sent at `now`; only after [`Self::check`] admitted it.
    fn admit(&mut self, now: Instant) {
        self.sent.push_back(now);
        let tracked = self.tracked();
        while self.sent.len() > tracked {
            self.sent.pop_front();
        }
        match self.kind {
            BudgetKind::Rolling => {
                if let Some(a) = &mut self.allowance {
                    a.left = a.left.saturating_sub(1);
                }
            }
            BudgetKind::Daily => {
                self.day.used = self.day.used.saturating_add(1);
                if self.day.ends.is_none() {
                    self.day.ends = now.checked_add(self.period());
                }
            }
        }
    }

    /// Learns from a rolling window's answer: the server counted `limit - remaining`
    /// requests at some instant between sending the request (`from`) and the answer (`now`).
    ///
    /// Our own requests are in the log, which is exact, so the answer is only needed for
    /// what the log cannot know: requests of others. Which of our requests in flight the
    /// server had counted is unknown (those that reached it before it counted, yes; the
    /// others, not yet), so every one of ours it *can* have counted is taken off: sent
    /// after `from - window` (it counts what reached it in the window before its count) and
    /// before `now`. What is left is a lower bound of the others' requests, so none of ours
    /// is counted twice, and those the server had not counted yet stay in the log.
    ///
    /// The answered request's own place is dated at the answer: it reached the server at
    /// the latest then, and the server frees its place one window after its arrival, so
    /// ours must not be freed one window after sending when the way there took longer than
    /// for the request that would take its place.
    fn learn_rolling(&mut self, remaining: u32, sent_at: Option<Instant>, now: Instant) {
        let from = sent_at.unwrap_or(now);
        if let Some(at) = sent_at {
            let i = self.sent.partition_point(|t| *t < at);
            if self.sent.get(i) == Some(&at) {
                // `now` is no earlier than any send time, so the log stays in order.
                self.sent.remove(i);
                self.sent.push_back(now);
            }
        }
        if self.others.is_some_and(|o| o.basis > from) {
            return;
        }
        let q = self.server.unwrap_or(self.guess);
        let window = q.counted_window();
        let counted = q.limit.saturating_sub(remaining);
        let start = self
            .sent
            .partition_point(|t| t.checked_add(window).is_none_or(|end| end <= from));
        let ours = u32::try_from(self.sent.len() - start).unwrap_or(u32::MAX);
        self.others = Some(Others {
            count: counted.saturating_sub(ours),
            // The others' requests were sent before the answer, so none is in the window
            // any more one window after it.
            until: now.checked_add(window).unwrap_or(now + LONGEST_WAIT),
            basis: from,
        });
    }

    fn pause(&mut self, now: Instant, wait: Duration) {
        let until = now + wait.min(LONGEST_WAIT);
        if self.paused_until.is_none_or(|p| p < until) {
            self.paused_until = Some(until);
        }
    }
}

/// When the log `sent` (oldest first, none after `now`) leaves room for one more request
/// under `quota`, while `reserved` places are held by others until `until`.
fn room_at(
    sent: &VecDeque<Instant>,
    quota: Quota,
    reserved: u32,
    until: Instant,
    now: Instant,
) -> Instant {
    let window = quota.counted_window();
    let far = now + LONGEST_WAIT;
    let start = sent.partition_point(|t| t.checked_add(window).is_none_or(|end| end <= now));
    let in_window = sent.len() - start;
    // When at most `room - 1` of ours are left in the window: when the `room`-th newest
    // leaves it.
    let ours_below = |room: usize| -> Option<Instant> {
        if room == 0 {
            None
        } else if in_window < room {
            Some(now)
        } else {
            Some(sent[sent.len() - room].checked_add(window).unwrap_or(far))
        }
    };
    let limit = usize::try_from(quota.limit.max(1)).unwrap_or(usize::MAX);
    let alone = ours_below(limit).unwrap_or(now);
    let reserved = usize::try_from(reserved).unwrap_or(usize::MAX);
    if reserved == 0 || until <= now {
        return alone;
    }
    // Either ours make room beside the others' before they leave, or we wait for them to
    // leave too; whichever comes first.
    let once_others_left = alone.max(until);
    ours_below(limit.saturating_sub(reserved)).map_or(once_others_left, |t| t.min(once_others_left))
}

/// The allowance of one endpoint group (or other budget) of one credential.
#[derive(Debug)]
pub struct Budget {
    name: String,
    /// Whether the quota is the transport's default (so a tighter configured one applies).
    from_default: bool,
    state: Mutex<State>,
    /// Waiters queue here, so they are admitted in arrival order.
    queue: tokio::sync::Mutex<()>,
}

impl Budget {
    /// A rolling budget that starts at `quota` and adopts what the server announces.
    #[cfg(test)]
    pub(crate) fn new(quota: Quota) -> Self {
        Self::build("budget", BudgetKind::Rolling, quota, None, false)
    }

    /// A rolling budget that never goes faster than `ceiling`, the user's configured quota.
    #[cfg(test)]
    pub(crate) fn with_ceiling(ceiling: Quota) -> Self {
        Self::build("budget", BudgetKind::Rolling, ceiling, Some(ceiling), false)
    }

    /// A budget for `spec`; `default` fills in a missing quota, and `ceiling` (the user's
    /// configured quota, if any) caps a budget that uses the default.
    pub fn from_spec(spec: &BudgetSpec, default: Quota, ceiling: Option<Quota>) -> Self {
        let quota = spec.quota.unwrap_or(default);
        let from_default = spec.quota.is_none();
        let ceiling = ceiling.filter(|_| from_default);
        Self::build(&spec.name, spec.kind, quota, ceiling, from_default)
    }

    fn build(
        name: &str,
        kind: BudgetKind,
        guess: Quota,
        ceiling: Option<Quota>,
        from_default: bool,
    ) -> Self {
        Self {
            name: name.to_string(),
            from_default,
            state: Mutex::new(State {
                kind,
                guess,
                ceiling,
                server: None,
                sent: VecDeque::new(),
                allowance: None,
                others: None,
                day: Day::default(),
                paused_until: None,
            }),
            queue: tokio::sync::Mutex::new(()),
        }
    }

    /// The budget's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the log inconsistent, so keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The send times this budget remembers, oldest first.
    #[cfg(test)]
    pub(crate) fn sent_log(&self) -> Vec<Instant> {
        self.lock().sent.iter().copied().collect()
    }

    /// Waits until one more request fits, however long that takes, then counts it as sent.
    /// Returns at once, counting nothing, if a daily budget is used up.
    #[cfg(test)]
    pub(crate) async fn acquire(&self) {
        let _ = self.acquire_within(LONGEST_WAIT).await;
    }

    /// Waits until one more request fits and counts it as sent (see [`acquire_all`]).
    #[cfg(test)]
    pub(crate) async fn acquire_within(&self, max_wait: Duration) -> Result<Slot, Error> {
        admit_all(&[self], max_wait, &|_, _| {}).await
    }

    /// Learns from the limit headers of a response, as if nothing else were in flight.
    #[cfg(test)]
    pub(crate) fn observe(&self, info: RateInfo) {
        self.learn(info, None);
    }

    /// Learns from the limit headers of the response to the request admitted as `slot`;
    /// requests admitted after it were in flight when the server counted (see the module
    /// docs for how they are accounted in fixed and rolling windows).
    pub fn observe_after(&self, info: RateInfo, slot: &Slot) {
        self.learn(info, Some(slot.at));
    }

    fn learn(&self, info: RateInfo, sent_at: Option<Instant>) {
        let mut s = self.lock();
        let now = Instant::now();
        let current = s.server.unwrap_or(s.guess);
        let limit = info.limit.filter(|l| *l > 0);
        let window = info.window.filter(|w| !w.is_zero());
        if limit.is_some() || window.is_some() {
            s.server = Some(Quota::new(
                limit.unwrap_or(current.limit),
                window.unwrap_or(current.window),
            ));
        }
        let Some(remaining) = info.remaining else {
            return;
        };
        if s.kind == BudgetKind::Rolling && info.reset.is_none() {
            // No reset named: the window rolls (HubSpot's TEN_SECONDLY_ROLLING), each request
            // leaving it on its own one window after it was sent.
            s.learn_rolling(remaining, sent_at, now);
            return;
        }
        let mut reset = info.reset.unwrap_or(s.period()).min(LONGEST_WAIT);
        // A whole number of seconds may be rounded down: `reset=0` can mean "in 0.9 s".
        if remaining == 0 && reset.subsec_nanos() == 0 {
            reset = reset.max(Duration::from_secs(1));
        }
        let later = match sent_at {
            Some(at) => s.sent.len() - s.sent.partition_point(|t| *t <= at),
            None => 0,
        };
        let left = remaining.saturating_sub(u32::try_from(later).unwrap_or(u32::MAX));
        match s.kind {
            BudgetKind::Rolling => {
                s.allowance = Some(Allowance {
                    left,
                    until: now + reset,
                });
            }
            BudgetKind::Daily => {
                // The server's count wins in both directions: it may have renewed the quota.
                let limit = s.daily_limit();
                s.day.used = limit.saturating_sub(left);
                if info.reset.is_some() || s.day.ends.is_none() {
                    s.day.ends = Some(now + reset);
                }
            }
        }
    }

    /// Stops every request of this budget for `wait` (after a 429); waits beyond
    /// [`LONGEST_WAIT`] are cut to it.
    pub fn pause(&self, wait: Duration) {
        self.lock().pause(Instant::now(), wait);
    }

    /// Records that the server refused a request because this budget is used up, for `wait`
    /// if it said how long (else until a daily budget's reset, or one window): later
    /// requests fail or wait locally instead of being sent to be refused.
    pub fn exhaust(&self, wait: Option<Duration>) {
        let mut s = self.lock();
        let now = Instant::now();
        match s.kind {
            BudgetKind::Rolling => {
                let wait = wait.unwrap_or(s.quota().counted_window()).min(LONGEST_WAIT);
                s.allowance = Some(Allowance {
                    left: 0,
                    until: now + wait,
                });
            }
            BudgetKind::Daily => {
                s.day.used = s.daily_limit();
                match wait {
                    Some(w) => s.day.ends = Some(now + w.min(LONGEST_WAIT)),
                    None => {
                        let period = s.period();
                        s.day.ends.get_or_insert(now + period);
                    }
                }
            }
        }
    }

    /// The quota in force now: the tightest of the user's ceiling and what the server
    /// announced (or the starting guess).
    pub fn quota(&self) -> Quota {
        self.lock().quota()
    }

    /// Lowers the user's ceiling to `ceiling` if that is slower.
    fn tighten(&self, ceiling: Quota) {
        let mut s = self.lock();
        s.ceiling = Some(s.ceiling.map_or(ceiling, |c| c.slower(ceiling)));
    }

    fn exhausted(&self, reset: Duration) -> Error {
        Error::new(
            ErrorKind::QuotaExhausted,
            format!(
                "the daily quota `{}` is used up; it resets in {:.0} min",
                self.name,
                reset.as_secs_f64() / 60.0
            ),
        )
        .with_retry_after(reset)
    }
}

/// A little random delay added to a wake-up, so waiters of many processes do not all hit the
/// server at the reset instant: up to 5% of the wait, at most 50 ms.
fn jitter(wait: Duration) -> Duration {
    let cap = (wait / 20).min(Duration::from_millis(50));
    let micros = u64::try_from(cap.as_micros()).unwrap_or(0);
    Duration::from_micros(fastrand::u64(0..=micros))
}

/// The defaults a credential's budgets start from.
#[derive(Debug, Clone, Copy)]
struct Defaults {
    quota: Quota,
    /// The slowest quota any client of the credential configured.
    ceiling: Option<Quota>,
}

/// The budgets of one credential, by name.
#[derive(Debug)]
pub struct RateBudgets {
    defaults: Mutex<Defaults>,
    groups: Mutex<HashMap<String, Arc<Budget>>>,
}

impl RateBudgets {
    /// Budgets that start every group at `default`, a guess the server may correct.
    #[cfg(test)]
    pub(crate) fn new(default: Quota) -> Self {
        Self::configured(default, false)
    }

    /// Budgets that start every group at `default`; when `is_ceiling`, the user configured it
    /// and no server answer raises the pace above it.
    pub fn configured(default: Quota, is_ceiling: bool) -> Self {
        Self {
            defaults: Mutex::new(Defaults {
                quota: default,
                ceiling: is_ceiling.then_some(default),
            }),
            groups: Mutex::new(HashMap::new()),
        }
    }

    /// As [`Self::configured`], shared with every other client built with the same
    /// credential (whose fingerprint is `key`) while any of them lives. The first client
    /// decides the starting guess; a client that configures a slower quota (`is_ceiling`)
    /// lowers the ceiling of every budget that uses the default, since the key's real
    /// allowance is shared and the user asked for no more than that.
    pub fn shared_configured(key: &str, default: Quota, is_ceiling: bool) -> Arc<Self> {
        static REGISTRY: OnceLock<Mutex<HashMap<String, Weak<RateBudgets>>>> = OnceLock::new();
        let mut reg = REGISTRY
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        reg.retain(|_, w| w.strong_count() > 0);
        if let Some(existing) = reg.get(key).and_then(Weak::upgrade) {
            if is_ceiling {
                existing.tighten(default);
            }
            return existing;
        }
        let fresh = Arc::new(Self::configured(default, is_ceiling));
        reg.insert(key.to_string(), Arc::downgrade(&fresh));
        fresh
    }

    /// Lowers the configured ceiling of the default quota, and of every budget built from
    /// it, to `ceiling` where that is slower; never raises it.
    pub fn tighten(&self, ceiling: Quota) {
        let mut d = self.defaults.lock().unwrap_or_else(|p| p.into_inner());
        d.ceiling = Some(d.ceiling.map_or(ceiling, |c| c.slower(ceiling)));
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        for b in groups.values().filter(|b| b.from_default) {
            b.tighten(ceiling);
        }
    }

    /// The budget of one endpoint group, with the default quota.
    #[cfg(test)]
    pub(crate) fn group(&self, name: &str) -> Arc<Budget> {
        self.budget(&BudgetSpec::rolling(name))
    }

    /// The budget `spec` names, created from it on first use.
    pub fn budget(&self, spec: &BudgetSpec) -> Arc<Budget> {
        // Lock order: defaults, then groups (as in `tighten`).
        let d = *self.defaults.lock().unwrap_or_else(|p| p.into_inner());
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups
            .entry(spec.name.clone())
            .or_insert_with(|| Arc::new(Budget::from_spec(spec, d.quota, d.ceiling)))
            .clone()
    }
}

/// Admits one request in every one of `budgets` at the same instant, waiting until all have
/// room; nothing is counted in any budget until then, so a refused or cancelled call costs
/// nothing. Fails with [`ErrorKind::RateLimited`] when that takes longer than `max_wait` in
/// all (queueing included), and with [`ErrorKind::QuotaExhausted`] when a daily budget is
/// used up.
pub async fn acquire_all(budgets: &[Arc<Budget>], max_wait: Duration) -> Result<Slot, Error> {
    acquire_all_observed(budgets, max_wait, &|_, _| {}).await
}

/// As [`acquire_all`], telling `on_wait` (budget name, wait) before each sleep.
pub async fn acquire_all_observed(
    budgets: &[Arc<Budget>],
    max_wait: Duration,
    on_wait: &(dyn Fn(&str, Duration) + Send + Sync),
) -> Result<Slot, Error> {
    let list: Vec<&Budget> = budgets.iter().map(|b| b.as_ref()).collect();
    admit_all(&list, max_wait, on_wait).await
}

async fn admit_all(
    budgets: &[&Budget],
    max_wait: Duration,
    on_wait: &(dyn Fn(&str, Duration) + Send + Sync),
) -> Result<Slot, Error> {
    // One fixed order (by address) for the state locks, so two requests that share budgets
    // can never hold them crosswise.
    let mut order: Vec<&Budget> = budgets.to_vec();
    order.sort_by_key(|b| std::ptr::from_ref::<Budget>(b) as usize);
    order.dedup_by_key(|b| std::ptr::from_ref::<Budget>(b) as usize);
    let start = Instant::now();
    let deadline = start.checked_add(max_wait);
    // A waiter holds the queue of the one budget it sleeps on, and only that one: requests
    // that do not need that budget pass by, and no two waiters can hold queues crosswise.
    // A request finding another's queue held waits its turn there, so nobody jumps the
    // queue of a budget that others are waiting for.
    let mut held: Option<(usize, tokio::sync::MutexGuard<'_, ()>)> = None;
    loop {
        let now = Instant::now();
        let mut turns = Vec::with_capacity(order.len());
        let mut busy = None;
        for (i, b) in order.iter().enumerate() {
            if held.as_ref().is_some_and(|(h, _)| *h == i) {
                continue;
            }
            match b.queue.try_lock() {
                Ok(turn) => turns.push(turn),
                Err(_) => {
                    busy = Some(i);
                    break;
                }
            }
        }
        let blocker = match busy {
            Some(i) => {
                drop(turns);
                // Fail at once when the budgets alone already say it takes too long.
                round(&order, start, now, max_wait, false)?;
                i
            }
            None => {
                let outcome = round(&order, start, now, max_wait, true);
                drop(turns);
                match outcome? {
                    None => return Ok(Slot { at: now }),
                    Some((i, wait)) => {
                        if held.as_ref().is_some_and(|(h, _)| *h == i) {
                            on_wait(&order[i].name, wait);
                            tokio::time::sleep(wait + jitter(wait)).await;
                            continue;
                        }
                        i
                    }
                }
            }
        };
        // Queue up in the blocking budget, holding nothing else meanwhile.
        drop(held.take());
        let queue = &order[blocker].queue;
        let turn = match deadline {
            Some(d) => tokio::time::timeout_at(d, queue.lock())
                .await
                .map_err(|_| queue_timeout(order[blocker], max_wait))?,
            None => queue.lock().await,
        };
        held = Some((blocker, turn));
    }
}

fn queue_timeout(b: &Budget, max_wait: Duration) -> Error {
    Error::new(
        ErrorKind::RateLimited,
        format!(
            "the request did not get its turn in the rate budget `{}` within the retry policy's maximum wait of {} s; not sent",
            b.name,
            max_wait.as_secs()
        ),
    )
    .with_retry_after(max_wait)
}

/// Checks every budget at `now` with all their states locked. When all admit and `admit` is
/// set, counts the request in every one and returns `None`; otherwise returns the budget
/// that needs the longest wait and that wait, or an error when the wait goes past the
/// deadline or a daily budget is used up.
fn round(
    order: &[&Budget],
    start: Instant,
    now: Instant,
    max_wait: Duration,
    admit: bool,
) -> Result<Option<(usize, Duration)>, Error> {
    let mut states: Vec<MutexGuard<'_, State>> = order.iter().map(|b| b.lock()).collect();
    let mut longest: Option<(usize, Duration)> = None;
    for (i, (b, s)) in order.iter().zip(states.iter_mut()).enumerate() {
        match s.check(now) {
            Check::Admit => {}
            Check::Exhausted(reset) => return Err(b.exhausted(reset)),
            Check::Wait(w) => {
                if longest.is_none_or(|(_, l)| w > l) {
                    longest = Some((i, w));
                }
            }
        }
    }
    match longest {
        None => {
            if admit {
                for s in &mut states {
                    s.admit(now);
                }
            }
            Ok(None)
        }
        Some((_, w)) => {
            let total = now.saturating_duration_since(start).saturating_add(w);
            if total > max_wait {
                Err(Error::rate_limited_for(total, max_wait).with_retry_after(w))
            } else {
                Ok(longest)
            }
        }
    }
}

#[cfg(test)]
mod tests;
