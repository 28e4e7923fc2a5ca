#include "twist/reactor/address.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstddef>
#include <stdexcept>

namespace twist {

Address Address::fromSockaddr(const sockaddr* sa, socklen_t len) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    return IPv4Address{buf, ntohs(in->sin_port)};
  }
  if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
    return IPv6Address{buf, ntohs(in6->sin6_port), ntohl(in6->sin6_flowinfo), in6->sin6_scope_id};
  }
  if (sa->sa_family == AF_UNIX && len >= static_cast<socklen_t>(offsetof(sockaddr_un, sun_path))) {
    const auto* un = reinterpret_cast<const sockaddr_un*>(sa);
    size_t n = static_cast<size_t>(len) - offsetof(sockaddr_un, sun_path);
    std::string path(un->sun_path, n);
    if (!path.empty() && path[0] != '\0') path.resize(path.find('\0'));  // a file path
    return UNIXAddress{path};
  }
  throw std::invalid_argument("unsupported socket address family " + std::to_string(sa->sa_family));
}

std::string Address::host() const {
  if (auto* a = get<IPv4Address>()) return a->host;
  if (auto* a = get<IPv6Address>()) return a->host;
  if (auto* a = get<UNIXAddress>()) return a->path;
  return "";
}

uint16_t Address::port() const {
  if (auto* a = get<IPv4Address>()) return a->port;
  if (auto* a = get<IPv6Address>()) return a->port;
  return 0;
}

std::string Address::toString() const {
  if (auto* a = get<IPv4Address>()) return a->host + ":" + std::to_string(a->port);
  if (auto* a = get<IPv6Address>()) return "[" + a->host + "]:" + std::to_string(a->port);
  if (auto* a = get<UNIXAddress>()) return a->path;
  return "";
}

std::string Address::repr() const {
  if (auto* a = get<IPv4Address>()) {
    return "IPv4Address(host='" + a->host + "', port=" + std::to_string(a->port) + ")";
  }
  if (auto* a = get<IPv6Address>()) {
    return "IPv6Address(host='" + a->host + "', port=" + std::to_string(a->port) + ")";
  }
  if (auto* a = get<UNIXAddress>()) return "UNIXAddress('" + a->path + "')";
  return "None";
}

std::ostream& operator<<(std::ostream& os, const Address& a) { return os << a.repr(); }

bool parseIPAddress(std::string_view host, uint16_t port, sockaddr_storage* out, socklen_t* len) {
  // inet_pton reads a C string: a NUL inside the view would cut it short ("127.0.0.1\0junk").
  if (host.find('\0') != std::string_view::npos || host.size() >= INET6_ADDRSTRLEN) return false;
  std::string h(host);
  *out = sockaddr_storage{};
  auto* in = reinterpret_cast<sockaddr_in*>(out);
  if (inet_pton(AF_INET, h.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    *len = sizeof(sockaddr_in);
    return true;
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(out);
  if (inet_pton(AF_INET6, h.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    *len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

}  // namespace twist
