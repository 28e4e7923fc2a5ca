// Public, for users' tests (testonly): helpers for tests that run a real reactor, as twist's own
// tests do. Drive the reactor until a condition holds, with a deadline, never by sleeping
// (runUntil); run a blocking client on its own thread (ClientThread); and small blocking socket
// helpers for such clients.
//
//   twist::Reactor reactor(twist::testing::quietOptions());  // no signal handlers in tests
//   auto port = reactor.listenTCP(0, factory, {.interface = "127.0.0.1"});
//   std::string got;
//   twist::testing::ClientThread client([&] {
//     int fd = twist::testing::connectTo(port->getHost().port());
//     twist::testing::sendAll(fd, "ping");
//     got = twist::testing::recvAtMost(fd, 4);
//     ::close(fd);
//   });
//   ASSERT_TRUE(twist::testing::runUntil(reactor, [&] { return client.done(); }));
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

#include "twist/reactor/reactor_base.h"

namespace twist::testing {

// Runs the reactor's loop until `done()` is true or `timeoutSeconds` pass. Returns done().
inline bool runUntil(ReactorBase& reactor, const std::function<bool()>& done,
                     double timeoutSeconds = 20) {
  double deadline = reactor.seconds() + timeoutSeconds;
  while (!done()) {
    if (reactor.seconds() > deadline) return done();
    reactor.iterate(0.02);
  }
  return true;
}

// Runs the loop for `seconds` of wall time (for checks that something does NOT happen).
inline void runFor(ReactorBase& reactor, double seconds) {
  double end = reactor.seconds() + seconds;
  while (reactor.seconds() < end) reactor.iterate(end - reactor.seconds());
}

inline ReactorBase::Options quietOptions() {
  ReactorBase::Options o;
  o.installSignalHandlers = false;
  return o;
}

// A socket of `type` (SOCK_STREAM, SOCK_DGRAM) bound to a free port of 127.0.0.1, which is
// stored in *port; listening with `backlog` unless that is negative.
inline int bindLoopback(int type, uint16_t* port, int backlog = -1) {
  int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      (backlog >= 0 && ::listen(fd, backlog) != 0)) {
    throw std::runtime_error("bindLoopback failed");
  }
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  *port = ntohs(sa.sin_port);
  return fd;
}

// A blocking TCP socket connected to 127.0.0.1:port (the connect completes in the kernel's
// backlog, so no reactor needs to run for it).
inline int connectTo(uint16_t port, const char* host = "127.0.0.1") {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, host, &sa.sin_addr);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    throw std::runtime_error("connect failed");
  }
  return fd;
}

inline bool sendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads until `n` bytes arrived, EOF, an error, or the timeout. Returns what arrived.
inline std::string recvAtMost(int fd, size_t n, double timeoutSeconds = 20) {
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeoutSeconds);
  char buf[65536];
  while (out.size() < n) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    ssize_t r = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), 0);
    if (r <= 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

// Reads until EOF (or error/timeout). Returns what arrived; *eof tells whether EOF was seen
// (a clean FIN), as opposed to a reset or a timeout.
inline std::string recvUntilEof(int fd, bool* eof = nullptr, double timeoutSeconds = 20) {
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeoutSeconds);
  char buf[65536];
  if (eof) *eof = false;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r == 0 && eof) *eof = true;
    if (r <= 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

// Sends `data` over and over on a non-blocking copy of the socket, never reading, until the
// peer stops taking it for `stuckSeconds` (its buffers and ours are full) or `limit` bytes went.
// Returns how many bytes were sent.
inline size_t floodUntilStuck(int fd, std::string_view data, size_t limit,
                              double stuckSeconds = 1) {
  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  size_t sent = 0;
  size_t offset = 0;
  while (sent < limit) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(stuckSeconds * 1000)) != 1 || !(p.revents & POLLOUT)) break;
    size_t n = std::min(data.size() - offset, limit - sent);
    ssize_t r = ::send(fd, data.data() + offset, n, MSG_NOSIGNAL);
    if (r < 0 && errno != EAGAIN) break;
    if (r > 0) {
      sent += static_cast<size_t>(r);
      offset = (offset + static_cast<size_t>(r)) % data.size();
    }
  }
  ::fcntl(fd, F_SETFL, flags);
  return sent;
}

// Makes close() send a reset (RST) instead of a FIN.
inline void setLingerZero(int fd) {
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

// Runs `body` on its own thread; done() turns true when it returns. Joins on destruction.
class ClientThread {
 public:
  explicit ClientThread(std::function<void()> body)
      : thread_([this, body = std::move(body)] {
          body();
          done_.store(true);
        }) {}
  ~ClientThread() { thread_.join(); }
  bool done() const { return done_.load(); }

 private:
  std::atomic<bool> done_{false};
  std::thread thread_;
};

}  // namespace twist::testing
