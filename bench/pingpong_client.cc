// Load generator for the echo servers in bench/ (one thread, epoll, non-blocking sockets).
//
//   pingpong: each connection sends one block of --size bytes, then echoes back whatever
//             arrives, for --seconds; reports bytes read (the muduo/Asio ping-pong test).
//   rr:       closed-loop request/response: each connection sends --size bytes, waits until
//             that many came back, records the round-trip time, and sends the next.
//   pipeline: like rr, but each request is --depth lines of --size bytes (newline included)
//             sent at once, as a pipelining client (Redis, HTTP/1.1) does; a line-echo server
//             answers each line. msgs counts lines.
//   accept:   short connections: each of --conns loops connects, sends --size bytes, waits
//             for them to come back, closes, and connects again. msgs counts connections.
// --idle N opens N more connections first that stay silent (a server with many clients of
// which few are busy: what separates select and poll from epoll).
//
// Prints one line: bytes=... msgs=... seconds=... p50_us=... p99_us=...
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/raw_util.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Conn {
  int fd = -1;
  std::string pending;  // bytes still to send
  size_t got = 0;       // rr: bytes of the current reply received
  Clock::time_point sentAt;
  bool wantWrite = false;
};

[[noreturn]] void die(const char* what) {
  std::perror(what);
  std::exit(1);
}

void setInterest(int ep, Conn& c, bool write) {
  if (c.wantWrite == write) return;
  c.wantWrite = write;
  epoll_event ev{};
  ev.events = EPOLLIN | (write ? static_cast<uint32_t>(EPOLLOUT) : 0u);
  ev.data.ptr = &c;
  epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
}

// Sends pending then `data`; keeps what the kernel does not take.
bool sendOrQueue(int ep, Conn& c, const char* data, size_t len) {
  if (c.pending.empty()) {
    ssize_t n = ::send(c.fd, data, len, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN) return false;
    if (n < 0) n = 0;
    data += n;
    len -= static_cast<size_t>(n);
  }
  if (len > 0) {
    c.pending.append(data, len);
    setInterest(ep, c, true);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0, conns = 1, size = 16, depth = 1, idle = 0;
  double seconds = 2;
  std::string mode = "pingpong", unixPath;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--port")
      port = std::atoi(v.c_str());
    else if (k == "--unix")
      unixPath = v;
    else if (k == "--conns")
      conns = std::atoi(v.c_str());
    else if (k == "--size")
      size = std::atoi(v.c_str());
    else if (k == "--seconds")
      seconds = std::atof(v.c_str());
    else if (k == "--mode")
      mode = v;
    else if (k == "--depth")
      depth = std::atoi(v.c_str());
    else if (k == "--idle")
      idle = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  const bool pipeline = mode == "pipeline";
  const bool shortConns = mode == "accept";
  const bool rr = mode == "rr" || pipeline || shortConns;
  if ((port <= 0 && unixPath.empty()) || conns <= 0 || size <= 0 || depth <= 0 || idle < 0 ||
      (!rr && mode != "pingpong")) {
    std::fprintf(stderr,
                 "usage: %s --port N|--unix PATH [--conns N] [--size BYTES] [--seconds S] "
                 "[--mode pingpong|rr|pipeline|accept] [--depth LINES] [--idle N]\n",
                 argv[0]);
    return 2;
  }

  int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<Conn> cs(static_cast<size_t>(conns));
  std::string block(static_cast<size_t>(size), 'x');
  for (size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>('a' + i % 26);
  if (pipeline) {
    block.back() = '\n';
    std::string lines;
    for (int i = 0; i < depth; ++i) lines += block;
    block = lines;
  }
  const unsigned long long msgsPerReply = pipeline ? static_cast<unsigned long long>(depth) : 1;
  // The server: 127.0.0.1:port, or the UNIX socket at --unix.
  sockaddr_storage target{};
  socklen_t targetLen;
  if (unixPath.empty()) {
    auto* in = reinterpret_cast<sockaddr_in*>(&target);
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &in->sin_addr);
    targetLen = sizeof(sockaddr_in);
  } else {
    auto* un = reinterpret_cast<sockaddr_un*>(&target);
    un->sun_family = AF_UNIX;
    if (unixPath.size() >= sizeof un->sun_path) die("--unix: path too long");
    unixPath.copy(un->sun_path, unixPath.size());
    targetLen = sizeof(sockaddr_un);
  }
  const int family = target.ss_family;
  std::vector<int> idlers;
  for (int i = 0; i < idle; ++i) {
    int fd = ::socket(family, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    if (::connect(fd, reinterpret_cast<sockaddr*>(&target), targetLen) != 0) die("connect (idle)");
    idlers.push_back(fd);
  }
  auto open = [&](Conn& c) {
    c.fd = ::socket(family, SOCK_STREAM, 0);
    if (c.fd < 0) die("socket");
    if (::connect(c.fd, reinterpret_cast<sockaddr*>(&target), targetLen) != 0) die("connect");
    int one = 1;
    ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::fcntl(c.fd, F_SETFL, O_NONBLOCK);
    c.wantWrite = false;
    c.pending.clear();
    c.got = 0;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &c;
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  };
  for (auto& c : cs) open(c);

  const auto start = Clock::now();
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  for (auto& c : cs) {
    c.sentAt = start;
    if (!sendOrQueue(ep, c, block.data(), block.size())) die("send");
  }

  unsigned long long bytes = 0, msgs = 0;
  std::vector<float> latencyUs;
  latencyUs.reserve(1 << 20);
  std::vector<char> buf(1 << 16);
  std::vector<epoll_event> events(1024);
  for (;;) {
    auto now = Clock::now();
    if (now >= end) break;
    int timeoutMs =
        static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(end - now).count()) +
        1;
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), timeoutMs);
    for (int i = 0; i < n; ++i) {
      Conn& c = *static_cast<Conn*>(events[i].data.ptr);
      if (events[i].events & EPOLLOUT) {
        ssize_t w = ::send(c.fd, c.pending.data(), c.pending.size(), MSG_NOSIGNAL);
        if (w > 0) c.pending.erase(0, static_cast<size_t>(w));
        if (c.pending.empty()) setInterest(ep, c, false);
      }
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        ssize_t r = ::read(c.fd, buf.data(), buf.size());
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
          std::fprintf(stderr, "server closed a connection\n");
          return 1;
        }
        if (r < 0) continue;
        bytes += static_cast<unsigned long long>(r);
        if (!rr) {
          if (!sendOrQueue(ep, c, buf.data(), static_cast<size_t>(r))) die("send");
          continue;
        }
        c.got += static_cast<size_t>(r);
        if (c.got >= block.size()) {  // a reply is complete: record it, send the next request
          auto t = Clock::now();
          latencyUs.push_back(std::chrono::duration<float, std::micro>(t - c.sentAt).count());
          msgs += msgsPerReply;
          c.got -= block.size();
          c.sentAt = t;
          if (shortConns) {  // this connection is done: close it, open the next
            ::close(c.fd);
            open(c);
            c.sentAt = Clock::now();
          }
          if (!sendOrQueue(ep, c, block.data(), block.size())) die("send");
        }
      }
    }
  }
  twist::bench::printResult(bytes, msgs,
                            std::chrono::duration<double>(Clock::now() - start).count(), latencyUs);
  return 0;
}
