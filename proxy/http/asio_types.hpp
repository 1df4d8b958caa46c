#pragma once
// The proxy's I/O types, bound to io_context's own executor type instead of Asio's default
// any_io_executor. The default wraps the executor in a type-erased object that is copied,
// queried and destroyed around every asynchronous operation and coroutine resumption; in
// profiles of the daemon under load that bookkeeping cost as much as parsing HTTP. Every I/O
// thread runs one io_context, so nothing here needs a polymorphic executor.
#include <chrono>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/basic_resolver.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/error_code.hpp>

namespace tokfence::proxy::aio {

using Executor = boost::asio::io_context::executor_type;
template <class T>
using Task = boost::asio::awaitable<T, Executor>;
inline constexpr boost::asio::use_awaitable_t<Executor> use_task{};

using TcpSocket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, Executor>;
using TcpAcceptor = boost::asio::basic_socket_acceptor<boost::asio::ip::tcp, Executor>;
using UnixSocket = boost::asio::basic_stream_socket<boost::asio::local::stream_protocol, Executor>;
using UnixAcceptor = boost::asio::basic_socket_acceptor<boost::asio::local::stream_protocol, Executor>;
using Timer = boost::asio::basic_waitable_timer<std::chrono::steady_clock,
                                                boost::asio::wait_traits<std::chrono::steady_clock>, Executor>;
using Resolver = boost::asio::ip::basic_resolver<boost::asio::ip::tcp, Executor>;

// co_await op(..., with_ec(ec)): errors land in `ec` instead of being thrown.
inline auto with_ec(boost::system::error_code& ec) { return boost::asio::redirect_error(use_task, ec); }

}  // namespace tokfence::proxy::aio
