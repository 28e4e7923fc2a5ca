// Public, for tests. StringTransport: an in-memory ITransport (twisted.internet.testing's
// StringTransport). What a protocol writes collects in value(); close and abort calls are
// recorded, never acted on, so a test drives the protocol by hand:
//
//   twist::StringTransport t;
//   MyProtocol p;
//   p.makeConnection(&t);
//   p.dataReceived("request\r\n");
//   EXPECT_EQ(t.value(), "response\r\n");
//   p.notifyConnectionLost(twist::ConnectionDone::failure());
#pragma once

#include <array>
#include <stdexcept>
#include <string>

#include "twist/reactor/transport.h"

namespace twist {

class StringTransport : public ITransport {
 public:
  explicit StringTransport(Address peer = IPv4Address{"192.0.2.2", 12345},
                           Address host = IPv4Address{"10.0.0.1", 8000})
      : peer_(std::move(peer)), host_(std::move(host)) {}
  ~StringTransport() override { unregisterProducer(); }

  // Everything written so far (writes after loseConnection/abortConnection are ignored, as on a
  // real connection).
  const std::string& value() const { return written_; }
  void clear() { written_.clear(); }

  // What the protocol asked for.
  bool loseConnectionCalled() const { return lostCalled_; }
  bool abortConnectionCalled() const { return abortCalled_; }
  bool loseWriteConnectionCalled() const { return writeShutdown_; }
  bool paused() const { return paused_; }
  int pauseCount() const { return pauses_; }

  void write(std::string_view data) override {
    if (!disconnecting_ && !writeShutdown_) written_.append(data);
  }
  void writeSequence(std::span<const std::string_view> data) override {
    for (auto d : data) write(d);
  }
  void loseConnection() override {
    lostCalled_ = true;
    disconnecting_ = true;
  }
  void abortConnection() override {
    abortCalled_ = true;
    disconnecting_ = true;
  }
  void loseWriteConnection() override { writeShutdown_ = true; }
  void pauseProducing() override {
    paused_ = true;
    ++pauses_;
  }
  void resumeProducing() override { paused_ = false; }
  // Records the producer (a test plays the consumer by calling its resumeProducing). As on a
  // real transport, a producer that is destroyed unregisters itself.
  void registerProducer(IProducer* producer, bool streaming) override {
    if (producer_ != nullptr) {
      throw std::logic_error("registerProducer: a producer is already registered");
    }
    linkProducer(*producer, this);
    producer_ = producer;
    streaming_ = streaming;
  }
  void unregisterProducer() override {
    if (producer_ != nullptr) linkProducer(*producer_, nullptr);
    producer_ = nullptr;
  }
  // The registered producer (call its resumeProducing to play the consumer), or nullptr.
  IProducer* producer() const override { return producer_; }
  bool streaming() const { return streaming_; }

  Address getPeer() const override { return peer_; }
  Address getHost() const override { return host_; }
  void setTcpNoDelay(bool on) override { noDelay_ = on; }
  bool getTcpNoDelay() const override { return noDelay_; }
  void setTcpKeepAlive(bool on) override { keepAlive_ = on; }
  bool getTcpKeepAlive() const override { return keepAlive_; }
  void setTcpKeepAliveTimes(int idle, int interval, int probes) override {
    keepAlive_ = true;
    keepAliveTimes_ = {idle, interval, probes};
  }
  // What setTcpKeepAliveTimes was given: {idle, interval, probes}.
  std::array<int, 3> keepAliveTimes() const { return keepAliveTimes_; }
  void setWriteBufferLimits(const WriteBufferLimits& limits) override { limits_ = limits; }
  WriteBufferLimits writeBufferLimits() const override { return limits_; }
  bool disconnecting() const override { return disconnecting_; }
  size_t bufferedSize() const override { return 0; }

 private:
  Address peer_, host_;
  std::string written_;
  bool lostCalled_ = false, abortCalled_ = false, writeShutdown_ = false;
  bool disconnecting_ = false, paused_ = false, noDelay_ = false, keepAlive_ = false;
  int pauses_ = 0;
  std::array<int, 3> keepAliveTimes_{};
  WriteBufferLimits limits_;
  IProducer* producer_ = nullptr;
  bool streaming_ = false;
};

}  // namespace twist
