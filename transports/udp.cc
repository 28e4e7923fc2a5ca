#include "twist/transports/udp.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "twist/reactor/errors.h"
#include "twist/reactor/guard.h"
#include "twist/reactor/log.h"
#include "twist/reactor/reactor_base.h"

namespace twist::udp {
namespace {

// Datagrams one recvmmsg/sendmmsg takes at most, and the receive buffer for a batch (fewer
// slots for a large maxPacketSize: 16 for 65535). One buffer per thread, shared by its ports:
// datagramReceived gets views into it, valid during the call.
constexpr size_t kMaxBatch = 64;
constexpr size_t kBatchBytes = 1024 * 1024;

struct BatchBuffer {
  std::vector<char> data = std::vector<char>(kBatchBytes + kMaxBatch);
  sockaddr_storage from[kMaxBatch];
};
BatchBuffer& batchBuffer() {
  thread_local BatchBuffer buffer;
  return buffer;
}
// The largest UDP payload: 65535 minus the UDP header and (IPv4) the IP header.
constexpr size_t kMaxDatagramV4 = 65507;
constexpr size_t kMaxDatagramV6 = 65527;

bool wouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

// An IPv4 address as IPv6 (::ffff:a.b.c.d), for an IPv6 socket that talks to IPv4 peers.
void mapToV6(sockaddr_storage* ss, socklen_t* len) {
  sockaddr_in in;
  std::memcpy(&in, ss, sizeof in);
  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  in6.sin6_port = in.sin_port;
  in6.sin6_addr.s6_addr[10] = 0xff;
  in6.sin6_addr.s6_addr[11] = 0xff;
  std::memcpy(&in6.sin6_addr.s6_addr[12], &in.sin_addr, 4);
  *ss = sockaddr_storage{};
  std::memcpy(ss, &in6, sizeof in6);
  *len = sizeof in6;
}

// A protocol callback: an exception it throws is logged and the port goes on.
template <class F>
void callProtocol(const char* what, F&& fn) {
  detail::guardCallback("udp.Port", what, std::forward<F>(fn));
}

}  // namespace

Port::Port(ReactorBase& reactor, std::shared_ptr<DatagramProtocol> protocol, size_t maxPacketSize)
    : reactor_(&reactor),
      protocol_(std::move(protocol)),
      maxPacketSize_(maxPacketSize),
      batch_(std::clamp<size_t>(kBatchBytes / (maxPacketSize + 1), 1, kMaxBatch)) {}

std::shared_ptr<Port> Port::listen(ReactorBase& reactor, uint16_t port,
                                   std::shared_ptr<DatagramProtocol> protocol,
                                   const ListenUDPOptions& options) {
  if (!protocol) throw std::invalid_argument("listenUDP needs a protocol");
  if (options.maxPacketSize == 0 || options.maxPacketSize > 65535) {
    throw std::invalid_argument("listenUDP: maxPacketSize must be 1 to 65535");
  }
  const std::string& iface = options.interface;
  sockaddr_storage ss{};
  socklen_t len;
  if (!parseBindAddress(iface, port, &ss, &len)) {
    throw CannotListenError(iface, port, "'" + iface + "' is not an IPv4 or IPv6 address");
  }
  int fd = ::socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw CannotListenError::fromErrno(iface, port, errno);
  int one = 1;
  if (options.listenMultiple) {
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  }
  if (ss.ss_family == AF_INET6) {
    int v6only = options.ipv6Only ? 1 : 0;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    int err = errno;
    ::close(fd);
    throw CannotListenError::fromErrno(iface, port, err);
  }
  if (!reactor.canWatch(fd)) {
    ::close(fd);
    throw CannotListenError(iface, port, reactor.cannotWatch(fd));
  }
  sockaddr_storage bound{};
  socklen_t boundLen = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &boundLen);

  std::shared_ptr<Port> p(new Port(reactor, std::move(protocol), options.maxPacketSize));
  p->fd_ = fd;
  p->family_ = ss.ss_family;
  p->host_ = Address::fromSockaddr(reinterpret_cast<sockaddr*>(&bound), boundLen);
  p->readEvent_ =
      event_new(reactor.eventBase(), fd, EV_READ | EV_PERSIST, &Port::onReadable, p.get());
  event_add(p->readEvent_, nullptr);
  reactor.addSelectable(p);
  try {
    p->protocol_->makeConnection(p.get());
  } catch (...) {
    (void)p->stopListening();
    throw;
  }
  return p;
}

Port::~Port() {
  if (readEvent_ != nullptr) event_free(readEvent_);
  if (fd_ >= 0) ::close(fd_);
}

