// Benchmark ceiling: a hand-written epoll echo (level-triggered, one 64 KiB read buffer, write
// straight back, queue only what the kernel does not take).
#include <arpa/inet.h>
#include <netinet/in.h>
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
  std::string out;
};

void watch(int ep, Conn* c, bool write, int op) {
  epoll_event ev{};
  ev.events = EPOLLIN | (write ? static_cast<uint32_t>(EPOLLOUT) : 0u);
  ev.data.ptr = c;
  epoll_ctl(ep, op, c->fd, &ev);
}

void closeConn(Conn* c) {
  ::close(c->fd);
  delete c;
}

}  // namespace

int main(int argc, char** argv) {
  auto flags = twist::examples::parseServerFlags(argc, argv);
  // --listen unix:PATH (bench/run_unix.py), else TCP.
  int lfd = flags.listen.rfind("unix:", 0) == 0
                ? twist::bench::listenAnnouncedUNIX(flags.listen.substr(5))
                : twist::bench::listenAnnounced(flags.interface, flags.port);
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
          watch(ep, new Conn{fd, {}}, false, EPOLL_CTL_ADD);
        }
        continue;
      }
      if (events[i].events & EPOLLOUT) {
        ssize_t w = ::send(c->fd, c->out.data(), c->out.size(), MSG_NOSIGNAL);
        if (w > 0) c->out.erase(0, static_cast<size_t>(w));
        if (c->out.empty()) watch(ep, c, false, EPOLL_CTL_MOD);
      }
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        ssize_t r = ::read(c->fd, buf.data(), buf.size());
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
          closeConn(c);
          continue;
        }
        if (r < 0) continue;
        const char* p = buf.data();
        size_t left = static_cast<size_t>(r);
        if (c->out.empty()) {
          ssize_t w = ::send(c->fd, p, left, MSG_NOSIGNAL);
          if (w > 0) {
            p += w;
            left -= static_cast<size_t>(w);
          }
        }
        if (left > 0) {
          bool was = !c->out.empty();
          c->out.append(p, left);
          if (!was) watch(ep, c, true, EPOLL_CTL_MOD);
        }
      }
    }
  }
}
