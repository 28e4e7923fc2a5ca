// UDP load generator for bench/run_udp.py: --flows sockets, each connected to the server and
// keeping --depth datagrams of --size bytes in flight: every answer is followed by another
// datagram, read and sent in batches (recvmmsg/sendmmsg) so that the client is not what limits
// the rate. A flow that hears nothing for 200 ms is primed again (its datagrams count as lost).
// Prints the raw_util result line plus lost=N.
//   udp_client --port P [--seconds 2] [--flows 100] [--depth 4] [--size 64]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/raw_util.h"

int main(int argc, char** argv) {
  int port = 0, flows = 100, depth = 4, size = 64;
  double seconds = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--port") port = std::atoi(argv[i + 1]);
    if (a == "--flows") flows = std::atoi(argv[i + 1]);
    if (a == "--depth") depth = std::atoi(argv[i + 1]);
    if (a == "--size") size = std::atoi(argv[i + 1]);
    if (a == "--seconds") seconds = std::atof(argv[i + 1]);
  }
  if (port <= 0 || flows < 1 || depth < 1 || depth > 64 || size < 1 || size > 65507) return 2;
  using Clock = std::chrono::steady_clock;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  int ep = ::epoll_create1(0);
  std::vector<int> fds;
  std::vector<Clock::time_point> lastHeard(static_cast<size_t>(flows), Clock::now());
  std::string payload(static_cast<size_t>(size), 'u');
  std::vector<mmsghdr> msgs(64);
  std::vector<iovec> iov(64);
  auto sendBurst = [&](int fd, int count) {
    for (int i = 0; i < count; ++i) {
      iov[i] = {payload.data(), payload.size()};
      msgs[i] = mmsghdr{};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int sent = 0;
    while (sent < count) {
      int k = ::sendmmsg(fd, msgs.data() + sent, static_cast<unsigned>(count - sent), 0);
      if (k <= 0) break;
      sent += k;
    }
  };
  for (int f = 0; f < flows; ++f) {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      std::perror("connect");
      return 1;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(f);
    ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    fds.push_back(fd);
    sendBurst(fd, depth);
  }
  std::vector<char> buf(64 * 65536);
  std::vector<mmsghdr> in(64);
  std::vector<iovec> inIov(64);
  unsigned long long msgsCount = 0, bytes = 0, lost = 0;
  auto start = Clock::now();
  auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<epoll_event> events(256);
  while (Clock::now() < end) {
    int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 50);
    auto now = Clock::now();
    for (int e = 0; e < n; ++e) {
      int f = static_cast<int>(events[e].data.u32);
      for (int i = 0; i < 64; ++i) {
        inIov[i] = {buf.data() + static_cast<size_t>(i) * 65536, 65536};
        in[i] = mmsghdr{};
        in[i].msg_hdr.msg_iov = &inIov[i];
        in[i].msg_hdr.msg_iovlen = 1;
      }
      int got = ::recvmmsg(fds[f], in.data(), 64, MSG_DONTWAIT, nullptr);
      if (got <= 0) continue;
      for (int i = 0; i < got; ++i) bytes += in[i].msg_len;
      msgsCount += static_cast<unsigned long long>(got);
      lastHeard[f] = now;
      sendBurst(fds[f], got);
    }
    for (int f = 0; f < flows; ++f) {
      if (now - lastHeard[f] > std::chrono::milliseconds(200)) {
        lost += static_cast<unsigned long long>(depth);
        lastHeard[f] = now;
        sendBurst(fds[f], depth);
      }
    }
  }
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<float> none;
  twist::bench::printResult(bytes, msgsCount, elapsed, none);
  std::fprintf(stderr, "lost=%llu\n", lost);
  return 0;
}
