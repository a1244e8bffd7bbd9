//! Precise sleeps for the waits that sit on a build's critical path: a plugin's
//! `clock.sleep` and the engine's wait for a plugin's `poll-after` hint.
//!
//! tokio's timer has a resolution of one millisecond and wakes a sleep up to about two
//! milliseconds late (the deadline is rounded up to the next tick, and the worker's park
//! timeout is rounded up again). A build's critical path holds a few such waits per node,
//! so in a 50–300 ms create-and-ready cycle that lateness is most of the engine's own
//! overhead. [`sleep`] instead registers the deadline with one process-wide timer thread
//! that waits on a condition variable for the time left plus [`COALESCE`] (0.2 ms), so a
//! sleep ends about a quarter of a millisecond after its deadline, never before it.
//!
//! Owns: that thread (started on first use, one per process, idle when nothing sleeps)
//! and its queue of deadlines. A sleep dropped before its deadline leaves its entry
//! queued until then, without a waker: use this for bounded waits (plugin sleeps are
//! bounded by the call's budget, poll hints by the host's cap), not for long timeouts.
//! If the thread cannot be started, sleeps fall back to tokio's timer.
//!
//! Must not: know about plugins or the engine; be used for timeouts, retries or backoff
//! (tokio's timer is right for those).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How long after the earliest deadline the thread wakes: every sleep due by then is
/// woken together. Deadlines a few hundred microseconds apart (a thousand creates ending
/// within a tenth of a second) then cost one wake-up of the thread, not one each.
pub const COALESCE: Duration = Duration::from_micros(200);

/// Sleep for `d`, woken within the kernel's timer slack of the deadline. A duration too
/// long to be an `Instant` sleeps on tokio's timer.
pub fn sleep(d: Duration) -> Sleep {
    let now = Instant::now();
    match now.checked_add(d) {
        Some(deadline) => sleep_until(deadline),
        None => Sleep {
            deadline: now,
            state: SleepState::Fallback(Box::pin(tokio::time::sleep(d))),
        },
    }
}

/// Sleep until `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        state: SleepState::Unregistered,
    }
}

/// The future of [`sleep`].
pub struct Sleep {
    deadline: Instant,
    state: SleepState,
}

enum SleepState {
    Unregistered,
    Queued(Arc<Slot>),
    /// The timer thread could not be started.
    Fallback(Pin<Box<tokio::time::Sleep>>),
}

