#pragma once
// The daemon's end of the control socket (client side and the wire format: control_protocol.hpp).
// A blocking listener thread plus one short-lived, joined thread per connection (at most 64 open at
// once): control traffic is a handful of requests, and it must never queue behind proxy traffic on
// the I/O threads.
#include <filesystem>
#include <memory>

#include "core/error.hpp"
#include "proxy/control/protocol.hpp"

namespace tokfence::proxy {

// Accepts the peer on connected Unix socket `fd` only when its uid is ours, its network and mount
// namespaces are ours (compared by /proc/<pid>/ns/{net,mnt} inode) and it is not a tokfence-relay
// (by /proc/<pid>/exe). The error says why not.
Result<void> check_control_peer(int fd);

class ControlServer {
 public:
  // Binds `path` with mode 0600 and serves `router` until stop().
  static Result<std::unique_ptr<ControlServer>> start(const std::filesystem::path& path, const ControlRouter& router);
  ~ControlServer();
  // Stops accepting, removes the socket file, lets answers in progress go out (up to 1 s), cuts
  // idle connections and joins every connection thread: none outlives stop().
  void stop();

  struct Impl;

 private:
  explicit ControlServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tokfence::proxy
