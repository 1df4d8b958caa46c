#pragma once
// Moving bytes from one socket to another through a pipe with splice(2): from one socket's kernel
// buffer to the other's without a trip through user space (a read and a write copy every byte;
// on loopback those copies were a tunnel's whole cost, bench/egress_tunnel.sh). Used by the
// daemon's forward-proxy tunnels (a coroutine) and by tokfence-relay (callbacks): each only waits
// where this says to. Header-only and libc-only, because tokfence-relay is a static binary.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>

namespace tokfence {

struct SpliceStep {
  enum Next {
    again,          // moved `rounds` chunks: let other connections run, then call again
    wait_readable,  // `from` has nothing now: wait until it is readable
    wait_writable,  // `to` takes nothing now: wait until it is writable
    from_ended,     // `from` sent its end (everything before it has been passed on)
    to_failed,      // `to` cannot take more (it closed or reset): `error` says why
    from_failed,    // reading `from` failed: `error` says why
  };
  Next next;
  std::size_t moved = 0;  // bytes delivered to `to` in this call
  int error = 0;          // errno for to_failed / from_failed
};

// The pipe one direction's bytes pass through, and how many of them sit in it now.
class SplicePipe {
 public:
  SplicePipe() {
    int ends[2];
    if (::pipe2(ends, O_CLOEXEC | O_NONBLOCK) == 0) out_ = ends[0], in_ = ends[1];
  }
  ~SplicePipe() {
    if (out_ >= 0) ::close(out_);
    if (in_ >= 0) ::close(in_);
  }
  SplicePipe(const SplicePipe&) = delete;
  SplicePipe& operator=(const SplicePipe&) = delete;
  // False when no pipe could be made (descriptors exhausted): copy with read and write instead.
  bool ok() const { return out_ >= 0 && in_ >= 0; }

 private:
  friend SpliceStep splice_some(int, int, SplicePipe&, std::size_t, int);
  int out_ = -1, in_ = -1;
  std::size_t held_ = 0;
};

// Passes what `from` has on to `to`, at most `chunk` bytes at a time, for at most `rounds` chunks.
// Both sockets must be non-blocking. Bytes already in the pipe are delivered before `from` is read
// again, so nothing is lost between calls.
inline SpliceStep splice_some(int from, int to, SplicePipe& pipe, std::size_t chunk, int rounds) {
  constexpr unsigned kFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
  SpliceStep step{SpliceStep::again};
  auto stop = [&step](SpliceStep::Next next, int error = 0) {
    step.next = next;
    step.error = error;
    return step;
  };
  for (int round = 0; round < rounds; ++round) {
    if (pipe.held_ == 0) {
      const ssize_t got = ::splice(from, nullptr, pipe.in_, nullptr, chunk, kFlags);
      if (got == 0) return stop(SpliceStep::from_ended);
      if (got < 0)
        return errno == EAGAIN || errno == EINTR ? stop(SpliceStep::wait_readable) : stop(SpliceStep::from_failed, errno);
      pipe.held_ = static_cast<std::size_t>(got);
    }
    const ssize_t sent = ::splice(pipe.out_, nullptr, to, nullptr, pipe.held_, kFlags);
    if (sent < 0)
      return errno == EAGAIN || errno == EINTR ? stop(SpliceStep::wait_writable) : stop(SpliceStep::to_failed, errno);
    pipe.held_ -= static_cast<std::size_t>(sent);
    step.moved += static_cast<std::size_t>(sent);
  }
  return step;
}

}  // namespace tokfence
