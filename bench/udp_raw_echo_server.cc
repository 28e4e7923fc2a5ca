// The hand-written UDP baseline for bench/run_udp.py: one socket, epoll, and each readable
// event answered with one recvmmsg of up to --batch datagrams and one sendmmsg sending each back
// to its sender (--batch 1: recvfrom/sendto, one system call per datagram). No twist inside.
//   udp_raw_echo_server [--port 0] [--batch 64] [--max 2048]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  int port = 0, batch = 64, max = 2048;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    int v = std::atoi(argv[i + 1]);
    if (a == "--port") port = v;
    if (a == "--batch") batch = v;
    if (a == "--max") max = v;
  }
  if (batch < 1 || batch > 1024 || max < 1 || max > 65535) return 2;
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    std::perror("bind");
    return 1;
  }
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  std::cout << "listening on 127.0.0.1:" << ntohs(sa.sin_port) << std::endl;

  int ep = ::epoll_create1(0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  std::vector<char> buf(static_cast<size_t>(batch) * static_cast<size_t>(max));
  std::vector<mmsghdr> msgs(static_cast<size_t>(batch));
  std::vector<iovec> iov(static_cast<size_t>(batch));
  std::vector<sockaddr_storage> from(static_cast<size_t>(batch));
  for (;;) {
    epoll_event events[1];
    if (::epoll_wait(ep, events, 1, -1) < 0) continue;
    if (batch == 1) {
      sockaddr_storage peer;
      socklen_t plen = sizeof peer;
      ssize_t n = ::recvfrom(fd, buf.data(), static_cast<size_t>(max), 0,
                             reinterpret_cast<sockaddr*>(&peer), &plen);
      if (n >= 0) {
        ::sendto(fd, buf.data(), static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&peer),
                 plen);
      }
      continue;
    }
    for (int i = 0; i < batch; ++i) {
      iov[i] = {buf.data() + static_cast<size_t>(i) * static_cast<size_t>(max),
                static_cast<size_t>(max)};
      msgs[i] = mmsghdr{};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof from[i];
    }
    int n = ::recvmmsg(fd, msgs.data(), static_cast<unsigned>(batch), MSG_DONTWAIT, nullptr);
    if (n <= 0) continue;
    for (int i = 0; i < n; ++i) iov[i].iov_len = msgs[i].msg_len;  // echo exactly what came
    int sent = 0;
    while (sent < n) {
      int k = ::sendmmsg(fd, msgs.data() + sent, static_cast<unsigned>(n - sent), 0);
      if (k <= 0) break;  // a full buffer: the rest is dropped, as UDP does
      sent += k;
    }
  }
}
