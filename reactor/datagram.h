// Public, part of //reactor:interfaces. UDP (Twisted's DatagramProtocol, IUDPTransport,
// IMulticastTransport, IReactorUDP): a DatagramProtocol gets datagramReceived(data, from) for
// each datagram and writes with transport()->write(data, to); listenUDP binds it to a port.
//
//   class Echo : public twist::DatagramProtocol {
//     void datagramReceived(std::string_view d, const twist::Address& from) override {
//       transport()->write(d, from);
//     }
//   };
//   reactor.listenUDP(9999, std::make_shared<Echo>(), {.interface = "127.0.0.1"});
//
// UDP is unreliable, and so is this: a datagram the kernel cannot take now (a full send buffer)
// is dropped and counted (droppedWrites()), never queued without bound.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "twist/reactor/address.h"
#include "twist/reactor/deferred.h"
#include "twist/reactor/interfaces.h"

namespace twist {

class IUDPTransport;

// One UDP socket's behaviour (Twisted's DatagramProtocol). Callbacks run on the reactor thread;
// an exception from one is logged and the port goes on.
class DatagramProtocol {
 public:
  virtual ~DatagramProtocol() = default;

  // The port is listening (transport() is set) / has stopped.
  virtual void startProtocol() {}
  virtual void stopProtocol() {}
  // One datagram. `data` is valid only during the call.
  virtual void datagramReceived(std::string_view data, const Address& from) = 0;
  // Connected UDP (IUDPTransport::connect): the peer's host said nothing listens there (ICMP
  // port unreachable, reported by the kernel on a later send or receive).
  virtual void connectionRefused() {}
  // A datagram of `size` bytes was larger than the port's maxPacketSize: it is dropped, never
  // delivered cut short. The default logs it (once per port and sender).
  virtual void datagramTruncated(size_t size, const Address& from);

  // The port; after the port is gone, a transport that ignores everything.
  IUDPTransport* transport() const { return transport_; }
  // For transports.
  void makeConnection(IUDPTransport* transport);
  void connectionEnded();

 private:
  IUDPTransport* transport_ = nullptr;
  std::string lastTruncationFrom_;  // the default datagramTruncated logs once per sender
};

// A UDP port, as its protocol and its owner see it (Twisted's udp.Port: IUDPTransport and
// IMulticastTransport). Methods run on the reactor thread. Misuse (a host that is not an IP
// address, write without an address on an unconnected port) throws std::invalid_argument or
// std::logic_error; a datagram too large for UDP throws MessageLengthError.
class IUDPTransport : public IListeningPort {
 public:
  // Sends one datagram to `to` (an IPv4 or IPv6 address of the port's family).
  virtual void write(std::string_view data, const Address& to) = 0;
  // Connected UDP: sends to the connected peer.
  virtual void write(std::string_view data) = 0;
  // Connects to host:port (an IP address, not a name, as in Twisted): from now on only that
  // peer's datagrams arrive, write(data) sends to it, and an ICMP refusal calls
  // connectionRefused(). Once only (std::logic_error again).
  virtual void connect(std::string_view host, uint16_t port) = 0;
  // The connected peer, or an empty Address.
  virtual Address getPeer() const = 0;
  // Datagrams write() dropped because the kernel's buffer was full (or the peer refused them).
  virtual uint64_t droppedWrites() const = 0;
  virtual size_t maxPacketSize() const = 0;

  virtual void setBroadcastAllowed(bool enabled) = 0;
  virtual bool getBroadcastAllowed() const = 0;

  // Multicast. `interface` is the local address to use ("" lets the kernel choose). Throws
  // std::system_error when the kernel refuses (std::invalid_argument for a bad address).
  virtual void joinGroup(std::string_view group, std::string_view interface = "") = 0;
  virtual void leaveGroup(std::string_view group, std::string_view interface = "") = 0;
  // Hops a multicast datagram may travel (1: this network only).
  virtual void setTTL(int ttl) = 0;
  virtual int getTTL() const = 0;
  // Whether this host's own sockets in the group receive what it sends.
  virtual void setLoopbackMode(bool enabled) = 0;
  virtual bool getLoopbackMode() const = 0;
  virtual void setOutgoingInterface(std::string_view interface) = 0;
};

// How listenUDP binds.
struct ListenUDPOptions {
  // "" = every IPv4 interface, "::" = every IPv6 one, or an address.
  std::string interface {};
  // Larger datagrams are dropped and reported (datagramTruncated). At most 65535.
  size_t maxPacketSize = 65535;
  // SO_REUSEADDR and SO_REUSEPORT, so several sockets (processes) share the port: what
  // Twisted's listenMulticast(listenMultiple=True) does.
  bool listenMultiple = false;
  bool ipv6Only = false;
};

// What code that uses UDP needs of a reactor (Twisted's IReactorUDP and IReactorMulticast).
class IReactorUDP {
 public:
  virtual ~IReactorUDP() = default;
  // Binds `protocol` to `port` (0: a free one; see getHost()). Throws CannotListenError. The
  // reactor keeps the port alive until stopListening().
  virtual std::shared_ptr<IUDPTransport> listenUDP(uint16_t port,
                                                   std::shared_ptr<DatagramProtocol> protocol,
                                                   const ListenUDPOptions& options = {}) = 0;
  // Twisted's listenMulticast: listenUDP by another name (any UDP port can join groups; set
  // listenMultiple to share the port with other sockets in the group).
  std::shared_ptr<IUDPTransport> listenMulticast(uint16_t port,
                                                 std::shared_ptr<DatagramProtocol> protocol,
                                                 ListenUDPOptions options = {}) {
    return listenUDP(port, std::move(protocol), options);
  }
};

}  // namespace twist
