#pragma once
// Who is behind each loopback TCP connection, found off the I/O threads and in batches.
//
// At accept, the session gets a CallerSlot; a TCP connection of the daemon's user also has its
// peer socket's inode queued here. One look-up thread takes everything queued since its last
// pass and resolves it together (core/peer.hpp resolve_socket_holders: each candidate process's
// descriptor table is read once per batch, and a known client is read again only for inodes it
// did not hold before), so a client holding 5,000 connections costs a few reads of its 5,000
// descriptors, not 5,000 of them.
//
// Rows never wait long for it, and are never dropped because of it: a row recorded while its
// connection's look-up runs is kept in the slot and written by whoever ends the look-up: the
// look-up thread when it is done, or, once kCallerWait has passed since the accept, the next
// record() or the response that waited for it (give_up). A look-up that ran out of time leaves
// the caller "unknown (look-up timed out)"; one that found no process leaves it empty.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/peer.hpp"
#include "proxy/metering/request_log.hpp"

namespace tokfence::proxy {

// How long after the accept a connection's caller may stay unknown: the first response waits at
// most this long for it (Session::await_caller), and so may a row.
inline constexpr auto kCallerWait = std::chrono::milliseconds(100);
inline constexpr const char* kCallerTimedOut = "unknown (look-up timed out)";

// The process behind a connection. Unix sockets: set at accept (SO_PEERCRED). Loopback TCP: set
// by CallerLookup, `resolved` turning true once (the caller is then never written again).
struct CallerSlot {
  std::atomic<bool> resolved{true};
  Caller caller;

  // While a look-up runs: when it must end, and the rows recorded meanwhile.
  std::mutex mutex;
  std::chrono::steady_clock::time_point deadline{};
  std::vector<RequestRecord> waiting_rows;
};

class CallerLookup {
 public:
  using Sink = std::function<void(RequestRecord)>;
  // `sink` writes a finished row (the request log's record()); called from any thread.
  explicit CallerLookup(Sink sink);
  ~CallerLookup();  // stop()
  CallerLookup(const CallerLookup&) = delete;
  CallerLookup& operator=(const CallerLookup&) = delete;

  // Starts the look-up of `slot` (a connection whose peer socket is `inode`): unresolved until
  // the look-up thread ends it, at most kCallerWait from now.
  void start(const std::shared_ptr<CallerSlot>& slot, std::uint64_t inode);
  // Writes `rec` with the slot's caller (`name`, when not empty, overrides the caller's name):
  // at once when the look-up has ended or is overdue (it is then ended as timed out), else as
  // soon as the look-up thread ends it.
  void record(RequestRecord rec, const std::shared_ptr<CallerSlot>& slot, std::string name);
  // Ends `slot`'s look-up now as timed out, if it is still running (a response waited kCallerWait).
  void give_up(const std::shared_ptr<CallerSlot>& slot);
  // Waits until every look-up started before the call has ended and so handed its waiting rows
  // to the sink (at most about kCallerWait: each look-up ends by its deadline). For `flush`:
  // a row parked in its slot is not yet in the request log's queue.
  void drain();
  // Ends every look-up still queued as timed out (its rows written) and stops the thread.
  // Idempotent; later start() calls end their look-up at once.
  void stop();

  struct Counters {
    std::uint64_t batches = 0, connections = 0, found = 0, not_found = 0, timed_out = 0;
    std::uint64_t tables_scanned = 0, links_read = 0, from_cache = 0;
  };
  Counters counters() const;

 private:
  struct Pending {
    std::shared_ptr<CallerSlot> slot;
    std::uint64_t inode;
  };
  void run();
  // Sets the caller of a still-unresolved slot and writes its waiting rows. false when it was
  // already resolved.
  bool finish(CallerSlot& slot, Caller caller);

  Sink sink_;
  mutable std::mutex mutex_;
  std::condition_variable work_;
  std::vector<Pending> pending_;
  bool in_batch_ = false;  // the thread is resolving a batch taken from pending_
  std::condition_variable idle_;  // pending_ empty and no batch running
  bool stopping_ = false;
  Counters counters_;
  std::thread thread_;
};

}  // namespace tokfence::proxy