Deferred<void> Port::stopListening() {
  if (fd_ < 0) return succeed();
  event_free(readEvent_);
  readEvent_ = nullptr;
  ::close(fd_);
  fd_ = -1;
  out_.clear();
  outBuffer_.clear();
  callProtocol("stopProtocol", [&] { protocol_->connectionEnded(); });
  ReactorBase* r = reactor_;
  reactor_ = nullptr;
  r->removeSelectable(this);  // may free this object once the callback returns
  return succeed();
}

void Port::checkOpen(const char* what) const {
  if (fd_ < 0) throw std::logic_error(std::string(what) + ": the port is closed");
}

// ---- receiving ----

void Port::onReadable(int, short, void* arg) {
  detail::guardCallback("udp.Port", "reading datagrams",
                        [&] { static_cast<Port*>(arg)->handleRead(); });
}

void Port::handleRead() {
  if (fd_ < 0) return;
  mmsghdr msgs[kMaxBatch];
  iovec iov[kMaxBatch];
  const size_t slot = maxPacketSize_ + 1;
  BatchBuffer& in = batchBuffer();
  for (size_t i = 0; i < batch_; ++i) {
    iov[i] = {in.data.data() + i * slot, slot};
    msgs[i] = mmsghdr{};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &in.from[i];
    msgs[i].msg_hdr.msg_namelen = sizeof in.from[i];
  }
  // MSG_TRUNC: msg_len is a datagram's real size, even when it did not fit.
  int n = ::recvmmsg(fd_, msgs, static_cast<unsigned>(batch_), MSG_DONTWAIT | MSG_TRUNC, nullptr);
  if (n < 0) {
    int err = errno;
    if (err == ECONNREFUSED) {
      refused();
    } else if (!wouldBlock(err) && err != EINTR) {
      log::warn("udp.Port", "recvmmsg on " + host_.toString() + ": " + std::strerror(err));
    }
    return;
  }
  inBatch_ = true;
  for (int i = 0; i < n && fd_ >= 0; ++i) {
    const msghdr& h = msgs[i].msg_hdr;
    size_t size = msgs[i].msg_len;
    if (!connected_ && (h.msg_namelen != lastFromLen_ ||
                        std::memcmp(&in.from[i], &lastFrom_, h.msg_namelen) != 0)) {
      try {
        lastFromAddress_ =
            Address::fromSockaddr(reinterpret_cast<const sockaddr*>(&in.from[i]), h.msg_namelen);
      } catch (const std::invalid_argument&) {
        continue;  // not an IP sender (cannot happen on an IP socket)
      }
      std::memcpy(&lastFrom_, &in.from[i], h.msg_namelen);
      lastFromLen_ = h.msg_namelen;
    }
    const Address& from = connected_ ? peer_ : lastFromAddress_;
    if (size > maxPacketSize_ || (h.msg_flags & MSG_TRUNC) != 0) {
      callProtocol("datagramTruncated", [&] { protocol_->datagramTruncated(size, from); });
      continue;
    }
    std::string_view data(in.data.data() + static_cast<size_t>(i) * slot, size);
    callProtocol("datagramReceived", [&] { protocol_->datagramReceived(data, from); });
  }
  inBatch_ = false;
  flushBatch();
}

void Port::refused() {
  if (!connected_) return;
  callProtocol("connectionRefused", [&] { protocol_->connectionRefused(); });
}

// ---- sending ----

void Port::resolve(const Address& to, sockaddr_storage* out, socklen_t* len) {
  if (lastFromLen_ != 0 && to == lastFromAddress_) {
    *out = lastFrom_;
    *len = lastFromLen_;
    return;
  }
  const auto* v4 = to.get<IPv4Address>();
  const auto* v6 = to.get<IPv6Address>();
  if ((v4 == nullptr && v6 == nullptr) || !parseIPAddress(to.host(), to.port(), out, len)) {
    throw std::invalid_argument("udp write: '" + to.toString() +
                                "' is not an IPv4 or IPv6 address with a port");
  }
  if (v6 != nullptr) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(out);
    in6->sin6_scope_id = v6->scopeId;
    in6->sin6_flowinfo = htonl(v6->flowInfo);
  }
  if (out->ss_family == AF_INET && family_ == AF_INET6) mapToV6(out, len);
  if (out->ss_family != family_) {
    throw std::invalid_argument("udp write: " + to.toString() + " is IPv6 and the port is IPv4");
  }
}

void Port::write(std::string_view data, const Address& to) {
  if (fd_ < 0) return;
  if (connected_) {
    if (to != peer_) {
      throw std::logic_error("udp write: the port is connected to " + peer_.toString() + ", not " +
                             to.toString());
    }
    write(data);
    return;
  }
  sockaddr_storage ss;
  socklen_t len;
  resolve(to, &ss, &len);
  send(data, reinterpret_cast<sockaddr*>(&ss), len);
}

