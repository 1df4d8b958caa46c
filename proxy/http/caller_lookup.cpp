#include "proxy/http/caller_lookup.hpp"

#include <algorithm>
#include <unordered_set>

namespace tokfence::proxy {

namespace {

using SteadyClock = std::chrono::steady_clock;

void fill_caller(RequestRecord& rec, const Caller& caller) {
  rec.caller_pid = caller.pid;
  if (rec.caller_name.empty()) rec.caller_name = caller.name;
}

}  // namespace

CallerLookup::CallerLookup(Sink sink) : sink_(std::move(sink)) { thread_ = std::thread([this] { run(); }); }

CallerLookup::~CallerLookup() { stop(); }

void CallerLookup::start(const std::shared_ptr<CallerSlot>& slot, std::uint64_t inode) {
  slot->deadline = SteadyClock::now() + kCallerWait;
  slot->resolved.store(false);
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      pending_.push_back({slot, inode});
      ++counters_.connections;
      // The thread sleeps until a first look-up comes; the rest of a burst joins the next batch.
      wake = pending_.size() == 1;
    } else {
      slot->resolved.store(true);
      slot->caller = Caller{0, kCallerTimedOut};
      return;
    }
  }
  if (wake) work_.notify_one();
}

bool CallerLookup::finish(CallerSlot& slot, Caller caller) {
  std::vector<RequestRecord> rows;
  {
    std::lock_guard lock(slot.mutex);
    if (slot.resolved.load()) return false;
    slot.caller = std::move(caller);
    slot.resolved.store(true);
    rows.swap(slot.waiting_rows);
  }
  for (auto& rec : rows) {
    fill_caller(rec, slot.caller);
    sink_(std::move(rec));
  }
  return true;
}

void CallerLookup::record(RequestRecord rec, const std::shared_ptr<CallerSlot>& slot, std::string name) {
  rec.caller_name = std::move(name);
  if (!slot->resolved.load()) {
    std::unique_lock lock(slot->mutex);
    if (!slot->resolved.load()) {
      if (SteadyClock::now() < slot->deadline) {
        // Written by whoever ends the look-up, within kCallerWait of the accept.
        slot->waiting_rows.push_back(std::move(rec));
        return;
      }
      lock.unlock();
      if (finish(*slot, Caller{0, kCallerTimedOut})) {
        std::lock_guard count(mutex_);
        ++counters_.timed_out;
      }
    }
  }
  fill_caller(rec, slot->caller);
  sink_(std::move(rec));
}

void CallerLookup::give_up(const std::shared_ptr<CallerSlot>& slot) {
  if (slot->resolved.load()) return;
  if (finish(*slot, Caller{0, kCallerTimedOut})) {
    std::lock_guard lock(mutex_);
    ++counters_.timed_out;
  }
}

void CallerLookup::run() {
  std::vector<Pending> batch;
  std::vector<std::uint64_t> inodes;
  std::unique_lock lock(mutex_);
  for (;;) {
    work_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
    if (stopping_) break;
    batch.swap(pending_);
    in_batch_ = true;
    lock.unlock();

    inodes.clear();
    auto deadline = SteadyClock::time_point::max();
    for (const auto& p : batch) {
      if (p.slot->resolved.load()) continue;  // already given up
      inodes.push_back(p.inode);
      deadline = std::min(deadline, p.slot->deadline);
    }
    HolderLookup result;
    if (!inodes.empty()) result = resolve_socket_holders(inodes, deadline);
    const std::unordered_set<std::uint64_t> late(result.timed_out.begin(), result.timed_out.end());
    Counters add;
    add.batches = 1;
    add.tables_scanned = result.stats.tables_scanned;
    add.links_read = result.stats.links_read;
    add.from_cache = result.stats.from_cache;
    for (auto& p : batch) {
      Caller caller;
      auto it = result.found.find(p.inode);
      if (it != result.found.end()) {
        caller = it->second;
        if (finish(*p.slot, caller)) ++add.found;
      } else if (late.count(p.inode)) {
        if (finish(*p.slot, Caller{0, kCallerTimedOut})) ++add.timed_out;
      } else {
        if (finish(*p.slot, Caller{})) ++add.not_found;
      }
    }
    batch.clear();

    lock.lock();
    counters_.batches += add.batches;
    counters_.found += add.found;
    counters_.not_found += add.not_found;
    counters_.timed_out += add.timed_out;
    counters_.tables_scanned += add.tables_scanned;
    counters_.links_read += add.links_read;
    counters_.from_cache += add.from_cache;
    in_batch_ = false;
    if (pending_.empty()) idle_.notify_all();
  }
  in_batch_ = false;
  idle_.notify_all();
}

void CallerLookup::drain() {
  std::unique_lock lock(mutex_);
  // Every look-up's deadline is at most kCallerWait after its start: twice that bounds the wait
  // even for one queued just now, plus the batch running.
  idle_.wait_for(lock, 3 * kCallerWait, [&] { return stopping_ || (pending_.empty() && !in_batch_); });
}

void CallerLookup::stop() {
  std::vector<Pending> left;
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  work_.notify_one();
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard lock(mutex_);
    left.swap(pending_);
  }
  for (auto& p : left) give_up(p.slot);
}

CallerLookup::Counters CallerLookup::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

}  // namespace tokfence::proxy
