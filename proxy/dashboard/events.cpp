#include "proxy/dashboard/events.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "proxy/dashboard/auth.hpp"
#include "proxy/dashboard/data.hpp"

namespace tokfence::proxy {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kWriteTime = std::chrono::seconds(2);

int ms_until(Clock::time_point t) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(t - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

bool send_all(int fd, const std::string& data) {
  const auto deadline = Clock::now() + kWriteTime;
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      const int left = ms_until(deadline);
      if (left == 0 || ::poll(&p, 1, left) <= 0) return false;
    } else {
      return false;
    }
  }
  return true;
}

void signal_fd(int fd) {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(fd, &one, sizeof one);
}

}  // namespace

DashboardEvents::DashboardEvents(std::chrono::milliseconds heartbeat) : heartbeat_(heartbeat) {}
DashboardEvents::~DashboardEvents() { stop(); }

void DashboardEvents::publish(const RequestRecord& row) noexcept {
  if (active_.load(std::memory_order_relaxed) == 0) return;
  try {
    std::lock_guard lock(mutex_);
    for (auto& s : streams_) {
      if (s->done) continue;
      if (s->queue.size() >= kQueue) {
        ++s->dropped;
        continue;
      }
      const bool was_empty = s->queue.empty() && s->dropped == 0;
      s->queue.push_back(row);
      if (was_empty) signal_fd(s->wake);  // one wake-up per batch, not per row
    }
  } catch (...) {
    // Out of memory copying a row: the live view misses it; the request log has it.
  }
}

bool DashboardEvents::adopt(int fd, std::string head, std::string session, Clock::time_point ends) {
  std::lock_guard lock(mutex_);
  reap_locked();
  if (stopping_.load() || streams_.size() >= kMaxStreams) return false;
  auto s = std::make_unique<Stream>();
  s->wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->wake < 0) return false;
  s->fd = fd;
  s->session = std::move(session);
  s->ends = ends;
  Stream* raw = s.get();
  streams_.push_back(std::move(s));
  active_.fetch_add(1, std::memory_order_relaxed);
  raw->thread = std::thread([this, raw, head = std::move(head)] { serve(*raw, head); });
  return true;
}

void DashboardEvents::end_session(std::string_view session) {
  std::lock_guard lock(mutex_);
  for (auto& s : streams_)
    if (!s->done && equal_secret(s->session, session)) {
      s->cut = true;
      signal_fd(s->wake);
    }
}

// Writes what is queued; false when the client is gone (or too slow to take it within 2 s).
bool DashboardEvents::flush(Stream& s) {
  std::deque<RequestRecord> rows;
  std::uint64_t dropped = 0;
  {
    std::lock_guard lock(mutex_);
    rows.swap(s.queue);
    dropped = std::exchange(s.dropped, 0);
  }
  std::string out;
  for (const auto& row : rows) {
    const std::string data =
        request_json(row).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    out += "event: request\ndata: " + data + "\n\n";
  }
  if (dropped) out += "event: dropped\ndata: {\"dropped\":" + std::to_string(dropped) + "}\n\n";
  return out.empty() || send_all(s.fd, out);
}

void DashboardEvents::serve(Stream& s, const std::string& head) {
  ::pthread_setname_np(::pthread_self(), "tf-dash-sse");
  bool alive = send_all(s.fd, head + "retry: 3000\n\n");
  auto next_beat = Clock::now() + heartbeat_;
  auto next_flush = Clock::now();
  bool pending = false;  // rows queued, waiting for next_flush
  while (alive && !stopping_.load()) {
    pollfd p[2] = {{s.fd, POLLIN, 0}, {s.wake, POLLIN, 0}};
    const auto wake_at = std::min(s.ends, pending ? std::min(next_beat, next_flush) : next_beat);
    if (::poll(p, 2, ms_until(wake_at)) < 0 && errno != EINTR) break;
    if (stopping_.load()) break;
    // An EventSource sends nothing after its request: readable means closed (or misbehaving).
    if (p[0].revents) break;
    if (p[1].revents) {
      std::uint64_t n = 0;
      [[maybe_unused]] auto r = ::read(s.wake, &n, sizeof n);
      pending = true;
      std::lock_guard lock(mutex_);
      if (s.cut) break;  // logged out
    }
    const auto now = Clock::now();
    if (now >= s.ends) break;  // the session expired
    // At most one write per kFlushGap: under heavy load a stream costs at most
    // kQueue / kFlushGap rows formatted a second (the rest are counted as dropped), so watching
    // the dashboard cannot take the proxy's CPU.
    if (pending && now >= next_flush) {
      alive = flush(s);
      pending = false;
      next_flush = now + kFlushGap;
    }
    if (alive && now >= next_beat) {
      alive = send_all(s.fd, ": heartbeat\n\n");
      next_beat = now + heartbeat_;
    }
  }
  ::shutdown(s.fd, SHUT_RDWR);
  std::lock_guard lock(mutex_);
  s.done = true;
  s.queue.clear();
  active_.fetch_sub(1, std::memory_order_relaxed);
}

void DashboardEvents::reap_locked() {
  for (auto it = streams_.begin(); it != streams_.end();) {
    if (!(*it)->done) {
      ++it;
      continue;
    }
    // done is set as the thread's last step: the join returns at once.
    if ((*it)->thread.joinable()) (*it)->thread.join();
    ::close((*it)->fd);
    ::close((*it)->wake);
    it = streams_.erase(it);
  }
}

void DashboardEvents::stop() {
  std::list<std::unique_ptr<Stream>> all;
  {
    std::lock_guard lock(mutex_);
    stopping_.store(true);
    for (auto& s : streams_) signal_fd(s->wake);
    all.swap(streams_);
  }
  for (auto& s : all) {
    if (s->thread.joinable()) s->thread.join();
    ::close(s->fd);
    ::close(s->wake);
  }
}

}  // namespace tokfence::proxy
