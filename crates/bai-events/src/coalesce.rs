//! Coalescing of triggers (`do_schedule` and friends): at most one run every `max_wait`, and no
//! waiting when there is no need. A trigger after a quiet spell runs at once, with whatever else
//! is queued by then; triggers that come while a run is recent wait until `max_wait` after its
//! start and then run together, or at once when `max_batch` of them piled up. The reference's
//! `CoalescingOptions(max_wait=0.5, max_batch_size=32)` always waits `max_wait` after the first
//! trigger; the rate is the same, without its half-second delay for a lone event.
//! Each trigger names its cause (the event that fired it); a burst reports the latest cause, as
//! the reference's coalesced handler runs with the latest event of the burst.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::time::Instant;

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
    /// When the last burst was handed out.
    last_burst: Option<Instant>,
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
            last_burst: None,
        },
    )
}

impl Coalesced {
    /// Waits for the next burst; returns it, or `None` once every [`Trigger`] is dropped and
    /// nothing is left.
    pub async fn next(&mut self) -> Option<Burst> {
        let mut cause = self.receiver.recv().await?;
        let mut count = 1;
        let deadline = self
            .last_burst
            .map_or_else(Instant::now, |last| last + self.max_wait);
        while count < self.max_batch {
            let more = match self.receiver.try_recv() {
                Ok(latest) => Some(latest),
                Err(TryRecvError::Disconnected) => None,
                Err(TryRecvError::Empty) if Instant::now() >= deadline => None,
                Err(TryRecvError::Empty) => tokio::select! {
                    () = tokio::time::sleep_until(deadline) => None,
                    more = self.receiver.recv() => more,
                },
            };
            let Some(latest) = more else { break };
            count += 1;
            cause = latest;
        }
        self.last_burst = Some(Instant::now());
        Some(Burst { count, cause })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_trigger_after_a_quiet_spell_runs_at_once_and_later_ones_wait_for_the_rate() {
        let (trigger, mut bursts) = coalescing(Duration::from_millis(500), 32);
        let started = Instant::now();
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
        assert_eq!(started.elapsed(), Duration::ZERO);

        // Right after a run: the next ones wait until 500 ms after it, and run together.
        tokio::time::sleep(Duration::from_millis(100)).await;
        trigger.fire("session_enqueued");
        let firing = trigger.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            firing.fire("do_schedule");
        });
        assert_eq!(
            bursts.next().await,
            Some(Burst {
                count: 2,
                cause: "do_schedule"
            })
        );
        assert_eq!(started.elapsed(), Duration::from_millis(500));

        // After a quiet spell, at once again.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let quiet = Instant::now();
        trigger.fire("do_schedule");
        assert_eq!(bursts.next().await.map(|burst| burst.count), Some(1));
        assert_eq!(quiet.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_runs_at_once_and_the_rest_waits() {
        let (trigger, mut bursts) = coalescing(Duration::from_millis(500), 32);
        let started = Instant::now();
        for _ in 0..40 {
            trigger.fire("do_schedule");
        }
        let count = |burst: Option<Burst>| burst.map(|burst| burst.count);
        assert_eq!(count(bursts.next().await), Some(32));
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(count(bursts.next().await), Some(8));
        assert_eq!(started.elapsed(), Duration::from_millis(500));
        drop(trigger);
        assert_eq!(bursts.next().await, None);
    }
}
