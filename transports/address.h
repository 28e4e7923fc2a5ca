// Public. Address: where a transport's end is (Twisted's IPv4Address / IPv6Address).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

namespace twist {

// A value: family, transport type, host and port. Printable.
class Address {
 public:
  enum class Family { IPv4, IPv6 };

  Address() = default;
  Address(Family family, std::string host, uint16_t port, std::string type = "TCP")
      : family_(family), type_(std::move(type)), host_(std::move(host)), port_(port) {}

  // From a socket address (AF_INET or AF_INET6); throws std::invalid_argument for others.
  static Address fromSockaddr(const sockaddr* sa, socklen_t len, std::string type = "TCP");

  Family family() const { return family_; }
  const std::string& type() const { return type_; }  // "TCP"
  const std::string& host() const { return host_; }  // "127.0.0.1", "::1"
  uint16_t port() const { return port_; }

  // "127.0.0.1:8000" or "[::1]:8000".
  std::string hostPort() const;
  // "IPv4Address(type='TCP', host='127.0.0.1', port=8000)", as Twisted prints it.
  std::string toString() const;

  bool operator==(const Address& o) const {
    return family_ == o.family_ && type_ == o.type_ && host_ == o.host_ && port_ == o.port_;
  }

 private:
  Family family_ = Family::IPv4;
  std::string type_ = "TCP";
  std::string host_;
  uint16_t port_ = 0;
};

std::ostream& operator<<(std::ostream& os, const Address& a);

// Parses a numeric IPv4 or IPv6 address ("127.0.0.1", "::1") into a socket address with `port`.
// False for anything else (a name, garbage, a string with a NUL byte in it).
bool parseIPAddress(std::string_view host, uint16_t port, sockaddr_storage* out, socklen_t* len);

}  // namespace twist
