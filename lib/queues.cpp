#include "mp/detail/queue_core.hpp"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <new>

#include "mp/detail/futex.hpp"
#include "mp/detail/syscall.hpp"
#include "mp/errors.hpp"

namespace mp::detail {
namespace {

// The queue is a FIFO list of chunks carved from one sparse memfd mapping.
// Records are appended to the tail chunk; a record larger than a chunk takes a
// run of adjacent chunk slots of its own. Freed chunks go to a "warm" free
// list (reused first, so steady traffic touches no new pages) up to a limit,
// beyond which their pages are handed back to the kernel first.
constexpr std::uint64_t chunk_size = 4 << 20;
constexpr std::uint32_t slot_count = 8192;  // 32 GiB of address space, sparse
constexpr std::uint32_t no_slot = UINT32_MAX;
constexpr std::uint32_t warm_limit = 4;     // 16 MiB kept warm per queue
constexpr std::uint64_t record_header = sizeof(std::uint64_t);

// The run of a slot inside a multi-chunk run, after its first.
constexpr std::uint32_t inside_run = UINT32_MAX;

// No initializers: the memfd starts zero-filled, which is "free, no next", so
// creating a queue touches none of the 8192 entries.
struct Slot {
  std::uint64_t fill;       // bytes of committed records
  std::uint32_t link;       // the next slot + 1; 0: none
  std::uint32_t run;        // slots in this chunk's run; 0 while free; inside_run after the first
  std::uint64_t populated;  // bytes of the run whose pages exist
  std::uint32_t next() const noexcept { return link - 1; }  // no_slot when none
};

Slot make_slot(std::uint32_t next, std::uint32_t run, std::uint64_t populated = 0) noexcept {
  return Slot{0, next + 1, run, populated};
}

// Pages are created ahead of the writer in steps of this size, with one
// system call, instead of one page fault (about 10 us in a VM) per 4 KiB.
constexpr std::uint64_t populate_step = 512 << 10;

// An event that waiters sleep on. Bit 0 says somebody may be asleep; the
// rest counts events. Only changed under the queue's mutex. A waker makes a
// system call only when the bit is set, and clears it, so a sleeper that was
// killed costs at most one needless wake.
class Event {
 public:
  std::uint32_t prepare_wait() noexcept {
    std::uint32_t value = word_.load(std::memory_order_relaxed) | 1u;
    word_.store(value, std::memory_order_relaxed);
    return value;
  }
  // Returns whether someone must be woken after the mutex is released. With
  // the bit clear nobody has prepared to wait since the last signal, so the
  // word is left alone: most signals then write nothing, and the word's cache
  // line stays with the waiters.
  bool signal() noexcept {
    std::uint32_t old = word_.load(std::memory_order_relaxed);
    if (!(old & 1u)) return false;
    word_.store((old + 2) & ~1u, std::memory_order_release);
    return true;
  }
  bool wait(std::uint32_t seen, const Deadline& deadline) { return futex_wait(word_, seen, deadline); }
  void wake_all() noexcept { futex_wake(word_, futex_wake_all); }

 private:
  std::atomic<std::uint32_t> word_{0};
};

// A put in progress, so that a recovering process can finish the
// bookkeeping of a producer killed right after it published its record.
struct PutIntent {
  std::uint32_t active = 0;
  std::uint32_t slot = no_slot;
  std::uint64_t published_fill = 0;    // the slot's fill once the record is in
  std::uint64_t unfinished_before = 0;
};

}  // namespace

struct QueueShared {
  pthread_mutex_t mutex;
  std::uint64_t maxsize = 0;
  // Changed only under the mutex (see add()); atomic for the readers that
  // do not take it (qsize(), a spinning get).
  std::atomic<std::uint64_t> count{0};
  std::atomic<std::uint64_t> unfinished{0};
  Event not_empty, not_full, all_done;
  std::uint32_t head = no_slot, tail = no_slot;
  std::uint64_t read_offset = 0;  // in the head chunk
  std::uint32_t warm_free = no_slot, cold_free = no_slot;
  std::uint32_t warm_count = 0;
  std::uint32_t frontier = 0;     // slots from here on were never used
  std::uint32_t slot_limit = slot_count;  // lowered by tests, to reach the end of the address space
  std::atomic<std::uint32_t> chunks_in_use{0};
  PutIntent put_intent;
  Slot slots[slot_count];
};

namespace {

constexpr std::size_t page_size = 4096;
constexpr std::size_t header_size = (sizeof(QueueShared) + page_size - 1) / page_size * page_size;

char* chunk_base(QueueShared* q, std::uint32_t slot) {
  return reinterpret_cast<char*>(q) + header_size + std::uint64_t{slot} * chunk_size;
}

// Holds the queue's robust mutex. If the previous holder died, the state it
// left is repaired before anyone uses it (see recover()).
class Guard {
 public:
  Guard(QueueShared* q, const std::string& object);
  ~Guard() { if (locked_) pthread_mutex_unlock(&q_->mutex); }
  void unlock() {
    pthread_mutex_unlock(&q_->mutex);
    locked_ = false;
  }
  void lock(const std::string& object);

