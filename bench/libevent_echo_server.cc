// Benchmark baseline: the plain libevent echo, one bufferevent per connection, moving the input
// buffer to the output buffer in the read callback (as libevent's own samples do).
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <iostream>

#include "examples/flags.h"

namespace {

void onRead(bufferevent* bev, void*) { bufferevent_write_buffer(bev, bufferevent_get_input(bev)); }

void onEvent(bufferevent* bev, short what, void*) {
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) bufferevent_free(bev);
}

void onAccept(evconnlistener* l, evutil_socket_t fd, sockaddr*, int, void*) {
  bufferevent* bev = bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
  bufferevent_setcb(bev, onRead, nullptr, onEvent, nullptr);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
}

}  // namespace

int main(int argc, char** argv) {
  auto flags = twist::examples::parseServerFlags(argc, argv);
  event_base* base = event_base_new();
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(flags.port);
  inet_pton(AF_INET, flags.interface.c_str(), &sa.sin_addr);
  evconnlistener* l =
      evconnlistener_new_bind(base, onAccept, nullptr, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                              1024, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  if (l == nullptr) {
    std::perror("listen");
    return 1;
  }
  sockaddr_in bound{};
  socklen_t len = sizeof bound;
  getsockname(evconnlistener_get_fd(l), reinterpret_cast<sockaddr*>(&bound), &len);
  std::cout << "listening on " << flags.interface << ":" << ntohs(bound.sin_port) << std::endl;
  event_base_dispatch(base);
}
