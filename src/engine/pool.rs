//! The memory pool of a run under `--memory-limit`: DataFusion's fair spill pool, except that
//! what can spill leaves a part of the pool to what cannot.
//!
//! DataFusion's `FairSpillPool` gives each consumer that can spill (sorts, aggregations) an
//! equal share of whatever the consumers that cannot spill hold no more of; those get memory
//! first come, first served. Sorts fill their shares before they spill, so once they have, the
//! pool is full: a sort's merge that then needs its first 300 KB to read back its spilled runs,
//! a sort-merge join's buffer or a small join side has nothing left, and the query fails even
//! though every sort could have spilled a little earlier. At 10M customers under 3 GiB the
//! audiences step failed so, with the pool full of sorts.
//!
//! [`FairPool`] keeps [`HEADROOM_PARTS`]ths of the pool for consumers that cannot spill:
//! spilling consumers share what is left beside the larger of that headroom and what the
//! others hold, so the others grow into the headroom without waiting for a sort to spill.

use std::fmt;
use std::sync::Mutex;

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, human_readable_size,
};

/// The pool keeps one part in this many for consumers that cannot spill.
const HEADROOM_PARTS: usize = 4;

/// A fair spill pool that keeps headroom for consumers that cannot spill (see the module).
#[derive(Debug)]
pub(crate) struct FairPool {
    size: usize,
    headroom: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Registered consumers that can spill.
    spillers: usize,
    /// Bytes held by consumers that can spill.
    spillable: usize,
    /// Bytes held by consumers that cannot.
    unspillable: usize,
}

impl FairPool {
    pub(crate) fn new(size: usize) -> Self {
        Self {
            size,
            headroom: size / HEADROOM_PARTS,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What one spilling consumer may hold: its share of the pool beside the headroom, or
    /// beside what the consumers that cannot spill hold when that is more.
    fn share(&self, state: &State) -> usize {
        let spillable = self
            .size
            .saturating_sub(state.unspillable.max(self.headroom));
        spillable / state.spillers.max(1)
    }

    fn refuse(
        &self,
        reservation: &MemoryReservation,
        additional: usize,
        available: usize,
    ) -> DataFusionError {
        DataFusionError::ResourcesExhausted(format!(
            "Failed to allocate additional {} for {} with {} already allocated for this reservation - {} remain available for the total memory pool: {self}",
            human_readable_size(additional),
            reservation.consumer().name(),
            human_readable_size(reservation.size()),
            human_readable_size(available),
        ))
    }
}

impl MemoryPool for FairPool {
    fn name(&self) -> &str {
        "fair"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        if consumer.can_spill() {
            self.state().spillers += 1;
        }
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        if consumer.can_spill() {
            let mut state = self.state();
            state.spillers = state.spillers.saturating_sub(1);
        }
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        let mut state = self.state();
        match reservation.consumer().can_spill() {
            true => state.spillable += additional,
            false => state.unspillable += additional,
        }
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        let mut state = self.state();
        match reservation.consumer().can_spill() {
            true => state.spillable = state.spillable.saturating_sub(shrink),
            false => state.unspillable = state.unspillable.saturating_sub(shrink),
        }
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let mut state = self.state();
        let free = self
            .size
            .saturating_sub(state.unspillable + state.spillable);
        if reservation.consumer().can_spill() {
            let share = self.share(&state).saturating_sub(reservation.size());
            let available = share.min(free);
            if additional > available {
                return Err(self.refuse(reservation, additional, available));
            }
            state.spillable += additional;
        } else {
            if additional > free {
                return Err(self.refuse(reservation, additional, free));
            }
            state.unspillable += additional;
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        let state = self.state();
        state.spillable + state.unspillable
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.size)
    }
}

impl fmt::Display for FairPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fair(pool_size: {})", human_readable_size(self.size))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn sorts_that_filled_their_shares_leave_room_for_what_cannot_spill() {
        let pool: Arc<dyn MemoryPool> = Arc::new(FairPool::new(1000));
        let spilling = |name: &str| MemoryConsumer::new(name).with_can_spill(true);
        let sorts = [
            spilling("sort 0").register(&pool),
            spilling("sort 1").register(&pool),
        ];
        for sort in &sorts {
            // Each sort may hold half of what the headroom (a quarter) leaves, and no more.
            sort.try_grow(375).unwrap();
            assert!(sort.try_grow(1).is_err());
        }
        let merge = MemoryConsumer::new("merge").register(&pool);
        merge.try_grow(250).unwrap();
        assert!(merge.try_grow(1).is_err(), "the pool is full");
        drop(merge);
        // One sort spilled: what cannot spill may grow past the headroom, and the sorts then
        // share what it leaves, never more than the pool.
        sorts[0].resize(0);
        let join = MemoryConsumer::new("join").register(&pool);
        join.try_grow(400).unwrap();
        assert!(sorts[0].try_grow(226).is_err());
        sorts[0].try_grow(225).unwrap();
        assert_eq!(pool.reserved(), 1000);
    }
}
