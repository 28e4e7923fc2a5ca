// Benchmark baseline for TLS: a hand-written OpenSSL echo over epoll (level-triggered,
// non-blocking sockets, SSL_accept/SSL_read/SSL_write straight on the socket, read-ahead on),
// with the settings twist's ServerContext uses (TLS 1.2 minimum, no compression, no
// renegotiation, a session id context, tickets on). What twist's listenSSL is measured against.
//
//   openssl_echo_server --cert CHAIN.pem --key KEY.pem [--port N] [--interface ADDRESS]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "bench/raw_util.h"
#include "examples/flags.h"

namespace {

struct Conn {
  int fd;
  SSL* ssl;
  bool established = false;
  std::string out;  // plaintext SSL_write could not take yet
  uint32_t events = EPOLLIN;
};

void watch(int ep, Conn* c, uint32_t events) {
  if (c->events == events) return;
  c->events = events;
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = c;
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

void closeConn(Conn* c) {
  SSL_free(c->ssl);
  ::close(c->fd);
  delete c;
}

// SSL_write of `data`; what it cannot take now goes to c->out. False: the connection failed.
bool send(int ep, Conn* c, const char* data, size_t len) {
  while (len > 0) {
    int w = SSL_write(c->ssl, data, static_cast<int>(len));
    if (w > 0) {
      data += w;
      len -= static_cast<size_t>(w);
      continue;
    }
    if (SSL_get_error(c->ssl, w) != SSL_ERROR_WANT_WRITE) return false;
    c->out.append(data, len);
    watch(ep, c, EPOLLOUT);  // stop reading until the peer takes what it has
    return true;
  }
  return true;
}

// Handles readiness; false: close the connection.
bool onEvent(int ep, Conn* c, std::vector<char>& buf) {
  if (!c->established) {
    ERR_clear_error();
    int r = SSL_accept(c->ssl);
    if (r != 1) {
      int e = SSL_get_error(c->ssl, r);
      if (e == SSL_ERROR_WANT_READ) watch(ep, c, EPOLLIN);
      if (e == SSL_ERROR_WANT_WRITE) watch(ep, c, EPOLLOUT);
      return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
    }
    c->established = true;
    watch(ep, c, EPOLLIN);
  }
  if (!c->out.empty()) {
    std::string pending;
    pending.swap(c->out);
    if (!send(ep, c, pending.data(), pending.size())) return false;
    if (!c->out.empty()) return true;
    watch(ep, c, EPOLLIN);
  }
  // Every record the socket holds: SSL_read until it wants more (with read-ahead, records
  // already buffered in OpenSSL would otherwise wait for the next readiness event forever).
  for (;;) {
    ERR_clear_error();
    int n = SSL_read(c->ssl, buf.data(), static_cast<int>(buf.size()));
    if (n <= 0) {
      int e = SSL_get_error(c->ssl, n);
      if (e == SSL_ERROR_WANT_READ) return true;
      if (e == SSL_ERROR_ZERO_RETURN) SSL_shutdown(c->ssl);  // close_notify: answer it
      return false;
    }
    if (!send(ep, c, buf.data(), static_cast<size_t>(n))) return false;
    if (!c->out.empty()) return true;
  }
}

}  // namespace

int main(int argc, char** argv) {
  auto flags = twist::examples::parseServerFlags(argc, argv, {"--cert", "--key"}, 8443);
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_read_ahead(ctx, 1);
  static const unsigned char kSessionContext[] = "bench";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
  if (SSL_CTX_use_certificate_chain_file(ctx, flags.get("--cert").c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, flags.get("--key").c_str(), SSL_FILETYPE_PEM) != 1) {
    std::cerr << "usage: " << argv[0] << " --cert CHAIN.pem --key KEY.pem [--port N]" << std::endl;
    return 1;
  }

  int lfd = twist::bench::listenAnnounced(flags.interface, flags.port);
  if (lfd < 0) return 1;

  int ep = epoll_create1(0);
  epoll_event lev{};
  lev.events = EPOLLIN;
  lev.data.ptr = nullptr;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  std::vector<char> buf(64 * 1024);
  std::vector<epoll_event> events(1024);
  for (;;) {
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), -1);
    for (int i = 0; i < n; ++i) {
      auto* c = static_cast<Conn*>(events[i].data.ptr);
      if (c == nullptr) {
        int fd;
        while ((fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK)) >= 0) {
          int one = 1;
          ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          c = new Conn{fd, SSL_new(ctx), false, {}, EPOLLIN};
          SSL_set_fd(c->ssl, fd);
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.ptr = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      if (!onEvent(ep, c, buf)) closeConn(c);
    }
  }
}
