#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <vector>

#include "core/peer.hpp"

using namespace tokfence;
using SteadyClock = std::chrono::steady_clock;

namespace {

std::uint64_t inode_of(int fd) {
  struct stat st{};
  REQUIRE(::fstat(fd, &st) == 0);
  return st.st_ino;
}

// A child process holding sockets made by this one (this process closes its copies), like an
// agent holding its connections. On request (a byte on its pipe) it opens one more socket and
// answers with that socket's inode; it exits when the pipe closes.
class SocketHolder {
 public:
  explicit SocketHolder(int sockets) {
    std::vector<int> fds;
    for (int i = 0; i < sockets; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      REQUIRE(fd >= 0);
      fds.push_back(fd);
      inodes.push_back(inode_of(fd));
    }
    int ask[2], answer[2];
    REQUIRE(::pipe(ask) == 0);
    REQUIRE(::pipe(answer) == 0);
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(ask[1]);
      ::close(answer[0]);
      char c;
      while (::read(ask[0], &c, 1) == 1) {
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        struct stat st{};
        std::uint64_t ino = fd >= 0 && ::fstat(fd, &st) == 0 ? st.st_ino : 0;
        if (::write(answer[1], &ino, sizeof ino) != sizeof ino) break;
      }
      ::_exit(0);
    }
    ::close(ask[0]);
    ::close(answer[1]);
    ask_ = ask[1];
    answer_ = answer[0];
    for (int fd : fds) ::close(fd);
  }
  ~SocketHolder() {
    ::close(ask_);
    ::close(answer_);
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  std::uint64_t open_one_more() {
    char c = 'n';
    REQUIRE(::write(ask_, &c, 1) == 1);
    std::uint64_t ino = 0;
    REQUIRE(::read(answer_, &ino, sizeof ino) == sizeof ino);
    REQUIRE(ino != 0);
    return ino;
  }

  pid_t pid = -1;
  std::vector<std::uint64_t> inodes;

 private:
  int ask_ = -1, answer_ = -1;
};

std::size_t reads_of(const HolderLookup& r, int pid) {
  return static_cast<std::size_t>(std::count(r.stats.scanned_pids.begin(), r.stats.scanned_pids.end(), pid));
}

auto later() { return SteadyClock::now() + std::chrono::seconds(20); }

}  // namespace

TEST_CASE("core::resolve_socket_holders finds 200 sockets of one process with one read of its descriptors") {
  forget_socket_holders();
  SocketHolder agent(200);
  auto result = resolve_socket_holders(agent.inodes, later());
  CHECK(result.timed_out.empty());
  REQUIRE(result.found.size() == 200);
  for (auto inode : agent.inodes) {
    REQUIRE(result.found.count(inode) == 1);
    CHECK(result.found.at(inode).pid == agent.pid);
  }
  // One pass over the agent's table, not one per socket (the old look-up read it 200 times).
  CHECK(reads_of(result, agent.pid) == 1);
  CHECK(result.stats.from_cache == 0);
}

TEST_CASE("core::resolve_socket_holders answers a known process's open sockets from memory, and reads it again only for new ones") {
  forget_socket_holders();
  SocketHolder agent(300);
  // The first connections of a burst: the agent's table is read once, and every socket it holds
  // is remembered, the 250 not asked for yet included.
  std::vector<std::uint64_t> first(agent.inodes.begin(), agent.inodes.begin() + 50);
  std::vector<std::uint64_t> rest(agent.inodes.begin() + 50, agent.inodes.end());
  auto r1 = resolve_socket_holders(first, later());
  REQUIRE(r1.found.size() == 50);
  CHECK(reads_of(r1, agent.pid) == 1);

  auto r2 = resolve_socket_holders(rest, later());
  REQUIRE(r2.found.size() == 250);
  CHECK(r2.stats.from_cache == 250);
  CHECK(r2.stats.tables_scanned == 0);
  CHECK(r2.stats.links_read == 0);

  // A socket opened after that read: the known process is read again (first), once.
  const std::uint64_t fresh = agent.open_one_more();
  std::vector<std::uint64_t> batch = {fresh, agent.inodes[7]};
  auto r3 = resolve_socket_holders(batch, later());
  REQUIRE(r3.found.size() == 2);
  CHECK(r3.found.at(fresh).pid == agent.pid);
  CHECK(r3.stats.from_cache == 1);
  CHECK(reads_of(r3, agent.pid) == 1);
  REQUIRE(!r3.stats.scanned_pids.empty());
  CHECK(r3.stats.scanned_pids.front() == agent.pid);
}

TEST_CASE("core::resolve_socket_holders forgets a process that exited") {
  forget_socket_holders();
  std::vector<std::uint64_t> inodes;
  {
    SocketHolder agent(5);
    inodes = agent.inodes;
    REQUIRE(resolve_socket_holders(inodes, later()).found.size() == 5);
  }
  // The sockets are gone with their process: nothing answers from memory, and the walk over
  // every process finds no holder (not a time-out).
  auto r = resolve_socket_holders(inodes, later());
  CHECK(r.found.empty());
  CHECK(r.stats.from_cache == 0);
  CHECK(r.timed_out.empty());
}

TEST_CASE("core::resolve_socket_holders stops at its deadline and says which inodes it did not finish") {
  forget_socket_holders();
  SocketHolder agent(3);
  auto r = resolve_socket_holders(agent.inodes, SteadyClock::now() - std::chrono::milliseconds(1));
  CHECK(r.found.empty());
  CHECK(r.timed_out.size() == 3);
  CHECK(r.stats.tables_scanned == 0);
  // Known processes still answer after the deadline: memory costs no read.
  REQUIRE(resolve_socket_holders(agent.inodes, later()).found.size() == 3);
  auto cached = resolve_socket_holders(agent.inodes, SteadyClock::now() - std::chrono::milliseconds(1));
  CHECK(cached.found.size() == 3);
  CHECK(cached.timed_out.empty());
}

TEST_CASE("core::find_socket_holder names the process holding one socket") {
  forget_socket_holders();
  SocketHolder agent(1);
  auto c = find_socket_holder(agent.inodes[0]);
  REQUIRE(c);
  CHECK(c->pid == agent.pid);
  CHECK(!c->name.empty());
  CHECK(!find_socket_holder(0));
}
