// Shared by the hand-written baselines and load generators in bench/ (no twist inside).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

namespace twist::bench {

// A non-blocking listening socket on interface:port (backlog 1024), announced with the
// "listening on HOST:PORT" line the drivers read; -1 (after perror) when it cannot listen.
inline int listenAnnounced(const std::string& interface, uint16_t port) {
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, interface.c_str(), &sa.sin_addr);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(lfd, 1024) != 0) {
    std::perror("listen");
    return -1;
  }
  socklen_t len = sizeof sa;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len);
  std::cout << "listening on " << interface << ":" << ntohs(sa.sin_port) << std::endl;
  return lfd;
}

// The same on a UNIX socket at `path` (an old file there is removed first), announced as
// "listening on PATH".
inline int listenAnnouncedUNIX(const std::string& path) {
  int lfd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) return -1;
  path.copy(sa.sun_path, path.size());
  ::unlink(path.c_str());
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(lfd, 1024) != 0) {
    std::perror("listen");
    return -1;
  }
  std::cout << "listening on " << path << std::endl;
  return lfd;
}

// The load generators' one line of result: bytes=... msgs=... seconds=... p50_us=... p99_us=...
inline void printResult(unsigned long long bytes, unsigned long long msgs, double seconds,
                        std::vector<float>& latencyUs) {
  double p50 = 0, p99 = 0;
  if (!latencyUs.empty()) {
    std::sort(latencyUs.begin(), latencyUs.end());
    p50 = latencyUs[latencyUs.size() / 2];
    p99 = latencyUs[std::min(latencyUs.size() - 1, latencyUs.size() * 99 / 100)];
  }
  std::printf("bytes=%llu msgs=%llu seconds=%.4f p50_us=%.1f p99_us=%.1f\n", bytes, msgs, seconds,
              p50, p99);
}

}  // namespace twist::bench