void Port::write(std::string_view data) {
  if (fd_ < 0) return;
  if (!connected_)
    throw std::logic_error("udp write without an address: the port is not connected");
  send(data, nullptr, 0);
}

void Port::send(std::string_view data, const sockaddr* to, socklen_t len) {
  size_t limit = family_ == AF_INET6 ? kMaxDatagramV6 : kMaxDatagramV4;
  if (data.size() > limit) {
    throw MessageLengthError("udp write: a datagram of " + std::to_string(data.size()) +
                             " bytes is larger than UDP carries (" + std::to_string(limit) + ")");
  }
  if (inBatch_) {
    // Replies to a batch go out together in one sendmmsg once the batch is delivered.
    if (out_.size() == kMaxBatch) flushBatch();
    Outgoing o{outBuffer_.size(), data.size(), {}, len};
    if (to != nullptr) std::memcpy(&o.to, to, len);
    outBuffer_.insert(outBuffer_.end(), data.begin(), data.end());
    out_.push_back(o);
    return;
  }
  ssize_t n = to != nullptr ? ::sendto(fd_, data.data(), data.size(), 0, to, len)
                            : ::send(fd_, data.data(), data.size(), 0);
  if (n < 0) sendFailed(errno);
}

void Port::flushBatch() {
  size_t i = 0;
  while (i < out_.size() && fd_ >= 0) {
    mmsghdr msgs[kMaxBatch];
    iovec iov[kMaxBatch];
    size_t k = std::min(kMaxBatch, out_.size() - i);
    for (size_t j = 0; j < k; ++j) {
      Outgoing& o = out_[i + j];
      iov[j] = {outBuffer_.data() + o.offset, o.size};
      msgs[j] = mmsghdr{};
      msgs[j].msg_hdr.msg_iov = &iov[j];
      msgs[j].msg_hdr.msg_iovlen = 1;
      if (o.len != 0) {
        msgs[j].msg_hdr.msg_name = &o.to;
        msgs[j].msg_hdr.msg_namelen = o.len;
      }
    }
    int n = ::sendmmsg(fd_, msgs, static_cast<unsigned>(k), 0);
    if (n > 0) {
      i += static_cast<size_t>(n);
      continue;
    }
    int err = errno;
    if (err == EINTR) continue;
    if (wouldBlock(err) || err == ENOBUFS) {  // the kernel's buffer is full: the rest is lost
      dropped_ += out_.size() - i;
      break;
    }
    sendFailed(err);  // this one datagram is lost; the rest may still go
    ++i;
  }
  out_.clear();
  outBuffer_.clear();
}

void Port::sendFailed(int err) {
  ++dropped_;
  if (wouldBlock(err) || err == ENOBUFS || err == EINTR) return;
  if (err == ECONNREFUSED) {
    refused();
    return;
  }
  log::warn("udp.Port", "send on " + host_.toString() + " failed: " + std::strerror(err));
}

void Port::connect(std::string_view host, uint16_t port) {
  checkOpen("udp connect");
  if (connected_) throw std::logic_error("udp connect: already connected to " + peer_.toString());
  sockaddr_storage ss;
  socklen_t len;
  if (!parseIPAddress(host, port, &ss, &len)) {
    throw std::invalid_argument("udp connect: '" + std::string(host) +
                                "' is not an IP address (resolve names first)");
  }
  Address peer = Address::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  if (ss.ss_family == AF_INET && family_ == AF_INET6) mapToV6(&ss, &len);
  if (ss.ss_family != family_) {
    throw std::invalid_argument("udp connect: an IPv6 address for an IPv4 port");
  }
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    throw ConnectError::fromErrno(errno, "udp connect()");
  }
  peer_ = std::move(peer);
  connected_ = true;
}

// ---- options and multicast ----

namespace {
void setInt(int fd, int level, int name, int value, const char* what) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) {
    throw std::system_error(errno, std::generic_category(), what);
  }
}
int getInt(int fd, int level, int name) {
  int v = 0;
  socklen_t len = sizeof v;
  ::getsockopt(fd, level, name, &v, &len);
  return v;
}
unsigned interfaceIndex(std::string_view name) {
  if (name.empty()) return 0;
  unsigned index = ::if_nametoindex(std::string(name).c_str());
  if (index == 0) {
    throw std::invalid_argument("no network interface named '" + std::string(name) + "'");
  }
  return index;
}
}  // namespace

