#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "proxy/http/caller_lookup.hpp"

using namespace tokfence;
using namespace tokfence::proxy;

namespace {

// The rows the lookup hands on, as the request log would receive them.
struct Sink {
  std::mutex mutex;
  std::vector<RequestRecord> rows;
  CallerLookup::Sink fn() {
    return [this](RequestRecord r) {
      std::lock_guard lock(mutex);
      rows.push_back(std::move(r));
    };
  }
  std::size_t size() {
    std::lock_guard lock(mutex);
    return rows.size();
  }
  bool wait_for(std::size_t n) {  // bounded: 10 s
    for (int i = 0; i < 1000; ++i) {
      if (size() >= n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
};

// A child process holding `n` sockets made here (this process closes its copies).
struct Holder {
  pid_t pid = -1;
  std::vector<std::uint64_t> inodes;
  int hold_pipe = -1;
  explicit Holder(int n) {
    std::vector<int> fds;
    for (int i = 0; i < n; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      REQUIRE(fd >= 0);
      struct stat st{};
      REQUIRE(::fstat(fd, &st) == 0);
      fds.push_back(fd);
      inodes.push_back(st.st_ino);
    }
    int p[2];
    REQUIRE(::pipe(p) == 0);
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(p[1]);
      char c;
      while (::read(p[0], &c, 1) > 0) {
      }
      ::_exit(0);
    }
    ::close(p[0]);
    hold_pipe = p[1];
    for (int fd : fds) ::close(fd);
  }
  ~Holder() {
    ::close(hold_pipe);
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
};

RequestRecord row(std::string id) {
  RequestRecord r;
  r.id = std::move(id);
  r.status = 200;
  return r;
}

}  // namespace

TEST_CASE("proxy::CallerLookup writes every row of 300 connections of one process once, naming it") {
  forget_socket_holders();
  Holder agent(300);
  Sink sink;
  CallerLookup lookup(sink.fn());
  std::vector<std::shared_ptr<CallerSlot>> slots;
  for (std::size_t i = 0; i < agent.inodes.size(); ++i) {
    auto slot = std::make_shared<CallerSlot>();
    lookup.start(slot, agent.inodes[i]);
    slots.push_back(slot);
  }
  // Recorded while the look-ups may still run: held in the slot, never dropped.
  for (std::size_t i = 0; i < slots.size(); ++i) lookup.record(row("req_" + std::to_string(i)), slots[i], "");
  REQUIRE(sink.wait_for(300));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // no row written twice
  REQUIRE(sink.size() == 300);
  std::map<std::string, int> seen;
  int named = 0;
  for (const auto& r : sink.rows) {
    ++seen[r.id];
    if (r.caller_pid == agent.pid) ++named;
    else CHECK(r.caller_name == kCallerTimedOut);  // the only other outcome: the 100 ms ran out
  }
  CHECK(seen.size() == 300);
  CHECK(named > 0);
  auto counters = lookup.counters();
  CHECK(counters.connections == 300);
  // Batches, not one read of the agent's table per connection.
  CHECK(counters.tables_scanned < 300);
}

TEST_CASE("proxy::CallerLookup keeps a socket label over the caller's name, and the pid") {
  forget_socket_holders();
  Holder agent(1);
  Sink sink;
  CallerLookup lookup(sink.fn());
  auto slot = std::make_shared<CallerSlot>();
  lookup.start(slot, agent.inodes[0]);
  lookup.record(row("req_label"), slot, "my-agent");
  REQUIRE(sink.wait_for(1));
  CHECK(sink.rows[0].caller_name == "my-agent");
}

TEST_CASE("proxy::CallerLookup writes a row at once when the look-up was given up or has stopped") {
  Sink sink;
  CallerLookup lookup(sink.fn());
  // A socket no process holds (inode 1 is never a socket's): given up by a response's wait.
  auto slot = std::make_shared<CallerSlot>();
  lookup.start(slot, 1);
  lookup.give_up(slot);
  REQUIRE(slot->resolved.load());
  lookup.record(row("req_a"), slot, "");
  REQUIRE(sink.size() == 1);  // written within record(), no thread involved
  CHECK((sink.rows[0].caller_name == kCallerTimedOut || sink.rows[0].caller_name.empty()));

  lookup.stop();
  auto late = std::make_shared<CallerSlot>();
  lookup.start(late, 1);
  REQUIRE(late->resolved.load());
  lookup.record(row("req_b"), late, "");
  REQUIRE(sink.size() == 2);
  CHECK(sink.rows[1].caller_name == kCallerTimedOut);
}

TEST_CASE("proxy::CallerLookup slots of Unix sockets (resolved at accept) never touch the thread") {
  Sink sink;
  CallerLookup lookup(sink.fn());
  auto slot = std::make_shared<CallerSlot>();
  slot->caller = Caller{4242, "python3"};
  lookup.record(row("req_unix"), slot, "");
  REQUIRE(sink.size() == 1);
  CHECK(sink.rows[0].caller_pid == 4242);
  CHECK(sink.rows[0].caller_name == "python3");
  CHECK(lookup.counters().batches == 0);
}
