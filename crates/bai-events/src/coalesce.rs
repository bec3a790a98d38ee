//! Coalescing of triggers (`do_schedule` and friends): a burst of triggers becomes one run, about
//! `max_wait` after the burst began, or at once when `max_batch` triggers piled up — the
//! reference's `CoalescingOptions(max_wait=0.5, max_batch_size=32)` as "debounce, flush at 32".
//! Each trigger names its cause (the event that fired it); a burst reports the latest cause, as
//! the reference's coalesced handler runs with the latest event of the burst.

use std::time::Duration;

use tokio::sync::mpsc;

/// The sending side: cheap to clone, never blocks.
#[derive(Clone, Debug)]
pub struct Trigger {
    sender: mpsc::UnboundedSender<&'static str>,
}

impl Trigger {
    /// Asks for one run because of `cause`; false if the receiving side is gone.
    pub fn fire(&self, cause: &'static str) -> bool {
        self.sender.send(cause).is_ok()
    }
}

/// A burst of triggers: how many, and the cause of the latest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Burst {
    pub count: usize,
    pub cause: &'static str,
}

/// The receiving side: yields once per burst.
#[derive(Debug)]
pub struct Coalesced {
    receiver: mpsc::UnboundedReceiver<&'static str>,
    max_wait: Duration,
    max_batch: usize,
}

/// A trigger and the bursts it makes.
pub fn coalescing(max_wait: Duration, max_batch: usize) -> (Trigger, Coalesced) {
    let (sender, receiver) = mpsc::unbounded_channel();
    (
        Trigger { sender },
        Coalesced {
            receiver,
            max_wait,
            max_batch: max_batch.max(1),
        },
    )
}

impl Coalesced {
    /// Waits for the next burst to end; returns it, or `None` once every [`Trigger`] is dropped
    /// and nothing is left.
    pub async fn next(&mut self) -> Option<Burst> {
        let mut cause = self.receiver.recv().await?;
        let mut count = 1;
        let deadline = tokio::time::Instant::now() + self.max_wait;
        while count < self.max_batch {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => break,
                more = self.receiver.recv() => match more {
                    Some(latest) => {
                        count += 1;
                        cause = latest;
                    }
                    None => break,
                },
            }
        }
        Some(Burst { count, cause })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_becomes_one_run_after_the_wait() {
        let (trigger, mut bursts) = coalescing(Duration::from_millis(500), 32);
        let started = tokio::time::Instant::now();
        for cause in ["session_enqueued"; 9] {
            trigger.fire(cause);
        }
        trigger.fire("agent_started");
        assert_eq!(
            bursts.next().await,
            Some(Burst {
                count: 10,
                cause: "agent_started"
            })
        );
        assert_eq!(started.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_runs_at_once_and_the_rest_waits() {
        let (trigger, mut bursts) = coalescing(Duration::from_millis(500), 32);
        let started = tokio::time::Instant::now();
        for _ in 0..40 {
            trigger.fire("do_schedule");
        }
        let count = |burst: Option<Burst>| burst.map(|burst| burst.count);
        assert_eq!(count(bursts.next().await), Some(32));
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(count(bursts.next().await), Some(8));
        drop(trigger);
        assert_eq!(bursts.next().await, None);
    }
}
