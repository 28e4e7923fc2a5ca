// Load generator for the TLS echo servers in bench/ (one thread, epoll, non-blocking OpenSSL).
// Offers TLS 1.3 with TLS_AES_128_GCM_SHA256 only, and does not check the certificate (the
// servers' certificates are made for the run).
//
//   pingpong:   --conns connections, each handshaken before the clock starts, send one block of
//               --size bytes, then echo back whatever arrives, for --seconds; reports the
//               plaintext bytes read (as bench/pingpong_client).
//   handshake:  --conns connections at a time, each: connect, a full handshake (no resumption),
//               one byte echoed (so the server has finished its side), close_notify, close; then
//               the next. msgs counts completed connections; p50/p99 are their durations.
//
// Prints one line: bytes=... msgs=... seconds=... p50_us=... p99_us=...
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/raw_util.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Conn {
  int fd = -1;
  SSL* ssl = nullptr;
  bool established = false;
  bool sentProbe = false;
  std::string out;  // plaintext SSL_write could not take yet
  uint32_t events = 0;
  Clock::time_point startedAt;
};

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "tls_pingpong_client: %s (errno %d: %s)\n", what, errno,
               ERR_reason_error_string(ERR_peek_last_error())
                   ? ERR_reason_error_string(ERR_peek_last_error())
                   : "-");
  std::exit(1);
}

int epollFd;
sockaddr_in serverAddress;
SSL_CTX* ctx;

void watch(Conn& c, uint32_t events) {
  if (c.events == events) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = &c;
  epoll_ctl(epollFd, c.events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c.fd, &ev);
  c.events = events;
}

// A new non-blocking connection (connect in progress) with a fresh SSL.
void open(Conn& c) {
  c = Conn{};
  c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c.fd < 0) die("socket");
  int one = 1;
  ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(c.fd, reinterpret_cast<sockaddr*>(&serverAddress), sizeof serverAddress) != 0 &&
      errno != EINPROGRESS) {
    die("connect");
  }
  c.ssl = SSL_new(ctx);
  SSL_set_fd(c.ssl, c.fd);
  SSL_set_connect_state(c.ssl);
  c.startedAt = Clock::now();
  watch(c, EPOLLOUT);
}

void close(Conn& c) {
  SSL_shutdown(c.ssl);  // close_notify; the answer is not waited for
  SSL_free(c.ssl);
  ::close(c.fd);
  c.fd = -1;
}

// Sends `data` (after what waits); false: the connection failed.
bool send(Conn& c, const char* data, size_t len) {
  if (!c.out.empty()) {
    c.out.append(data, len);
    return true;
  }
  while (len > 0) {
    int w = SSL_write(c.ssl, data, static_cast<int>(len));
    if (w > 0) {
      data += w;
      len -= static_cast<size_t>(w);
      continue;
    }
    if (SSL_get_error(c.ssl, w) != SSL_ERROR_WANT_WRITE) return false;
    c.out.assign(data, len);
    watch(c, EPOLLIN | EPOLLOUT);
    return true;
  }
  return true;
}

// Drives the handshake; true once it is done.
bool handshake(Conn& c) {
  ERR_clear_error();
  int r = SSL_do_handshake(c.ssl);
  if (r == 1) {
    c.established = true;
    watch(c, EPOLLIN);
    return true;
  }
  int e = SSL_get_error(c.ssl, r);
  if (e == SSL_ERROR_WANT_READ) {
    watch(c, EPOLLIN);
  } else if (e == SSL_ERROR_WANT_WRITE) {
    watch(c, EPOLLOUT);
  } else {
    die("handshake failed");
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0, conns = 1, size = 4096;
  double seconds = 2;
  std::string mode = "pingpong";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--port") {
      port = std::atoi(v.c_str());
    } else if (k == "--conns") {
      conns = std::atoi(v.c_str());
    } else if (k == "--size") {
      size = std::atoi(v.c_str());
    } else if (k == "--seconds") {
      seconds = std::atof(v.c_str());
    } else if (k == "--mode") {
      mode = v;
    } else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  const bool handshakes = mode == "handshake";
  if (port <= 0 || conns <= 0 || size <= 0 || (!handshakes && mode != "pingpong")) {
    std::fprintf(stderr,
                 "usage: %s --port N [--conns N] [--size BYTES] [--seconds S] "
                 "[--mode pingpong|handshake]\n",
                 argv[0]);
    return 2;
  }
  ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256");
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_read_ahead(ctx, 1);
  serverAddress.sin_family = AF_INET;
  serverAddress.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &serverAddress.sin_addr);
  epollFd = epoll_create1(EPOLL_CLOEXEC);

  std::vector<Conn> cs(static_cast<size_t>(conns));
  std::string block(static_cast<size_t>(size), 'x');
  for (size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>('a' + i % 26);
  std::vector<char> buf(1 << 16);
  std::vector<epoll_event> events(1024);
  for (auto& c : cs) open(c);
  if (!handshakes) {  // every connection established before the clock starts
    size_t done = 0;
    while (done < cs.size()) {
      int n = epoll_wait(epollFd, events.data(), static_cast<int>(events.size()), 10000);
      if (n <= 0) die("handshakes timed out");
      for (int i = 0; i < n; ++i) {
        Conn& c = *static_cast<Conn*>(events[i].data.ptr);
        if (!c.established && handshake(c)) ++done;
      }
    }
  }

  const auto start = Clock::now();
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  if (!handshakes) {
    for (auto& c : cs) {
      if (!send(c, block.data(), block.size())) die("SSL_write");
    }
  }
  unsigned long long bytes = 0, msgs = 0;
  std::vector<float> latencyUs;
  for (;;) {
    auto now = Clock::now();
    if (now >= end) break;
    int timeoutMs =
        static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(end - now).count()) +
        1;
    int n = epoll_wait(epollFd, events.data(), static_cast<int>(events.size()), timeoutMs);
    for (int i = 0; i < n; ++i) {
      Conn& c = *static_cast<Conn*>(events[i].data.ptr);
      if (!c.established) {
        if (!handshake(c)) continue;
        if (!send(c, "x", 1)) die("SSL_write");  // the probe
        continue;
      }
      if (!c.out.empty() && (events[i].events & EPOLLOUT)) {
        std::string pending;
        pending.swap(c.out);
        if (!send(c, pending.data(), pending.size())) die("SSL_write");
        if (c.out.empty()) watch(c, EPOLLIN);
      }
      for (;;) {  // every record buffered: SSL_read until it wants more
        ERR_clear_error();
        int r = SSL_read(c.ssl, buf.data(), static_cast<int>(buf.size()));
        if (r <= 0) {
          int e = SSL_get_error(c.ssl, r);
          if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
          die("the server closed a connection");
        }
        bytes += static_cast<unsigned long long>(r);
        if (handshakes) {  // the probe came back: this connection is done, open the next
          auto t = Clock::now();
          latencyUs.push_back(std::chrono::duration<float, std::micro>(t - c.startedAt).count());
          ++msgs;
          close(c);
          open(c);
          break;
        }
        if (!send(c, buf.data(), static_cast<size_t>(r))) die("SSL_write");
      }
    }
  }
  twist::bench::printResult(bytes, msgs,
                            std::chrono::duration<double>(Clock::now() - start).count(), latencyUs);
  return 0;
}
