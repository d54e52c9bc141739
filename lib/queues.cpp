#include "mp/detail/queue_core.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>
#include <new>

#include "mp/detail/futex.hpp"
#include "mp/detail/sync_lock_word.hpp"
#include "mp/detail/syscall.hpp"
#include "mp/errors.hpp"

namespace mp::detail {
namespace {

// The queue is a FIFO list of chunks carved from one sparse memfd mapping.
// Records are appended to the tail chunk; a record larger than a chunk takes a
// run of adjacent chunk slots of its own. Freed chunks go to a "warm" free
// list (reused first, so steady traffic touches no new pages) up to a limit,
// beyond which their pages are handed back to the kernel first.
constexpr std::uint64_t chunk_size = QueueCore::chunk_bytes;
constexpr std::uint32_t slot_count = (std::uint64_t{32} << 30) / chunk_size;  // 32 GiB of address space, sparse
constexpr std::uint32_t no_slot = UINT32_MAX;
constexpr std::uint32_t warm_limit = 8;     // 16 MiB kept warm per queue
constexpr std::uint64_t record_header = sizeof(std::uint64_t);
// A record header with this length says "the next record is in the next
// chunk": consumers never read the producers' fill offset, so that a put
// writes nothing a get reads but the record and the put count.
constexpr std::uint64_t next_chunk_marker = UINT64_MAX;

// The run of a slot inside a multi-chunk run, after its first.
constexpr std::uint32_t inside_run = UINT32_MAX;

// A process may be killed between any two instructions, and whoever takes
// its lock over repairs what it left. The kernel's handling of the death
// orders memory, so the repairer sees every store made before it: what
// matters is the order the compiler emitted them in, which this keeps.
void stores_in_order() noexcept { std::atomic_signal_fence(std::memory_order_seq_cst); }

// An intent is whole before it is marked active, and its steps come after;
// it is cleared only after the commit.
template <class Intent>
void begin_intent(Intent& intent, Intent value) noexcept {
  intent = value;
  stores_in_order();
  intent.active = 1;
  stores_in_order();
}
template <class Intent>
void end_intent(Intent& intent) noexcept {
  stores_in_order();
  intent.active = 0;
}

// No initializers: the memfd starts zero-filled, which is "free, no next", so
// creating a queue touches none of the 16384 entries.
struct Slot {
  std::uint32_t link;       // the next slot + 1; 0: none
  std::uint32_t run;        // slots in this chunk's run; 0 while free; inside_run after the first
  std::uint64_t populated;  // bytes of the run whose pages exist
  std::uint32_t next() const noexcept { return link - 1; }  // no_slot when none
};

Slot make_slot(std::uint32_t next, std::uint32_t run, std::uint64_t populated = 0) noexcept {
  return Slot{next + 1, run, populated};
}

// Pages are created ahead of the writer in steps of this size, with one
// system call, instead of one page fault (about 10 us in a VM) per 4 KiB.
constexpr std::uint64_t populate_step = 512 << 10;

// Holds one of the queue's locks: pid-stamped lock words (see
// sync_lock_word.hpp), so an uncontended acquire is one atomic instruction
// and a dead holder's lock is taken over. Then `repair` runs first. A live
// holder (stopped, or copying a huge record) is waited for only until the
// caller's deadline: an expired one (a _nowait call) tries once and looks
// whether the holder died. A lock not taken changed nothing, repair included.
class Held {
 public:
  using Repair = void (*)(QueueShared*);
  // held() says whether the lock came before the deadline.
  Held(QueueShared* q, LockWord& lock, Repair repair, const Deadline& deadline)
      : q_(q), lock_(lock), repair_(repair) {
    acquire(deadline);
  }
  // Not yet held: try_acquire() may take it.
  Held(QueueShared* q, LockWord& lock, Repair repair, std::try_to_lock_t)
      : q_(q), lock_(lock), repair_(repair) {}
  ~Held() {
    if (held_) release();
  }
  Held(const Held&) = delete;
  Held& operator=(const Held&) = delete;