void Port::setBroadcastAllowed(bool on) {
  checkOpen("setBroadcastAllowed");
  setInt(fd_, SOL_SOCKET, SO_BROADCAST, on ? 1 : 0, "SO_BROADCAST");
}
bool Port::getBroadcastAllowed() const {
  return fd_ >= 0 && getInt(fd_, SOL_SOCKET, SO_BROADCAST) != 0;
}

void Port::membership(std::string_view group, std::string_view interface, bool join) {
  checkOpen(join ? "joinGroup" : "leaveGroup");
  std::string g(group);
  const char* what = join ? "joinGroup" : "leaveGroup";
  if (family_ == AF_INET) {
    ip_mreqn req{};
    if (::inet_pton(AF_INET, g.c_str(), &req.imr_multiaddr) != 1 ||
        !IN_MULTICAST(ntohl(req.imr_multiaddr.s_addr))) {
      throw std::invalid_argument(std::string(what) + ": '" + g +
                                  "' is not an IPv4 multicast address");
    }
    if (!interface.empty() &&
        ::inet_pton(AF_INET, std::string(interface).c_str(), &req.imr_address) != 1) {
      throw std::invalid_argument(std::string(what) + ": '" + std::string(interface) +
                                  "' is not an IPv4 address");
    }
    if (::setsockopt(fd_, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &req,
                     sizeof req) != 0) {
      throw std::system_error(errno, std::generic_category(), std::string(what) + " " + g);
    }
    return;
  }
  ipv6_mreq req{};
  if (::inet_pton(AF_INET6, g.c_str(), &req.ipv6mr_multiaddr) != 1 ||
      !IN6_IS_ADDR_MULTICAST(&req.ipv6mr_multiaddr)) {
    throw std::invalid_argument(std::string(what) + ": '" + g +
                                "' is not an IPv6 multicast address");
  }
  req.ipv6mr_interface = interfaceIndex(interface);
  if (::setsockopt(fd_, IPPROTO_IPV6, join ? IPV6_JOIN_GROUP : IPV6_LEAVE_GROUP, &req,
                   sizeof req) != 0) {
    throw std::system_error(errno, std::generic_category(), std::string(what) + " " + g);
  }
}

void Port::joinGroup(std::string_view group, std::string_view interface) {
  membership(group, interface, true);
}
void Port::leaveGroup(std::string_view group, std::string_view interface) {
  membership(group, interface, false);
}

void Port::setTTL(int ttl) {
  checkOpen("setTTL");
  if (ttl < 0 || ttl > 255) throw std::invalid_argument("setTTL: 0 to 255");
  if (family_ == AF_INET) {
    setInt(fd_, IPPROTO_IP, IP_MULTICAST_TTL, ttl, "IP_MULTICAST_TTL");
  } else {
    setInt(fd_, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, ttl, "IPV6_MULTICAST_HOPS");
  }
}
int Port::getTTL() const {
  if (fd_ < 0) return 0;
  return family_ == AF_INET ? getInt(fd_, IPPROTO_IP, IP_MULTICAST_TTL)
                            : getInt(fd_, IPPROTO_IPV6, IPV6_MULTICAST_HOPS);
}

void Port::setLoopbackMode(bool on) {
  checkOpen("setLoopbackMode");
  if (family_ == AF_INET) {
    setInt(fd_, IPPROTO_IP, IP_MULTICAST_LOOP, on ? 1 : 0, "IP_MULTICAST_LOOP");
  } else {
    setInt(fd_, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, on ? 1 : 0, "IPV6_MULTICAST_LOOP");
  }
}
bool Port::getLoopbackMode() const {
  if (fd_ < 0) return false;
  return (family_ == AF_INET ? getInt(fd_, IPPROTO_IP, IP_MULTICAST_LOOP)
                             : getInt(fd_, IPPROTO_IPV6, IPV6_MULTICAST_LOOP)) != 0;
}

void Port::setOutgoingInterface(std::string_view interface) {
  checkOpen("setOutgoingInterface");
  if (family_ == AF_INET) {
    in_addr addr{};
    if (::inet_pton(AF_INET, std::string(interface).c_str(), &addr) != 1) {
      throw std::invalid_argument("setOutgoingInterface: '" + std::string(interface) +
                                  "' is not an IPv4 address");
    }
    if (::setsockopt(fd_, IPPROTO_IP, IP_MULTICAST_IF, &addr, sizeof addr) != 0) {
      throw std::system_error(errno, std::generic_category(), "IP_MULTICAST_IF");
    }
    return;
  }
  setInt(fd_, IPPROTO_IPV6, IPV6_MULTICAST_IF, static_cast<int>(interfaceIndex(interface)),
         "IPV6_MULTICAST_IF");
}

}  // namespace twist::udp
