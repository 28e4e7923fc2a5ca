#include "transports/address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdexcept>

namespace twist {

Address Address::fromSockaddr(const sockaddr* sa, socklen_t len, std::string type) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    return Address(Family::IPv4, buf, ntohs(in->sin_port), std::move(type));
  }
  if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
    return Address(Family::IPv6, buf, ntohs(in6->sin6_port), std::move(type));
  }
  throw std::invalid_argument("unsupported socket address family " + std::to_string(sa->sa_family));
}

std::string Address::hostPort() const {
  std::string p = std::to_string(port_);
  return family_ == Family::IPv6 ? "[" + host_ + "]:" + p : host_ + ":" + p;
}

std::string Address::toString() const {
  return std::string(family_ == Family::IPv6 ? "IPv6Address" : "IPv4Address") + "(type='" + type_ +
         "', host='" + host_ + "', port=" + std::to_string(port_) + ")";
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

std::ostream& operator<<(std::ostream& os, const Address& a) { return os << a.toString(); }

}  // namespace twist
