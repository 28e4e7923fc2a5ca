// Public, for tests. FakeDatagramTransport: an in-memory IUDPTransport (Twisted's
// twisted.test's FakeDatagramTransport), so a DatagramProtocol is tested without sockets:
//
//   twist::FakeDatagramTransport t;
//   MyDatagrams p;
//   p.makeConnection(&t);
//   p.datagramReceived("ping", twist::IPv4Address{"192.0.2.7", 5353});
//   ASSERT_EQ(t.written.size(), 1u);
//   EXPECT_EQ(t.written[0].data, "pong");
//   EXPECT_EQ(t.written[0].to, twist::Address(twist::IPv4Address{"192.0.2.7", 5353}));
//
// It records what the protocol does (datagrams written, connect, groups joined, options) and
// checks what a real port checks: datagrams over 65507 bytes throw MessageLengthError, an
// address-less write on an unconnected port and a second connect throw std::logic_error.
#pragma once

#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "twist/reactor/datagram.h"
#include "twist/reactor/errors.h"

namespace twist {

class FakeDatagramTransport : public IUDPTransport {
 public:
  struct Datagram {
    std::string data;
    Address to;  // the peer's, for a write on a connected transport
  };

  explicit FakeDatagramTransport(Address host = IPv4Address{"10.0.0.1", 9999},
                                 size_t maxPacketSize = 65535)
      : host_(std::move(host)), maxPacketSize_(maxPacketSize) {}

  std::vector<Datagram> written;
  std::set<std::string> groups;  // joined, as "group%interface"
  bool stopped = false;

  // IListeningPort
  Address getHost() const override { return host_; }
  Deferred<void> stopListening() override {
    stopped = true;
    return succeed();
  }
  bool listening() const override { return !stopped; }

  // IUDPTransport
  void write(std::string_view data, const Address& to) override {
    if (stopped) return;
    if (data.size() > 65507) throw MessageLengthError("udp write: datagram too large");
    if (!peer_.empty() && to != peer_) throw std::logic_error("udp write: connected elsewhere");
    written.push_back({std::string(data), to});
  }
  void write(std::string_view data) override {
    if (stopped) return;
    if (peer_.empty()) throw std::logic_error("udp write without an address: not connected");
    write(data, peer_);
  }
  void connect(std::string_view host, uint16_t port) override {
    if (!peer_.empty()) throw std::logic_error("udp connect: already connected");
    std::string h(host);
    peer_ = h.find(':') != std::string::npos ? Address(IPv6Address{h, port})
                                             : Address(IPv4Address{h, port});
  }
  Address getPeer() const override { return peer_; }
  uint64_t droppedWrites() const override { return 0; }
  size_t maxPacketSize() const override { return maxPacketSize_; }
  void setBroadcastAllowed(bool enabled) override { broadcast_ = enabled; }
  bool getBroadcastAllowed() const override { return broadcast_; }
  void joinGroup(std::string_view group, std::string_view interface) override {
    groups.insert(std::string(group) + "%" + std::string(interface));
  }
  void leaveGroup(std::string_view group, std::string_view interface) override {
    groups.erase(std::string(group) + "%" + std::string(interface));
  }
  void setTTL(int ttl) override {
    if (ttl < 0 || ttl > 255) throw std::invalid_argument("setTTL: 0 to 255");
    ttl_ = ttl;
  }
  int getTTL() const override { return ttl_; }
  void setLoopbackMode(bool enabled) override { loopback_ = enabled; }
  bool getLoopbackMode() const override { return loopback_; }
  void setOutgoingInterface(std::string_view interface) override {
    outgoing_ = std::string(interface);
  }
  const std::string& outgoingInterface() const { return outgoing_; }

 private:
  Address host_;
  Address peer_;
  size_t maxPacketSize_;
  bool broadcast_ = false, loopback_ = true;
  int ttl_ = 1;
  std::string outgoing_;
};

}  // namespace twist
