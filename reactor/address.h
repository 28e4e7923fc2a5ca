// Public. Addresses: where a transport's end is. A family of value types (Twisted's
// IPv4Address, IPv6Address, UNIXAddress), and Address, which holds any one of them (or none).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <variant>

#include "twist/reactor/cxx20.h"

namespace twist {

struct IPv4Address {
  std::string host;  // "127.0.0.1"
  uint16_t port = 0;
  bool operator==(const IPv4Address&) const = default;
};

struct IPv6Address {
  std::string host;  // "::1"
  uint16_t port = 0;
  uint32_t flowInfo = 0;
  uint32_t scopeId = 0;
  bool operator==(const IPv6Address&) const = default;
};

// Who is at the other end of a UNIX socket, as the kernel saw it when the connection was made
// (SO_PEERCRED): not something the peer can claim.
struct UNIXCredentials {
  int pid = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  bool operator==(const UNIXCredentials&) const = default;
};

// A UNIX socket's path; one that starts with a NUL byte is in Linux's abstract namespace (no
// file; shown with '@' in its place). A connection's peer address carries the peer process's
// credentials; a path alone (a listening socket, a destination) has none.
struct UNIXAddress {
  std::string path;
  std::optional<UNIXCredentials> credentials{};
  bool operator==(const UNIXAddress&) const = default;
};

// One address of any family, or none (a default-constructed Address, or a transport that has
// no address, such as a closed one). A value: cheap to copy, comparable, printable. New families
// are new alternatives of the variant.
class Address {
 public:
  using Variant = std::variant<std::monostate, IPv4Address, IPv6Address, UNIXAddress>;

  Address() = default;
  Address(IPv4Address a) : v_(std::move(a)) {}  // NOLINT: implicit, an IPv4Address is an Address
  Address(IPv6Address a) : v_(std::move(a)) {}  // NOLINT
  Address(UNIXAddress a) : v_(std::move(a)) {}  // NOLINT

  // From a socket address (AF_INET, AF_INET6, AF_UNIX); std::invalid_argument for another family.
  static Address fromSockaddr(const sockaddr* sa, socklen_t len);

  template <class T>
  bool is() const {
    return std::holds_alternative<T>(v_);
  }
  // The address as a T, or nullptr when it is another family.
  template <class T>
  const T* get() const {
    return std::get_if<T>(&v_);
  }
  const Variant& variant() const { return v_; }
  bool empty() const { return is<std::monostate>(); }

  // The IP address or the UNIX path ("" for none): what per-peer limits and logs key on.
  std::string host() const;
  // The port (0 for UNIX addresses and none).
  uint16_t port() const;
  // "127.0.0.1:8000", "[::1]:8000", "/run/x.sock", "" for none: for logs.
  std::string toString() const;
  // As Twisted prints it: "IPv4Address(host='127.0.0.1', port=8000)".
  std::string repr() const;

  bool operator==(const Address&) const = default;

 private:
  Variant v_;
};

std::ostream& operator<<(std::ostream& os, const Address& a);

// The address a listening socket binds for `interface`: "" is every IPv4 interface (0.0.0.0),
// anything else must be a numeric IPv4 or IPv6 address (as parseIPAddress).
bool parseBindAddress(std::string_view interface, uint16_t port, sockaddr_storage* out,
                      socklen_t* len);

// Fills a sockaddr_un for `path` (a leading NUL or '@': the abstract namespace). False when the
// path is empty, too long for sun_path, or (a file path) has a NUL byte in it.
bool makeUNIXSockaddr(std::string_view path, sockaddr_storage* out, socklen_t* len);

// Parses a numeric IPv4 or IPv6 address ("127.0.0.1", "::1") into a socket address with `port`.
// False for anything else (a name, garbage, a string with a NUL byte in it). The one parser the
// transports share.
bool parseIPAddress(std::string_view host, uint16_t port, sockaddr_storage* out, socklen_t* len);

}  // namespace twist
