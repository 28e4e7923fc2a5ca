#include "twist/reactor/address.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
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
    size_t n =
        std::min(static_cast<size_t>(len) - offsetof(sockaddr_un, sun_path), sizeof un->sun_path);
    std::string path(un->sun_path, n);
    if (!path.empty() && path[0] != '\0') {  // a file path: up to its NUL, if it has one
      if (size_t end = path.find('\0'); end != std::string::npos) path.resize(end);
    }
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

namespace {
// An abstract name with '@' for its leading NUL (as ss and systemd print them).
std::string shownPath(const std::string& path) {
  if (path.empty() || path[0] != '\0') return path;
  return "@" + path.substr(1);
}
}  // namespace

uint16_t Address::port() const {
  if (auto* a = get<IPv4Address>()) return a->port;
  if (auto* a = get<IPv6Address>()) return a->port;
  return 0;
}

std::string Address::toString() const {
  if (auto* a = get<IPv4Address>()) return a->host + ":" + std::to_string(a->port);
  if (auto* a = get<IPv6Address>()) return "[" + a->host + "]:" + std::to_string(a->port);
  if (auto* a = get<UNIXAddress>()) return shownPath(a->path);
  return "";
}

std::string Address::repr() const {
  if (auto* a = get<IPv4Address>()) {
    return "IPv4Address(host='" + a->host + "', port=" + std::to_string(a->port) + ")";
  }
  if (auto* a = get<IPv6Address>()) {
    return "IPv6Address(host='" + a->host + "', port=" + std::to_string(a->port) + ")";
  }
  if (auto* a = get<UNIXAddress>()) {
    std::string r = "UNIXAddress('" + shownPath(a->path) + "'";
    if (a->credentials) {
      r += ", pid=" + std::to_string(a->credentials->pid) +
           ", uid=" + std::to_string(a->credentials->uid) +
           ", gid=" + std::to_string(a->credentials->gid);
    }
    return r + ")";
  }
  return "None";
}

std::ostream& operator<<(std::ostream& os, const Address& a) { return os << a.repr(); }

bool parseBindAddress(std::string_view interface, uint16_t port, sockaddr_storage* out,
                      socklen_t* len) {
  if (!interface.empty()) return parseIPAddress(interface, port, out, len);
  *out = sockaddr_storage{};
  auto* in = reinterpret_cast<sockaddr_in*>(out);
  in->sin_family = AF_INET;
  in->sin_addr.s_addr = htonl(INADDR_ANY);
  in->sin_port = htons(port);
  *len = sizeof(sockaddr_in);
  return true;
}

bool makeUNIXSockaddr(std::string_view path, sockaddr_storage* out, socklen_t* len) {
  *out = sockaddr_storage{};
  auto* un = reinterpret_cast<sockaddr_un*>(out);
  std::string p(path);
  bool abstract = !p.empty() && (p[0] == '\0' || p[0] == '@');
  if (abstract) {
    p[0] = '\0';
  } else if (p.find('\0') != std::string::npos) {
    return false;
  }
  // A file path needs room for its terminating NUL; an abstract name is counted by length.
  if (p.empty() || p.size() + (abstract ? 0 : 1) > sizeof un->sun_path) return false;
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, p.data(), p.size());
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + p.size() + (abstract ? 0 : 1));
  return true;
}

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
