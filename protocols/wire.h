// Public. The small RFC "wire" protocols Twisted ships (twisted.protocols.wire), in
// twist::wire: Echo, Discard, Chargen, Daytime, Time, QOTD.
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

#include "twist/reactor/protocol.h"

namespace twist::wire {

// RFC 862: sends back everything it receives.
class Echo : public Protocol {
 public:
  void dataReceived(std::string_view data) override { transport()->write(data); }
};

// RFC 863: reads and ignores everything.
class Discard : public Protocol {
 public:
  void dataReceived(std::string_view) override {}
};

// RFC 867: sends the date and time as text ("Mon Nov 23 19:40:12 2026\r\n", UTC) and closes.
class Daytime : public Protocol {
 public:
  void connectionMade() override {
    std::time_t now = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&now, &utc);
    char buf[64];
    size_t n = std::strftime(buf, sizeof buf, "%a %b %d %H:%M:%S %Y\r\n", &utc);
    transport()->write(std::string_view(buf, n));
    transport()->loseConnection();
  }
};

// RFC 868: sends the time as a 32-bit big-endian count of seconds since 1900-01-01 and closes.
class Time : public Protocol {
 public:
  static constexpr uint64_t kSecondsFrom1900To1970 = 2208988800u;
  void connectionMade() override {
    auto unix = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
    uint32_t t = static_cast<uint32_t>(static_cast<uint64_t>(unix) + kSecondsFrom1900To1970);
    char buf[4] = {static_cast<char>(t >> 24), static_cast<char>(t >> 16),
                   static_cast<char>(t >> 8), static_cast<char>(t)};
    transport()->write(std::string_view(buf, 4));
    transport()->loseConnection();
  }
};

// RFC 864: sends the character-generator pattern until the client hangs up, with flow control:
// it is a pull producer, so it writes one chunk each time the socket can take more and never
// buffers without bound however slowly the client reads.
class Chargen : public Protocol, public IProducer {
 public:
  static constexpr size_t kLine = 72;        // characters per line, before "\r\n"
  static constexpr size_t kChunkLines = 64;  // lines per write

  void connectionMade() override { transport()->registerProducer(this, false); }
  void connectionLost(const Failure&) override {}
  void dataReceived(std::string_view) override {}  // input is ignored
  void resumeProducing() override {
    std::string chunk;
    chunk.reserve(kChunkLines * (kLine + 2));
    for (size_t i = 0; i < kChunkLines; ++i) chunk += line(next_++);
    transport()->write(chunk);
  }
  // Line n of the pattern: the 95 printable ASCII characters, rotating by one per line.
  static std::string line(size_t n) {
    std::string out(kLine, ' ');
    for (size_t i = 0; i < kLine; ++i) out[i] = static_cast<char>(' ' + (n + i) % 95);
    return out + "\r\n";
  }

 private:
  size_t next_ = 0;
};

// RFC 865: sends a quote and closes.
class QOTD : public Protocol {
 public:
  explicit QOTD(std::string quote = "An apple a day keeps the doctor away.\r\n")
      : quote_(std::move(quote)) {}
  void connectionMade() override {
    transport()->write(quote_);
    transport()->loseConnection();
  }

 private:
  std::string quote_;
};

}  // namespace twist::wire