impl std::fmt::Debug for Sleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// What the timer thread and one sleep share: whether the deadline has passed, and who
/// to wake then. One lock for both, so a wake-up cannot be lost between a poll's check
/// and its storing the waker.
#[derive(Default)]
struct Slot {
    inner: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    fired: bool,
    waker: Option<Waker>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self.deadline;
        match &mut self.state {
            SleepState::Unregistered => {
                if Instant::now() >= deadline {
                    return Poll::Ready(());
                }
                match timer() {
                    Some(t) => {
                        let slot = Arc::new(Slot {
                            inner: Mutex::new(SlotState {
                                fired: false,
                                waker: Some(cx.waker().clone()),
                            }),
                        });
                        t.add(deadline, slot.clone());
                        self.state = SleepState::Queued(slot);
                        Poll::Pending
                    }
                    None => {
                        let mut s = Box::pin(tokio::time::sleep_until(deadline.into()));
                        let r = s.as_mut().poll(cx);
                        self.state = SleepState::Fallback(s);
                        r
                    }
                }
            }
            SleepState::Queued(slot) => {
                let mut g = lock(&slot.inner);
                if g.fired {
                    return Poll::Ready(());
                }
                match &mut g.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    w => *w = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            SleepState::Fallback(s) => s.as_mut().poll(cx),
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        // The entry stays queued until its deadline; without a waker it only gets popped.
        if let SleepState::Queued(slot) = &self.state {
            lock(&slot.inner).waker = None;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Entry {
    deadline: Instant,
    /// Order of registration: equal deadlines fire in that order.
    seq: u64,
    slot: Arc<Slot>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
}

struct Timer {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Timer {
    fn add(&self, deadline: Instant, slot: Arc<Slot>) {
        let mut q = lock(&self.queue);
        let earliest = q.heap.peek().is_none_or(|Reverse(e)| deadline < e.deadline);
        q.seq += 1;
        let seq = q.seq;
        q.heap.push(Reverse(Entry {
            deadline,
            seq,
            slot,
        }));
        drop(q);
        // The thread sleeps until the earliest deadline; only a new earliest one needs it
        // to wake and wait again.
        if earliest {
            self.changed.notify_one();
        }
    }

    fn run(&self) {
        let mut due: Vec<Arc<Slot>> = Vec::new();
        let mut q = lock(&self.queue);
        loop {
            let now = Instant::now();
            while let Some(Reverse(e)) = q.heap.peek() {
                if e.deadline > now {
                    break;
                }
                if let Some(Reverse(e)) = q.heap.pop() {
                    due.push(e.slot);
                }
            }
            if !due.is_empty() {
                // Wake outside the queue's lock: a woken task may register its next sleep
                // at once.
                drop(q);
                for slot in due.drain(..) {
                    let waker = {
                        let mut g = lock(&slot.inner);
                        g.fired = true;
                        g.waker.take()
                    };
                    if let Some(w) = waker {
                        w.wake();
                    }
                }
                q = lock(&self.queue);
                continue;
            }
            q = match q.heap.peek() {
                Some(Reverse(e)) => {
                    let left = (e.deadline + COALESCE).saturating_duration_since(now);
                    self.changed
                        .wait_timeout(q, left)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0)
                }
                None => self.changed.wait(q).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }
}

/// The process's timer, its thread started on first use; `None` if it cannot be started.
fn timer() -> Option<&'static Timer> {
    static TIMER: OnceLock<Option<&'static Timer>> = OnceLock::new();
    *TIMER.get_or_init(|| {
        let t: &'static Timer = Box::leak(Box::new(Timer {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("occopus-timer".into())
            .spawn(move || t.run())
            .ok()
            .map(|_| t)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .expect("runtime")
    }

    #[test]
    fn sleeps_at_least_the_duration() {
        rt().block_on(async {
            for ms in [0u64, 1, 3, 7] {
                let t = Instant::now();
                sleep(Duration::from_millis(ms)).await;
                assert!(t.elapsed() >= Duration::from_millis(ms), "{ms} ms");
            }
        });
    }

    #[test]
    fn concurrent_sleeps_all_wake_after_their_deadlines() {
        // Registered in reverse order of their deadlines, so each new one is the earliest
        // and re-arms the thread: every one must still wake, none before its deadline.
        rt().block_on(async {
            let start = Instant::now();
            let mut tasks = Vec::new();
            for i in (0..50u64).rev() {
                let d = Duration::from_micros(3_000 + i * 100);
                tasks.push(tokio::spawn(async move {
                    sleep_until(start + d).await;
                    (d, start.elapsed())
                }));
            }
            for t in tasks {
                let (d, woke) = t.await.expect("task");
                assert!(woke >= d, "woke at {woke:?}, before its deadline {d:?}");
            }
        });
    }

    #[test]
    fn an_endless_sleep_does_not_overflow() {
        rt().block_on(async {
            let never = tokio::time::timeout(Duration::from_millis(2), sleep(Duration::MAX));
            assert!(never.await.is_err());
        });
    }

    #[test]
    fn a_dropped_sleep_does_not_keep_others_from_waking() {
        rt().block_on(async {
            let dropped = sleep(Duration::from_millis(2));
            let long =
                tokio::time::timeout(Duration::from_millis(1), sleep(Duration::from_secs(60)));
            assert!(long.await.is_err(), "a 60 s sleep ended within 1 ms");
            drop(dropped);
            let t = Instant::now();
            sleep(Duration::from_millis(4)).await;
            assert!(t.elapsed() >= Duration::from_millis(4));
        });
    }
}
