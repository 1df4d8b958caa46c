#pragma once
// Live request rows for the dashboard's requests page: server-sent events (GET /api/events).
//
// The daemon's I/O threads call publish() for every request row as it is recorded (the same
// observe_records hook that feeds /metrics). With no stream open that is one relaxed atomic load;
// with streams open, a copy of the row into each stream's queue under one mutex. Formatting and
// writing happen on the stream's own thread, never on an I/O thread.
//
// Bounds: at most kMaxStreams streams (a ninth is refused with 503); each queue holds kQueue rows,
// past that rows are dropped and the stream is told how many ("event: dropped"); a stream writes
// at most once per kFlushGap (so at most 1,280 rows a second, whatever the load); every write must
// finish within 2 s or the stream ends; a heartbeat comment goes out every `heartbeat` so a dead
// peer is noticed; a stream ends when its client closes or sends anything, when its session
// expires or logs out, and all of them end on stop() (the daemon stopping).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "proxy/metering/request_log.hpp"

namespace tokfence::proxy {

class DashboardEvents {
 public:
  static constexpr std::size_t kMaxStreams = 8;
  static constexpr std::size_t kQueue = 256;
  static constexpr auto kFlushGap = std::chrono::milliseconds(200);  // at most 5 writes a second

  explicit DashboardEvents(std::chrono::milliseconds heartbeat = std::chrono::seconds(15));
  ~DashboardEvents();  // stop()s
  DashboardEvents(const DashboardEvents&) = delete;
  DashboardEvents& operator=(const DashboardEvents&) = delete;

  // Queues `row` for every open stream. Never throws, never blocks on a client.
  void publish(const RequestRecord& row) noexcept;
  // Serves an event stream on connected non-blocking socket `fd` from a thread of its own, after
  // writing `head` (the HTTP response head). Takes `fd` and returns true, or returns false (the
  // caller keeps `fd`) when kMaxStreams are open or stop() was called. The stream belongs to the
  // dashboard session `session` and ends at `ends` (the session's expiry) or end_session().
  bool adopt(int fd, std::string head, std::string session = {},
             std::chrono::steady_clock::time_point ends = std::chrono::steady_clock::time_point::max());
  // Ends every stream of `session` (a logout), within moments.
  void end_session(std::string_view session);
  // Ends every stream and joins their threads; adopt() refuses from then on.
  void stop();
  std::size_t open_streams() const { return active_.load(std::memory_order_relaxed); }

 private:
  struct Stream {
    int fd = -1;
    int wake = -1;  // eventfd: rows queued or stopping
    std::deque<RequestRecord> queue;
    std::uint64_t dropped = 0;
    bool done = false;
    bool cut = false;  // its session ended (end_session)
    std::string session;
    std::chrono::steady_clock::time_point ends;
    std::thread thread;
  };
  void serve(Stream& s, const std::string& head);
  bool flush(Stream& s);
  void reap_locked();

  const std::chrono::milliseconds heartbeat_;
  mutable std::mutex mutex_;
  std::list<std::unique_ptr<Stream>> streams_;
  std::atomic<std::size_t> active_{0};
  std::atomic<bool> stopping_{false};
};

}  // namespace tokfence::proxy