 private:
  QueueShared* q_;
  bool locked_ = false;
};

// Every update commits last (a record becomes visible when its slot's fill
// grows; it is consumed when read_offset moves past it), so a holder killed at
// any point leaves a consistent list: at worst an empty chunk or a chunk that
// is in no list (lost until the queue goes away). What may be stale is the
// bookkeeping derived from it: count is recounted, and an interrupted put's
// unfinished-task increment is completed.
void recover(QueueShared* q) {
  std::uint64_t records = 0;
  for (std::uint32_t slot = q->head; slot != no_slot; slot = q->slots[slot].next()) {
    std::uint64_t offset = slot == q->head ? q->read_offset : 0;
    const char* base = chunk_base(q, slot);
    while (offset < q->slots[slot].fill) {
      std::uint64_t length;
      std::memcpy(&length, base + offset, sizeof length);
      offset += record_header + length;
      ++records;
    }
  }
  q->count.store(records, std::memory_order_relaxed);
  PutIntent& intent = q->put_intent;
  if (intent.active) {
    bool published = q->slots[intent.slot].fill >= intent.published_fill;
    q->unfinished.store(intent.unfinished_before + (published ? 1 : 0), std::memory_order_relaxed);
    intent.active = 0;
  }
}

Guard::Guard(QueueShared* q, const std::string& object) : q_(q) { lock(object); }

void Guard::lock(const std::string& object) {
  int rc = pthread_mutex_lock(&q_->mutex);
  if (rc == EOWNERDEAD) {
    recover(q_);
    pthread_mutex_consistent(&q_->mutex);
  } else if (rc != 0) {
    throw_os_error("pthread_mutex_lock", rc, object);
  }
  locked_ = true;
}

// Adds to a counter that only the mutex holder changes: a plain load and
// store, since a locked read-modify-write would cost more than the rest of
// the bookkeeping.
void add(std::atomic<std::uint64_t>& counter, std::int64_t delta) noexcept {
  counter.store(counter.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(delta),
                std::memory_order_release);
}

void release_pages(QueueShared* q, std::uint32_t slot, std::uint32_t run) {
  // Best effort: memory that cannot be returned is merely kept.
  ::madvise(chunk_base(q, slot), std::uint64_t{run} * chunk_size, MADV_REMOVE);
}

void free_run(QueueShared* q, std::uint32_t slot) {
  std::uint32_t run = q->slots[slot].run;
  q->chunks_in_use.fetch_sub(run, std::memory_order_relaxed);
  if (run == 1 && q->warm_count < warm_limit) {
    q->slots[slot] = make_slot(q->warm_free, 0, q->slots[slot].populated);
    q->warm_free = slot;
    ++q->warm_count;
    return;
  }
  release_pages(q, slot, run);
  for (std::uint32_t i = 0; i < run; ++i) {
    q->slots[slot + i] = make_slot(q->cold_free, 0);
    q->cold_free = slot + i;
  }
}

// Makes sure the pages for the bytes up to `end` of the slot's run exist.
void populate(QueueShared* q, std::uint32_t slot, std::uint64_t end) {
  Slot& entry = q->slots[slot];
  if (end <= entry.populated) return;
  std::uint64_t until = std::min(std::max(end, entry.populated + populate_step),
                                 std::uint64_t{entry.run} * chunk_size);
  until = (until + page_size - 1) / page_size * page_size;
  // Best effort: on an old kernel the pages simply fault in one by one.
  ::madvise(chunk_base(q, slot) + entry.populated, until - entry.populated, MADV_POPULATE_WRITE);
  entry.populated = until;
}

std::uint32_t pop(std::uint32_t& list, QueueShared* q) {
  std::uint32_t slot = list;
  list = q->slots[slot].next();
  return slot;
}

// A run of `run` adjacent free slots, or no_slot.
std::uint32_t allocate_run(QueueShared* q, std::uint32_t run) {
  if (run == 1 && q->warm_free != no_slot) {
    --q->warm_count;
    return pop(q->warm_free, q);
  }
  if (run == 1 && q->cold_free != no_slot) return pop(q->cold_free, q);
  if (q->frontier + run <= q->slot_limit) {
    std::uint32_t slot = q->frontier;
    q->frontier += run;
    return slot;
  }
  // Rare: the address space has been walked through once. Pool every free
  // slot, take `run` adjacent ones, and keep the rest on the cold list.
  while (q->warm_free != no_slot) {
    std::uint32_t slot = pop(q->warm_free, q);
    q->slots[slot] = make_slot(q->cold_free, 0);
    q->cold_free = slot;
  }
  q->warm_count = 0;
  for (std::uint32_t start = 0; start + run <= q->frontier;) {
    std::uint32_t length = 0;
    while (length < run && q->slots[start + length].run == 0) ++length;
    if (length < run) {
      start += length + 1;
      continue;
    }
    std::uint32_t rebuilt = no_slot;
    for (std::uint32_t slot = q->cold_free; slot != no_slot;) {
      std::uint32_t next = q->slots[slot].next();
      if (slot < start || slot >= start + run) {
        q->slots[slot].link = rebuilt + 1;
        rebuilt = slot;
      }
      slot = next;
    }
    q->cold_free = rebuilt;
    return start;
  }
  return no_slot;
}

}  // namespace

QueueCore::QueueCore(std::size_t maxsize, std::string_view object, bool spin)
    : mapped_size_(header_size + std::uint64_t{slot_count} * chunk_size),
      object_(object),
      spin_(spin) {
  // A memfd has no name in /dev/shm and dies with the last mapping, kill -9
  // included. Its size is sparse: pages are charged only when touched.
  int fd = static_cast<int>(check("memfd_create", [] {
    return ::syscall(SYS_memfd_create, "mp-queue", MFD_CLOEXEC);
  }, object_));
  try {
    check("ftruncate", [&] { return ::ftruncate(fd, static_cast<off_t>(mapped_size_)); }, object_);
    void* address = MAP_FAILED;
    retry("mmap", [&] {
      address = ::mmap(nullptr, mapped_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
      return address == MAP_FAILED ? -1 : 0;
    });
    if (address == MAP_FAILED) throw_os_error("mmap", errno, object_);
    shared_ = ::new (address) QueueShared;
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);  // the mapping keeps the memory; children inherit the mapping
  shared_->maxsize = maxsize;
  pthread_mutexattr_t attributes;
  pthread_mutexattr_init(&attributes);
  pthread_mutexattr_setpshared(&attributes, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attributes, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&shared_->mutex, &attributes);
  pthread_mutexattr_destroy(&attributes);
}

QueueCore::~QueueCore() { ::munmap(shared_, mapped_size_); }

bool QueueCore::put(std::string_view head, std::string_view body, const Deadline& deadline) {
  QueueShared* q = shared_;
  const std::uint64_t size = head.size() + body.size();
  const std::uint64_t needed = record_header + size;
  Guard guard(q, object_);
  while (q->maxsize != 0 && q->count.load(std::memory_order_relaxed) >= q->maxsize) {
    std::uint32_t seen = q->not_full.prepare_wait();
    guard.unlock();
    bool woken = q->not_full.wait(seen, deadline);
    guard.lock(object_);
    if (!woken && q->count.load(std::memory_order_relaxed) >= q->maxsize) return false;
  }
  // Where the record goes: after the tail chunk's records, or a new chunk (run).
  std::uint32_t slot = q->tail;
  bool fits = slot != no_slot &&
              q->slots[slot].fill + needed <= std::uint64_t{q->slots[slot].run} * chunk_size;
  if (!fits) {
    auto run = static_cast<std::uint32_t>((needed + chunk_size - 1) / chunk_size);
    slot = allocate_run(q, run);
    if (slot == no_slot)
      throw OSError(object_ + ": put: a record of " + std::to_string(size) +
                        " bytes does not fit in the queue's 32 GiB of address space",
                    ENOMEM);
    q->slots[slot] = make_slot(no_slot, run, q->slots[slot].populated);
    // Taken, so that allocate_run's search for free adjacent slots skips them.
    for (std::uint32_t inner = 1; inner < run; ++inner) q->slots[slot + inner].run = inside_run;
    q->chunks_in_use.fetch_add(run, std::memory_order_relaxed);
    if (q->tail == no_slot) {
      q->head = slot;
      q->read_offset = 0;
    } else {
      q->slots[q->tail].link = slot + 1;
    }
    q->tail = slot;
  }
  populate(q, slot, q->slots[slot].fill + needed);
  char* at = chunk_base(q, slot) + q->slots[slot].fill;
  std::memcpy(at, &size, sizeof size);
  // An empty view may have no data at all, which memcpy must not be given.
  if (!head.empty()) std::memcpy(at + record_header, head.data(), head.size());
  if (!body.empty()) std::memcpy(at + record_header + head.size(), body.data(), body.size());
  q->put_intent = PutIntent{1, slot, q->slots[slot].fill + needed,
                            q->unfinished.load(std::memory_order_relaxed)};
  q->slots[slot].fill += needed;  // the commit
  add(q->count, 1);
  add(q->unfinished, 1);
  q->put_intent.active = 0;
  bool wake = q->not_empty.signal();
  guard.unlock();
  if (wake) q->not_empty.wake_all();
  return true;
}

namespace {

// Spinning for a record pays only while its producer runs on another core.
// When the producer waits for ours, or was asleep (a wake-up takes tens of
// microseconds in a VM, long enough for the reader to drain a full queue), a
// spin only burns CPU: on a busy 2-core VM, where producer and consumer took
// turns, it found a record in under 1% of its spins and made a bounded queue
// of ints 20% slower. So after a few fruitless spins in a row a reader spins
// only on every 64th wait, to notice when spinning pays again.
constexpr std::uint32_t fruitless_spins_tolerated = 4;
constexpr std::uint32_t spin_retry_interval = 64;

// Waits, with the lock held by `guard`, until a record is at the head of the
// queue; false if none came before the deadline. `fruitless_spins` counts the
// waits since a spin last found a record; null: never spin.
bool wait_for_record(QueueShared* q, Guard& guard, const Deadline& deadline,
                     std::atomic<std::uint32_t>* fruitless_spins, const std::string& object) {
  for (;;) {
    // Skip chunks left empty by a producer that died while adding one.
    while (q->head != no_slot && q->head != q->tail &&
           q->read_offset >= q->slots[q->head].fill) {
      std::uint32_t done = q->head;
      q->head = q->slots[done].next();
      q->read_offset = 0;
      free_run(q, done);
    }
    if (q->count.load(std::memory_order_relaxed) > 0) return true;
    if (fruitless_spins) {
      // Racy between threads, harmlessly: it is only a hint.
      std::uint32_t fruitless = fruitless_spins->load(std::memory_order_relaxed);
      if (fruitless < fruitless_spins_tolerated || fruitless % spin_retry_interval == 0) {
        // Brief spin outside the lock: a record often arrives within microseconds.
        guard.unlock();
        for (int turn = 0; turn < 200 && q->count.load(std::memory_order_acquire) == 0; ++turn)
          cpu_relax();
        guard.lock(object);
        if (q->count.load(std::memory_order_relaxed) > 0) {
          fruitless_spins->store(0, std::memory_order_relaxed);
          continue;
        }
      }
      fruitless_spins->store(fruitless + 1, std::memory_order_relaxed);
    }
    std::uint32_t seen = q->not_empty.prepare_wait();
    guard.unlock();
    bool woken = q->not_empty.wait(seen, deadline);
    guard.lock(object);
    if (!woken && q->count.load(std::memory_order_relaxed) == 0) return false;
  }
}

std::string_view head_record(QueueShared* q) {
  const char* at = chunk_base(q, q->head) + q->read_offset;
  std::uint64_t length;
  std::memcpy(&length, at, sizeof length);
  return {at + record_header, length};
}

// Removes the head record, of `length` bytes, with the lock held. Returns
// whether a producer waiting for room must be woken once it is released.
bool remove_head(QueueShared* q, std::uint64_t length) {
  std::uint32_t slot = q->head;
  q->read_offset += record_header + length;  // the commit
  add(q->count, -1);
  if (q->read_offset >= q->slots[slot].fill) {
    if (slot == q->tail && q->slots[slot].run == 1) {
      // Empty: start the chunk over, so its first pages stay the warm ones.
      q->slots[slot].fill = 0;
      q->read_offset = 0;
    } else if (slot == q->tail) {
      // Empty after a record that needed a run: give the run back at once.
      q->head = q->tail = no_slot;
      q->read_offset = 0;
      free_run(q, slot);
    } else {
      q->head = q->slots[slot].next();
      q->read_offset = 0;
      free_run(q, slot);
    }
  }
  return q->maxsize != 0 && q->not_full.signal();
}

}  // namespace

bool QueueCore::get(std::string& out, const Deadline& deadline) {
  return get([&out](std::string_view record) { out.assign(record); }, deadline);
}

bool QueueCore::get(const std::function<void(std::string_view)>& take, const Deadline& deadline) {
  QueueShared* q = shared_;
  Guard guard(q, object_);
  if (!wait_for_record(q, guard, deadline, spin_hint(), object_)) return false;
  std::string_view record = head_record(q);
  take(record);  // if it throws, the record stays where it is
  bool wake = remove_head(q, record.size());
  guard.unlock();
  if (wake) q->not_full.wake_all();
  return true;
}

bool QueueCore::peek(std::string_view& out, const Deadline& deadline) {
  QueueShared* q = shared_;
  Guard guard(q, object_);
  if (!wait_for_record(q, guard, deadline, spin_hint(), object_)) return false;
  out = head_record(q);
  return true;
}

bool QueueCore::pop_and_peek(std::string_view& out, const Deadline& deadline) {
  QueueShared* q = shared_;
  Guard guard(q, object_);
  if (remove_head(q, head_record(q).size())) {
    guard.unlock();
    q->not_full.wake_all();
    guard.lock(object_);
  }
  if (!wait_for_record(q, guard, deadline, spin_hint(), object_)) return false;
  out = head_record(q);
  return true;
}

std::size_t QueueCore::qsize() const noexcept { return shared_->count.load(std::memory_order_acquire); }

std::size_t QueueCore::maxsize() const noexcept { return shared_->maxsize; }

bool QueueCore::task_done() {
  QueueShared* q = shared_;
  Guard guard(q, object_);
  std::uint64_t left = q->unfinished.load(std::memory_order_relaxed);
  if (left == 0) return false;
  q->unfinished.store(left - 1, std::memory_order_relaxed);
  bool wake = left == 1 && q->all_done.signal();
  guard.unlock();
  if (wake) q->all_done.wake_all();
  return true;
}

bool QueueCore::join(const Deadline& deadline) {
  QueueShared* q = shared_;
  Guard guard(q, object_);
  while (q->unfinished.load(std::memory_order_relaxed) != 0) {
    std::uint32_t seen = q->all_done.prepare_wait();
    guard.unlock();
    bool woken = q->all_done.wait(seen, deadline);
    guard.lock(object_);
    if (!woken && q->unfinished.load(std::memory_order_relaxed) != 0) return false;
  }
  return true;
}

void QueueCore::limit_address_space(std::uint32_t chunks) {
  Guard guard(shared_, object_);
  shared_->slot_limit = std::min(std::max(chunks, shared_->frontier), slot_count);
}

std::size_t QueueCore::resident_chunks() const noexcept {
  return shared_->chunks_in_use.load(std::memory_order_relaxed);
}

}  // namespace mp::detail