  bool held() const noexcept { return held_; }
  bool acquire(const Deadline& deadline) {
    held_ = lock_.try_acquire_fast() || lock_word_acquire_slow(lock_, deadline);
    if (held_) repair_if_needed();
    return held_;
  }
  // Without waiting, spinning or looking at the holder: for a caller that
  // holds another lock and only takes this one when it is free.
  bool try_acquire() {
    held_ = lock_.try_acquire_fast();
    if (held_) repair_if_needed();
    return held_;
  }
  void release() {
    held_ = false;
    lock_word_release(lock_);
  }

 private:
  // The flag stays set until a repair completes, so a repairer that dies
  // too leaves the repair to the next holder.
  void repair_if_needed() {
    if (!lock_.owner_died.load(std::memory_order_relaxed)) return;
    repair_(q_);
    lock_.owner_died.store(0, std::memory_order_relaxed);
  }

  QueueShared* q_;
  LockWord& lock_;
  Repair repair_;
  bool held_ = false;
};

// An event that waiters sleep on. Bit 0 says somebody may be asleep; the
// rest counts signals. A waiter announces itself (sets the bit), then checks
// its condition again; a signaller changes the condition, then looks for the
// announcement. Both steps are sequentially consistent, so one of the two
// sees the other and no wake-up is lost. A waker makes a system call only
// when the bit is set, and clears it, so a sleeper that was killed costs at
// most one needless wake.
class Event {
 public:
  std::uint32_t prepare_wait() noexcept { return word_.fetch_or(1u, std::memory_order_seq_cst) | 1u; }
  // Call after the change that waiters wait for; returns whether one of them
  // must be woken. With the bit clear the word is left alone: most signals
  // write nothing, and the word's cache line stays with the waiters.
  bool signal() noexcept {
    std::uint32_t old = word_.load(std::memory_order_seq_cst);
    while (old & 1u)
      if (word_.compare_exchange_weak(old, (old + 2) & ~1u, std::memory_order_seq_cst)) return true;
    return false;
  }
  void wake_all() noexcept { futex_wake(word_, futex_wake_all); }

  // Sleeps until `ready()`; false if the deadline passed first. `held` (a
  // side's lock, or null) is released while asleep and held again for each
  // look at `ready`; false, not held, if it did not come back in time.
  template <class Ready>
  bool wait_for(Ready ready, const Deadline& deadline, Held* held = nullptr) {
    while (!ready()) {
      std::uint32_t seen = prepare_wait();
      if (ready()) break;
      if (held) held->release();
      bool woken = futex_wait(word_, seen, deadline);
      if (held && !held->acquire(deadline)) return false;
      if (!woken && !ready()) return false;
    }
    return true;
  }

