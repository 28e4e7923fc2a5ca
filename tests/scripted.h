// Helpers for the TCP tests: a protocol whose callbacks a test scripts, a factory that records
// every connection it built, payload patterns, and a client that echoes in both directions.
#pragma once

#include <fcntl.h>
#include <poll.h>

#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tests/test_util.h"
#include "twist/reactor/protocol.h"
#include "twist/reactor/transport.h"

namespace twist::testing {

// What one server-side connection saw.
struct ConnRecord {
  int made = 0;
  int lost = 0;
  bool dataAfterLost = false;
  bool dataBeforeMade = false;
  std::string data;
  Failure reason;
  Address host, peer;
};

struct Hooks {
  std::function<void(Protocol&)> made;
  std::function<void(Protocol&, std::string_view)> data;
  std::function<void(Protocol&, const Failure&)> lost;
};

class ScriptedProtocol : public Protocol {
 public:
  ScriptedProtocol(const Hooks& hooks, std::shared_ptr<ConnRecord> rec)
      : hooks_(hooks), rec_(std::move(rec)) {}
  void connectionMade() override {
    ++rec_->made;
    rec_->host = transport()->getHost();
    rec_->peer = transport()->getPeer();
    if (hooks_.made) hooks_.made(*this);
  }
  void dataReceived(std::string_view d) override {
    if (rec_->lost) rec_->dataAfterLost = true;
    if (!rec_->made) rec_->dataBeforeMade = true;
    rec_->data.append(d);
    if (hooks_.data) hooks_.data(*this, d);
  }
  void connectionLost(const Failure& reason) override {
    ++rec_->lost;
    rec_->reason = reason;
    if (hooks_.lost) hooks_.lost(*this, reason);
  }

 private:
  const Hooks& hooks_;
  std::shared_ptr<ConnRecord> rec_;
};

class ScriptedFactory : public ServerFactory {
 public:
  std::shared_ptr<Protocol> buildProtocol(const Address&) override {
    if (refuse) return nullptr;
    conns.push_back(std::make_shared<ConnRecord>());
    return std::make_unique<ScriptedProtocol>(hooks, conns.back());
  }
  void startFactory() override { ++starts; }
  void stopFactory() override { ++stops; }

  int lostCount() const {
    int n = 0;
    for (auto& c : conns) n += c->lost;
    return n;
  }
  // Every connection: made once, lost once, nothing delivered outside that window.
  void expectEachLostOnce() const {
    for (auto& c : conns) {
      EXPECT_EQ(c->made, 1);
      EXPECT_EQ(c->lost, 1);
      EXPECT_FALSE(c->dataAfterLost);
      EXPECT_FALSE(c->dataBeforeMade);
    }
  }

  Hooks hooks;
  std::vector<std::shared_ptr<ConnRecord>> conns;
  bool refuse = false;
  int starts = 0;
  int stops = 0;
};

inline std::string pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::mt19937 rng(seed);
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Sends `payload` while reading the echo at the same time (so neither side's buffers fill up
// and deadlock); returns what came back.
inline std::string duplexEcho(uint16_t port, const std::string& payload) {
  int fd = connectTo(port);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  size_t sent = 0;
  std::string got;
  std::vector<char> buf(1 << 16);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (got.size() < payload.size() && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, static_cast<short>(POLLIN | (sent < payload.size() ? POLLOUT : 0)), 0};
    if (::poll(&p, 1, 1000) < 0) break;
    if ((p.revents & POLLOUT) && sent < payload.size()) {
      ssize_t n = ::send(fd, payload.data() + sent,
                         std::min<size_t>(payload.size() - sent, 1 << 16), MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<size_t>(n);
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
      if (n <= 0 && errno != EAGAIN) break;
      if (n > 0) got.append(buf.data(), static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return got;
}

inline uint16_t portOf(const std::shared_ptr<IListeningPort>& p) { return p->getHost().port(); }

}  // namespace twist::testing