 private:
  std::atomic<std::uint32_t> word_{0};
};

// What a put is doing, for whoever takes the put lock over from a producer
// that died holding it (repair_put).
struct PutIntent {
  std::uint32_t active = 0;
  std::uint32_t old_tail = no_slot;
  std::uint32_t new_slot = no_slot;  // the run taken for this record, if any
  std::uint64_t puts_before = 0;
  std::uint64_t fill_after = 0;      // the tail's fill once the record is in
};

struct GetIntent {
  std::uint32_t active = 0;
  std::uint64_t gets_before = 0;
  std::uint64_t offset_before = 0;
};

// The producers' side: changed only under its lock.
struct alignas(64) PutSide {
  LockWord lock;
  std::uint32_t tail = 0;
  std::uint64_t tail_fill = 0;   // bytes of committed records in the tail run
  std::uint64_t known_gets = 0;  // a recent get count: room is known without reading it
  PutIntent intent;
};

// The consumers' side: changed only under its lock.
struct alignas(64) GetSide {
  LockWord lock;
  std::uint32_t head = 0;
  std::uint32_t advancing_from = no_slot;  // the head chunk being left, until it is freed
  std::uint64_t read_offset = 0;           // in the head run
  std::uint64_t known_puts = 0;            // a recent put count: records are known without reading it
  GetIntent intent;
};

// The free lists: changed only under their lock, taken after a side's lock.
struct alignas(64) ChunkLists {
  LockWord lock;
  std::uint32_t warm_free = no_slot, cold_free = no_slot;
  std::uint32_t warm_count = 0;
  std::uint32_t frontier = 1;             // slots from here on were never used (slot 0 is the first head)
  std::uint32_t slot_limit = slot_count;  // lowered by tests, to reach the end of the address space
  std::atomic<std::uint32_t> chunks_in_use{1};
};

// Moving an empty queue's head and tail to one chunk needs both sides' locks;
// each side's half is finished by its own repair if the mover died.
struct Restart {
  static constexpr std::uint32_t put_half = 1, get_half = 2;
  std::atomic<std::uint32_t> pending{0};
  std::uint32_t target = no_slot;
};

}  // namespace

// Each counter and event has a cache line of its own, and so has each side:
// a producer and a consumer that run in parallel share only the record bytes
// and, now and then, a count.
struct QueueShared {
  std::uint64_t maxsize = 0;
  alignas(64) std::atomic<std::uint64_t> puts{0};  // records ever put: the producers' commit
  alignas(64) std::atomic<std::uint64_t> gets{0};  // records ever taken: the consumers' commit
  alignas(64) std::atomic<std::uint64_t> tasks_done{0};
  alignas(64) Event not_empty;
  alignas(64) Event not_full;
  alignas(64) Event all_done;
  // Watchers of the head (QueueCore::watch): while nonzero, put_unless_watched
  // leaves the sleeping readers to them.
  alignas(64) std::atomic<std::uint32_t> watchers{0};
  PutSide put;
  GetSide get;
  ChunkLists chunks;
  Restart restart;
  Slot slots[slot_count];
};

namespace {

constexpr std::size_t page_size = 4096;
constexpr std::size_t header_size = (sizeof(QueueShared) + page_size - 1) / page_size * page_size;

char* chunk_base(QueueShared* q, std::uint32_t slot) {
  return reinterpret_cast<char*>(q) + header_size + std::uint64_t{slot} * chunk_size;
}

std::uint64_t capacity(QueueShared* q, std::uint32_t slot) { return std::uint64_t{q->slots[slot].run} * chunk_size; }

std::uint32_t load_link(QueueShared* q, std::uint32_t slot) {
  return std::atomic_ref<std::uint32_t>(q->slots[slot].link).load(std::memory_order_acquire);
}

// A dead holder of the lists can have left a slot in no list (lost until the
// queue goes away) but never a list that is not well formed: each step is
// one store. Only the warm count, which the limit depends on, is recounted.
void repair_chunks(QueueShared* q) {
  std::uint32_t warm = 0;
  for (std::uint32_t slot = q->chunks.warm_free; slot != no_slot; slot = q->slots[slot].next()) ++warm;
  q->chunks.warm_count = warm;
}

// The lists' lock is held for a few stores at a time, never across a system
// call or a copy, so it is waited for without a deadline: only a process
// stopped inside those instructions could hold it up.
Held hold_chunks(QueueShared* q) { return Held(q, q->chunks.lock, repair_chunks, Deadline::never()); }

void release_pages(QueueShared* q, std::uint32_t slot, std::uint32_t run) {
  // Best effort: memory that cannot be returned is merely kept.
  (void)retry("madvise", [&] { return ::madvise(chunk_base(q, slot), std::uint64_t{run} * chunk_size, MADV_REMOVE); });
}

// Puts a run that its caller owns (in no list) on a free list. A
// multi-chunk run never stays warm: its pages go back before the lists' lock
// is taken, since giving back a large run's pages takes long.
void give_back(QueueShared* q, std::uint32_t slot) {
  const std::uint32_t run = q->slots[slot].run;
  if (run > 1) release_pages(q, slot, run);
  Held held = hold_chunks(q);
  ChunkLists& lists = q->chunks;
  lists.chunks_in_use.fetch_sub(run, std::memory_order_relaxed);
  if (run == 1 && lists.warm_count < warm_limit) {
    q->slots[slot] = make_slot(lists.warm_free, 0, q->slots[slot].populated);
    stores_in_order();
    lists.warm_free = slot;
    ++lists.warm_count;
    return;
  }
  if (run == 1) release_pages(q, slot, run);
  for (std::uint32_t i = 0; i < run; ++i) {
    q->slots[slot + i] = make_slot(lists.cold_free, 0);
    stores_in_order();
    lists.cold_free = slot + i;
  }
}

std::uint32_t pop(std::uint32_t& list, QueueShared* q) {
  std::uint32_t slot = list;
  list = q->slots[slot].next();
  return slot;
}

// A run of `run` adjacent free slots, or no_slot; with the lists' lock held.
std::uint32_t allocate_run(QueueShared* q, std::uint32_t run) {
  ChunkLists& lists = q->chunks;
  if (run == 1 && lists.warm_free != no_slot) {
    --lists.warm_count;
    return pop(lists.warm_free, q);
  }
  if (run == 1 && lists.cold_free != no_slot) return pop(lists.cold_free, q);
  if (lists.frontier + run <= lists.slot_limit) {
    std::uint32_t slot = lists.frontier;
    lists.frontier += run;
    return slot;
  }
  // Rare: the address space has been walked through once. Pool every free
  // slot, take `run` adjacent ones, and keep the rest on the cold list.
  while (lists.warm_free != no_slot) {
    std::uint32_t slot = pop(lists.warm_free, q);
    q->slots[slot] = make_slot(lists.cold_free, 0);
    stores_in_order();
    lists.cold_free = slot;
  }
  lists.warm_count = 0;
  for (std::uint32_t start = 0; start + run <= lists.frontier;) {
    std::uint32_t length = 0;
    while (length < run && q->slots[start + length].run == 0) ++length;
    if (length < run) {
      start += length + 1;
      continue;
    }
    std::uint32_t rebuilt = no_slot;
    for (std::uint32_t slot = lists.cold_free; slot != no_slot;) {
      std::uint32_t next = q->slots[slot].next();
      if (slot < start || slot >= start + run) {
        q->slots[slot].link = rebuilt + 1;
        rebuilt = slot;
      }
      slot = next;
    }
    stores_in_order();
    lists.cold_free = rebuilt;
    return start;
  }
  return no_slot;
}

// Takes a run of `run` chunks and marks it in use, so that allocate_run's
// search for free adjacent slots skips it; no_slot if there is none.
std::uint32_t take_run(QueueShared* q, std::uint32_t run) {
  Held lists = hold_chunks(q);
  std::uint32_t slot = allocate_run(q, run);
  if (slot == no_slot) return no_slot;
  q->slots[slot] = make_slot(no_slot, run, q->slots[slot].populated);
  for (std::uint32_t inner = 1; inner < run; ++inner) q->slots[slot + inner].run = inside_run;
  q->chunks.chunks_in_use.fetch_add(run, std::memory_order_relaxed);
  return slot;
}

// Reserves the pages of the slot's whole run (one fallocate), so that writing
// the record cannot fault for want of memory (SIGBUS): exhaustion is an
// error here instead, before anything changed. A run whose pages exist or
// were reserved since they were last given back (populated != 0: see
// populate, which follows) is not reserved again, so a warm chunk costs
// nothing. False, with errno set, if the kernel refused.
bool reserve(QueueShared* q, int memfd, std::uint32_t slot) {
  if (q->slots[slot].populated != 0) return true;
  const auto offset = static_cast<off_t>(chunk_base(q, slot) - reinterpret_cast<char*>(q));
  return retry("fallocate", [&] {
           return ::fallocate(memfd, FALLOC_FL_KEEP_SIZE, offset, static_cast<off_t>(capacity(q, slot)));
         }) == 0;
}

// Makes sure the pages for the bytes up to `end` of the slot's run exist;
// the run was reserved first.
void populate(QueueShared* q, std::uint32_t slot, std::uint64_t end) {
  Slot& entry = q->slots[slot];
  if (end <= entry.populated) return;
  std::uint64_t until = std::min(std::max(end, entry.populated + populate_step), capacity(q, slot));
  until = (until + page_size - 1) / page_size * page_size;
  // Best effort: on an old kernel the pages simply fault in one by one.
  (void)retry("madvise", [&] {
    return ::madvise(chunk_base(q, slot) + entry.populated, until - entry.populated, MADV_POPULATE_WRITE);
  });
  entry.populated = until;
}

// The halves of a restart (see restart_if_empty) that a dead mover left undone.
void finish_restart(QueueShared* q, std::uint32_t half) {
  if (!(q->restart.pending.load(std::memory_order_relaxed) & half)) return;
  if (half == Restart::put_half) {
    q->put.tail = q->restart.target;
    q->put.tail_fill = 0;
  } else {
    q->get.head = q->restart.target;
    q->get.read_offset = 0;
  }
  q->restart.pending.fetch_and(~half, std::memory_order_release);
}

// The put count is the producers' commit: a record is there for consumers
// once it is counted. A producer that died before counting its record left
// either the whole record in the tail (written, then linked or given its
// fill), which is counted now, or nothing a consumer can reach.
void repair_put(QueueShared* q) {
  finish_restart(q, Restart::put_half);
  PutSide& side = q->put;
  PutIntent& intent = side.intent;
  if (!intent.active) return;
  if (q->puts.load(std::memory_order_relaxed) == intent.puts_before) {
    const bool moved = intent.new_slot != no_slot;
    if (moved && side.tail != intent.new_slot && load_link(q, intent.old_tail) == intent.new_slot + 1)
      side.tail = intent.new_slot;
    const bool written = moved ? side.tail == intent.new_slot : side.tail_fill == intent.fill_after;
    if (written) {
      side.tail_fill = intent.fill_after;
      q->puts.store(intent.puts_before + 1, std::memory_order_seq_cst);
      if (q->not_empty.signal()) q->not_empty.wake_all();
    } else if (moved) {
      // Cleared first: a repairer killed in between leaks the run rather
      // than have the next one free it twice.
      intent.active = 0;
      stores_in_order();
      give_back(q, intent.new_slot);
    }
  }
  intent.active = 0;
}

// The get count is the consumers' commit. A consumer that died after moving
// read_offset past its record took it; its count is completed. One that died
// leaving a chunk has its move completed and the chunk freed.
void repair_get(QueueShared* q) {
  finish_restart(q, Restart::get_half);
  GetSide& side = q->get;
  if (side.advancing_from != no_slot) {
    const std::uint32_t left = side.advancing_from;
    const bool moved = side.head != left;
    if (moved) side.read_offset = 0;
    stores_in_order();
    side.advancing_from = no_slot;
    stores_in_order();
    if (moved) give_back(q, left);
  }
  GetIntent& intent = side.intent;
  if (intent.active && q->gets.load(std::memory_order_relaxed) == intent.gets_before &&
      side.read_offset != intent.offset_before) {
    q->gets.store(intent.gets_before + 1, std::memory_order_seq_cst);
    if (q->maxsize != 0 && q->not_full.signal()) q->not_full.wake_all();
  }
  intent.active = 0;
}

Held hold_puts(QueueShared* q, const Deadline& deadline) { return Held(q, q->put.lock, repair_put, deadline); }
Held hold_gets(QueueShared* q, const Deadline& deadline) { return Held(q, q->get.lock, repair_get, deadline); }

}  // namespace

QueueCore::QueueCore(std::size_t maxsize, std::string_view object, bool spin)
    : mapped_size_(header_size + std::uint64_t{slot_count} * chunk_size),
      object_(object),
      spin_(spin) {
  // A memfd has no name in /dev/shm and dies with the last mapping and
  // descriptor, kill -9 included. Its size is sparse: pages are charged only
  // when reserved. The descriptor stays open (children inherit it with the
  // mapping) for reserving the pages of each chunk a put takes.
  memfd_.reset(static_cast<int>(check("memfd_create", [] {
    return ::syscall(SYS_memfd_create, "mp-queue", MFD_CLOEXEC);
  }, object_)));
  check("ftruncate", [&] { return ::ftruncate(memfd_.get(), static_cast<off_t>(mapped_size_)); }, object_);
  void* address = MAP_FAILED;
  retry("mmap", [&] {
    address = ::mmap(nullptr, mapped_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, memfd_.get(), 0);
    return address == MAP_FAILED ? -1 : 0;
  });
  if (address == MAP_FAILED) throw_os_error("mmap", errno, object_);
  shared_ = ::new (address) QueueShared;
  shared_->maxsize = maxsize;
  // Slot 0 is the first head and tail chunk; its pages come with the first put.
  shared_->slots[0] = make_slot(no_slot, 1);
}

QueueCore::~QueueCore() { ::munmap(shared_, mapped_size_); }

namespace {

// With the put lock held: whether a bounded queue has room, reading the get
// count only when the last one read says it is full.
bool has_room(QueueShared* q) {
  const std::uint64_t puts = q->puts.load(std::memory_order_relaxed);
  if (puts - q->put.known_gets < q->maxsize) return true;
  q->put.known_gets = q->gets.load(std::memory_order_seq_cst);
  return puts - q->put.known_gets < q->maxsize;
}

}  // namespace

bool QueueCore::put(std::string_view head, std::string_view body, const Deadline& deadline,
                    bool unless_watched) {
  QueueShared* q = shared_;
  PutSide& side = q->put;
  const std::uint64_t size = head.size() + body.size();
  const std::uint64_t needed = record_header + size;
  Held puts = hold_puts(q, deadline);
  if (!puts.held()) return false;
  if (q->maxsize != 0 && !q->not_full.wait_for([q] { return has_room(q); }, deadline, &puts)) return false;
  // Where the record goes: after the tail run's records, or a new run.
  const std::uint32_t old_tail = side.tail;
  const bool fits = side.tail_fill + needed <= capacity(q, old_tail);
  std::uint32_t slot = old_tail;
  std::uint64_t offset = side.tail_fill;
  if (!fits) {
    slot = take_run(q, static_cast<std::uint32_t>((needed + chunk_size - 1) / chunk_size));
    if (slot == no_slot)
      throw OSError(object_ + ": put: a record of " + std::to_string(size) +
                        " bytes does not fit in the queue's 32 GiB of address space",
                    ENOMEM);
    offset = 0;
  }
  if (!reserve(q, memfd_.get(), slot)) {
    const int code = errno;
    if (!fits) give_back(q, slot);
    throw_os_error("fallocate", code,
                   object_ + ".put (reserving memory for a record of " + std::to_string(size) + " bytes)");
  }
  const std::uint64_t puts_before = q->puts.load(std::memory_order_relaxed);
  begin_intent(side.intent, PutIntent{0, old_tail, fits ? no_slot : slot, puts_before, offset + needed});
  populate(q, slot, offset + needed);
  char* at = chunk_base(q, slot) + offset;
  std::memcpy(at, &size, sizeof size);
  // An empty view may have no data at all, which memcpy must not be given.
  if (!head.empty()) std::memcpy(at + record_header, head.data(), head.size());
  if (!body.empty()) std::memcpy(at + record_header + head.size(), body.data(), body.size());
  if (!fits) {
    if (side.tail_fill + record_header <= capacity(q, old_tail))
      std::memcpy(chunk_base(q, old_tail) + side.tail_fill, &next_chunk_marker, record_header);
    std::atomic_ref<std::uint32_t>(q->slots[old_tail].link).store(slot + 1, std::memory_order_release);
    side.tail = slot;
  }
  side.tail_fill = offset + needed;
  q->puts.store(puts_before + 1, std::memory_order_seq_cst);  // the commit
  end_intent(side.intent);
  // The commit, then the watchers: an unwatch() that this misses reads the
  // put count after it, sees the record and wakes the readers (see unwatch).
  bool wake = !(unless_watched && q->watchers.load(std::memory_order_seq_cst) != 0) &&
              q->not_empty.signal();
  puts.release();
  if (wake) q->not_empty.wake_all();
  return true;
}

namespace {

// With the get lock held: whether a record is there, reading the put count
// only when the last one read says there is none. Sequentially consistent
// for the event protocol (see Event).
bool has_record(QueueShared* q) {
  const std::uint64_t gets = q->gets.load(std::memory_order_relaxed);
  if (q->get.known_puts > gets) return true;
  q->get.known_puts = q->puts.load(std::memory_order_seq_cst);
  return q->get.known_puts > gets;
}

// A reader's spin before it sleeps: a few microseconds.
constexpr int spin_turns = 200;

// Waits, with the get lock held by `gets`, until a record is there; false
// if none came before the deadline, or the lock did not. `spin`: null never
// spins.
bool wait_for_record(QueueShared* q, Held& gets, const Deadline& deadline, SpinPolicy* spin) {
  if (!gets.held()) return false;
  if (has_record(q)) return true;
  if (spin && spin->begin()) {
    // Brief spin outside the lock: a record often arrives within microseconds.
    gets.release();
    for (int turn = 0; turn < spin_turns && q->puts.load(std::memory_order_acquire) <=
                                         q->gets.load(std::memory_order_relaxed);
         ++turn)
      cpu_relax();
    if (!gets.acquire(deadline)) {
      spin->end(false);
      return false;
    }
    const bool found = has_record(q);
    spin->end(found);
    if (found) return true;
  }
  return q->not_empty.wait_for([q] { return has_record(q); }, deadline, &gets);
}

// Leaves the head chunk for the next one, which holds the next record.
void advance_head(QueueShared* q) {
  GetSide& side = q->get;
  const std::uint32_t done = side.head;
  side.advancing_from = done;
  stores_in_order();
  side.head = q->slots[done].next();
  side.read_offset = 0;
  stores_in_order();
  side.advancing_from = no_slot;  // a death from here on leaks the chunk, never frees it twice
  stores_in_order();
  give_back(q, done);
}

// With the get lock held and a record known to be there: the oldest record.
std::string_view head_record(QueueShared* q) {
  GetSide& side = q->get;
  for (;;) {
    std::uint64_t length = next_chunk_marker;
    const char* at = chunk_base(q, side.head) + side.read_offset;
    if (side.read_offset + record_header <= capacity(q, side.head)) std::memcpy(&length, at, sizeof length);
    if (length != next_chunk_marker) return {at + record_header, length};
    advance_head(q);
  }
}

// When a get empties the queue and its last record took a multi-chunk run,
// the head and tail move to the start of a fresh single chunk and the run's
// memory goes back at once, if the put lock is free: with the get lock held,
// it is only tried. (Starting a single chunk over in the same way, to reuse
// its first pages, measured slower for 1 KiB items: the producer then writes
// lines the consumer has just read, and must take them back from its cache.)
void restart_if_empty(QueueShared* q) {
  GetSide& side = q->get;
  const std::uint32_t head = side.head;
  if (q->slots[head].run == 1) return;
  if (q->puts.load(std::memory_order_acquire) != q->gets.load(std::memory_order_relaxed)) return;
  Held puts(q, q->put.lock, repair_put, std::try_to_lock);
  if (!puts.try_acquire() || q->put.tail != head ||
      q->puts.load(std::memory_order_relaxed) != q->gets.load(std::memory_order_relaxed))
    return;
  const std::uint32_t target = take_run(q, 1);
  if (target == no_slot) return;
  q->restart.target = target;
  stores_in_order();
  q->restart.pending.store(Restart::put_half | Restart::get_half, std::memory_order_relaxed);
  stores_in_order();
  finish_restart(q, Restart::get_half);
  finish_restart(q, Restart::put_half);
  give_back(q, head);
}

// Removes the head record, of `length` bytes, with the get lock held; the
// get count is the commit.
void remove_head(QueueShared* q, std::uint64_t length) {
  GetSide& side = q->get;
  const std::uint64_t gets_before = q->gets.load(std::memory_order_relaxed);
  begin_intent(side.intent, GetIntent{0, gets_before, side.read_offset});
  side.read_offset += record_header + length;
  q->gets.store(gets_before + 1, std::memory_order_seq_cst);  // the commit
  end_intent(side.intent);
  if (q->maxsize != 0 && q->not_full.signal()) q->not_full.wake_all();
  restart_if_empty(q);
}

}  // namespace

bool QueueCore::get(std::string& out, const Deadline& deadline) {
  return get([&out](std::string_view record) { out.assign(record); }, deadline);
}

bool QueueCore::get(const std::function<void(std::string_view)>& take, const Deadline& deadline) {
  QueueShared* q = shared_;
  Held gets = hold_gets(q, deadline);
  if (!wait_for_record(q, gets, deadline, spin_hint())) return false;
  std::string_view record = head_record(q);
  take(record);  // if it throws, the record stays where it is
  remove_head(q, record.size());
  return true;
}

bool QueueCore::peek(std::string_view& out, const Deadline& deadline) {
  QueueShared* q = shared_;
  Held gets = hold_gets(q, deadline);
  if (!wait_for_record(q, gets, deadline, spin_hint())) return false;
  out = head_record(q);
  return true;
}

bool QueueCore::pop_and_peek(std::string_view& out, const Deadline& deadline) {
  QueueShared* q = shared_;
  // The record the caller is done with goes whatever the deadline.
  Held gets = hold_gets(q, Deadline::never());
  remove_head(q, head_record(q).size());
  if (!wait_for_record(q, gets, deadline, spin_hint())) return false;
  out = head_record(q);
  return true;
}

void QueueCore::watch() noexcept { shared_->watchers.fetch_add(1, std::memory_order_seq_cst); }

// The watcher count drops first, then the counts are read: a put whose
// watcher load came before the drop committed before it, so its record is
// seen here, and one whose load came after woke the readers itself.
void QueueCore::unwatch() noexcept {
  shared_->watchers.fetch_sub(1, std::memory_order_seq_cst);
  if (shared_->puts.load(std::memory_order_seq_cst) != shared_->gets.load(std::memory_order_seq_cst))
    wake_readers();
}

void QueueCore::wake_readers() noexcept {
  if (shared_->not_empty.signal()) shared_->not_empty.wake_all();
}

// The get count read twice around the put count: when it did not move, the
// difference was the exact size at the moment the put count was read.
std::size_t QueueCore::qsize() const noexcept {
  for (;;) {
    const std::uint64_t gets = shared_->gets.load(std::memory_order_acquire);
    const std::uint64_t puts = shared_->puts.load(std::memory_order_acquire);
    if (shared_->gets.load(std::memory_order_acquire) == gets) return puts - gets;
  }
}

std::size_t QueueCore::maxsize() const noexcept { return shared_->maxsize; }

// Unfinished tasks are the records ever put minus the task_done calls.
bool QueueCore::task_done() {
  QueueShared* q = shared_;
  Held gets = hold_gets(q, Deadline::never());
  const std::uint64_t done = q->tasks_done.load(std::memory_order_relaxed);
  if (done >= q->puts.load(std::memory_order_acquire)) return false;
  q->tasks_done.store(done + 1, std::memory_order_seq_cst);
  if (done + 1 == q->puts.load(std::memory_order_seq_cst) && q->all_done.signal()) q->all_done.wake_all();
  return true;
}

bool QueueCore::join(const Deadline& deadline) {
  QueueShared* q = shared_;
  // Done first: if the put count then equals it, nothing was unfinished when it was read.
  auto finished = [q] {
    const std::uint64_t done = q->tasks_done.load(std::memory_order_seq_cst);
    return q->puts.load(std::memory_order_seq_cst) == done;
  };
  return q->all_done.wait_for(finished, deadline);
}

void QueueCore::limit_address_space(std::uint32_t chunks) {
  Held lists = hold_chunks(shared_);
  shared_->chunks.slot_limit = std::min(std::max(chunks, shared_->chunks.frontier), slot_count);
}

std::size_t QueueCore::resident_chunks() const noexcept {
  return shared_->chunks.chunks_in_use.load(std::memory_order_relaxed);
}

}  // namespace mp::detail
